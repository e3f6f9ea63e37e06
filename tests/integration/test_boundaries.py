"""Attacks across imgtool's privilege boundaries that are scenarios rather than images
(docs/security.md, "Threat model"):

  - a local user against what root mounts for people (`mount` views: setuid binaries and device
    nodes of an image must not work for anyone who can reach TARGET);
  - a store location or store contents someone else controls (`--root` owned by another user, a
    symlink, a world-writable parent; forged mount records; a layer directory replaced by a symlink);
  - an image author spoofing another image by tag, and a re-pull recording a manifest whose blobs
    were never read;
  - what a crash leaves (temporaries only in tmp/, old-style leftovers cleaned).

Image-author attacks on tars and JSON are cases of the hostile corpus (tools/gen_hostile.py,
test_hostile.py); the container's root against the host is in test_run.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import harness
from harness import treecmp

import gen_hostile  # noqa: E402  (harness put tools/ on sys.path)
from gen_hostile import Tar, layer, oci_image, write_layout

NOBODY = 65534
EUID_PROBE = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("%d\n", (int)geteuid()); return 0; }
"""


def compile_probe(directory: str) -> bytes:
    """A static program that prints its effective uid (busybox drops setuid privileges itself)."""
    cc = shutil.which("gcc")
    if cc is None:
        raise harness.SetupError("gcc not found: install the Debian package gcc (tools/test.sh installs it)")
    src, out = os.path.join(directory, "euid.c"), os.path.join(directory, "euid")
    with open(src, "w") as fh:
        fh.write(EUID_PROBE)
    subprocess.run([cc, "-static", "-O2", "-o", out, src], check=True)
    with open(out, "rb") as fh:
        return fh.read()


def make_reachable(path: str) -> None:
    """Every directory from the scratch space down to path gets o+rx: another user can reach it."""
    top = os.path.realpath(harness.TEST_TMP)
    path = os.path.realpath(path)
    while True:
        os.chmod(path, os.stat(path).st_mode | 0o005)
        if path == top or path == "/":
            break
        path = os.path.dirname(path)


def as_nobody(*argv) -> subprocess.CompletedProcess:
    """argv run as nobody. Through a shell: setpriv resolves its command's path before its
    capabilities are gone, so `setpriv ... /private/x` would reach what nobody cannot."""
    setpriv = harness.require_tool("setpriv")
    return subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
                           "/bin/sh", "-c", 'exec "$@"', "sh", *argv],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


class BoundaryTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()
        self.work = harness.scratch_dir(self, "boundary-")
        self.root = os.path.join(self.work, "store")

    def imgtool(self, *args, root: str | None = None) -> harness.Result:
        return harness.run(root or self.root, *args)

    def image(self, name: str, tar: Tar, tag: str | None = None, **kw) -> str:
        path = os.path.join(self.work, name)
        write_layout(path, oci_image([layer(tar)], tag or f"imgtool-test/{name}:latest", **kw).files)
        return path


# --------------------------------------------------------------------------
# A local user against root's views


class ViewTest(BoundaryTest):
    """`imgtool mount` by root on a TARGET other users can reach: the image's setuid-root binary and
    its 0666 device node must give them nothing (nosuid,nodev), unless --suid/--dev ask for it."""

    def setUp(self):
        super().setUp()
        probe = compile_probe(self.work)
        tar = (Tar().dir("bin").file("bin/euid", probe, mode=0o4755)
               .dir("dev").add("dev/full0", "char", dev=(1, 7), mode=0o666))
        self.image_path = self.image("suid", tar)
        self.id = harness.pull(self, self.root, self.image_path)
        self.views = os.path.join(self.work, "views")
        os.mkdir(self.views)
        make_reachable(self.views)

    def mount(self, name: str, *opts) -> str:
        target = os.path.join(self.views, name)
        os.mkdir(target)
        res = self.imgtool("mount", *opts, self.id, target)
        self.assertEqual(res.rc, 0, str(res))
        self.addCleanup(self.imgtool, "umount", target)
        return target

    def probe(self, target: str) -> tuple:
        """(euid the setuid-root probe gets when nobody runs it, whether root can open the node)."""
        res = as_nobody(os.path.join(target, "bin/euid"))
        self.assertEqual(res.returncode, 0, res)
        try:
            os.close(os.open(os.path.join(target, "dev/full0"), os.O_WRONLY))
            opened = True
        except PermissionError:
            opened = False
        return int(res.stdout), opened

    def test_views_are_nosuid_nodev(self):
        for name, opts in (("overlay", ()), ("writable", ("--writable",)), ("copy", ("--driver", "copy")),
                           ("copy-rw", ("--driver", "copy", "--writable"))):
            with self.subTest(view=name):
                target = self.mount(name, *opts)
                st = os.lstat(os.path.join(target, "bin/euid"))
                self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o4755, 0),
                                 "the view shows the image as it is")
                self.assertEqual(self.probe(target), (NOBODY, False),
                                 "a setuid binary or device node of the image worked in a view")

    def test_suid_and_dev_opt_in(self):
        # The control: the probe can tell (with the flags, the image's bits take effect).
        for name, opts in (("overlay", ()), ("copy", ("--driver", "copy"))):
            with self.subTest(view=name):
                target = self.mount(name + "-opt", *opts, "--suid", "--dev")
                self.assertEqual(self.probe(target), (0, True))


class UserPathTest(BoundaryTest):
    """Paths root receives from a user (mount targets, --upper) are never followed through that user's
    symlinks, and `run --upper` goes only where other users cannot reach (the container writes there
    as root). Found by the outside attack on issue 12."""

    def setUp(self):
        super().setUp()
        self.image_id = harness.pull(self, self.root, harness.image_path("busybox", "oci-archive"))
        self.victim = os.path.join(self.work, "victim")   # a root directory the user must not redirect to
        os.mkdir(self.victim, 0o755)
        self.user_home = os.path.join(self.work, "home")  # a directory the user owns
        os.mkdir(self.user_home, 0o755)
        os.chown(self.user_home, NOBODY, NOBODY)
        make_reachable(self.user_home)

    def user_symlink(self, name: str, target: str) -> str:
        path = os.path.join(self.user_home, name)
        os.symlink(target, path)
        os.lchown(path, NOBODY, NOBODY)
        return path

    def test_mount_target_through_a_users_symlink(self):
        link = self.user_symlink("tgt", self.victim)
        res = self.imgtool("mount", self.image_id, link)
        harness.assert_one_error_line(self, res, "mount", link, f"owned by uid {NOBODY}")
        via = self.user_symlink("via", self.work)   # an intermediate component
        res = self.imgtool("mount", self.image_id, os.path.join(via, "victim"))
        harness.assert_one_error_line(self, res, "mount", f"owned by uid {NOBODY}")
        self.assertEqual(os.listdir(self.victim), [])
        self.assertEqual([m for m in harness.mountinfo_lines() if f" {self.victim} " in m], [])

    def test_upper_through_a_users_symlink(self):
        via = self.user_symlink("via", self.work)
        target = os.path.join(self.work, "t")
        os.mkdir(target)
        for verb, args in (("mount", ("mount", "--upper", os.path.join(via, "victim"), self.image_id, target)),
                           ("run", ("run", "--upper", os.path.join(via, "victim"), self.image_id, "true"))):
            with self.subTest(verb=verb):
                res = self.imgtool(*args)
                harness.assert_one_error_line(self, res, verb, f"owned by uid {NOBODY}",
                                              rc=125 if verb == "run" else 1)
                self.assertEqual(os.listdir(self.victim), [])
                self.assertFalse(os.path.lexists(os.path.join(self.work, ".victim.imgtool-work")))

    def test_a_root_symlink_is_followed(self):
        real = os.path.join(self.work, "real-target")
        os.mkdir(real)
        link = os.path.join(self.work, "root-link")
        os.symlink(real, link)
        res = self.imgtool("mount", self.image_id, link)
        self.assertEqual((res.rc, res.out), (0, real + "\n"), str(res))
        self.assertEqual(self.imgtool("umount", real).rc, 0)

    def test_someone_elses_work_directory_is_refused(self):
        upper = os.path.join(self.user_home, "up")
        os.mkdir(upper)
        planted = os.path.join(self.user_home, ".up.imgtool-work")
        os.mkdir(planted)
        os.chown(planted, NOBODY, NOBODY)
        with open(os.path.join(planted, "keep"), "w") as fh:
            fh.write("the user's\n")
        target = os.path.join(self.work, "t")
        os.mkdir(target)
        res = self.imgtool("mount", "--upper", upper, self.image_id, target)
        harness.assert_one_error_line(self, res, "mount", planted, "not yours")
        self.assertEqual(os.listdir(planted), ["keep"])

    def test_run_upper_must_be_private(self):
        """`run --upper` into a directory other users can reach would leave the container's setuid-root
        files and device nodes live for them."""
        probe = compile_probe(self.work)
        with open(os.path.join(self.work, "probe"), "wb") as fh:
            fh.write(probe)
        os.chmod(os.path.join(self.work, "probe"), 0o755)
        reachable = os.path.join(self.user_home, "up")  # the user's own home: reachable by them
        res = self.imgtool("run", "--upper", reachable, "-v", f"{self.work}/probe:/probe:ro", self.image_id,
                           "sh", "-c", "cp /probe /suid && chmod 4755 /suid")
        harness.assert_one_error_line(self, res, "run", reachable, "other users cannot reach", rc=125)
        self.assertFalse(os.path.lexists(os.path.join(reachable, "suid")))
        # Under a 0700 directory of root's: accepted, and the setuid file stays out of nobody's reach.
        private = os.path.join(self.work, "private")
        os.mkdir(private, 0o700)
        upper = os.path.join(private, "up")
        res = self.imgtool("run", "--upper", upper, "-v", f"{self.work}/probe:/probe:ro", self.image_id,
                           "sh", "-c", "cp /probe /suid && chmod 4755 /suid")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(os.stat(os.path.join(upper, "suid")).st_mode & 0o7777, 0o4755)
        res = as_nobody(os.path.join(upper, "suid"))
        self.assertNotEqual(res.returncode, 0, "nobody reached the container's setuid file")


# --------------------------------------------------------------------------
# A store location, or store contents, someone else controls


class StoreLocationTest(BoundaryTest):

    def assert_refused(self, root: str, *needles) -> None:
        res = self.imgtool("images", root=root)
        harness.assert_one_error_line(self, res, "images", "refusing store location", *needles)

    def test_store_owned_by_another_user(self):
        root = os.path.join(self.work, "theirs")
        os.mkdir(root, 0o755)
        os.chown(root, NOBODY, NOBODY)
        self.assert_refused(root, root, f"owned by uid {NOBODY}")
        st = os.stat(root)
        self.assertEqual((stat.S_IMODE(st.st_mode), os.listdir(root)), (0o755, []), "the directory was changed")

    def test_store_root_is_a_symlink(self):
        victim = os.path.join(self.work, "victim")
        os.mkdir(victim, 0o755)
        root = os.path.join(self.work, "link")
        os.symlink(victim, root)
        self.assert_refused(root, "is a symlink")
        st = os.stat(victim)
        self.assertEqual((stat.S_IMODE(st.st_mode), os.listdir(victim)), (0o755, []), "the target was changed")

    def test_parent_writable_by_others(self):
        for mode, needle in ((0o777, "writable by everyone"), (0o775, "writable by group")):
            with self.subTest(mode=oct(mode)):
                parent = os.path.join(self.work, f"open-{mode:o}")
                os.mkdir(parent)
                os.chmod(parent, mode)
                os.chown(parent, 0, 4242)
                self.assert_refused(os.path.join(parent, "store"), parent, needle)
                self.assertEqual(os.listdir(parent), [])

    def test_sticky_parent_and_nested_symlink_are_fine(self):
        parent = os.path.join(self.work, "sticky")
        os.mkdir(parent)
        os.chmod(parent, 0o1777)
        res = self.imgtool("images", root=os.path.join(parent, "store"))
        self.assertEqual(res.rc, 0, str(res))
        # A symlink on the way is as trusted as the directory holding it (checked), its target too.
        real = os.path.join(self.work, "real")
        os.mkdir(real)
        os.symlink(real, os.path.join(self.work, "via"))
        res = self.imgtool("images", root=os.path.join(self.work, "via", "store"))
        self.assertEqual(res.rc, 0, str(res))
        self.assertTrue(os.path.isdir(os.path.join(real, "store", "layers")))

    def test_symlink_on_the_way_into_a_writable_directory(self):
        open_dir = os.path.join(self.work, "open")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o777)
        os.symlink(open_dir, os.path.join(self.work, "via"))
        self.assert_refused(os.path.join(self.work, "via", "store"), open_dir, "writable by everyone")

    def test_forged_copy_record_removes_nothing(self):
        """A record naming a directory imgtool never filled (a forged or stale one): `mounts` and
        `umount` drop it and remove nothing there."""
        sentinel = harness.Sentinel(self)
        self.assertEqual(self.imgtool("images").rc, 0)
        ns = os.readlink("/proc/self/ns/mnt")
        record = {"name": "forged", "target": sentinel.path, "image": "sha256:" + "0" * 64,
                  "driver": "copy", "mode": "copy", "upper": "", "work": "", "owns_upper": False,
                  "mount_namespace": ns, "active": False}
        for verb in ("mounts", "umount"):
            with self.subTest(verb=verb):
                with open(os.path.join(self.root, "mounts", "forged.json"), "w") as fh:
                    json.dump(record, fh)
                args = (verb, sentinel.path) if verb == "umount" else (verb,)
                self.imgtool(*args)
                self.assertTrue(sentinel.unchanged(), "a record made imgtool remove a directory's contents")


class TamperedStoreTest(BoundaryTest):

    def test_layer_directory_replaced_by_a_symlink(self):
        image = harness.image_path("busybox", "oci-archive")
        image_id = harness.pull(self, self.root, image)
        [diff_id] = harness.inspect(self, self.root, image_id)[0]["RootFS"]["Layers"][-1:]
        diff = os.path.join(self.root, "layers", diff_id.split(":")[1], "diff")
        shutil.rmtree(diff)
        os.symlink("/", diff)
        target = os.path.join(self.work, "t")
        os.mkdir(target)
        for args, verb in ((("run", image_id, "ls", "/"), "run"), (("mount", image_id, target), "mount")):
            with self.subTest(verb=verb):
                res = self.imgtool(*args)
                harness.assert_one_error_line(self, res, verb, diff_id, rc=125 if verb == "run" else 1)
                self.assertEqual(os.listdir(target), [])


# --------------------------------------------------------------------------
# Image authors against other images, and what the store records


class ReferenceTest(BoundaryTest):

    def test_id_resolves_before_a_tag_spelled_like_it(self):
        a = harness.pull(self, self.root, harness.image_path("busybox", "oci-archive"))
        b = harness.pull(self, self.root, harness.image_path("basic", "oci-archive"))
        hex_b = b.split(":")[1]
        # A store written before 64-hex names were refused: the tag must not shadow the ID.
        tags_path = os.path.join(self.root, "tags.json")
        with open(tags_path) as fh:
            tags = json.load(fh)
        tags[f"{hex_b}:latest"] = a
        with open(tags_path, "w") as fh:
            json.dump(tags, fh)
        for ref in (hex_b, b):
            with self.subTest(ref=ref):
                self.assertEqual(harness.inspect(self, self.root, ref)[0]["Id"], b)

    def test_tag_spelled_like_a_short_id_is_ambiguous(self):
        """An image author's tag `<12 hex of another image's ID>`: `run ba2caf477f7e` must not run the
        author's image; and a name it takes over is said."""
        victim = harness.pull(self, self.root, harness.image_path("busybox", "oci-archive"))
        short = victim.split(":")[1][:12]
        path = self.image("spoof", Tar().file("x", "x"), tag=f"{short}:latest")
        res = self.imgtool("pull-local", path)
        self.assertEqual(res.rc, 0, str(res))
        spoof = res.out.strip()
        res = self.imgtool("inspect", short)
        harness.assert_one_error_line(self, res, "inspect", "is both the tag", "use the full ID")
        self.assertEqual(harness.inspect(self, self.root, short[:4])[0]["Id"], victim)  # no such tag: the ID
        self.assertEqual(harness.inspect(self, self.root, f"{short}:latest")[0]["Id"], spoof)
        self.assertEqual(harness.inspect(self, self.root, victim)[0]["Id"], victim)
        # Taking over a name another image had is said (docker: "renaming the old one").
        other = self.image("other", Tar().file("y", "y"), tag=f"{short}:latest")
        res = self.imgtool("pull-local", other)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(res.err, f"imgtool: pull-local: note: {short}:latest now names "
                                  f"{res.out.strip().split(':')[1][:12]} (it named {spoof.split(':')[1][:12]})\n")

    def test_tag_spelled_like_an_id_is_refused(self):
        victim = "ab" * 32
        for source in ("archive", "tag"):
            with self.subTest(source=source):
                before = harness.store_listing(self.root) if os.path.isdir(self.root) else None
                if source == "archive":
                    path = self.image("spoof", Tar().file("x", "x"), tag=victim)
                    res = self.imgtool("pull-local", path)
                else:
                    path = self.image("plain", Tar().file("y", "y"))
                    res = self.imgtool("pull-local", path, "--tag", victim)
                harness.assert_one_error_line(self, res, "pull-local", "64-byte hexadecimal")
                if before is not None:
                    self.assertEqual(harness.store_listing(self.root), before)

    def test_repull_keeps_only_a_verified_manifest(self):
        """A second archive of the same image (same config and diff_ids) names other layer blobs
        (here: recompressed): its layers are present, so they are not read, and its manifest is not
        recorded as the image's."""
        tar = Tar().dir("etc").file("etc/hello", "hello\n")
        first = os.path.join(self.work, "first")
        img1 = oci_image([layer(tar, level=6)], "imgtool-test/m:latest")
        write_layout(first, img1.files)
        img2 = oci_image([layer(tar, level=1)], "imgtool-test/m:latest")
        self.assertNotEqual(img1.manifest_desc["digest"], img2.manifest_desc["digest"])
        second = os.path.join(self.work, "second")
        write_layout(second, img2.files)
        image_id = harness.pull(self, self.root, first)
        self.assertEqual(harness.pull(self, self.root, second), image_id)
        [info] = harness.inspect(self, self.root, image_id)
        self.assertEqual(info["ManifestDigest"], img1.manifest_desc["digest"])
        blobs = os.listdir(os.path.join(self.root, "blobs", "sha256"))
        self.assertNotIn(img2.manifest_desc["digest"].split(":")[1], blobs)


class OutputTest(BoundaryTest):
    """Names people or images choose cannot forge output: a mount target with a newline, labels with
    C1 controls and bidirectional overrides (outside attack on issue 12, finding 10)."""

    def test_mount_target_with_a_newline(self):
        image_id = harness.pull(self, self.root, harness.image_path("busybox", "oci-archive"))
        target = os.path.join(self.work, "t\n0123456789ab overlay  rw        etc")
        os.mkdir(target)
        res = self.imgtool("mount", image_id, target)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(res.out.count("\n"), 1, res.out)
        self.assertIn("\\x0a", res.out)
        rows = self.imgtool("mounts").out.splitlines()
        self.assertEqual(len(rows), 2, rows)  # the header and one row
        self.assertEqual(self.imgtool("umount", target).rc, 0)

    def test_inspect_is_ascii(self):
        runtime = {"Cmd": ["/bin/sh"], "Labels": {"c1": "x\u009b31my", "bidi": "\u202etxt.exe"}}
        path = self.image("labels", Tar().file("f", "f"), runtime=runtime)
        image_id = harness.pull(self, self.root, path)
        proc = subprocess.run(harness.imgtool_argv(self.root, "inspect", image_id), stdout=subprocess.PIPE, timeout=60)
        self.assertEqual(proc.returncode, 0)
        self.assertTrue(proc.stdout.isascii(), "inspect printed raw non-ASCII")
        labels = json.loads(proc.stdout)[0]["Config"]["Labels"]
        self.assertEqual(labels, runtime["Labels"], "the values survive, escaped")


# --------------------------------------------------------------------------
# Crashes


class LeftoverTest(BoundaryTest):

    def test_old_style_temporaries_are_cleaned(self):
        self.assertEqual(self.imgtool("images").rc, 0)
        planted = [os.path.join(self.root, "blobs", "sha256", ".abc.tmp-1-00ff"),
                   os.path.join(self.root, "images", ".x.json.tmp-2-ab"),
                   os.path.join(self.root, ".tags.json.tmp-3-cd")]
        for path in planted:
            with open(path, "w") as fh:
                fh.write("left by a crash")
        self.assertEqual(self.imgtool("images").rc, 0)
        self.assertEqual([p for p in planted if os.path.lexists(p)], [])

    def test_every_temporary_is_made_in_tmp(self):
        """A kill -9 can only ever leave files in tmp/, which the next command clears: every file a
        pull creates in the store is created in tmp/ (the lock file aside) and renamed into place."""
        strace = harness.require_tool("strace")
        self.assertEqual(self.imgtool("images").rc, 0)  # the store's own directories exist
        image = harness.image_path("basic", "oci-archive")
        trace = os.path.join(self.work, "trace")
        # -y prints the path behind each fd argument: openat(5</store/tmp/x>, "name", O_CREAT...).
        argv = [strace, "-f", "-qq", "-y", "-e", "trace=open,openat,openat2", "-o", trace,
                *harness.imgtool_argv(self.root, "pull-local", image)]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        root = os.path.realpath(self.root)
        allowed = (os.path.join(root, "tmp") + "/", os.path.join(root, "tmp") + ">", os.path.join(root, "lock"))
        created = []
        with open(trace) as fh:
            for line in fh:
                if "O_CREAT" not in line:
                    continue
                m = re.search(r'open(?:at2?)?\((?:(AT_FDCWD|\d+<([^>]*)>), )?"([^"]*)"', line)
                self.assertIsNotNone(m, line)
                where = m.group(3) if m.group(3).startswith("/") else f"{m.group(2) or os.getcwd()}/{m.group(3)}"
                if where.startswith(root):
                    created.append(where)
        self.assertGreater(len(created), 10, "the trace saw the pull create nothing")
        stray = [c for c in created if not (c.startswith(allowed[0]) or c == allowed[2])]
        self.assertEqual(stray, [], "files created in the store outside tmp/")
        self.assertEqual(harness.tmp_entries(self.root), [])


if __name__ == "__main__":
    unittest.main()
