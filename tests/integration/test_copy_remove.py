"""The copy driver and the tree remover through the binary (issue 12 items 3 and 9), as root.

  - `umount` of a copy view never empties a filesystem mounted inside it: it stops with one error line
    naming the view, leaves the mount and its files alone, and succeeds once it is unmounted (root's
    copy view is a bind mount of a tree in the store, so the kernel refuses to unmount it while
    something is mounted below; the tree remover's own refusal to cross a mount is in the unit tests);
  - a copy view on another filesystem than the store (a tmpfs target, the store on disk) works, and
    equals the same view made on the store's filesystem (copy_file_range says EXDEV there).

Foreign mounts live in private mount namespaces (`unshare -m`), so they vanish even if a test dies
and the host's mount table is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unittest

import harness
from harness import treecmp

FMT = "oci-archive"


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.require_tool("unshare")
    harness.require_tool("mount")
    harness.images()


def in_private_ns(argv: list, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run argv in a private mount namespace (gone when it exits)."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", *[str(a) for a in argv]],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, env=harness.base_env())


class CopyRemoveTest(unittest.TestCase):
    def setUp(self):
        self.root = harness.new_store(self)
        self.work = os.path.realpath(harness.scratch_dir(self, "copyrm-"))
        self.image = harness.pull(self, self.root, harness.image_path("busybox", FMT))

    def mkdir(self, name: str) -> str:
        path = os.path.join(self.work, name)
        os.mkdir(path)
        return path

    def test_umount_stops_at_a_filesystem_mounted_inside_a_copy_view(self):
        target = self.mkdir("view")
        # The view is made inside the private namespace too: made on the host, the bind mount would
        # outlive the test there (the umounts below happen in the private namespace only).
        script = (
            '"$2" --root "$3" mount --driver copy --writable "$4" "$1" || exit 89\n'
            'mkdir "$1/inner" && mount -t tmpfs imgtool-inner "$1/inner" || exit 90\n'
            'echo keep > "$1/inner/keep.txt"\n'
            '"$2" --root "$3" umount "$1"; rc=$?; echo "@@rc"; echo $rc\n'
            'echo "@@mountinfo"; cat /proc/self/mountinfo\n'
            'echo "@@keep"; cat "$1/inner/keep.txt"\n'
            'umount "$1/inner" || exit 91\n'
            '"$2" --root "$3" umount "$1"; rc=$?; echo "@@rc2"; echo $rc\n'
            'echo "@@left"; ls -A "$1"\n')
        proc = in_private_ns(["sh", "-c", script, "sh", target, harness.imgtool_binary(), self.root, self.image])
        self.assertNotIn(proc.returncode, (89, 90, 91), proc.stderr)
        out = harness.sections(proc.stdout)
        self.assertEqual(out.get("keep"), "keep\n", "files of the inner filesystem were removed")
        self.assertEqual(out.get("rc"), "1\n", proc)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"one error line, then a clean umount:\n{proc.stderr}")
        self.assertTrue(lines[0].startswith("imgtool: umount: "), lines[0])
        self.assertIn(target, lines[0])
        self.assertIn("mounted below it", lines[0])
        inner = [line for line in out["mountinfo"].splitlines()
                 if line.split()[4] == f"{target}/inner" and " - tmpfs imgtool-inner " in line]
        self.assertEqual(len(inner), 1, "the inner tmpfs must still be mounted after the refusal")
        self.assertEqual(out.get("rc2"), "0\n", proc)
        self.assertEqual(out.get("left"), "", "the second umount left entries behind")
        self.assertEqual(harness.run(self.root, "mounts").out.splitlines()[1:], [])

    def test_copy_view_on_another_filesystem(self):
        # The reference: a copy view on the store's own filesystem.
        same = self.mkdir("same-fs")
        res = harness.run(self.root, "mount", "--driver", "copy", self.image, same)
        self.assertEqual(res.rc, 0, str(res))
        self.addCleanup(harness.run, self.root, "umount", same)
        reference = treecmp.snapshot(same)
        # The target is a directory in the tmpfs (imgtool refuses a target that is a mount point).
        mnt = self.mkdir("tmpfs")
        target = os.path.join(mnt, "view")
        child = (
            "import json, os, subprocess, sys\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "import harness, treecmp\n"
            "target, root, image = sys.argv[2:5]\n"
            "subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256m', 'imgtool-target',\n"
            "                os.path.dirname(target)], check=True)\n"
            "os.mkdir(target)\n"
            "st_dev = [os.stat(p).st_dev for p in (target, root)]\n"
            "res = harness.run(root, 'mount', '--driver', 'copy', image, target)\n"
            "snap = treecmp.snapshot(target) if res.rc == 0 else {}\n"
            "um = harness.run(root, 'umount', target)\n"
            "print(json.dumps({'rc': res.rc, 'err': res.err, 'umount_rc': um.rc, 'umount_err': um.err,\n"
            "                  'left': os.listdir(target), 'devs': st_dev,\n"
            "                  'snapshot': snap}, default=list))\n")
        proc = in_private_ns([sys.executable, "-c", child, os.path.dirname(os.path.abspath(harness.__file__)),
                              target, self.root, self.image])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertNotEqual(got["devs"][0], got["devs"][1], "the target must be on another filesystem")
        self.assertEqual(got["rc"], 0, got["err"])
        self.assertEqual(got["umount_rc"], 0, got["umount_err"])
        self.assertEqual(got["left"], [])
        # JSON turned tuples into lists: compare through the same round trip.
        expected = json.loads(json.dumps(reference, default=list))
        diffs = treecmp.compare(expected, got["snapshot"])
        self.assertEqual(diffs, [], "store filesystem (A) vs tmpfs (B):\n" + "\n".join(diffs[:40]))


if __name__ == "__main__":
    unittest.main()
