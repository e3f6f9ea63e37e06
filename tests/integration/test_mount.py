"""Integration tests for `imgtool mount`, `umount` and `mounts`, driving the built binary as root.

Every test works in a fresh store, mounts on the host's mount namespace (so that the mount table
can be checked) and undoes every mount in cleanups.  Foreign mounts (a tmpfs imgtool did not make)
live in private mount namespaces made with unshare, so they vanish even if a test dies.

Expectations:
  - merged views (read-only overlay, writable overlay before any write, copy driver) equal umoci's
    unpack of the same image entry by entry (tools/treecmp.py, non-directory mtimes included);
  - layer directories in the store are never modified (treecmp.tree_hash before/after);
  - the host's mount table (the /proc/self/mountinfo lines about the test scratch space) is back
    to its baseline after each umount, and `imgtool mounts` lists exactly the live mounts.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import time
import unittest

import harness
from harness import treecmp

FMT = "oci-archive"  # every test image exists in this format
MOUNTS_HEADER = f"{'IMAGE ID':<14} {'DRIVER':<8} {'MODE':<9} TARGET"


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.require_tool("unshare")
    harness.require_tool("umount")
    harness.images()


# --------------------------------------------------------------------------
# The host's mount table


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


mountinfo_lines = harness.mountinfo_lines
host_mount_lines = harness.host_mount_lines


def mountinfo() -> list:
    """[{root, mount_point, options, fstype, source, super_options}] of this mount namespace."""
    out = []
    for line in mountinfo_lines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        out.append({"root": _unescape(f[3]), "mount_point": _unescape(f[4]), "options": f[5].split(","),
                    "fstype": r[0], "source": _unescape(r[1]),
                    "super_options": r[2] if len(r) > 2 else ""})
    return out


def mounts_at(path: str) -> list:
    return [m for m in mountinfo() if m["mount_point"] == path]


host_mount_lock = harness.host_mount_lock


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[1][:12]


def in_private_ns(script: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `sh -c SCRIPT sh ARGS...` in a private mount namespace (gone when it exits)."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                           *[str(a) for a in args]], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout,
                          env=harness.base_env())


sections = harness.sections


wait_for = harness.wait_for


# --------------------------------------------------------------------------


class MountTestCase(unittest.TestCase):
    """Fresh store and scratch dir per test; mount table checked against its baseline."""

    def setUp(self):
        reason = harness.overlay_unavailable()
        if reason:
            print(f"\nskipping: {reason}")
            self.skipTest(reason)
        lock = host_mount_lock()
        lock.__enter__()
        self.addCleanup(lock.__exit__, None, None, None)
        self.baseline = host_mount_lines()
        self.addCleanup(self._check_baseline)
        self.root = harness.new_store(self)
        self.work = os.path.realpath(harness.scratch_dir(self, "mount-"))
        self._ids = {}

    # ---- helpers -----------------------------------------------------------

    def _check_baseline(self):
        self.assertEqual(host_mount_lines(), self.baseline,
                         "host mount table not back to its baseline after the test")

    def pull(self, name: str) -> str:
        if name not in self._ids:
            rec = harness.image_record(name, FMT)
            image_id = harness.pull(self, self.root, harness.image_path(rec))
            self.assertEqual(image_id, rec["id"])
            self._ids[name] = image_id
        return self._ids[name]

    def mkdir(self, name: str) -> str:
        path = os.path.join(self.work, name)
        os.makedirs(path)
        return path

    def imgtool(self, *args, timeout: float = 120) -> harness.Result:
        return harness.run(self.root, *args, timeout=timeout)

    def mount(self, image: str, target: str, *opts) -> harness.Result:
        """`imgtool mount` that must succeed; the target is unmounted in a cleanup."""
        self.addCleanup(self._cleanup_target, target)
        res = self.imgtool("mount", *opts, image, target)
        self.assertEqual((res.rc, res.out, res.err), (0, target + "\n", ""), str(res))
        return res

    def _cleanup_target(self, target: str):
        if self.record_for(target) is not None:
            self.imgtool("umount", target)
        # Last resort so that a failing test never leaves a mount behind.
        for _ in range(5):
            if not mounts_at(target):
                break
            subprocess.run(["umount", "-l", target], stderr=subprocess.DEVNULL)

    def umount(self, target: str):
        res = self.imgtool("umount", target)
        self.assertEqual((res.rc, res.out, res.err), (0, "", ""), str(res))
        self.assertEqual(mounts_at(target), [], f"{target} still mounted after umount")
        self.assertIsNone(self.record_for(target), f"record for {target} left after umount")

    def records(self) -> list:
        out = []
        for path in sorted(glob.glob(os.path.join(self.root, "mounts", "*.json"))):
            with open(path) as fh:
                out.append(json.load(fh))
        return out

    def record_for(self, target: str):
        found = [r for r in self.records() if r["target"] == target]
        self.assertLessEqual(len(found), 1, f"several records for {target}: {found}")
        return found[0] if found else None

    def mounts_rows(self) -> set:
        res = self.imgtool("mounts")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        lines = res.out.splitlines()
        self.assertGreaterEqual(len(lines), 1, str(res))
        self.assertEqual(lines[0], MOUNTS_HEADER, str(res))
        rows = set()
        for line in lines[1:]:
            image, driver, mode, target = line.split(None, 3)
            rows.add((image, driver, mode, target))
        self.assertEqual(len(rows), len(lines) - 1, f"duplicate rows\n{res}")
        return rows

    def lower_dirs(self, image: str) -> list:
        [info] = harness.inspect(self, self.root, image)
        self.assertEqual(info["GraphDriver"]["Name"], "overlay")
        dirs = info["GraphDriver"]["Data"]["LowerDir"].split(":")
        for d in dirs:
            self.assertTrue(os.path.isdir(d), d)
            self.assertTrue(d.startswith(os.path.join(self.root, "layers") + "/"), d)
        return dirs

    def layer_hashes(self, image: str) -> dict:
        return {d: treecmp.tree_hash(d) for d in self.lower_dirs(image)}

    def assert_overlay(self, target: str, read_only: bool):
        [m] = mounts_at(target)
        # The source names the store, so that umount with another --root can say whose view it is.
        self.assertEqual((m["fstype"], m["source"]), ("overlay", "imgtool:" + os.path.realpath(self.root)), m)
        options = m["options"]
        self.assertIn("ro" if read_only else "rw", options, m)
        # A view is nosuid,nodev unless --suid/--dev: TARGET may be reachable by other users.
        self.assertIn("nosuid", options, m)
        self.assertIn("nodev", options, m)
        return m

    def assert_copy_bind(self, target: str, read_only: bool = True):
        """The copy driver's view: a bind mount of ROOT/mounts/<name>/tree on the target."""
        [m] = mounts_at(target)
        rec = self.record_for(target)
        self.assertTrue(rec["tree_in_store"], rec)
        self.assertTrue(m["root"].endswith(f"/mounts/{rec['name']}/tree"), m)
        options = m["options"]
        self.assertIn("ro" if read_only else "rw", options, m)
        self.assertIn("nosuid", options, m)
        self.assertIn("nodev", options, m)
        return m

    def assert_error(self, res: harness.Result, verb: str, *needles) -> str:
        line = harness.assert_one_error_line(self, res, verb)
        for needle in needles:
            self.assertIn(needle, line, str(res))
        return line


# --------------------------------------------------------------------------


class MergedViewTest(MountTestCase):

    def test_views_equal_each_other_and_umoci(self):
        for name in ("basic", "busybox", "rootopq", "shared"):
            with self.subTest(image=name):
                image = self.pull(name)
                hashes = self.layer_hashes(image)
                reference = treecmp.snapshot(
                    harness.umoci_rootfs(harness.image_path(name, FMT), FMT))
                views = {}
                for mode, opts in (("ro", ()), ("writable", ("--writable",)),
                                   ("copy", ("--driver", "copy"))):
                    target = self.mkdir(f"{name}-{mode}")
                    self.mount(image, target, *opts)
                    if mode == "copy":
                        self.assert_copy_bind(target)
                        self.assertEqual(self.record_for(target)["mode"], "copy")
                    else:
                        self.assert_overlay(target, read_only=(mode == "ro"))
                        self.assertEqual(self.record_for(target)["mode"], mode)
                    views[mode] = treecmp.snapshot(target)
                    self.umount(target)
                    self.assertEqual(os.listdir(target), [], f"{target} not empty after umount")
                    self.assertEqual(host_mount_lines(), self.baseline)
                self.assertGreater(len(reference), 3, "umoci unpacked next to nothing")
                for mode, view in views.items():
                    diffs = treecmp.compare(view, reference)
                    self.assertEqual(diffs, [], f"{name} {mode} view (A) vs umoci (B):\n"
                                     + "\n".join(diffs[:40]))
                self.assertEqual(self.layer_hashes(image), hashes, "layer dirs modified")
                if name == "rootopq":
                    self.assertEqual(set(views["ro"]), {"/", "/new", "/new/one.txt", "/two.txt"},
                                     "rootopq must show only its top layer")
                if name == "basic":
                    # Setuid/setgid files owned by 1000:1000 keep their bits in every view (a
                    # chown after the chmod would have cleared them, in a layer or in a copy).
                    for mode, view in views.items():
                        for path, want in (("/usr/bin/suid-user", "4755"),
                                           ("/usr/bin/sgid-user", "2755"),
                                           ("/usr/bin/suid-tool", "4755")):
                            uid = 0 if path.endswith("-tool") else 1000
                            self.assertEqual((view[path]["mode"], view[path]["uid"],
                                              view[path]["gid"]), (want, uid, uid),
                                             f"{path} in the {mode} view")
                    ro = views["ro"]
                    self.assertNotIn("/etc/remove-me", ro)
                    self.assertNotIn("/gone", ro)
                    self.assertEqual(ro["/a_dir"]["type"], "file")
                    self.assertEqual(ro["/hard/b"].get("link_group"), "/hard/b")
                    self.assertEqual(ro["/dev/null"]["rdev"], "1:3")
                if name == "shared":
                    self.assertIn("/shared/only-here.txt", views["ro"])
                    self.assertNotIn("/deep", views["ro"])
        self.assertEqual(self.records(), [])
        self.assertEqual(sorted(os.listdir(os.path.join(self.root, "mounts"))), [])


class WriteTest(MountTestCase):

    def test_read_only_view_refuses_writes(self):
        image = self.pull("busybox")
        target = self.mkdir("t")
        self.mount(image, target)
        self.assert_overlay(target, read_only=True)
        attempts = {
            "create": lambda: os.open(os.path.join(target, "srv/new"), os.O_CREAT | os.O_WRONLY),
            "write": lambda: os.open(os.path.join(target, "srv/hello.txt"), os.O_WRONLY),
            "unlink": lambda: os.unlink(os.path.join(target, "srv/hello.txt")),
            "mkdir": lambda: os.mkdir(os.path.join(target, "newdir")),
            "chmod": lambda: os.chmod(os.path.join(target, "etc/passwd"), 0o600),
        }
        for what, attempt in attempts.items():
            with self.subTest(op=what):
                with self.assertRaises(OSError) as cm:
                    attempt()
                self.assertEqual(cm.exception.errno, errno.EROFS, f"{what}: {cm.exception}")
        with open(os.path.join(target, "srv/hello.txt")) as fh:
            self.assertEqual(fh.read(), "hello from the second layer\n")
        self.umount(target)

    def test_writable_view_leaves_layers_alone(self):
        image = self.pull("busybox")
        lowers = self.lower_dirs(image)
        hashes = self.layer_hashes(image)
        # LowerDir is top first: /srv/hello.txt comes from the top layer (layer 2).
        hello_in_layer = os.path.join(lowers[0], "srv/hello.txt")
        self.assertTrue(os.path.isfile(hello_in_layer))
        target = self.mkdir("t")
        self.mount(image, target, "--writable")
        self.assert_overlay(target, read_only=False)
        rec = self.record_for(target)
        self.assertEqual((rec["mode"], rec["driver"], rec["active"]), ("writable", "overlay", True))
        area = os.path.join(self.root, "mounts", rec["name"])
        self.assertEqual(rec["upper"], os.path.join(area, "upper"))

        with open(os.path.join(target, "srv/new.txt"), "w") as fh:
            fh.write("new\n")
        with open(os.path.join(target, "etc/hostname"), "w") as fh:
            fh.write("modified\n")
        os.unlink(os.path.join(target, "srv/hello.txt"))
        os.mkdir(os.path.join(target, "newdir"))

        self.assertEqual(sorted(os.listdir(os.path.join(target, "srv"))), ["new.txt"])
        with open(os.path.join(target, "etc/hostname")) as fh:
            self.assertEqual(fh.read(), "modified\n")
        upper = rec["upper"]
        self.assertTrue(harness.is_whiteout(os.lstat(os.path.join(upper, "srv/hello.txt"))))
        self.assertTrue(os.path.isfile(os.path.join(upper, "srv/new.txt")))
        self.assertEqual(self.layer_hashes(image), hashes, "a write reached a layer dir")
        with open(hello_in_layer) as fh:
            self.assertEqual(fh.read(), "hello from the second layer\n")

        self.umount(target)
        self.assertFalse(os.path.lexists(area), f"{area} left after umount")
        self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])
        self.assertEqual(self.layer_hashes(image), hashes)
        self.assertEqual(host_mount_lines(), self.baseline)

        # The changes went away with the mount.
        self.mount(image, target, "--writable")
        self.assertEqual(sorted(os.listdir(os.path.join(target, "srv"))), ["hello.txt"])
        self.assertFalse(os.path.lexists(os.path.join(target, "newdir")))
        with open(os.path.join(target, "etc/hostname")) as fh:
            self.assertEqual(fh.read(), "busybox\n")
        self.umount(target)
        self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])

    def test_upper_dir_keeps_changes(self):
        image = self.pull("busybox")
        hashes = self.layer_hashes(image)
        upper = self.mkdir("upper")  # it must exist (podman and docker's --mount refuse a missing source)
        workdir = os.path.join(self.work, ".upper.imgtool-work")
        target = self.mkdir("t")
        self.mount(image, target, "--upper", upper)
        [m] = mounts_at(target)
        # Directories reach the kernel as /proc/self/fd paths of what imgtool opened and checked.
        options = m["super_options"].split(",")
        self.assertTrue(any(o.startswith("upperdir=/proc/self/fd/") for o in options), m)
        self.assertTrue(os.path.isdir(workdir), "work dir beside the upper dir")
        self.assertEqual(os.stat(workdir).st_mode & 0o7777, 0o700)
        rec = self.record_for(target)
        self.assertEqual((rec["mode"], rec["upper"], rec["work"]), ("upper", upper, workdir))
        self.assertIn((short_id(image), "overlay", "upper", target), self.mounts_rows())

        with open(os.path.join(target, "srv/new.txt"), "w") as fh:
            fh.write("kept\n")
        os.unlink(os.path.join(target, "srv/hello.txt"))
        with open(os.path.join(upper, "srv/new.txt")) as fh:
            self.assertEqual(fh.read(), "kept\n")
        wh = os.lstat(os.path.join(upper, "srv/hello.txt"))
        self.assertTrue(stat.S_ISCHR(wh.st_mode) and wh.st_rdev == os.makedev(0, 0),
                        f"deletion must be a 0:0 whiteout, got mode {wh.st_mode:o}")
        before = treecmp.snapshot(upper)

        self.umount(target)
        self.assertFalse(os.path.lexists(workdir), f"{workdir} left after umount")
        diffs = treecmp.compare(before, treecmp.snapshot(upper))
        self.assertEqual(diffs, [], "upper dir changed by umount:\n" + "\n".join(diffs))
        self.assertEqual(self.layer_hashes(image), hashes)
        self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])

        # Mounting the same upper again shows the kept changes.
        target2 = self.mkdir("t2")
        self.mount(image, target2, "--upper", upper)
        self.assertEqual(sorted(os.listdir(os.path.join(target2, "srv"))), ["new.txt"])
        self.umount(target2)
        self.assertFalse(os.path.lexists(workdir))
        self.assertTrue(os.path.isfile(os.path.join(upper, "srv/new.txt")))

    def test_upper_inside_store_or_target_is_refused(self):
        image = self.pull("busybox")
        target = self.mkdir("t")
        os.mkdir(os.path.join(self.root, "my-upper"))
        # The target itself, or a directory holding it (inside an empty target nothing exists).
        for upper in (os.path.join(self.root, "my-upper"), target, self.work):
            with self.subTest(upper=upper):
                res = self.imgtool("mount", "--upper", upper, image, target)
                self.assert_error(res, "mount", "--upper must be outside")
                self.assertEqual(mounts_at(target), [])
                self.assertEqual(self.records(), [])


class ManyLayersTest(MountTestCase):

    def test_200_layers(self):
        image = self.pull("layers200")
        self.assertEqual(len(self.lower_dirs(image)), 200)
        views = {}
        for mode, opts in (("overlay", ()), ("copy", ("--driver", "copy"))):
            with self.subTest(driver=mode):
                target = self.mkdir(mode)
                self.mount(image, target, *opts)
                with open(os.path.join(target, "layers/top")) as fh:
                    self.assertEqual(fh.read(), "layer 200\n")
                names = os.listdir(os.path.join(target, "l"))
                self.assertEqual(sorted(names, key=int), [str(i) for i in range(1, 201)])
                for i in range(1, 201):
                    with open(os.path.join(target, "l", str(i))) as fh:
                        self.assertEqual(fh.read(), f"{i}\n")
                views[mode] = treecmp.snapshot(target)
                self.umount(target)
                self.assertEqual(host_mount_lines(), self.baseline)
        diffs = treecmp.compare(views["overlay"], views["copy"])
        self.assertEqual(diffs, [], "overlay (A) vs copy (B):\n" + "\n".join(diffs[:40]))


class RefusalTest(MountTestCase):

    def test_umount_of_a_plain_directory(self):
        self.pull("busybox")
        target = self.mkdir("plain")
        with open(os.path.join(target, "keep.txt"), "w") as fh:
            fh.write("keep\n")
        before = treecmp.tree_hash(target)
        res = self.imgtool("umount", target)
        self.assert_error(res, "umount", "not mounted by imgtool", target)
        self.assertEqual(treecmp.tree_hash(target), before, "umount touched the directory")

    def test_umount_of_an_image_name(self):
        # umount takes the mount directory; given an image, say so and where that image is mounted.
        image = self.pull("busybox")
        rec = harness.image_record("busybox", FMT)
        names = [image[len("sha256:"):][:12]] + list(rec.get("tags", []))[:1]
        for name in names:
            with self.subTest(name=name):
                res = self.imgtool("umount", name)
                self.assert_error(res, "umount", f"{name} is an image; umount takes the directory an image is "
                                  f"mounted on ({name} is not mounted; `imgtool mounts` lists the mounts)")
        t1, t2 = self.mkdir("t1"), self.mkdir("t2")
        self.mount(image, t1)
        self.mount(image, t2, "--driver", "copy")
        res = self.imgtool("umount", names[0])
        line = self.assert_error(res, "umount", f"{names[0]} is an image; umount takes the directory an image "
                                 "is mounted on: ", "(see `imgtool mounts`)")
        self.assertEqual(sorted(line.split(": ", 3)[3].split(" (")[0].split(", ")), [t1, t2], line)
        self.assertEqual(len(self.records()), 2)  # nothing undone
        self.assert_overlay(t1, True)
        # Something that is neither a directory nor an image: the path's own error.
        res = self.imgtool("umount", "nosuchthing")
        self.assert_error(res, "umount", "nosuchthing", "No such file or directory")

    def test_umount_with_another_store(self):
        # A view made with --root A, undone with --root B: B has no record; say whose view it is.
        image = self.pull("busybox")
        other = harness.new_store(self)
        ro, copy = self.mkdir("ro"), self.mkdir("copy")
        self.mount(image, ro)
        self.mount(image, copy, "--driver", "copy")
        mine = os.path.realpath(self.root)
        for target in (ro, copy):
            with self.subTest(target=target):
                res = harness.run(other, "umount", target)
                self.assert_error(res, "umount", f"{target}: mounted by another store, {mine} (not "
                                  f"{os.path.realpath(other)}): umount it with "
                                  f"`imgtool --root {mine} umount {target}`")
        self.assertEqual(len(self.records()), 2)
        self.assert_overlay(ro, True)
        self.assert_copy_bind(copy)
        # The control: a plain directory is still just "not mounted by imgtool" for the other store.
        res = harness.run(other, "umount", self.mkdir("plain2"))
        self.assert_error(res, "umount", "not mounted by imgtool")

    def test_umount_of_a_foreign_tmpfs(self):
        self.pull("busybox")
        target = self.mkdir("foreign")
        proc = in_private_ns(
            'mount -t tmpfs imgtool-foreign "$1" || exit 90\n'
            'echo keep > "$1/keep.txt"\n'
            '"$2" --root "$3" umount "$1"; rc=$?; echo "@@rc"; echo $rc\n'
            'echo "@@mountinfo"; cat /proc/self/mountinfo\n'
            'echo "@@keep"; cat "$1/keep.txt"\n',
            target, harness.imgtool_binary(), self.root)
        self.assertNotEqual(proc.returncode, 90, proc.stderr)
        out = sections(proc.stdout)
        self.assertEqual(out.get("rc"), "1\n", proc)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertTrue(lines[0].startswith("imgtool: umount: "), proc.stderr)
        self.assertIn("not mounted by imgtool", lines[0])
        still = [line for line in out["mountinfo"].splitlines()
                 if line.split()[4] == target and " - tmpfs imgtool-foreign " in line]
        self.assertEqual(len(still), 1, f"the foreign tmpfs must still be mounted:\n{proc.stdout}")
        self.assertEqual(out.get("keep"), "keep\n")
        self.assertEqual(os.listdir(target), [], "the tmpfs leaked out of its namespace")

    def test_mount_onto_a_busy_target(self):
        image = self.pull("busybox")
        target = self.mkdir("busy")
        proc = in_private_ns(
            'mount -t tmpfs imgtool-foreign "$1" || exit 90\n'
            '"$2" --root "$3" mount "$4" "$1"; rc=$?; echo "@@rc"; echo $rc\n'
            'echo "@@mountinfo"; cat /proc/self/mountinfo\n',
            target, harness.imgtool_binary(), self.root, image)
        self.assertNotEqual(proc.returncode, 90, proc.stderr)
        out = sections(proc.stdout)
        self.assertEqual(out.get("rc"), "1\n", proc)
        self.assertRegex(proc.stderr, r"^imgtool: mount: .*already a mount point\n\Z")
        at_target = [line for line in out["mountinfo"].splitlines() if line.split()[4] == target]
        self.assertEqual(len(at_target), 1, out["mountinfo"])
        self.assertIn(" - tmpfs imgtool-foreign ", at_target[0])
        self.assertEqual(self.records(), [])

    def test_mount_onto_a_non_empty_directory(self):
        image = self.pull("busybox")
        target = self.mkdir("full")
        with open(os.path.join(target, "x"), "w") as fh:
            fh.write("x\n")
        before = treecmp.tree_hash(target)
        for opts in ((), ("--writable",), ("--driver", "copy")):
            with self.subTest(opts=opts):
                res = self.imgtool("mount", *opts, image, target)
                self.assert_error(res, "mount", "not empty")
                self.assertEqual(treecmp.tree_hash(target), before)
                self.assertEqual(mounts_at(target), [])
                self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])

    def test_mount_onto_a_file(self):
        image = self.pull("busybox")
        path = os.path.join(self.work, "file")
        with open(path, "w") as fh:
            fh.write("x\n")
        res = self.imgtool("mount", image, path)
        self.assert_error(res, "mount", path)
        with open(path) as fh:
            self.assertEqual(fh.read(), "x\n")
        self.assertEqual(mounts_at(path), [])
        self.assertEqual(self.records(), [])

    def test_mount_onto_a_missing_directory(self):
        image = self.pull("busybox")
        path = os.path.join(self.work, "missing")
        res = self.imgtool("mount", image, path)
        self.assert_error(res, "mount", f"target {path} does not exist; create it first (mkdir {path})")
        self.assertFalse(os.path.lexists(path))
        # A relative TARGET is named by its absolute path; a missing parent asks for mkdir -p.
        argv = harness.imgtool_argv(self.root, "mount", image, "cp1")
        proc = subprocess.run(argv, cwd=self.work, capture_output=True, text=True, timeout=60, env=harness.base_env())
        self.assert_error(harness.Result(argv, proc.returncode, proc.stdout, proc.stderr), "mount",
                          f"target {self.work}/cp1 does not exist; create it first (mkdir {self.work}/cp1)")
        res = self.imgtool("mount", image, os.path.join(path, "sub"))
        self.assert_error(res, "mount", f"({path} is missing); create it first (mkdir -p {path}/sub)")
        self.assertFalse(os.path.lexists(path))
        self.assertEqual(self.records(), [])

    def test_upper_must_exist(self):
        # A mistyped --upper once made a fresh directory (as root, 0755) and the changes went there.
        image = self.pull("busybox")
        target = self.mkdir("t")
        upper = os.path.join(self.work, "nonexistent-up")
        self.addCleanup(self._cleanup_target, target)  # should it be mounted after all
        res = self.imgtool("mount", "--upper", upper, image, target)
        self.assert_error(res, "mount", f"upper directory {upper} does not exist; create it first (mkdir {upper})")
        self.assertFalse(os.path.lexists(upper), "--upper was created")
        self.assertFalse(os.path.lexists(os.path.join(self.work, ".nonexistent-up.imgtool-work")))
        self.assertEqual((mounts_at(target), self.records()), ([], []))
        # A dangling symlink of the caller's (root's) is missing too; nothing is made at its far end.
        far = os.path.join(self.work, "far")
        os.symlink(far, os.path.join(self.work, "link-up"))
        res = self.imgtool("mount", "--upper", os.path.join(self.work, "link-up"), image, target)
        self.assert_error(res, "mount", f"link-up does not exist ({far} is missing); create it first")
        self.assertFalse(os.path.lexists(far))
        self.assertEqual((mounts_at(target), self.records()), ([], []))

    def test_mount_inside_the_store(self):
        image = self.pull("busybox")
        inside = os.path.join(self.root, "target-in-store")
        os.mkdir(inside)
        link = os.path.join(self.work, "link-into-store")
        os.symlink(os.path.join(self.root, "images"), link)
        for target in (inside, link, os.path.join(self.root, "mounts")):
            with self.subTest(target=target):
                res = self.imgtool("mount", image, target)
                self.assert_error(res, "mount", "inside the image store")
                self.assertEqual(mounts_at(os.path.realpath(target)), [])
                self.assertEqual(self.records(), [])

    def test_mount_twice_on_one_target(self):
        image = self.pull("busybox")
        other = self.pull("basic")
        for i, (first, second) in enumerate(((("--writable",), ()), ((), ("--driver", "copy")),
                                             (("--driver", "copy"), ("--driver", "copy")),
                                             (("--driver", "copy"), ()))):
            with self.subTest(first=first, second=second):
                target = self.mkdir(f"twice-{i}")
                self.mount(image, target, *first)
                view = treecmp.snapshot(target)
                res = self.imgtool("mount", *second, other, target)
                self.assert_error(res, "mount", target)
                self.assertEqual(len(mounts_at(target)), 1)
                self.assertEqual(treecmp.compare(view, treecmp.snapshot(target)), [],
                                 "the second mount changed the first one's view")
                self.assertEqual([r["image"] for r in self.records()], [image])
                self.umount(target)
                self.assertEqual(os.listdir(target), [])

    def test_umount_of_a_busy_mount(self):
        image = self.pull("busybox")
        target = self.mkdir("t")
        self.mount(image, target)
        fd = os.open(os.path.join(target, "srv"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            res = self.imgtool("umount", target)
            self.assert_error(res, "umount", "busy")
            self.assertEqual(len(mounts_at(target)), 1, "a refused umount must keep the mount")
            self.assertIsNotNone(self.record_for(target))
            self.assertIn((short_id(image), "overlay", "ro", target), self.mounts_rows())
        finally:
            os.close(fd)
        self.umount(target)


    def test_rm_of_a_mounted_image_is_refused(self):
        image = self.pull("busybox")
        target = self.mkdir("t")
        self.mount(image, target)
        layers = self.layer_hashes(image)
        res = self.imgtool("rm", image)
        self.assert_error(res, "rm", "mounted at " + target, "umount")
        self.assertEqual(self.layer_hashes(image), layers, "a refused rm changed the layers")
        self.assertEqual(len(mounts_at(target)), 1)
        self.umount(target)
        res = self.imgtool("rm", image)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(harness.layer_hexes(self.root), [])


class StaleMountTest(MountTestCase):

    def _kill_copy_mid_way(self, image: str, target: str) -> dict:
        """SIGKILL `mount --driver copy` while it fills target; returns its stale record."""
        tries = []
        for _ in range(20):
            proc = harness.popen(self.root, "mount", "--driver", "copy", image, target)
            try:
                def filling():
                    if proc.poll() is not None:
                        return "exited"
                    recs = self.records()
                    if recs and not recs[0]["active"] and os.listdir(target):
                        return "caught"
                    return None
                state = wait_for(filling, timeout=30, interval=0.001)
                proc.kill()
            finally:
                proc.kill()
                proc.communicate()
            rec = self.record_for(target)
            if rec is not None and not rec["active"] and os.listdir(target):
                self.assertEqual(proc.returncode, -signal.SIGKILL)
                return rec
            tries.append(state)
            # It finished (or had not started): start again from a clean target.
            if rec is not None:
                self.imgtool("umount", target)
            shutil.rmtree(target)
            os.mkdir(target)
        self.fail(f"could not kill `imgtool mount --driver copy` while it copied: {tries}")

    def test_killed_copy_mount_is_cleaned_up(self):
        # One pull of the 200-layer image for both ways of cleaning up.
        image = self.pull("layers200")
        other = self.pull("busybox")
        with self.subTest(cleaned_by="the next mount"):
            target = self.mkdir("killed1")
            self.addCleanup(self._cleanup_target, target)
            rec = self._kill_copy_mid_way(image, target)
            self.assertEqual((rec["driver"], rec["mode"], rec["active"]),
                             ("copy", "copy", False))
            self.assertNotIn(target, {row[3] for row in self.mounts_rows()},
                             "an unfinished mount is listed")
            target2 = self.mkdir("next")
            self.mount(other, target2)
            self.assertIsNone(self.record_for(target),
                              "stale record not cleaned by the next mount")
            self.assertEqual(os.listdir(target), [], "half-copied tree not removed")
            self.assertEqual(self.mounts_rows(), {(short_id(other), "overlay", "ro", target2)})
            self.umount(target2)
            self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])
        with self.subTest(cleaned_by="umount"):
            target = self.mkdir("killed2")
            self.addCleanup(self._cleanup_target, target)
            self._kill_copy_mid_way(image, target)
            res = self.imgtool("umount", target)
            # The record of a crashed mount on this target is found and undone: that is what
            # umount was asked to do, so it succeeds silently (cmd_mount.cpp, add_umount).
            self.assertEqual((res.rc, res.out, res.err), (0, "", ""), str(res))
            self.assertIsNone(self.record_for(target))
            self.assertEqual(os.listdir(target), [], "half-copied tree not removed")
            self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])

    def _writable_then_unmounted_behind_our_back(self, image: str, target: str) -> str:
        self.mount(image, target, "--writable")
        with open(os.path.join(target, "srv/new.txt"), "w") as fh:
            fh.write("x\n")
        rec = self.record_for(target)
        area = os.path.join(self.root, "mounts", rec["name"])
        self.assertTrue(os.path.isfile(os.path.join(area, "upper/srv/new.txt")))
        proc = subprocess.run(["umount", target], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(mounts_at(target), [])
        self.assertEqual(host_mount_lines(), self.baseline)
        return area

    def test_vanished_overlay_is_cleaned_by_next_mount(self):
        image = self.pull("busybox")
        target = self.mkdir("vanished")
        area = self._writable_then_unmounted_behind_our_back(image, target)
        target2 = self.mkdir("next")
        self.mount(image, target2)
        self.assertIsNone(self.record_for(target), "stale record not cleaned by the next mount")
        self.assertFalse(os.path.lexists(area), f"store upper {area} not cleaned")
        self.assertEqual(os.listdir(target), [])
        self.umount(target2)
        self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])

    def test_vanished_overlay_is_cleaned_by_umount(self):
        image = self.pull("busybox")
        target = self.mkdir("vanished")
        area = self._writable_then_unmounted_behind_our_back(image, target)
        res = self.imgtool("umount", target)
        # The overlay is gone but its record and upper dir are not: umount undoes what is left
        # of the mount and succeeds, as for a crashed copy mount.
        self.assertEqual((res.rc, res.out, res.err), (0, "", ""), str(res))
        self.assertIsNone(self.record_for(target))
        self.assertFalse(os.path.lexists(area), f"store upper {area} not cleaned")
        self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])

    def test_mounts_does_not_list_a_vanished_overlay(self):
        image = self.pull("busybox")
        target = self.mkdir("vanished")
        self._writable_then_unmounted_behind_our_back(image, target)
        rows = self.mounts_rows()
        self.assertEqual(rows, set(), "`imgtool mounts` lists a mount that is no longer there")


    def test_record_of_an_ended_mount_namespace_is_cleaned_a_live_one_kept(self):
        # A mount made inside `unshare -m` lives as long as that namespace: while a process holds it,
        # its record stays (and blocks rm); once the namespace is gone, the next command drops it.
        image = self.pull("busybox")
        target = self.mkdir("elsewhere")
        ready = os.path.join(self.work, "ready")
        holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             '"$0" --root "$1" mount "$2" "$3" >/dev/null && touch "$4" && exec sleep 600',
             harness.imgtool_binary(), self.root, image, target, ready])
        try:
            self.assertTrue(wait_for(lambda: os.path.exists(ready) or holder.poll() is not None, timeout=60))
            self.assertTrue(os.path.exists(ready), "mount inside unshare -m failed")
            self.assertEqual(mounts_at(target), [], "the namespace's mount leaked into ours")
            self.assertEqual([r["target"] for r in self.records()], [target])
            self.assertEqual(self.mounts_rows(), {(short_id(image), "overlay", "ro", target)})
            self.assert_error(self.imgtool("rm", image), "rm", "mounted at")
        finally:
            holder.kill()
            holder.wait()
        self.assertEqual(self.mounts_rows(), set(), "record of an ended namespace still listed")
        self.assertEqual(self.records(), [])
        res = self.imgtool("rm", image)
        self.assertEqual(res.rc, 0, str(res))


class MountsListingTest(MountTestCase):

    def test_mounts_lists_exactly_the_active_ones(self):
        ids = {name: self.pull(name) for name in ("busybox", "basic", "rootopq", "shared")}
        self.assertEqual(self.mounts_rows(), set())
        t = {n: self.mkdir(n) for n in ("ro", "writable", "copy", "upper")}
        self.mount(ids["busybox"], t["ro"])
        self.mount(ids["basic"], t["writable"], "--writable")
        self.mount(ids["rootopq"], t["copy"], "--driver", "copy")
        self.mount(ids["shared"], t["upper"], "--upper", self.mkdir("u"))
        expected = {
            (short_id(ids["busybox"]), "overlay", "ro", t["ro"]),
            (short_id(ids["basic"]), "overlay", "writable", t["writable"]),
            (short_id(ids["rootopq"]), "copy", "copy", t["copy"]),
            (short_id(ids["shared"]), "overlay", "upper", t["upper"]),
        }
        self.assertEqual(self.mounts_rows(), expected)
        self.assertEqual(len(host_mount_lines()), len(self.baseline) + 4,
                         "three overlays and the copy driver's bind")
        for name in ("copy", "ro", "upper", "writable"):
            self.umount(t[name])
            expected = {row for row in expected if row[3] != t[name]}
            self.assertEqual(self.mounts_rows(), expected, f"after umount of {name}")
        self.assertEqual(host_mount_lines(), self.baseline)
        self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])


class MovedMountTest(MountTestCase):
    """A directory above the target renamed while the view lives (security finding F1).

    Whoever owns a directory two levels above root's target can rename it; nothing imgtool made is
    then mounted at the recorded path any more.  The view is judged by its mount's ID (recorded at
    mount time), not its path: `mounts` and `prune -f` keep its record and data and list the new path,
    `umount NEWPATH` undoes it, and `prune -a -f` keeps the image meanwhile.  The rename is done as
    root here; the directory's owner could do the same.
    """

    def _rename_attack(self, mode_row: tuple, *opts, with_upper: bool = False) -> None:
        image = self.pull("busybox")
        parent = self.mkdir("u4")
        target = os.path.join(parent, "a", "tgt")
        os.makedirs(target)
        upper = self.mkdir("changes") if with_upper else None
        self.mount(image, target, *opts, *(["--upper", upper] if upper else []))
        with open(os.path.join(target, "data"), "w") as fh:
            fh.write("precious\n")
        rec = self.record_for(target)
        self.assertGreater(rec.get("mount_id", 0), 0, rec)
        if rec["owns_upper"]:
            kept = os.path.join(rec["upper"], "data")
        elif upper:
            kept = os.path.join(upper, "data")
        else:
            kept = os.path.join(self.root, "mounts", rec["name"], "tree", "data")
        self.assertTrue(os.path.isfile(kept), kept)
        os.rename(os.path.join(parent, "a"), os.path.join(parent, "b"))
        moved = os.path.join(parent, "b", "tgt")
        self.addCleanup(self._cleanup_target, moved)
        self.assertEqual(len(mounts_at(moved)), 1)

        res = self.imgtool("prune", "-f")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(self.records(), [rec], "prune -f dropped the record of a live (moved) view")
        self.assertEqual(self.mounts_rows(), {(short_id(image), *mode_row, moved)})
        res = self.imgtool("prune", "-a", "-f")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(self.records(), [rec])
        self.assertTrue(os.path.isfile(kept), f"{kept} removed under a live view")
        with open(os.path.join(moved, "data")) as fh:
            self.assertEqual(fh.read(), "precious\n")
        self.layer_hashes(image)  # the image and its layers are still there

        res = self.imgtool("umount", moved)
        self.assertEqual((res.rc, res.out, res.err), (0, "", ""), str(res))
        self.assertEqual(mounts_at(moved), [])
        self.assertEqual(self.records(), [])
        self.assertEqual(os.listdir(os.path.join(self.root, "mounts")), [])
        if upper:
            self.assertTrue(os.path.isfile(kept), "--upper's changes are the user's to keep")
            self.assertFalse(os.path.lexists(os.path.join(self.work, ".changes.imgtool-work")))
        self.assertEqual(host_mount_lines(), self.baseline)

    def test_writable_overlay_survives_a_rename_above_its_target(self):
        self._rename_attack(("overlay", "writable"), "--writable")

    def test_upper_overlay_survives_a_rename_above_its_target(self):
        self._rename_attack(("overlay", "upper"), with_upper=True)

    def test_writable_copy_survives_a_rename_above_its_target(self):
        self._rename_attack(("copy", "copy-rw"), "--driver", "copy", "--writable")


if __name__ == "__main__":
    unittest.main()
