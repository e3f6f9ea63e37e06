"""Integration tests for `imgtool pull-local` and the store commands around it
(images, inspect, tag, rm), driving the built binary as root.

Expectations come from tools/gen_images.py: images.json for IDs, tags and
diff_ids, and the generator's own in-memory model (gen_images.basic_layers()
and friends) for what every layer directory must contain.  Merged root
filesystems are compared with umoci's unpack of the same image.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import pty
import re
import select
import signal
import stat
import subprocess
import time
import unittest

import harness
from harness import gen_images, treecmp

FORMATS = gen_images.ALL_FORMATS


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.images()  # generate (or reuse) the test images before any test runs


def good_records() -> list:
    return [r for r in harness.images()["images"] if r["broken"] is None]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_path(path: str) -> str:
    if os.path.isdir(path):
        return treecmp.tree_hash(path)
    with open(path, "rb") as fh:
        return sha256_bytes(fh.read())


def hexof(digest: str) -> str:
    algo, _, hex_ = digest.partition(":")
    assert algo == "sha256" and len(hex_) == 64, digest
    return hex_


def layer_diff(root: str, diff_id: str) -> str:
    return os.path.join(root, "layers", hexof(diff_id), "diff")


def lower_dirs(root: str, diff_ids: list) -> list:
    """The lowers a mount stacks, top first: each layer's diff/, then its skel/ (the directories
    holding its whiteouts, so they always merge) if it has one."""
    out = []
    for d in reversed(diff_ids):
        out.append(layer_diff(root, d))
        skel = os.path.join(root, "layers", hexof(d), "skel")
        if os.path.isdir(skel):
            out.append(skel)
    return out


# --------------------------------------------------------------------------
# Expected content of one layer directory, derived from the generator's model

WHITEOUT = "whiteout"   # char device 0:0 hiding the name in lower layers
IMPLICIT = "implicit"   # parent directory that is not itself in the tar


def expected_layer(entries) -> tuple:
    """(relative path -> gen_images.Entry | WHITEOUT | IMPLICIT, set of opaque dirs
    ("" is the layer root), the tar's root entry or None) for a layer unpacked the
    overlayfs way (docs/layers.md): a whiteout hides lower layers only, so an entry of
    the same name in the same layer (before or after it) stays, and a directory then
    becomes opaque; whiteouts inside an opaque directory of the layer are dropped."""
    exp, opaque, whited = {}, set(), set()

    def add_parents(path):
        parent = posixpath.dirname(path)
        while parent and parent not in exp:
            exp[parent] = IMPLICIT
            parent = posixpath.dirname(parent)

    for e in entries:
        name = posixpath.normpath(e.name.lstrip("/"))
        name = "" if name == "." else name
        parent, base = posixpath.split(name)
        if base == ".wh..wh..opq":
            opaque.add(parent)
            add_parents(name)
        elif base.startswith(".wh."):
            target = posixpath.join(parent, base[len(".wh."):])
            whited.add(target)
            if target not in exp:
                exp[target] = WHITEOUT
            add_parents(target)
        else:
            exp[name] = e  # a later entry replaces an earlier one (whiteout, then new type)
            add_parents(name)
    for path in whited:
        want = exp.get(path)
        if want not in (WHITEOUT, None) and (want is IMPLICIT or want.kind == "dir"):
            opaque.add(path)
    for path in [p for p, want in exp.items() if want is WHITEOUT]:
        if posixpath.dirname(path) in opaque:
            del exp[path]  # redundant under an opaque directory
    exp.pop("", None)
    root_entry = next((e for e in entries
                       if posixpath.normpath(e.name.lstrip("/")) == "."), None)
    return exp, opaque, root_entry


def check_layer_dir(tc: unittest.TestCase, diff: str, entries) -> None:
    """Assert that diff/ holds exactly what the tar entries describe, entry by entry."""
    exp, opaque, root_entry = expected_layer(entries)
    actual = {}
    for dirpath, dirnames, filenames in os.walk(diff):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            actual[os.path.relpath(full, diff)] = os.lstat(full)
    tc.assertEqual(sorted(actual), sorted(exp), f"names in {diff}")

    def xattrs(path):
        names = os.listxattr(path, follow_symlinks=False)
        return {n: os.getxattr(path, n, follow_symlinks=False) for n in names
                if n != "security.selinux"}

    root_want = {"trusted.overlay.opaque": b"y"} if "" in opaque else {}
    tc.assertEqual(xattrs(diff), root_want, f"xattrs of the layer root {diff}")
    if root_entry is not None:
        st = os.lstat(diff)
        tc.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)),
                       (root_entry.mode, root_entry.uid, root_entry.gid, root_entry.mtime),
                       f"layer root {diff} takes the tar's root entry")

    inode_names = {}
    for path, want in exp.items():
        st, full = actual[path], os.path.join(diff, path)
        what = f"{path} in {diff}"
        want_x = {"trusted.overlay.opaque": b"y"} if path in opaque else {}
        if want is WHITEOUT:
            tc.assertTrue(harness.is_whiteout(st), f"{what}: want a 0:0 char device whiteout, "
                          f"got mode {st.st_mode:o} rdev {st.st_rdev:x}")
            tc.assertEqual(xattrs(full), {}, what)
            continue
        if want is IMPLICIT:
            tc.assertTrue(stat.S_ISDIR(st.st_mode), f"{what}: implicit parent must be a dir")
            tc.assertEqual((st.st_uid, st.st_gid), (0, 0), what)
            tc.assertEqual(xattrs(full), want_x, what)
            continue
        kind = "file" if want.kind == "hardlink" else want.kind
        tc.assertEqual(harness.file_type(st.st_mode),
                       {"char": "chr", "block": "blk"}.get(kind, kind), what)
        if want.kind == "hardlink":
            target = posixpath.normpath(want.target)
            tc.assertIn(target, actual, what)
            tc.assertEqual(st.st_ino, actual[target].st_ino, f"{what}: shares {target}'s inode")
            inode_names.setdefault(st.st_ino, set()).update({path, target})
            continue
        if want.kind != "symlink":  # symlink permission bits mean nothing on Linux
            tc.assertEqual(format(stat.S_IMODE(st.st_mode), "04o"),
                           format(want.mode, "04o"), f"{what}: mode")
        tc.assertEqual((st.st_uid, st.st_gid), (want.uid, want.gid), f"{what}: owner")
        tc.assertEqual(st.st_mtime_ns, want.mtime * 10**9, f"{what}: mtime")
        if want.kind == "file":
            with open(full, "rb") as fh:
                tc.assertEqual(sha256_bytes(fh.read()), sha256_bytes(want.data),
                               f"{what}: content")
            want_x.update(dict(want.xattrs))
        elif want.kind == "symlink":
            tc.assertEqual(os.readlink(full), want.target, what)
        elif want.kind in ("char", "block"):
            tc.assertEqual((os.major(st.st_rdev), os.minor(st.st_rdev)), want.dev, what)
        tc.assertEqual(xattrs(full), want_x, f"{what}: xattrs")
    for ino, names in inode_names.items():
        link_count = next(actual[n].st_nlink for n in names)
        tc.assertEqual(link_count, len(names), f"link count of {sorted(names)}")


# --------------------------------------------------------------------------


class PullLocalImportTest(unittest.TestCase):

    def test_every_good_image_in_every_format(self):
        by_name = {}
        for rec in good_records():
            by_name.setdefault(rec["name"], []).append(rec)
        self.assertGreaterEqual(set(by_name),
                                {"basic", "shared", "rootopq", "multiarch", "layers200",
                                 "busybox", "demo"})
        for name, recs in sorted(by_name.items()):
            root = harness.new_store(self)
            for rec in recs:
                with self.subTest(image=rec["path"]):
                    res = harness.run(root, "pull-local", harness.image_path(rec))
                    self.assertEqual((res.rc, res.out, res.err), (0, rec["id"] + "\n", ""),
                                     str(res))
            with self.subTest(image=name):
                multi = name in ("multiarch", "layers200")  # OCI only in the generator
                self.assertEqual(sorted(r["format"] for r in recs),
                                 sorted(gen_images.OCI_FORMATS if multi else FORMATS))
                rows = harness.images_json(self, root)
                self.assertEqual({r["ID"] for r in rows}, {recs[0]["id"]},
                                 "all formats give one image")
                tags = harness.tag_map(self, root)
                self.assertEqual(tags, {t if ":" in t.rsplit("/", 1)[-1] else t + ":latest":
                                        recs[0]["id"] for t in recs[0]["tags"]})
                # One layer dir per distinct diff_id, shared by every format.
                self.assertEqual(harness.layer_hexes(root),
                                 sorted({hexof(d) for d in recs[0]["diff_ids"]}))
                self.assertEqual(harness.tmp_entries(root), [])
                [info] = harness.inspect(self, root, recs[0]["id"])
                self.assertEqual(info["RootFS"]["Layers"], recs[0]["diff_ids"])

    def test_basic_formats_share_one_image_and_three_layers(self):
        root = harness.new_store(self)
        rec = harness.image_record("basic", "oci-archive")
        ids = {harness.pull(self, root, harness.image_path("basic", fmt)) for fmt in FORMATS}
        self.assertEqual(ids, {rec["id"]})
        self.assertEqual(len(harness.layer_hexes(root)), 3)
        self.assertEqual(harness.layer_hexes(root), sorted(hexof(d) for d in rec["diff_ids"]))
        self.assertEqual(os.listdir(os.path.join(root, "images")), [hexof(rec["id"]) + ".json"])
        # Blobs are content-addressed and read-only; the config blob is the image ID.
        blob_dir = os.path.join(root, "blobs", "sha256")
        self.assertIn(hexof(rec["id"]), os.listdir(blob_dir))
        for name in os.listdir(blob_dir):
            path = os.path.join(blob_dir, name)
            self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o444, path)
            self.assertEqual(sha256_path(path), name, path)

    def test_shared_reuses_basic_layers(self):
        root = harness.new_store(self)
        basic = harness.image_record("basic", "oci-archive")
        shared = harness.image_record("shared", "docker-archive")
        self.assertEqual(shared["diff_ids"][:2], basic["diff_ids"][:2])
        self.assertNotEqual(shared["diff_ids"][2], basic["diff_ids"][2])
        harness.pull(self, root, harness.image_path(basic))
        before = {d: harness.inode_map(os.path.dirname(layer_diff(root, d)))
                  for d in basic["diff_ids"]}
        self.assertEqual(harness.pull(self, root, harness.image_path(shared)), shared["id"])
        self.assertEqual(len(harness.layer_hexes(root)), 4)
        for d in basic["diff_ids"]:
            self.assertEqual(harness.inode_map(os.path.dirname(layer_diff(root, d))), before[d],
                             f"layer {d} was touched by the second pull")
        [info] = harness.inspect(self, root, shared["id"])
        lower = info["GraphDriver"]["Data"]["LowerDir"].split(":")
        self.assertEqual(lower, lower_dirs(root, shared["diff_ids"]))

    def test_repull_unpacks_nothing(self):
        root = harness.new_store(self)
        rec = harness.image_record("basic", "oci-archive")
        harness.pull(self, root, harness.image_path(rec))
        layers = os.path.join(root, "layers")
        inodes, listing = harness.inode_map(layers), harness.store_listing(root)
        # The OCI layout holds the very same manifest: nothing at all may change.  The
        # docker archives carry no (or another) manifest, so only the layers are compared.
        for fmt in ("oci-archive", "oci-layout", "docker-archive", "docker-archive-new"):
            with self.subTest(fmt=fmt):
                res = harness.run(root, "pull-local", harness.image_path("basic", fmt))
                self.assertEqual((res.rc, res.out, res.err), (0, rec["id"] + "\n", ""), str(res))
                self.assertEqual(harness.inode_map(layers), inodes,
                                 "layer dirs changed (inode, mtime or ctime) on a re-pull")
                self.assertEqual(harness.tmp_entries(root), [])
                if fmt.startswith("oci"):
                    after = harness.store_listing(root)
                    self.assertEqual(after, listing, harness.listing_diff(listing, after))


class LayerContentTest(unittest.TestCase):
    """Each layer dir, read directly (no overlay), against the generator's tar entries."""

    @classmethod
    def setUpClass(cls):
        cls.rec = harness.image_record("basic", "oci-archive")
        cls.layers = gen_images.basic_layers()
        assert [layer.diff_id for layer in cls.layers] == cls.rec["diff_ids"], \
            "images.json and gen_images.basic_layers() disagree"

    def setUp(self):
        self.root = harness.new_store(self)
        harness.pull(self, self.root, harness.image_path(self.rec))

    def diff(self, index: int) -> str:
        return layer_diff(self.root, self.rec["diff_ids"][index])

    def test_layers_match_generator_entries(self):
        for i, layer in enumerate(self.layers):
            with self.subTest(layer=i + 1, comment=layer.comment):
                check_layer_dir(self, self.diff(i), layer.entries)
                with open(os.path.join(os.path.dirname(self.diff(i)), "layer.json")) as fh:
                    self.assertEqual(json.load(fh)["diff_id"], layer.diff_id)

    def test_rootopq_layers_match_generator_entries(self):
        root = harness.new_store(self)
        harness.pull(self, root, harness.image_path("rootopq", "docker-archive"))
        img = gen_images.rootopq_job().images[0]
        for i, layer in enumerate(img.layers):
            with self.subTest(layer=i + 1):
                check_layer_dir(self, layer_diff(root, layer.diff_id), layer.entries)
        self.assertEqual(os.getxattr(layer_diff(root, img.layers[1].diff_id),
                                     "trusted.overlay.opaque"), b"y")

    # Spot checks that do not go through the derivation above, so that a mistake
    # there cannot silently turn the whole comparison into a no-op.
    def test_spot_checks(self):
        l1, l2, l3 = self.diff(0), self.diff(1), self.diff(2)
        st = os.lstat(f"{l2}/etc/remove-me")
        self.assertTrue(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0))
        self.assertTrue(harness.is_whiteout(os.lstat(f"{l2}/gone")))
        self.assertTrue(harness.is_whiteout(os.lstat(f"{l3}/hard/a")))
        self.assertFalse(os.path.lexists(f"{l2}/etc/.wh.remove-me"))
        self.assertFalse(os.path.lexists(f"{l2}/opq/.wh..wh..opq"))
        self.assertEqual(os.getxattr(f"{l2}/opq", "trusted.overlay.opaque"), b"y")
        self.assertEqual(sorted(os.listdir(f"{l2}/opq")), ["new1"])
        self.assertTrue(stat.S_ISREG(os.lstat(f"{l2}/a_dir").st_mode))
        self.assertTrue(stat.S_ISDIR(os.lstat(f"{l2}/a_file").st_mode))
        self.assertEqual(stat.S_IMODE(os.lstat(f"{l1}/usr/bin/suid-tool").st_mode), 0o4755)
        self.assertEqual(stat.S_IMODE(os.lstat(f"{l1}/usr/bin/sgid-tool").st_mode), 0o2755)
        # Owned by 1000:1000: chown clears setuid/setgid, so the mode must be set after it.
        for name, mode in (("suid-user", 0o4755), ("sgid-user", 0o2755)):
            st = os.lstat(f"{l1}/usr/bin/{name}")
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), (mode, 1000, 1000),
                             f"usr/bin/{name}: mode {stat.S_IMODE(st.st_mode):04o}")
        self.assertEqual(stat.S_IMODE(os.lstat(f"{l1}/tmp").st_mode), 0o1777)
        st = os.lstat(f"{l1}/home/user/notes.txt")
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (1000, 1000, 0o640))
        st = os.lstat(f"{l1}/var/www")
        self.assertEqual((st.st_uid, st.st_gid), (33, 33))
        a, b, c = (os.lstat(f"{l1}/hard/{n}") for n in "abc")
        self.assertEqual({a.st_ino, b.st_ino, c.st_ino}, {a.st_ino})
        self.assertEqual(a.st_nlink, 3)
        st = os.lstat(f"{l1}/dev/null")
        self.assertTrue(stat.S_ISCHR(st.st_mode))
        self.assertEqual((os.major(st.st_rdev), os.minor(st.st_rdev)), (1, 3))
        st = os.lstat(f"{l1}/dev/loop0")
        self.assertTrue(stat.S_ISBLK(st.st_mode))
        self.assertEqual((os.major(st.st_rdev), os.minor(st.st_rdev), st.st_gid), (7, 0, 6))
        self.assertTrue(stat.S_ISFIFO(os.lstat(f"{l1}/run/pipe").st_mode))
        self.assertEqual(os.getxattr(f"{l1}/usr/bin/capable", "security.capability"),
                         gen_images.vfs_cap_v2(gen_images.CAP_NET_BIND_SERVICE))
        self.assertEqual(os.getxattr(f"{l1}/usr/bin/capable", "user.foo"), b"bar")
        self.assertEqual(os.readlink(f"{l1}/links/dangling"), "/nonexistent/target")
        self.assertEqual(os.readlink(f"{l3}/srv/replace-me"), "/etc/motd")
        self.assertEqual(os.lstat(f"{l1}/dated").st_mtime, 1500000000)
        self.assertEqual(os.lstat(f"{l1}/dated/inner.txt").st_mtime, 1600000000)
        self.assertEqual(os.lstat(f"{l1}/etc/hostname").st_mtime, gen_images.FIXED_MTIME)
        self.assertEqual(os.path.getsize(f"{l1}/srv/big.bin"), 1 << 20)
        self.assertTrue(os.path.isfile(f"{l3}/deep/a/b/c/d/e.txt"))


class MergedViewTest(unittest.TestCase):
    """overlayfs over inspect's LowerDir must show what umoci unpacks."""

    # path -> must exist (True) / must be hidden (False) in the merged view: guards
    # against two equally wrong (e.g. empty) trees comparing equal.
    PROBES = {
        "basic": {"/etc/motd": True, "/a_dir": True, "/a_file/inside": True, "/hard/b": True,
                  "/etc/remove-me": False, "/gone": False, "/opq/old1": False,
                  "/hard/a": False, "/a_dir/child1": False},
        "shared": {"/shared/only-here.txt": True, "/etc/motd": True, "/deep": False},
        "rootopq": {"/two.txt": True, "/new/one.txt": True, "/old-root-file": False,
                    "/etc": False, "/data": False},
        "busybox": {"/bin/busybox": True, "/bin/sh": True, "/srv/hello.txt": True},
    }

    def setUp(self):
        reason = harness.overlay_unavailable()
        if reason:
            self.skipTest(reason)

    def test_overlay_of_lowerdir_equals_umoci(self):
        for fmt in ("oci-archive", "docker-archive"):
            root = harness.new_store(self)
            for name in self.PROBES:
                rec = harness.image_record(name, fmt)
                with self.subTest(image=rec["path"]):
                    self.assertEqual(harness.pull(self, root, harness.image_path(rec)), rec["id"])
                    [info] = harness.inspect(self, root, rec["id"])
                    lower = info["GraphDriver"]["Data"]["LowerDir"]
                    reference = treecmp.load(
                        harness.umoci_rootfs(harness.image_path(rec), fmt))
                    with harness.overlay_view(lower) as merged:
                        pass  # the snapshot outlives the mount
                    for probe, present in self.PROBES[name].items():
                        self.assertEqual(probe in reference, present, f"umoci reference: {probe}")
                    problems = [f"{probe}: " + ("in umoci's tree, missing from the overlay"
                                                if present else
                                                "hidden in umoci's tree, visible in the overlay")
                                for probe, present in self.PROBES[name].items()
                                if (probe in merged) != present]
                    self.assertEqual(merged["/"]["type"], "dir")
                    # The root's own mode/mtime may differ between unpackers.
                    problems += treecmp.compare({k: v for k, v in merged.items() if k != "/"},
                                                {k: v for k, v in reference.items() if k != "/"})
                    self.assertEqual(problems, [], f"overlay of LowerDir={lower} (A) vs umoci "
                                     f"(B), {len(problems)} problems:\n" +
                                     "\n".join(problems[:40]))


class PlatformTest(unittest.TestCase):

    def setUp(self):
        self.rec = harness.image_record("multiarch", "oci-archive")
        self.platforms = self.rec["platforms"]
        self.root = harness.new_store(self)

    def platform_file(self, image_id: str) -> str:
        [info] = harness.inspect(self, self.root, image_id)
        lower = info["GraphDriver"]["Data"]["LowerDir"].split(":")
        self.assertEqual(len(lower), 1)
        with open(os.path.join(lower[0], "platform")) as fh:
            return fh.read()

    def test_default_is_host_platform(self):
        host = harness.host_platform()
        self.assertIn(host, self.platforms, "the generator builds amd64, arm64 and arm/v7")
        image_id = harness.pull(self, self.root, harness.image_path(self.rec))
        self.assertEqual(image_id, self.platforms[host])
        self.assertEqual(self.platform_file(image_id), host + "\n")
        [info] = harness.inspect(self, self.root, image_id)
        self.assertEqual("linux/" + info["Architecture"], host)

    def test_explicit_platforms(self):
        for plat, src in (("linux/arm64", "oci-archive"), ("linux/arm/v7", "oci-layout")):
            with self.subTest(platform=plat):
                image_id = harness.pull(self, self.root,
                                        harness.image_path("multiarch", src), "--platform", plat)
                self.assertEqual(image_id, self.platforms[plat])
                self.assertEqual(self.platform_file(image_id), plat + "\n")
                [info] = harness.inspect(self, self.root, image_id)
                self.assertEqual(info["Os"] + "/" + info["Architecture"],
                                 "/".join(plat.split("/")[:2]))

    def test_unknown_platform_fails_listing_available(self):
        harness.run(self.root, "images")
        before = harness.store_listing(self.root)
        res = harness.run(self.root, "pull-local", harness.image_path(self.rec),
                          "--platform", "linux/s390x")
        line = harness.assert_one_error_line(self, res, "pull-local")
        self.assertIn("linux/s390x", line)
        for plat in self.platforms:
            self.assertIn(plat, line, "the error lists every available platform")
        after = harness.store_listing(self.root)
        self.assertEqual(after, before, harness.listing_diff(before, after))


    def test_docker_archive_platform_must_match(self):
        """A docker archive has one platform per config: an explicit --platform that is not it is an
        error, never a silent import of another platform."""
        source = harness.image_path("basic", "docker-archive")
        other = "linux/s390x" if harness.host_platform() != "linux/s390x" else "linux/amd64"
        harness.run(self.root, "images")
        before = harness.store_listing(self.root)
        res = harness.run(self.root, "pull-local", source, "--platform", other)
        harness.assert_one_error_line(self, res, "pull-local", f"is for {harness.host_platform()}, not {other}")
        self.assertEqual(harness.store_listing(self.root), before)
        harness.pull(self, self.root, source, "--platform", harness.host_platform())


class BrokenInputTest(unittest.TestCase):
    """Hostile inputs: one error line, and the store and the host are untouched."""

    # images.json "broken" kind -> what the error line must say.
    REASONS = {
        "digest": r"(digest|diff_id) mismatch",
        "diff_id": r"diff_id mismatch",
        "missing": r"missing",
        "json": r"invalid JSON",
        "size": r"size mismatch",
        "count": r"diff_ids",
        "corrupt": r"corrupt|truncated",
    }
    # With basic's layers present imgtool by design does not re-read them, so
    # breakage inside those layer blobs goes unnoticed there.
    INSIDE_LAYER_BLOBS = ("digest", "corrupt")

    def stores(self) -> dict:
        fresh = harness.new_store(self)
        res = harness.run(fresh, "images")
        self.assertEqual(res.rc, 0, str(res))
        with_rootopq = harness.new_store(self)
        harness.pull(self, with_rootopq, harness.image_path("rootopq", "oci-archive"))
        with_basic = harness.new_store(self)
        harness.pull(self, with_basic, harness.image_path("basic", "oci-archive"))
        return {"fresh": fresh, "rootopq": with_rootopq, "basic": with_basic}

    def assert_rejected(self, root, source, reason, sentinel):
        before = harness.store_listing(root)
        source_hash = sha256_path(source) if os.path.lexists(source) else None
        res = harness.run(root, "pull-local", source)
        line = harness.assert_one_error_line(self, res, "pull-local")
        self.assertIn(os.path.basename(source), line)
        self.assertRegex(line, reason)
        after = harness.store_listing(root)
        self.assertEqual(after, before, "store changed:\n" + harness.listing_diff(before, after))
        self.assertEqual(harness.tmp_entries(root), [])
        self.assertTrue(sentinel.unchanged(), f"{sentinel.path} changed")
        if source_hash is None:
            self.assertFalse(os.path.lexists(source), f"{source} was created")
        else:
            self.assertEqual(sha256_path(source), source_hash, f"{source} changed")

    def test_broken_images(self):
        broken = [r for r in harness.images()["images"] if r["broken"]]
        self.assertEqual({r["broken"] for r in broken}, set(self.REASONS),
                         "a new kind of breakage in gen_images.py needs a reason here")
        stores, sentinel = self.stores(), harness.Sentinel(self)
        for rec in broken:
            for store_name, root in stores.items():
                if store_name == "basic" and rec["broken"] in self.INSIDE_LAYER_BLOBS:
                    continue
                with self.subTest(image=rec["path"], store=store_name):
                    self.assert_rejected(root, harness.image_path(rec),
                                         self.REASONS[rec["broken"]], sentinel)

    def test_not_an_image(self):
        work = harness.scratch_dir(self)
        cases = {}

        def make(name, reason, content=None):
            path = os.path.join(work, name)
            if content is not None:
                with open(path, "wb") as fh:
                    fh.write(content)
            cases[path] = reason
            return path

        make("empty.tar", r"empty", b"")
        make("not-a-tar.tar", r"not a tar", b"hello, this is not a tar archive\n")
        make("zeros.tar", r"not a tar|empty|manifest\.json|index\.json", b"\0" * 10240)
        plain = make("plain.tar", r"manifest\.json|index\.json")
        with open(os.path.join(work, "hello.txt"), "w") as fh:
            fh.write("hello\n")
        subprocess.run(["tar", "-C", work, "-cf", plain, "hello.txt"], check=True)
        os.mkdir(make("no-layout.d", r"oci-layout"))
        no_index = make("no-index.d", r"index\.json")
        os.mkdir(no_index)
        with open(os.path.join(no_index, "oci-layout"), "w") as fh:
            fh.write('{"imageLayoutVersion":"1.0.0"}')
        make("does-not-exist.tar", r"No such file or directory")
        stores, sentinel = self.stores(), harness.Sentinel(self)
        for source, reason in cases.items():
            for store_name, root in stores.items():
                with self.subTest(source=os.path.basename(source), store=store_name):
                    self.assert_rejected(root, source, reason, sentinel)


class InspectTest(unittest.TestCase):

    def setUp(self):
        self.root = harness.new_store(self)
        self.rec = harness.image_record("basic", "docker-archive-new")
        harness.pull(self, self.root, harness.image_path(self.rec))

    def test_fields(self):
        [info] = harness.inspect(self, self.root, "imgtool-test/basic:latest")
        self.assertEqual(info["Id"], self.rec["id"])
        self.assertEqual(info["RepoTags"], ["imgtool-test/basic:latest"])
        self.assertEqual(info["Created"], gen_images.CREATED)
        self.assertEqual((info["Os"], info["Architecture"]), ("linux", gen_images.host_arch()))
        want = gen_images.BASIC_RUNTIME
        for key in ("Env", "Cmd", "WorkingDir", "Labels", "User"):
            self.assertEqual(info["Config"].get(key), want[key], f"Config.{key}")
        self.assertNotIn("Entrypoint", info["Config"])
        self.assertEqual(info["RootFS"]["Layers"], self.rec["diff_ids"])
        lower = info["GraphDriver"]["Data"]["LowerDir"].split(":")
        self.assertEqual(lower, lower_dirs(self.root, self.rec["diff_ids"]),
                         "LowerDir lists the layer dirs top first, each with its skeleton")
        # Layer 2 of basic has whiteouts (in etc/ and at the root): it has a skeleton of those dirs.
        skel = os.path.join(self.root, "layers", hexof(self.rec["diff_ids"][1]), "skel")
        self.assertEqual(sorted(os.listdir(skel)), ["etc"])
        for d in lower:
            self.assertTrue(os.path.isdir(d), d)
        [row] = harness.images_json(self, self.root)
        self.assertEqual(row["Size"], info["Size"])
        self.assertGreater(info["Size"], 1 << 20)  # srv/big.bin alone is 1 MiB

    def test_references(self):
        image_id = self.rec["id"]
        hex_ = hexof(image_id)
        for ref in ("imgtool-test/basic", "imgtool-test/basic:latest", image_id, hex_,
                    hex_[:12], hex_[:4], "sha256:" + hex_[:12]):
            with self.subTest(ref=ref):
                [info] = harness.inspect(self, self.root, ref)
                self.assertEqual(info["Id"], image_id)
        both = harness.inspect(self, self.root, "imgtool-test/basic", hex_[:12])
        self.assertEqual([i["Id"] for i in both], [image_id, image_id])

    def test_unknown_references_fail(self):
        hex_ = hexof(self.rec["id"])
        other = "0" if hex_[0] != "0" else "1"
        # Three hex digits are too few for an ID prefix: looked up as a name, not found, and said so.
        for ref in (hex_[:3], "imgtool-test/basic:v2", "nosuchimage", other * 12,
                    "sha256:" + other * 12):
            with self.subTest(ref=ref):
                res = harness.run(self.root, "inspect", ref)
                line = harness.assert_one_error_line(self, res, "inspect")
                why = " (an ID prefix needs at least 4 hex characters)" if ref == hex_[:3] else ""
                self.assertEqual(line, f"imgtool: inspect: no such image: {ref}{why}", str(res))
        # An empty reference (an unset shell variable) must be visible in the message, not a
        # line that ends in ": ".
        res = harness.run(self.root, "inspect", "")
        line = harness.assert_one_error_line(self, res, "inspect")
        self.assertRegex(line, r'^imgtool: inspect: (no such image: ""|.*empty)', str(res))

    def test_ambiguous_prefix_fails(self):
        # Two tiny images whose IDs share their first 4 hex digits (found by trying labels).
        work = harness.scratch_dir(self)
        layer = gen_images.Layer([gen_images.f("hello.txt", "hello\n")], "gzip", "tiny")
        seen, pair = {}, None
        basic_prefix = hexof(self.rec["id"])[:4]
        for n in range(200000):
            img = gen_images.Image([layer], gen_images.runtime(["/bin/sh"],
                                                               labels={"nonce": str(n)}))
            prefix = hexof(img.id)[:5]
            if prefix[:4] == basic_prefix:
                continue
            match = next((o for p, o in seen.items() if p[:4] == prefix[:4] and p != prefix), None)
            if match is not None:
                pair = (match, img)
                break
            seen[prefix] = img
        self.assertIsNotNone(pair)
        for i, img in enumerate(pair):
            job = gen_images.Job(f"tiny{i}", [f"imgtool-test/tiny{i}:latest"], [img],
                                 ("oci-layout",))
            path = os.path.join(work, f"tiny{i}.oci")
            gen_images.write_dir(path, gen_images.build_oci(job).files)
            self.assertEqual(harness.pull(self, self.root, path), img.id)
        a, b = (hexof(img.id) for img in pair)
        res = harness.run(self.root, "inspect", a[:4])
        line = harness.assert_one_error_line(self, res, "inspect")
        self.assertIn("ambiguous", line)
        self.assertIn(a[:4], line)
        for full in (a, b):  # one more digit is unique again
            [info] = harness.inspect(self, self.root, full[:5])
            self.assertEqual(info["Id"], "sha256:" + full)


class TagRmTest(unittest.TestCase):

    def setUp(self):
        self.root = harness.new_store(self)
        self.basic = harness.image_record("basic", "oci-archive")
        self.shared = harness.image_record("shared", "oci-archive")
        harness.pull(self, self.root, harness.image_path(self.basic))

    def run_ok(self, *args) -> str:
        res = harness.run(self.root, *args)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        return res.out

    def test_tag_and_untag(self):
        self.run_ok("tag", hexof(self.basic["id"])[:12], "example.com:5000/my/name:v1")
        self.run_ok("tag", "imgtool-test/basic", "other")
        self.assertEqual(harness.tag_map(self, self.root), {
            "imgtool-test/basic:latest": self.basic["id"],
            "example.com:5000/my/name:v1": self.basic["id"],
            "other:latest": self.basic["id"],
        })
        [info] = harness.inspect(self, self.root, "example.com:5000/my/name:v1")
        self.assertEqual(sorted(info["RepoTags"]), ["example.com:5000/my/name:v1",
                                                    "imgtool-test/basic:latest",
                                                    "other:latest"])
        layers = harness.inode_map(os.path.join(self.root, "layers"))
        self.assertEqual(self.run_ok("rm", "example.com:5000/my/name:v1"),
                         "Untagged: example.com:5000/my/name:v1\n")
        self.assertEqual(self.run_ok("rm", "other"), "Untagged: other:latest\n")
        self.assertEqual(harness.tag_map(self, self.root),
                         {"imgtool-test/basic:latest": self.basic["id"]})
        self.assertEqual(harness.inode_map(os.path.join(self.root, "layers")), layers)
        res = harness.run(self.root, "tag", "nosuchimage", "x")
        harness.assert_one_error_line(self, res, "tag")

    def test_pull_with_extra_tag(self):
        res = harness.run(self.root, "pull-local", harness.image_path(self.shared),
                          "--tag", "extra/name:1")
        self.assertEqual((res.rc, res.out), (0, self.shared["id"] + "\n"), str(res))
        self.assertEqual(harness.tag_map(self, self.root).get("extra/name:1"), self.shared["id"])

    def test_rm_keeps_shared_layers_then_removes_all(self):
        harness.pull(self, self.root, harness.image_path(self.shared))
        self.assertEqual(len(harness.layer_hexes(self.root)), 4)
        self.assertEqual(self.run_ok("rm", "imgtool-test/basic"),
                         f"Untagged: imgtool-test/basic:latest\nDeleted: {self.basic['id']}\n")
        self.assertEqual(harness.layer_hexes(self.root),
                         sorted(hexof(d) for d in self.shared["diff_ids"]),
                         "basic's own top layer goes, the two shared ones stay")
        self.assertFalse(os.path.exists(
            os.path.join(self.root, "images", hexof(self.basic["id"]) + ".json")))
        self.assertEqual(harness.tag_map(self, self.root),
                         {"imgtool-test/shared:latest": self.shared["id"]})
        res = harness.run(self.root, "inspect", self.basic["id"])
        harness.assert_one_error_line(self, res, "inspect")
        [info] = harness.inspect(self, self.root, "imgtool-test/shared")
        for d in info["GraphDriver"]["Data"]["LowerDir"].split(":"):
            self.assertTrue(os.path.isfile(os.path.join(d, "..", "layer.json")), d)

        self.assertEqual(self.run_ok("rm", hexof(self.shared["id"])[:12]),
                         f"Untagged: imgtool-test/shared:latest\nDeleted: {self.shared['id']}\n")
        self.assertEqual(harness.layer_hexes(self.root), [])
        self.assertEqual(os.listdir(os.path.join(self.root, "images")), [])
        self.assertEqual(harness.images_json(self, self.root), [])
        with open(os.path.join(self.root, "tags.json")) as fh:
            self.assertEqual(json.load(fh), {})
        self.assertEqual(harness.tmp_entries(self.root), [])
        res = harness.run(self.root, "rm", "imgtool-test/shared")
        harness.assert_one_error_line(self, res, "rm")


class ConcurrencyTest(unittest.TestCase):

    def pull_all(self, root, sources):
        procs = [harness.popen(root, "pull-local", s) for s in sources]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            results.append((p.returncode, out.decode(), err.decode()))
        return results

    def test_same_image_eight_times(self):
        rec = harness.image_record("basic", "oci-archive")
        root = harness.new_store(self)
        results = self.pull_all(root, [harness.image_path(rec)] * 8)
        self.assertEqual(results, [(0, rec["id"] + "\n", "")] * 8)
        self.assertEqual(harness.layer_hexes(root), sorted(hexof(d) for d in rec["diff_ids"]))
        self.assertEqual(harness.tmp_entries(root), [])
        # Same end state as one sequential pull.
        sequential = harness.new_store(self)
        harness.pull(self, sequential, harness.image_path(rec))
        a, b = harness.store_listing(root), harness.store_listing(sequential)
        self.assertEqual(a, b, harness.listing_diff(a, b))

    def test_basic_and_shared_alternating(self):
        basic = harness.image_record("basic", "oci-archive")
        shared = harness.image_record("shared", "docker-archive")
        root = harness.new_store(self)
        results = self.pull_all(root, [harness.image_path(r) for r in (basic, shared) * 4])
        self.assertEqual(results, [(0, r["id"] + "\n", "") for r in (basic, shared) * 4])
        self.assertEqual(len(harness.layer_hexes(root)), 4)
        self.assertEqual(harness.tmp_entries(root), [])
        self.assertEqual(harness.tag_map(self, root), {"imgtool-test/basic:latest": basic["id"],
                                                       "imgtool-test/shared:latest": shared["id"]})
        for rec in (basic, shared):
            for d in rec["diff_ids"]:
                self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(
                    layer_diff(root, d)), "layer.json")))


class CrashTest(unittest.TestCase):

    def test_sigkill_mid_pull(self):
        rec = harness.image_record("layers200", "oci-archive")
        source = harness.image_path(rec)
        layers = {layer.diff_id: layer for layer in gen_images.layers200_job().images[0].layers}
        self.assertEqual(sorted(layers), sorted(rec["diff_ids"]))
        reference = harness.new_store(self)
        start = time.monotonic()
        harness.pull(self, reference, source)
        duration = time.monotonic() - start
        want = harness.store_listing(reference)
        # Kill points 0.05-0.3 s into the pull, spread over its whole length if it is
        # shorter.  Pull times vary with the machine's load: a pull that finishes before
        # its kill shortens the later delays (and starts a new store) instead of failing.
        points = ((0.05, 0.1), (0.1, 0.3), (0.2, 0.5), (0.3, 0.75))
        hits = leftovers_seen = 0
        root = crashed = None
        for attempt in range(3 * len(points)):
            if hits == len(points):
                break
            seconds, fraction = points[attempt % len(points)]
            delay = min(seconds, duration * fraction)
            root = root or harness.new_store(self)
            with self.subTest(attempt=attempt, delay=f"{delay:.3f}s"):
                proc = harness.popen(root, "pull-local", source)
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)  # a no-op if it has already exited
                out, err = proc.communicate()
                if proc.returncode != -signal.SIGKILL:
                    self.assertEqual(proc.returncode, 0, err)
                    duration, root = delay, None  # finished first: nothing to check here
                    continue
                hits += 1
                crashed = root

                def names(sub):  # a kill may land before the store's skeleton exists
                    path = os.path.join(root, sub)
                    return sorted(os.listdir(path)) if os.path.isdir(path) else []

                # A kill that lands after the commit (the pull had only its exit left, which a
                # loaded machine can stretch) leaves the whole image: never a record without its layers.
                for record in names("images"):
                    with open(os.path.join(root, "images", record)) as fh:
                        for diff_id in json.load(fh)["layers"]:
                            self.assertIn(diff_id.split(":")[1], names("layers"), "a record without its layer")
                complete = bool(names("images"))
                leftovers_seen += bool(names("tmp"))
                for hex_ in names("layers"):  # every visible layer is complete
                    with open(os.path.join(root, "layers", hex_, "layer.json")) as fh:
                        self.assertEqual(json.load(fh)["diff_id"], "sha256:" + hex_)
                    check_layer_dir(self, os.path.join(root, "layers", hex_, "diff"),
                                    layers["sha256:" + hex_].entries)
                self.assertEqual(len(harness.images_json(self, root)), 1 if complete else 0)
                self.assertEqual(harness.tmp_entries(root), [],
                                 "the next command clears a killed pull's leftovers")
        # Otherwise the kills did not interrupt real work and tested nothing.
        self.assertGreaterEqual(hits, 3, "too few kills landed mid-pull")
        self.assertGreater(leftovers_seen, 0, "no kill left a staged layer in tmp/")
        # The same pull then succeeds, ending exactly like a pull that never crashed.
        self.assertEqual(harness.pull(self, crashed, source), rec["id"])
        got = harness.store_listing(crashed)
        self.assertEqual(got, want, "store after crashes + pull differs from a clean pull:\n"
                         + harness.listing_diff(want, got))


class StoreRootTest(unittest.TestCase):

    def mode(self, path):
        return format(stat.S_IMODE(os.lstat(path).st_mode), "04o")

    def test_new_root_is_private(self):
        root = harness.new_store(self)
        harness.pull(self, root, harness.image_path("rootopq", "oci-archive"))
        self.assertEqual(self.mode(root), "0700")
        self.assertLessEqual({"blobs", "images", "layers", "lock", "tmp"}, set(os.listdir(root)))

    def test_existing_root_is_tightened(self):
        for mode in (0o755, 0o777, 0o711):
            with self.subTest(mode=oct(mode)):
                root = harness.new_store(self)
                os.mkdir(root)
                os.chmod(root, mode)
                res = harness.run(root, "images")
                self.assertEqual(res.rc, 0, str(res))
                self.assertEqual(self.mode(root), "0700")

    def test_imgtool_root_env(self):
        rec = harness.image_record("rootopq", "oci-archive")
        env_root, flag_root = harness.new_store(self), harness.new_store(self)
        env = harness.base_env(IMGTOOL_ROOT=env_root)
        res = harness.run(None, "pull-local", harness.image_path(rec), env=env)
        self.assertEqual((res.rc, res.out), (0, rec["id"] + "\n"), str(res))
        self.assertEqual(self.mode(env_root), "0700")
        self.assertEqual(harness.tag_map(self, env_root),
                         {"imgtool-test/rootopq:latest": rec["id"]})
        # --root wins over IMGTOOL_ROOT.
        res = harness.run(flag_root, "pull-local", harness.image_path("basic", "oci-archive"),
                          env=env)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(set(harness.tag_map(self, flag_root)), {"imgtool-test/basic:latest"})
        self.assertEqual(set(harness.tag_map(self, env_root)), {"imgtool-test/rootopq:latest"})


class OutputTest(unittest.TestCase):

    def run_with_pty_stderr(self, *args):
        """Run imgtool with stdout a pipe and stderr a terminal."""
        root = harness.new_store(self)
        master, slave = pty.openpty()
        try:
            proc = harness.popen(root, *args, stderr=slave)
        finally:
            os.close(slave)
        out, _ = proc.communicate(timeout=120)
        err = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            err += chunk
        os.close(master)
        return proc.returncode, out.decode(), err.decode(errors="replace")

    def test_pipes_get_only_the_id(self):
        rec = harness.image_record("basic", "oci-archive")
        res = harness.run(harness.new_store(self), "pull-local", harness.image_path(rec))
        self.assertEqual((res.rc, res.out, res.err), (0, rec["id"] + "\n", ""), str(res))

    def test_terminal_stderr(self):
        rec = harness.image_record("basic", "oci-archive")
        rc, out, err = self.run_with_pty_stderr("pull-local", harness.image_path(rec))
        self.assertEqual((rc, out), (0, rec["id"] + "\n"), "stdout carries only the ID")
        # The progress display (test_progress.py checks it in tmux): one line per layer, in the
        # image's order, named by its blob digest; the final frame is left, every layer "done" with a
        # full bar (80 columns: a pty without a size), the blob's size read of its size and 100%.
        layers = gen_images.basic_layers()
        final = ""
        for i, layer in enumerate(layers):
            digest = sha256_bytes(layer.blob()[1])[:12]
            size = rf"(?P<s{i}>[0-9.]+[kMG]?B)/(?P=s{i})"
            final += rf"\r\x1b\[K{digest} done \[={{30}}\] +{size} 100% +[0-9.]+[kMG]?B/s\r\n"
            self.assertRegex(err, final, f"no final progress line for layer {digest}")
        lines = err.split("\r\n")
        notice = (f"imgtool: loaded {rec['id']} ({len(layers)} layers unpacked, 0 reused): "
                  "imgtool-test/basic:latest")
        self.assertEqual(lines[-2:], [notice, ""], repr(err))
        rc, out, err = self.run_with_pty_stderr("pull-local", "-q", harness.image_path(rec))
        self.assertEqual((rc, out, err), (0, rec["id"] + "\n", ""), "-q: nothing but the ID")

    def test_no_progress_when_stderr_is_not_a_terminal(self):
        rec = harness.image_record("basic", "oci-archive")
        err_path = os.path.join(harness.scratch_dir(self), "stderr")
        with open(err_path, "w") as err_file:
            proc = harness.popen(harness.new_store(self), "pull-local", harness.image_path(rec),
                                 stderr=err_file)
            out, _ = proc.communicate(timeout=120)
        with open(err_path) as fh:
            self.assertEqual((proc.returncode, out.decode(), fh.read()), (0, rec["id"] + "\n", ""),
                             "stderr is a file: no progress display, no notice")


if __name__ == "__main__":
    unittest.main()
