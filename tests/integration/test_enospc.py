"""A store on a nearly full filesystem: ENOSPC is one clear error, the store is as before, and the
space is given back (issue: hostile input, crashes and concurrency).

The small filesystem is a 1 MiB tmpfs mounted in a private mount namespace (a child process under
`unshare -m`), so the host's mount table is never touched."""

import json
import os
import subprocess
import sys
import unittest

import harness

# Runs inside the private mount namespace: mounts the tmpfs, fills the store with a small image,
# then pulls one that cannot fit, and reports what it saw as JSON.
CHILD = r"""
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
import harness
mnt, small, big = sys.argv[2], sys.argv[3], sys.argv[4]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], check=True)
root = os.path.join(mnt, "store")
first = harness.run(root, "pull-local", small)
before = harness.store_listing(root)
used_before = os.statvfs(mnt).f_bfree
res = harness.run(root, "pull-local", big)
print(json.dumps({
    "first_rc": first.rc, "first_err": first.err,
    "rc": res.rc, "out": res.out, "err": res.err,
    "same": harness.store_listing(root) == before,
    "tmp": harness.tmp_entries(root),
    "space_back": os.statvfs(mnt).f_bfree == used_before,
}))
"""


class EnospcTest(unittest.TestCase):
    def test_full_filesystem_leaves_store_unchanged(self):
        harness.require_root()
        mnt = harness.scratch_dir(self, "enospc-")
        small = harness.image_path("rootopq", "oci-archive")   # ~20 kB of layers: fits
        big = harness.image_path("busybox", "oci-archive")     # ~2 MB uncompressed: cannot fit
        proc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", sys.executable, "-c", CHILD,
             os.path.dirname(os.path.abspath(harness.__file__)), mnt, small, big],
            capture_output=True, text=True, timeout=120, env=harness.base_env())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(got["first_rc"], 0, got["first_err"])
        self.assertEqual(got["rc"], 1, got)
        lines = got["err"].strip().splitlines()
        self.assertEqual(len(lines), 1, got["err"])
        self.assertTrue(lines[0].startswith("imgtool: pull-local: "), lines[0])
        self.assertIn("No space left on device", lines[0])
        self.assertEqual(got["out"], "")
        self.assertTrue(got["same"], "the store changed after ENOSPC")
        self.assertEqual(got["tmp"], [], "staging left behind after ENOSPC")
        self.assertTrue(got["space_back"], "the space used by the failed pull was not given back")


# A reserve (--min-free): imgtool stops before the filesystem is full, whatever an image expands to.
RESERVE_CHILD = r"""
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
import harness
mnt, bomb, small = sys.argv[2], sys.argv[3], sys.argv[4]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mnt], check=True)
root = os.path.join(mnt, "store")
first = harness.run(root, "pull-local", small)
before = harness.store_listing(root)
free_before = os.statvfs(mnt).f_bavail
out = {"first_rc": first.rc, "first_err": first.err}
for name, args in (("default", []), ("none", ["--min-free", "0"])):
    res = harness.run(root, "pull-local", bomb, *args)
    out[name] = {"rc": res.rc, "out": res.out, "err": res.err, "same": harness.store_listing(root) == before,
                 "tmp": harness.tmp_entries(root), "space_back": os.statvfs(mnt).f_bavail == free_before}
# The copy driver charges the same reserve: ask for more than is free.
target = os.path.join(mnt, "view")
os.mkdir(target)
res = harness.run(root, "mount", "--driver", "copy", "--min-free", "95M", first.out.strip(), target)
out["copy"] = {"rc": res.rc, "out": res.out, "err": res.err, "left": os.listdir(target),
               "mounts": os.listdir(os.path.join(root, "mounts")), "tmp": harness.tmp_entries(root)}
print(json.dumps(out))
"""


class ReserveTest(unittest.TestCase):
    def test_a_bomb_stops_at_the_reserve(self):
        """A 512 MiB file in 0.5 MB of gzip, pulled into a 96 MiB filesystem: by default imgtool stops
        with one line naming the reserve (5% of the filesystem here) and the store as before; with
        --min-free 0 the same pull runs into ENOSPC instead (so the reserve is what stopped it)."""
        harness.require_root()
        import gen_hostile
        work = harness.scratch_dir(self, "reserve-")
        blob, diff_id = gen_hostile.gzip_fill(gen_hostile.BOMB_HEAD, 0, gen_hostile.BOMB_FILE,
                                              gen_hostile.EOF_BLOCKS)
        bomb = os.path.join(work, "bomb")
        gen_hostile.write_layout(bomb, gen_hostile.oci_image(
            [gen_hostile.Blob(gen_hostile.MT_LAYER["gzip"], blob, diff_id)], "hostile/bomb:latest").files)
        mnt = os.path.join(work, "mnt")
        os.mkdir(mnt)
        proc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", sys.executable, "-c", RESERVE_CHILD,
             os.path.dirname(os.path.abspath(harness.__file__)), mnt, bomb,
             harness.image_path("busybox", "oci-archive")],
            capture_output=True, text=True, timeout=300, env=harness.base_env())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(got["first_rc"], 0, got["first_err"])
        for name, needle in (("default", "stopped before filling the filesystem"),
                             ("none", "No space left on device")):
            r = got[name]
            with self.subTest(min_free=name):
                lines = r["err"].splitlines()
                self.assertEqual((r["rc"], r["out"], len(lines)), (1, "", 1), r)
                self.assertTrue(lines[0].startswith("imgtool: pull-local: "), lines[0])
                self.assertIn(needle, lines[0])
                self.assertTrue(r["same"], "the store changed")
                self.assertEqual(r["tmp"], [], "staging left behind")
                self.assertTrue(r["space_back"], "the failed pull's space was not given back")
        self.assertIn("see --min-free", got["default"]["err"])
        c = got["copy"]
        lines = c["err"].splitlines()
        self.assertEqual((c["rc"], c["out"], len(lines)), (1, "", 1), c)
        self.assertIn("stopped before filling the filesystem", lines[0])
        self.assertEqual((c["left"], c["mounts"], c["tmp"]), ([], [], []), c)


if __name__ == "__main__":
    unittest.main()
