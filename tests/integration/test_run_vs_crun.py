"""`imgtool run` against crun running a bundle with docker's defaults (tools/run_vs_crun.py).

Every probe of the tool runs in both; a probe must give the same (normalised) output unless it is
listed in EXPECTED_DIFFERENT below with its reason. docs/run-vs-crun.md is the table this produces.
Skips only when crun is not installed (tools/deps.sh installs it with the test packages).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import unittest

import harness  # puts tools/ on sys.path

import run_vs_crun

# Probes allowed to differ, and why (the long form is run_vs_crun.DIFFERENCES). "finding" marks a
# deviation from docker's default that is still to be fixed in imgtool: remove its entry with the fix.
EXPECTED_DIFFERENT = {
    "mount /": "intended: the root is nodev (docs/security.md)",
    "mount points in /dev, /etc": "intended: host nodes bound read-only; imgtool's own /etc/hosts, "
                                  "/etc/hostname, /etc/resolv.conf as docker's (a bare bundle has none)",
    "/etc/hosts, hostname, resolv.conf": "intended: written as docker does; a bare bundle has none",
    "mknod + open (root fs)": "intended: nodev root refuses what docker's device cgroup allows",
    "mknod + open (/dev)": "intended: nodev /dev",
    "command not found": "intended: docker's 127 (crun run exits 1)",
    "not executable": "intended: docker's 126 (crun run exits 1)",
    "/dev listing": "crun: /dev/core although /proc/kcore is absent (runc/docker make it only if present)",
    "mount /dev": "intended: nodev /dev (otherwise docker's: nosuid, strictatime, mode 755)",
    "mount /sys/fs/cgroup": "finding: imgtool mounts no cgroup filesystem there",
    "mount points in /proc, /sys": "finding: no /sys/fs/cgroup",
}


class RunVsCrunTest(unittest.TestCase):
    rows: list = []
    meta: dict = {}

    @classmethod
    def setUpClass(cls):
        harness.require_root()
        if shutil.which("crun") is None:
            raise unittest.SkipTest("crun is not installed: apt-get install crun "
                                    "(tools/test.sh installs it with the test packages)")
        image = harness.image_path("busybox", "docker-archive")
        os.makedirs(os.path.join(harness.TEST_TMP, "work"), exist_ok=True)
        work = tempfile.mkdtemp(prefix="run-vs-crun-", dir=os.path.join(harness.TEST_TMP, "work"))
        # The bundle's rootfs is a mount below TEST_TMP: keep out of the tests that count them.
        with harness.host_mount_lock():
            cls.rows, cls.meta = run_vs_crun.run_probes(harness.imgtool_binary(), work, image)

    def describe(self, rows) -> str:
        return "\n".join(f"- {r.probe.name}\n    imgtool: {r.imgtool.cell(r.probe.compare)!r}"
                         f"\n    crun:    {r.crun.cell(r.probe.compare)!r}" for r in rows)

    def test_probes_expected_to_match_do(self):
        self.assertEqual(len(self.rows), len(run_vs_crun.PROBES))
        bad = [r for r in self.rows if not r.same and r.probe.name not in EXPECTED_DIFFERENT]
        self.assertFalse(bad, "probes that should match docker's defaults differ:\n"
                         + self.describe(bad))
        # A finding that matches now was fixed: its entry must go, or a regression would pass.
        fixed = [r.probe.name for r in self.rows if r.same and EXPECTED_DIFFERENT.get(r.probe.name, "").startswith("finding")]
        self.assertFalse(fixed, f"fixed findings still listed in EXPECTED_DIFFERENT: {fixed}")

    def test_every_expected_difference_is_explained(self):
        names = {p.name for p in run_vs_crun.PROBES}
        for name, reason in EXPECTED_DIFFERENT.items():
            with self.subTest(probe=name):
                self.assertIn(name, names)
                kind = run_vs_crun.DIFFERENCES.get(name, ("none", ""))[0]
                self.assertEqual(reason.split(":")[0], kind)

    def test_crun_had_docker_seccomp_and_device_cgroup(self):
        # Without them the seccomp and device probes would compare against nothing.
        self.assertTrue(self.meta["seccomp"], self.meta)
        self.assertEqual(self.meta["cgroup_manager"], "cgroupfs", self.meta)


if __name__ == "__main__":
    unittest.main()
