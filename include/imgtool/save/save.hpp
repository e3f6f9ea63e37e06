// `save`: writes images of the store as an archive pull-local reads: a docker archive (podman load's
// format, uncompressed layers, manifest.json with RepoTags), an OCI archive, or an OCI layout directory.
//
// The store keeps no blobs of layers: each layer's tar is regenerated from its tar record and its
// tree (layer/tar_record.hpp), and its SHA-256 must be the diff_id, checked as it is written; so
// the configs, and the image IDs, are the originals. OCI layers are gzip-compressed (ISA-L) into a
// spool file in the store's tmp/ first: an OCI archive's tar header needs the blob's size, and its
// name the blob's digest, before its bytes (compressing twice instead would double the CPU).
//
// The index (manifest.json, index.json) is written last, so an archive cut short by a failed
// verification is not loadable; a FILE target is a temp file renamed only on success (removed on
// failure), an OCI directory a temp directory renamed the same way. Layers several images share
// are written once. Nothing in the store changes.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "imgtool/store/store.hpp"

namespace imgtool::save {

enum class Format { DockerArchive, OciArchive, OciDir };

// "docker-archive" | "oci-archive" | "oci-dir"; throws Errc::InvalidArgument otherwise.
Format parse_format(const std::string& name);

struct SaveRequest {
    std::string reference;        // as the user gave it: errors name it
    store::ImageRecord image;
    std::vector<std::string> tags;  // names to record (RepoTags, ref.name)
};

struct SaveOptions {
    Format format = Format::DockerArchive;
    // A file (archives) or a directory (oci-dir) to create; empty: `stdout_fd` (archives only).
    std::string output;
    int stdout_fd = 1;
    mode_t file_mode = 0644;  // of the files made (the process umask is 0)
};

struct SaveStats {
    std::uint64_t layers = 0;  // distinct layers written
    std::uint64_t bytes = 0;   // written to the output
};

SaveStats save_images(store::Store& store, const std::vector<SaveRequest>& images, const SaveOptions& options);

}  // namespace imgtool::save
