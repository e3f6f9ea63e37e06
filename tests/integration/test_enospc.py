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


if __name__ == "__main__":
    unittest.main()
