"""Integration tests for the container's cgroups: run's resource limits (--memory, --memory-swap,
--cpus, --pids-limit), the container's cgroup namespace and its read-only /sys/fs/cgroup, the
removal of its cgroups, and rootless runs, which get limits only where cgroup v2 is delegated.

Expectations come from the host's own layout (/proc/self/cgroup and the mount table), so that the
same tests hold on a v1, hybrid or pure v2 host: a limit goes to the v2 hierarchy where imgtool's
cgroup can pass its controller on, else to the v1 hierarchy that has it. Where no hierarchy has a
controller at all, the run must fail with imgtool's one-line error, which is what the test then
checks (a skip would hide a silently dropped limit).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
import test_rootless as rl
from test_peers import rootless_lock
from test_run import IMAGE, FMT, RunTest, descendant_named, wait_for

MIB = 1 << 20
# A bounded allocation: a string doubled up to 64 MiB (awk holds about three times that at the
# end), then its length. Bounded, so that a limit that does not work fails the test instead of
# eating the host's memory.
AWK_64M = 'BEGIN { s = "x"; while (length(s) < 64 * 1024 * 1024) s = s s; print length(s) }'


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.images()


# --------------------------------------------------------------------------
# The host's layout


def host_hierarchies() -> list:
    """[(kind, controllers, mount point, imgtool-parent dir)] for each hierarchy this process is in
    and that is mounted: kind "v1" or "v2"; the last is this process's cgroup directory there."""
    mounts = []
    for line in harness.mountinfo_lines():
        left, _, right = line.partition(" - ")
        fstype, _source, options = (right.split() + ["", ""])[:3]
        fields = left.split()
        mounts.append((fstype, options.split(","), fields[3], fields[4].replace("\\040", " ")))
    out = []
    with open("/proc/self/cgroup") as fh:
        for line in fh.read().splitlines():
            hid, controllers, path = line.split(":", 2)
            v2 = hid == "0" and controllers == ""
            wanted = controllers.split(",") if controllers else []
            for fstype, options, root, point in mounts:
                if (v2 and fstype == "cgroup2") or (not v2 and fstype == "cgroup"
                                                    and all(c in options for c in wanted)):
                    if root == "/":
                        out.append(("v2" if v2 else "v1", wanted, point, point + ("" if path == "/" else path)))
                        break
    return out


def v2_offers(controller: str) -> bool:
    """Whether the v2 cgroup a container's limits would go into (imgtool's own when it is the root,
    else its parent) lists controller in cgroup.controllers."""
    for kind, _, point, own in host_hierarchies():
        if kind != "v2":
            continue
        parent = own if own == point else os.path.dirname(own)
        try:
            with open(os.path.join(parent, "cgroup.controllers")) as fh:
                return controller in fh.read().split()
        except OSError:
            return False
    return False


def enforcer(controller: str):
    """("v2" | "v1", name under the container's /sys/fs/cgroup) of the hierarchy that enforces
    controller's limits here, or None."""
    layout = host_hierarchies()
    for kind, _, point, _ in layout:
        if kind == "v2" and v2_offers(controller):
            return "v2", "" if point == "/sys/fs/cgroup" else os.path.basename(point)
    for kind, controllers, point, _ in layout:
        if kind == "v1" and controller in controllers:
            # The host's name, and a link named after each controller of a combined hierarchy.
            return "v1", controller
    return None


def control_file(controller: str, v1_file: str, v2_file: str) -> str | None:
    """Where a limit's file is inside the container (absolute), or None if nothing enforces it."""
    where = enforcer(controller)
    if where is None:
        return None
    kind, name = where
    return os.path.join("/sys/fs/cgroup", name, v1_file if kind == "v1" else v2_file)


def container_cgroup_dirs(pid: int) -> list:
    """The host directories of pid's cgroups that imgtool made for it (named imgtool-...)."""
    out = []
    layout = host_hierarchies()
    with open(f"/proc/{pid}/cgroup") as fh:
        for line in fh.read().splitlines():
            hid, controllers, path = line.split(":", 2)
            if "/imgtool-" not in path:
                continue
            v2 = hid == "0" and controllers == ""
            for kind, ctl, point, _ in layout:
                if (kind == "v2") == v2 and (v2 or ctl == controllers.split(",")):
                    out.append(point + path)
    return out


def leftovers(imgtool_pid: int) -> list:
    """Cgroups named after imgtool process imgtool_pid anywhere a container's cgroup can go."""
    found = []
    for kind, _, point, own in host_hierarchies():
        for parent in {own, os.path.dirname(own) if own != point else own}:
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            found += [os.path.join(parent, n) for n in names if n.startswith(f"imgtool-{imgtool_pid}-")]
    return found


def harness_read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------


class CgroupTest(RunTest):
    """Root runs; each checks that the container's cgroups are gone once run returns."""

    def run_tracked(self, *args, timeout=60) -> harness.Result:
        """`imgtool run ARGS...` whose cgroups (found by imgtool's pid) must be gone at the end."""
        argv = harness.imgtool_argv(self.root, "run", *args)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=harness.base_env())
        out, err = proc.communicate(timeout=timeout)
        res = harness.Result(argv, proc.returncode, out.decode(errors="replace"),
                             err.decode(errors="replace"))
        self.assertEqual(leftovers(proc.pid), [], f"cgroups left behind\n{res}")
        self.assertEqual(harness.tmp_entries(self.root), [], f"left in tmp/\n{res}")
        return res

    def limited(self, controller: str, *args) -> harness.Result | None:
        """Runs with a limit of controller's; where nothing enforces it, checks the one-line error
        and returns None."""
        res = self.run_tracked(*args)
        if enforcer(controller) is None:
            self.assert_run_error(res, 125, "no cgroup controller can enforce it here")
            return None
        return res

    # ---- limits ------------------------------------------------------------------------------

    def test_memory_limit_oom_kills_with_137(self):
        res = self.limited("memory", "--memory", "16m", IMAGE, "busybox", "awk", AWK_64M)
        if res is None:
            return
        self.assertEqual(res.rc, 137, f"not OOM-killed\n{res}")
        # Control: the same program under a limit it fits in finishes.
        res = self.run_tracked("--memory", "512m", IMAGE, "busybox", "awk", AWK_64M)
        self.assertEqual((res.rc, res.out), (0, f"{64 * MIB}\n"), str(res))
        # With --init the kill reaches the command alike.
        res = self.run_tracked("--init", "--memory", "16m", IMAGE, "busybox", "awk", AWK_64M)
        self.assertEqual(res.rc, 137, str(res))

    def test_memory_files(self):
        limit = control_file("memory", "memory.limit_in_bytes", "memory.max")
        swap = control_file("memory", "memory.memsw.limit_in_bytes", "memory.swap.max")
        if limit is None:
            self.limited("memory", "--memory", "64m", IMAGE, "true")
            return
        v1 = enforcer("memory")[0] == "v1"
        script = f"cat {limit}; cat {swap} 2>/dev/null || echo no-swap-accounting"
        for opts, want_swap in (((), 128 * MIB if v1 else 64 * MIB),
                                (("--memory-swap", "96m"), 96 * MIB if v1 else 32 * MIB),
                                (("--memory-swap", "-1"), -1 if v1 else "max")):
            with self.subTest(opts=opts):
                res = self.run_tracked("--memory", "64m", *opts, IMAGE, "sh", "-c", script)
                self.assertEqual(res.rc, 0, str(res))
                lines = res.out.splitlines()
                self.assertEqual(lines[0], str(64 * MIB), str(res))
                if lines[1] != "no-swap-accounting":
                    want = str(want_swap)
                    if v1 and want_swap == -1:  # v1 shows "unlimited" as its largest value
                        self.assertGreater(int(lines[1]), 1 << 60, str(res))
                    else:
                        self.assertEqual(lines[1], want, str(res))

    def test_pids_limit_stops_a_fork_loop(self):
        # A subshell forks up to 40 sleepers; at the limit its fork fails (ash then gives up, which
        # ends only the subshell). The container's PID 1 then reads what it needs without forking,
        # kills the sleepers and exits normally.
        script = ("( i=0; while [ $i -lt 40 ]; do busybox sleep 30 & i=$((i+1)); echo $i > /tmp/n; done )"
                  " 2>/tmp/err; read n < /tmp/n; read err < /tmp/err; kill -9 -1; echo started=$n; echo $err")
        res = self.limited("pids", "--pids-limit", "8", IMAGE, "sh", "-c", script)
        if res is None:
            return
        self.assertEqual(res.rc, 0, str(res))
        started = int(re.search(r"started=(\d+)", res.out).group(1))
        # Every process of the container counts (its PID 1, the subshell; imgtool's supervisor too).
        self.assertLess(started, 8, str(res))
        self.assertGreater(started, 2, str(res))
        self.assertIn("can't fork", res.out, str(res))
        # -1 is unlimited, as in docker: the same loop runs to its end.
        res = self.run_tracked("--pids-limit", "-1", IMAGE, "sh", "-c", script)
        self.assertEqual((res.rc, res.out.splitlines()[0]), (0, "started=40"), str(res))

    def test_cpus_quota_read_back_inside(self):
        v1_quota = control_file("cpu", "cpu.cfs_quota_us", "cpu.max")
        if v1_quota is None:
            self.limited("cpu", "--cpus", "1.5", IMAGE, "true")
            return
        if enforcer("cpu")[0] == "v1":
            script = f"cat {v1_quota} {os.path.dirname(v1_quota)}/cpu.cfs_period_us"
            want = "150000\n100000\n"
        else:
            script, want = f"cat {v1_quota}", "150000 100000\n"
        res = self.run_tracked("--cpus", "1.5", IMAGE, "sh", "-c", script)
        self.assertEqual((res.rc, res.out), (0, want), str(res))
        res = self.run_tracked("--cpus", "0.25", "--privileged", IMAGE, "sh", "-c", script)
        self.assertEqual((res.rc, res.out), (0, want.replace("150000", "25000", 1)), str(res))

    def test_bad_values_are_one_line(self):
        for opts, needle in ((("--memory", "12q"), "--memory 12q: not a size"),
                             (("--memory", "1k"), "--memory 1k: the minimum is 6m"),
                             (("--memory", "64m", "--memory-swap", "32m"), "at least --memory"),
                             (("--memory-swap", "1g"), "needs --memory"),
                             (("--cpus", "abc"), "--cpus abc: not a number"),
                             (("--cpus", "0.001"), "the minimum is 0.01"),
                             (("--pids-limit", "-5"), "--pids-limit -5:")):
            with self.subTest(opts=opts):
                res = self.run_tracked(*opts, IMAGE, "echo", "started")
                self.assert_run_error(res, 125, needle)

    # ---- the cgroup namespace and /sys/fs/cgroup ------------------------------------------------

    def test_sys_fs_cgroup_is_the_containers_own_and_read_only(self):
        for opts in ((), ("--init",), ("--memory", "64m", "--pids-limit", "50")):
            with self.subTest(opts=opts):
                self._check_own_cgroups(*opts)

    def _check_own_cgroups(self, *opts):
        sync = os.path.join(self.work, "sync")
        shutil.rmtree(sync, ignore_errors=True)
        os.mkdir(sync)
        script = ("cat /proc/self/cgroup > /sync/cgroup; ls /sys/fs/cgroup > /sync/ls; "
                  "cat /sys/fs/cgroup/devices/devices.list > /sync/devices 2>/dev/null; "
                  "grep ' /sys/fs/cgroup' /proc/self/mounts > /sync/mounts; "
                  "for d in /sys/fs/cgroup /sys/fs/cgroup/*; do [ -d $d ] && [ ! -L $d ] && "
                  "{ echo $d >> /sync/tried; mkdir $d/x 2>> /sync/denied; }; done; "
                  "touch /sync/ready; while [ ! -e /sync/go ]; do sleep 0.05; done")
        proc = self.popen_run("-v", f"{sync}:/sync", *opts, IMAGE, "sh", "-c", script)
        self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(sync, "ready")) or
                                 proc.poll() is not None, timeout=20))
        self.assertIsNone(proc.poll(), "the container exited early")
        pid = descendant_named(proc.pid, "sh")
        dirs = container_cgroup_dirs(pid)
        # Had the container been able to make a child cgroup, its own could never be removed.
        for d in dirs:
            self.addCleanup(lambda d=d: [os.rmdir(p) for p in (d + "/x", d) if os.path.isdir(p)])
        open(os.path.join(sync, "go"), "w").close()
        _, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, err)
        read = {n: harness_read(os.path.join(sync, n)) for n in ("cgroup", "ls", "devices", "mounts", "denied", "tried")}
        # Its own cgroup namespace: every hierarchy's root is where it was put.
        for line in read["cgroup"].splitlines():
            self.assertTrue(line.endswith(":/"), read["cgroup"])
        self.assertTrue(dirs, "the container has no cgroup of its own")
        # One directory per hierarchy it has a cgroup in, named as on the host.
        names, links = set(), set()
        for kind, controllers, point, _ in host_hierarchies():
            if any(d.startswith(point + "/") for d in dirs):
                name = "" if point == "/sys/fs/cgroup" else os.path.basename(point)
                names.add(name)
                if len(controllers) > 1:
                    links |= {c for c in controllers if c != name and "=" not in c}
        if names == {""}:  # pure v2: cgroup2 on /sys/fs/cgroup itself
            self.assertIn("cgroup.procs", read["ls"].split())
        else:
            self.assertEqual(set(read["ls"].split()), names | links, read["ls"])
        # The container's own device rules (docker's), not the host's "a *:* rwm".
        if "devices" in names:
            self.assertIn("c 1:3 rwm", read["devices"])
            self.assertNotIn("a *:* rwm", read["devices"])
        for line in read["mounts"].splitlines():
            self.assertIn(" ro,", line, read["mounts"])
        for line in read["denied"].splitlines():
            self.assertIn("Read-only file system", line, read["denied"])
        self.assertEqual(len(read["denied"].splitlines()), len(read["tried"].splitlines()), read["denied"])
        self.assertGreater(len(read["tried"].splitlines()), 1 if "" not in names else 0, read["tried"])
        for d in dirs:
            self.assertFalse(os.path.exists(d), f"{d} outlived the container")

    def test_cgroups_removed_after_oom_kill_and_failure(self):
        if enforcer("memory") is None:
            self.skipTest("no hierarchy enforces memory limits here (test_memory_limit_oom_kills_with_137 "
                          "checks the error)")
        res = self.run_tracked("--memory", "16m", "--pids-limit", "20", IMAGE, "busybox", "awk", AWK_64M)
        self.assertEqual(res.rc, 137, str(res))
        # A failure after the cgroups were made (exec of a missing command): gone as well.
        res = self.run_tracked("--memory", "16m", IMAGE, "no-such-command")
        self.assertEqual(res.rc, 127, str(res))


class RootlessCgroupTest(unittest.TestCase):
    """As an ordinary user (test_rootless's, under /tmp/imgtool-rootless.lock): limits only where
    cgroup v2 is delegated to the user; a clear error elsewhere (v1 never is). Without limits the
    container has no cgroup of its own and its /sys/fs/cgroup shows nothing of the host's."""

    @classmethod
    def setUpClass(cls):
        cls.enterClassContext(rootless_lock())
        rl.ensure_users()
        cls.user = rl.USERS[rl.USER]
        argv = rl.as_user(cls.user, ["unshare", "--user", "--map-root-user", "true"], home="/")
        probe = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        if probe.returncode != 0:
            raise unittest.SkipTest(f"the kernel refuses unprivileged user namespaces: {probe.stderr.strip()}")
        # The build tree may be out of the user's reach: what it runs is copied to /tmp.
        cls.scratch = tempfile.mkdtemp(prefix="imgtool-cg-rl-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.scratch, True)
        os.chmod(cls.scratch, 0o755)
        cls.binary = os.path.join(cls.scratch, "imgtool")
        image = os.path.join(cls.scratch, "busybox.tar")
        for src, dst, mode in ((harness.imgtool_binary(), cls.binary, 0o755),
                               (harness.image_path("busybox", FMT), image, 0o644)):
            shutil.copy(src, dst)
            os.chmod(dst, mode)
        cls.home = os.path.join(cls.scratch, "home")
        os.mkdir(cls.home, 0o700)
        os.chown(cls.home, cls.user.uid, cls.user.gid)
        cls.env = {"IMGTOOL_ROOT": os.path.join(cls.home, "store")}
        res = rl.run_as(cls.user, [cls.binary, "pull-local", image], home=cls.home, env=cls.env)
        if res.rc != 0:
            raise AssertionError(f"rootless pull failed\n{res}")

    def run_as_user(self, *args) -> harness.Result:
        return rl.run_as(self.user, [self.binary, "run", *args], home=self.home, env=self.env, timeout=60)

    def delegated(self) -> bool:
        """Whether the v2 cgroup a rootless container's limits would go in is the user's."""
        for kind, _, point, own in host_hierarchies():
            if kind == "v2":
                parent = own if own == point else os.path.dirname(own)
                return all(os.stat(os.path.join(parent, f)).st_uid == self.user.uid
                           for f in ("", "cgroup.subtree_control", "cgroup.procs"))
        return False

    def test_limits_need_delegation(self):
        if self.delegated():
            self.skipTest("cgroup v2 is delegated to the test user here: the root tests cover the limits")
        for opts, flag in ((("--memory", "64m"), "--memory"), (("--pids-limit", "10"), "--pids-limit"),
                           (("--cpus", "1"), "--cpus")):
            with self.subTest(opts=opts):
                res = self.run_as_user(*opts, IMAGE, "echo", "started")
                line = harness.assert_one_error_line(self, res, "run", f"{flag}: no cgroup controller can enforce it here",
                                                     rc=125)
                self.assertRegex(line, "not delegated|offers|never delegated|no cgroup", line)

    def test_without_limits_nothing_of_the_hosts(self):
        for opts in ((), ("--net", "none")):
            with self.subTest(opts=opts):
                res = self.run_as_user(*opts, IMAGE, "sh", "-c",
                                       "ls -A /sys/fs/cgroup; cat /proc/self/cgroup; touch /sys/fs/cgroup/x")
                self.assertEqual(res.rc, 1, str(res))
                lines = res.out.splitlines()
                self.assertTrue(lines and all(line.endswith(":/") for line in lines), str(res))
                # sysfs's own (--net none) says ENOENT, the covering tmpfs EROFS: nothing is made.
                self.assertRegex(res.err, "touch: /sys/fs/cgroup/x: (Read-only file system|No such file or directory)")


if __name__ == "__main__":
    unittest.main()
