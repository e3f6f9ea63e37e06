// image/source: the one list of layer media types, and the members of an OCI layout directory (a
// missing member is an answer, a symlinked one an error, never followed).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ostream>  // std::error_code printing in failed CHECKs
#include <string>
#include <system_error>

#include "fs_test_support.hpp"
#include "imgtool/image/source.hpp"
#include "test_support.hpp"

using namespace imgtool;
using fs_test::check_sys;
using fs_test::make_dir;
using fs_test::Scratch;
using fs_test::write_file;

TEST_CASE("is_layer_media_type: OCI layers (nondistributable too) and Docker's, exactly") {
    CHECK(image::is_layer_media_type("application/vnd.oci.image.layer.v1.tar"));
    CHECK(image::is_layer_media_type("application/vnd.oci.image.layer.v1.tar+gzip"));
    CHECK(image::is_layer_media_type("application/vnd.oci.image.layer.v1.tar+zstd"));
    CHECK(image::is_layer_media_type("application/vnd.oci.image.layer.nondistributable.v1.tar"));
    CHECK(image::is_layer_media_type("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"));
    CHECK(image::is_layer_media_type("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"));
    CHECK(image::is_layer_media_type("application/vnd.docker.image.rootfs.diff.tar"));
    CHECK(image::is_layer_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"));
    CHECK(image::is_layer_media_type("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"));

    CHECK_FALSE(image::is_layer_media_type("application/vnd.oci.image.config.v1+json"));
    CHECK_FALSE(image::is_layer_media_type("application/vnd.oci.image.manifest.v1+json"));
    CHECK_FALSE(image::is_layer_media_type("application/octet-stream"));
    CHECK_FALSE(image::is_layer_media_type("application/vnd.oci.image.layer.v1.tar+bzip2"));
    CHECK_FALSE(image::is_layer_media_type("application/vnd.oci.image.layer.v1.tar+gzip\n"));
    CHECK_FALSE(image::is_layer_media_type("foo.tar"));  // a suffix alone names nothing
    CHECK_FALSE(image::is_layer_media_type(""));
}

TEST_CASE("an OCI layout's member_size: missing is nullopt, a symlink is refused, not followed") {
    Scratch s;
    make_dir(s.fd(), "layout");
    sys::UniqueFd dir = sys::open_at(s.fd(), "layout", O_RDONLY | O_DIRECTORY);
    write_file(dir.get(), "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    write_file(dir.get(), "index.json", "{}");
    make_dir(dir.get(), "blobs");
    write_file(dir.get(), "blobs/five", "12345");
    make_dir(dir.get(), "blobs/a-directory");
    check_sys(::symlinkat("five", dir.get(), "blobs/link") == 0, "symlink blobs/link");
    write_file(s.fd(), "outside", "secret");
    check_sys(::symlinkat("../outside", dir.get(), "escape") == 0, "symlink escape");

    auto source = image::Source::open(s.path() + "/layout");
    CHECK(source->format() == image::SourceFormat::OciLayout);
    CHECK(source->member_size("blobs/five") == 5u);
    CHECK(source->member_size("blobs/missing") == std::nullopt);
    CHECK(source->member_size("missing/deeper") == std::nullopt);
    CHECK(source->member_size("blobs/a-directory") == std::nullopt);  // only regular files are members
    std::error_code eloop(ELOOP, std::generic_category());
    CHECK(test_support::thrown_code([&] { source->member_size("blobs/link"); }) == eloop);
    CHECK(test_support::thrown_code([&] { source->member_size("escape"); }) == eloop);
}
