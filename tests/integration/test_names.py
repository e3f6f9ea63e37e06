"""Image names (docs/store.md, "Names"): short names resolve as docker normalises them, a miss
suggests the nearest stored name, OCI ref names become tags as podman names them, skopeo's
PATH:REF imports one image, and what pull-local cannot take is said with the full path.

The umoci layout (refs base, v1, v2) is made here with umoci; podman 4.3 (temporary --root and
--runroot) is asked what it names the same refs, and imgtool must give the same names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import harness

LAYOUT = None  # umoci layout with refs base, v1, v2 (three different images)
WORK = None


def setUpModule():
    global LAYOUT, WORK
    harness.require_root()
    harness.imgtool_binary()
    harness.images()
    harness.require_tool("umoci")
    os.makedirs(os.path.join(harness.TEST_TMP, "work"), exist_ok=True)
    WORK = tempfile.mkdtemp(prefix="names-", dir=os.path.join(harness.TEST_TMP, "work"))
    LAYOUT = os.path.join(WORK, "lay")
    content = os.path.join(WORK, "content")
    os.makedirs(content)
    with open(os.path.join(content, "hello"), "w") as fh:
        fh.write("hi\n")

    def umoci(*args):
        subprocess.run(["umoci", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    umoci("init", "--layout", LAYOUT)
    umoci("new", "--image", f"{LAYOUT}:base")
    umoci("insert", "--image", f"{LAYOUT}:base", "--tag", "v1", os.path.join(content, "hello"), "/hello")
    umoci("config", "--image", f"{LAYOUT}:v1", "--tag", "v2", "--config.cmd", "/hello")


def tearDownModule():
    if WORK and not os.environ.get("IMGTOOL_TEST_KEEP"):
        shutil.rmtree(WORK, True)


def busybox(fmt: str = "docker-archive") -> str:
    return harness.image_path("busybox", fmt)


def one_ref_archive(tc: unittest.TestCase, ref: str) -> str:
    """An OCI archive of LAYOUT with only the entry whose ref.name is `ref`."""
    work = harness.scratch_dir(tc, "oneref-")
    tree = os.path.join(work, "tree")
    shutil.copytree(LAYOUT, tree)
    path = os.path.join(tree, "index.json")
    with open(path) as fh:
        index = json.load(fh)
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref]
    with open(path, "w") as fh:
        json.dump(index, fh)
    archive = os.path.join(work, f"{ref}.tar")
    subprocess.run(["tar", "-C", tree, "-cf", archive, "."], check=True)
    return archive


def podman_load_name(tc: unittest.TestCase, archive: str) -> str:
    """What `podman load -i ARCHIVE` names the image (podman 4.3, a throw-away store)."""
    podman = harness.require_tool("podman")
    work = tempfile.mkdtemp(prefix="pm-", dir="/tmp")  # podman: runroot at most 50 characters
    tc.addCleanup(shutil.rmtree, work, True)
    base = [podman, "--root", os.path.join(work, "root"), "--runroot", os.path.join(work, "run"),
            "--storage-driver", "vfs"]
    try:
        proc = subprocess.run(base + ["load", "-i", archive], capture_output=True, text=True, timeout=120)
        tc.assertEqual(proc.returncode, 0, proc.stderr)
        names = subprocess.run(base + ["images", "--format", "{{.Repository}}:{{.Tag}}"],
                               capture_output=True, text=True, check=True).stdout.split()
    finally:
        subprocess.run(base + ["system", "reset", "-f"], capture_output=True)
    tc.assertEqual(len(names), 1, names)
    return names[0]


class ShortNamesTest(unittest.TestCase):
    def test_every_spelling_of_one_name_finds_the_image(self):
        root = harness.new_store(self)
        image_id = harness.pull(self, root, busybox())
        for ref in ["imgtool-test/busybox", "imgtool-test/busybox:latest", "docker.io/imgtool-test/busybox",
                    "docker.io/imgtool-test/busybox:latest", "index.docker.io/imgtool-test/busybox"]:
            with self.subTest(ref=ref):
                self.assertEqual(harness.inspect(self, root, ref)[0]["Id"], image_id)
        # `tag` stores the normalised name (docker's rule: docker.io/library/bb is kept as bb:latest),
        # so each spelling of the target names one entry.
        for target in ["bb", "library/bb", "docker.io/library/bb:latest"]:
            res = harness.run(root, "tag", "imgtool-test/busybox", target)
            self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(harness.tag_map(self, root),
                         {"imgtool-test/busybox:latest": image_id, "bb:latest": image_id})
        for ref in ["bb", "library/bb", "docker.io/library/bb", "docker.io/library/bb:latest"]:
            with self.subTest(ref=ref):
                self.assertEqual(harness.inspect(self, root, ref)[0]["Id"], image_id)
        # rm by a long spelling removes that one name.
        res = harness.run(root, "rm", "docker.io/library/bb:latest")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(harness.tag_map(self, root), {"imgtool-test/busybox:latest": image_id})

    def test_names_stored_as_typed_by_older_stores_still_resolve(self):
        root = harness.new_store(self)
        image_id = harness.pull(self, root, busybox())
        path = os.path.join(root, "tags.json")
        with open(path) as fh:
            tags = json.load(fh)
        tags["bb"] = image_id  # as an older imgtool wrote it: no tag, not normalised
        with open(path, "w") as fh:
            json.dump(tags, fh)
        self.assertEqual(harness.inspect(self, root, "bb")[0]["Id"], image_id)

    def test_a_miss_suggests_the_nearest_name_and_short_prefixes_are_explained(self):
        root = harness.new_store(self)
        image_id = harness.pull(self, root, busybox())
        res = harness.run(root, "inspect", "imgtool-test/busybx")
        harness.assert_one_error_line(self, res, "inspect", "no such image: imgtool-test/busybx",
                                      "(did you mean imgtool-test/busybox:latest?)")
        res = harness.run(root, "inspect", "postgres")
        line = harness.assert_one_error_line(self, res, "inspect", "no such image: postgres")
        self.assertNotIn("did you mean", line)
        prefix = image_id.split(":")[1][:2]
        res = harness.run(root, "inspect", prefix)
        harness.assert_one_error_line(self, res, "inspect", f"no such image: {prefix}",
                                      "at least 4 hex characters")
        res = harness.run(root, "inspect", image_id.split(":")[1][:4])
        self.assertEqual(res.rc, 0, str(res))


class OciRefNamesTest(unittest.TestCase):
    def test_umoci_refs_become_podmans_names(self):
        root = harness.new_store(self)
        res = harness.run(root, "pull-local", LAYOUT)
        self.assertEqual(res.rc, 0, str(res))
        ids = res.out.split()
        self.assertEqual(len(ids), 3, str(res))
        tags = harness.tag_map(self, root)
        self.assertEqual(sorted(tags), ["localhost/base:latest", "localhost/v1:latest", "localhost/v2:latest"])
        self.assertEqual(len(set(tags.values())), 3)
        # podman 4.3 names a bare ref localhost/REF:latest (`podman load` of a one-image archive).
        self.assertEqual(podman_load_name(self, one_ref_archive(self, "v2")), "localhost/v2:latest")
        # Short names find them (podman's localhost/ rule), and nothing else was said.
        self.assertEqual(harness.inspect(self, root, "v2")[0]["Id"], tags["localhost/v2:latest"])
        self.assertEqual(harness.inspect(self, root, "localhost/base")[0]["Id"], tags["localhost/base:latest"])
        self.assertEqual(res.err, "")

    def test_dir_ref_imports_one_image(self):
        root = harness.new_store(self)
        full = harness.new_store(self)
        res = harness.run(full, "pull-local", LAYOUT)
        self.assertEqual(res.rc, 0, str(res))
        wanted = harness.tag_map(self, full)["localhost/v1:latest"]
        self.assertEqual(harness.pull(self, root, f"{LAYOUT}:v1"), wanted)
        self.assertEqual(harness.tag_map(self, root), {"localhost/v1:latest": wanted})
        # An OCI archive too (skopeo's oci-archive:PATH:REF).
        archive = os.path.join(harness.scratch_dir(self, "arch-"), "lay.tar")
        subprocess.run(["tar", "-C", LAYOUT, "-cf", archive, "."], check=True)
        other = harness.new_store(self)
        harness.pull(self, other, f"{archive}:v2")
        self.assertEqual(list(harness.tag_map(self, other)), ["localhost/v2:latest"])

    def test_a_missing_ref_lists_the_refs_there_are(self):
        root = harness.new_store(self)
        harness.pull(self, root, busybox())
        listing = harness.store_listing(root)
        res = harness.run(root, "pull-local", f"{LAYOUT}:v3")
        harness.assert_one_error_line(self, res, "pull-local", LAYOUT, 'no image with ref name v3',
                                      "it names base, v1, v2")
        self.assertEqual(harness.store_listing(root), listing)

    def test_a_path_with_a_colon_that_exists_is_a_path(self):
        root = harness.new_store(self)
        work = harness.scratch_dir(self, "colon-")
        odd = os.path.join(work, "lay:v1")
        shutil.copytree(LAYOUT, odd)
        res = harness.run(root, "pull-local", odd)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(len(res.out.split()), 3, str(res))

    def test_docker_archive_ref_is_a_repo_tag(self):
        root = harness.new_store(self)
        image_id = harness.pull(self, root, f"{busybox()}:imgtool-test/busybox")
        self.assertEqual(harness.tag_map(self, root), {"imgtool-test/busybox:latest": image_id})
        res = harness.run(root, "pull-local", f"{busybox()}:nope")
        harness.assert_one_error_line(self, res, "pull-local", "no image tagged nope:latest",
                                      "imgtool-test/busybox:latest")

    def test_a_ref_name_that_names_another_image_moves_with_a_note(self):
        # As `podman load` and `docker load`: the name now names the loaded image, said on stderr.
        root = harness.new_store(self)
        first = harness.pull(self, root, one_ref_archive(self, "v1"))
        res = harness.run(root, "tag", first, "localhost/v2")
        self.assertEqual(res.rc, 0, str(res))
        res = harness.run(root, "pull-local", one_ref_archive(self, "v2"))
        self.assertEqual(res.rc, 0, str(res))
        second = res.out.strip()
        self.assertIn("localhost/v2:latest now names", res.err)
        self.assertEqual(harness.tag_map(self, root)["localhost/v2:latest"], second)
        self.assertEqual(harness.tag_map(self, root)["localhost/v1:latest"], first)


def layout_copy(tc: unittest.TestCase, edit) -> str:
    """A copy of LAYOUT whose index.json `edit(index, add_blob)` rewrote; add_blob(bytes) stores a
    blob and returns its descriptor fields."""
    import hashlib
    tree = os.path.join(harness.scratch_dir(tc, "lay-"), "lay")
    shutil.copytree(LAYOUT, tree)

    def add_blob(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(tree, "blobs", "sha256", digest), "wb") as fh:
            fh.write(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}
    path = os.path.join(tree, "index.json")
    with open(path) as fh:
        index = json.load(fh)
    edit(index, add_blob)
    with open(path, "w") as fh:
        json.dump(index, fh)
    return tree


def entry(index: dict, ref: str) -> dict:
    return next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref)


class RefSelectionTest(unittest.TestCase):
    def test_path_ref_and_a_file_named_path_colon_ref_is_refused_as_ambiguous(self):
        # F2: in a shared sticky dir another user can create IMG:REF next to root's IMG; neither
        # may be chosen silently.
        root = harness.new_store(self)
        work = harness.scratch_dir(self, "amb-")
        img = os.path.join(work, "img")
        shutil.copytree(LAYOUT, img)
        shutil.copy(one_ref_archive(self, "v2"), img + ":v1")
        harness.pull(self, root, busybox())
        listing = harness.store_listing(root)
        res = harness.run(root, "pull-local", img + ":v1")
        harness.assert_one_error_line(self, res, "pull-local", "ambiguous", f'"{img}:v1"', f'"{img}"',
                                      "a path without ':'", rc=res.rc)
        self.assertNotEqual(res.rc, 0)
        self.assertEqual(harness.store_listing(root), listing)
        # A link without ':' picks either one.
        link = os.path.join(work, "pick")
        os.symlink(img, link)
        image_id = harness.pull(self, root, f"{link}:v1")
        self.assertEqual(harness.tag_map(self, root)["localhost/v1:latest"], image_id)
        self.assertNotIn("localhost/v2:latest", harness.tag_map(self, root))

    def test_docker_archive_ref_applies_only_the_selected_tag(self):
        # Low 3: an image tagged app:v2 and imgtool-test/busybox; selecting app:v2 names it app:v2 only.
        work = harness.scratch_dir(self, "two-")
        tree = os.path.join(work, "tree")
        os.makedirs(tree)
        subprocess.run(["tar", "-C", tree, "-xf", busybox()], check=True)
        with open(os.path.join(tree, "manifest.json")) as fh:
            manifest = json.load(fh)
        manifest[0]["RepoTags"] = ["app:v2", "imgtool-test/busybox:latest"]
        with open(os.path.join(tree, "manifest.json"), "w") as fh:
            json.dump(manifest, fh)
        archive = os.path.join(work, "two.tar")
        subprocess.run(["tar", "-C", tree, "-cf", archive, "."], check=True)
        root = harness.new_store(self)
        image_id = harness.pull(self, root, f"{archive}:app:v2")
        self.assertEqual(harness.tag_map(self, root), {"app:v2": image_id})

    def test_ref_in_a_nested_index_is_found_as_the_full_import_names_it(self):
        # Low 6: index.json -> index (ref "outer") -> manifest (ref "inner"): the full import names
        # the image localhost/inner, and LAYOUT:inner finds it.
        def nest(index, add_blob):
            inner = dict(entry(index, "v1"))
            inner["annotations"] = {"org.opencontainers.image.ref.name": "inner"}
            nested = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                      "manifests": [inner]}
            desc = add_blob(json.dumps(nested).encode())
            index["manifests"] = [{"mediaType": "application/vnd.oci.image.index.v1+json", **desc,
                                   "annotations": {"org.opencontainers.image.ref.name": "outer"}}]
        lay = layout_copy(self, nest)
        full = harness.new_store(self)
        image_id = harness.pull(self, full, lay)
        self.assertEqual(harness.tag_map(self, full), {"localhost/inner:latest": image_id})
        root = harness.new_store(self)
        self.assertEqual(harness.pull(self, root, f"{lay}:inner"), image_id)
        self.assertEqual(harness.tag_map(self, root), {"localhost/inner:latest": image_id})

    def test_containerd_image_name_wins_over_ref_name_and_ref_selects_by_ref_name(self):
        # Low 5 (docs/store.md "Names"): as ctr import and podman 4.3 (seen: podman load prints
        # "Loaded image: example.com/app:2" for this entry), io.containerd.image.name names the
        # image; PATH:REF matches ref.name.
        def both(index, _add_blob):
            entry(index, "v2").setdefault("annotations", {})["io.containerd.image.name"] = "example.com/app:2"
        lay = layout_copy(self, both)
        root = harness.new_store(self)
        image_id = harness.pull(self, root, f"{lay}:v2")
        self.assertEqual(harness.tag_map(self, root), {"example.com/app:2": image_id})


class IdLikeNamesTest(unittest.TestCase):
    HEX = "ab" * 32

    def test_names_that_spell_an_image_id_are_refused(self):
        # Low 4: each would be stored but never found (an ID wins the lookup); docker refuses 64-hex
        # repositories ("cannot specify 64-byte hexadecimal strings").
        root = harness.new_store(self)
        image_id = harness.pull(self, root, busybox())
        listing = harness.store_listing(root)
        for name in (f"sha256:{self.HEX}", self.HEX, f"localhost/{self.HEX}", f"team/{self.HEX}:v1"):
            with self.subTest(name=name):
                res = harness.run(root, "tag", image_id, name)
                harness.assert_one_error_line(self, res, "tag", name, rc=res.rc)
                self.assertNotEqual(res.rc, 0)
        upper = harness.scratch_dir(self, "upper-")
        res = harness.run(root, "commit", "--upper", upper, "--base", image_id, f"sha256:{self.HEX}")
        harness.assert_one_error_line(self, res, "commit", self.HEX, rc=res.rc)
        self.assertNotEqual(res.rc, 0)
        res = harness.run(root, "pull-local", busybox(), "--tag", f"localhost/{self.HEX}")
        harness.assert_one_error_line(self, res, "pull-local", self.HEX, rc=res.rc)
        self.assertNotEqual(res.rc, 0)
        self.assertEqual(harness.store_listing(root), listing)
        # An archive's ref name too: a bare 64-hex ref would be localhost/<hex>.
        def hexref(index, _add_blob):
            entry(index, "v2")["annotations"]["org.opencontainers.image.ref.name"] = self.HEX
        res = harness.run(root, "pull-local", layout_copy(self, hexref))
        harness.assert_one_error_line(self, res, "pull-local", self.HEX, "not a valid image name", rc=res.rc)
        self.assertNotEqual(res.rc, 0)
        self.assertEqual(harness.store_listing(root), listing)


class ImportMessagesTest(unittest.TestCase):
    def test_an_unnamed_oci_image_is_imported_untagged_with_a_notice(self):
        root = harness.new_store(self)
        work = harness.scratch_dir(self, "unnamed-")
        layout = os.path.join(work, "unnamed.oci")
        shutil.copytree(harness.image_path("basic", "oci-layout"), layout)
        path = os.path.join(layout, "index.json")
        with open(path) as fh:
            index = json.load(fh)
        for m in index["manifests"]:
            m.pop("annotations", None)
        with open(path, "w") as fh:
            json.dump(index, fh)
        res = harness.run(root, "pull-local", layout)
        self.assertEqual(res.rc, 0, str(res))
        image_id = res.out.strip()
        self.assertEqual(res.err, f"imgtool: pull-local: {layout} has no image name; imported untagged as "
                                  f"{image_id} \u2014 name it with --tag NAME\n")
        self.assertEqual(harness.tag_map(self, root), {})

    def test_platform_that_the_archive_lacks_is_an_error(self):
        root = harness.new_store(self)
        harness.pull(self, root, busybox())
        listing = harness.store_listing(root)
        other = "linux/arm64" if harness.host_platform() != "linux/arm64" else "linux/amd64"
        for fmt in ["oci-archive", "oci-layout", "docker-archive"]:
            with self.subTest(fmt=fmt):
                source = harness.image_path("basic", fmt)
                res = harness.run(root, "pull-local", "--platform", other, source)
                harness.assert_one_error_line(self, res, "pull-local", source, other, harness.host_platform())
                self.assertEqual(harness.store_listing(root), listing)

    def test_what_is_not_an_image_is_named_in_full_with_the_accepted_forms(self):
        root = harness.new_store(self)
        work = harness.scratch_dir(self, "notimg-")
        os.mkdir(os.path.join(work, "imgs"))
        forms = ["docker-save tar", "OCI archive tar", "OCI layout directory (with oci-layout and index.json)"]
        for name in ["imgs", "missing"]:
            with self.subTest(name=name):
                # Given relative to the working directory: the message says where it looked.
                argv = harness.imgtool_argv(root, "pull-local", name)
                proc = subprocess.run(argv, cwd=work, capture_output=True, text=True, env=harness.base_env())
                res = harness.Result(argv, proc.returncode, proc.stdout, proc.stderr)
                harness.assert_one_error_line(self, res, "pull-local", os.path.join(work, name) + ": ", *forms)


class RootlessNamesTest(unittest.TestCase):
    """The same names for an ordinary user (default store ~/.local/share/imgtool, inside a user
    namespace), and the message names the user's own path."""

    USER = "imgtool-rl"

    def test_umoci_refs_and_short_names_rootless(self):
        import pwd
        try:
            pw = pwd.getpwnam(self.USER)
        except KeyError:
            self.skipTest(f"no user {self.USER} (test_rootless.py makes it)")
        work = tempfile.mkdtemp(prefix="imgtool-names-rl-", dir="/tmp")
        self.addCleanup(shutil.rmtree, work, True)
        os.chmod(work, 0o755)
        layout = os.path.join(work, "lay")
        shutil.copytree(LAYOUT, layout)
        binary = os.path.join(work, "imgtool")
        shutil.copy(harness.imgtool_binary(), binary)
        home = os.path.join(work, "home")
        os.mkdir(home, 0o700)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        for dirpath, dirnames, filenames in os.walk(layout):
            os.chmod(dirpath, 0o755)
            for n in filenames:
                os.chmod(os.path.join(dirpath, n), 0o644)

        def imgtool(*args):
            argv = ["setpriv", "--reuid", self.USER, "--regid", str(pw.pw_gid), "--init-groups", "--",
                    "env", "-i", f"HOME={home}", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"USER={self.USER}",
                    binary, *args]
            proc = subprocess.run(argv, capture_output=True, text=True, cwd=work, timeout=120)
            return harness.Result(argv, proc.returncode, proc.stdout, proc.stderr)

        if True:  # run the module under `flock /tmp/imgtool-rootless.lock` (docs/testing.md)
            res = imgtool("pull-local", "lay:v2")
            self.assertEqual(res.rc, 0, str(res))
            self.assertTrue(os.path.isdir(os.path.join(home, ".local", "share", "imgtool")))
            res = imgtool("images", "--format", "json")
            self.assertEqual(res.rc, 0, str(res))
            self.assertEqual([(r["Repository"], r["Tag"]) for r in json.loads(res.out)], [("localhost/v2", "latest")])
            res = imgtool("inspect", "v2")
            self.assertEqual(res.rc, 0, str(res))
            res = imgtool("inspect", "v3")
            harness.assert_one_error_line(self, res, "inspect", "no such image: v3", "did you mean localhost/v2:latest?")
            res = imgtool("pull-local", "lay:v9")
            harness.assert_one_error_line(self, res, "pull-local", layout, "no image with ref name v9")


if __name__ == "__main__":
    unittest.main()
