"""run's seccomp filter: docker's default profile as an allow-list, `--security-opt seccomp=unconfined`
and `seccomp=PROFILE.json`, as root and as an ordinary user (rootless, under
/tmp/imgtool-rootless.lock like every test that runs as test_rootless's user).

The same checks run in both modes (SeccompChecks); each mode says how to run imgtool and where a
profile goes. Blocked calls are asked by busybox (`unshare`, `mkdir`) and by a static probe for the
calls only an allow-list refuses (the old deny-list let them through).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

import harness
import test_rootless as rl
import test_run
from test_peers import rootless_lock

IMAGE = test_run.IMAGE
EPERM = "Operation not permitted"

# One line per call: "NAME: ok" or "NAME: <strerror>".
#   vsock        socket(AF_VSOCK, SOCK_STREAM): docker's profile allows every family but AF_ALG, AF_VSOCK
#   norandom     personality(ADDR_NO_RANDOMIZE): not among docker's personality values
#   getpid       an allowed call, the control
ALLOWLIST_PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static void report(const char *what, long rc) {
    if (rc < 0) printf("%s: %s\n", what, strerror(errno));
    else printf("%s: ok\n", what);
}

int main(void) {
    report("vsock", syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0));
    report("norandom", syscall(SYS_personality, ADDR_NO_RANDOMIZE));
    report("getpid", syscall(SYS_getpid));
    return 0;
}
"""

BLOCK_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
BAD_ACTION = {"defaultAction": "SCMP_ACT_ERRNO",
              "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                           {"names": ["write"], "action": "SCMP_ACT_MAYBE"}]}


def status_seccomp(out: str) -> str | None:
    for line in out.splitlines():
        if line.startswith("Seccomp:"):
            return line.split(":", 1)[1].strip()
    return None


class SeccompChecks:
    """The checks; a mode supplies imgtool_run(*args) -> harness.Result, write_profile(name, text) -> path,
    out_dir() -> (host dir, empty, writable by the container's root)."""

    def imgtool_run(self, *args) -> harness.Result:
        raise NotImplementedError

    def write_profile(self, name: str, text: str) -> str:
        raise NotImplementedError

    def out_dir(self) -> str:
        raise NotImplementedError

    def ok(self, script: str, *opts) -> str:
        res = self.imgtool_run(*opts, IMAGE, "sh", "-c", script)
        self.assertEqual(res.rc, 0, str(res))
        return res.out

    def test_filter_mode(self):
        # 2: a filter. None unconfined or --privileged, as docker.
        cmd = "busybox grep '^Seccomp:' /proc/self/status"
        self.assertEqual(status_seccomp(self.ok(cmd)), "2")
        self.assertEqual(status_seccomp(self.ok(cmd, "--security-opt", "seccomp=unconfined")), "0")
        self.assertEqual(status_seccomp(self.ok(cmd, "--privileged")), "0")

    def test_blocked_call_fails_with_eperm(self):
        # unshare(2) without CAP_SYS_ADMIN: EPERM from the filter; unconfined, the kernel lets an
        # unprivileged process make a user namespace.
        script = "unshare -U true; echo rc=$?"
        res = self.imgtool_run(IMAGE, "sh", "-c", script)
        self.assertEqual((res.rc, res.out), (0, "rc=1\n"), str(res))
        self.assertIn(f"unshare(0x10000000): {EPERM}", res.err)
        res = self.imgtool_run("--security-opt", "seccomp=unconfined", IMAGE, "sh", "-c", script)
        self.assertEqual((res.rc, res.out, res.err), (0, "rc=0\n", ""), str(res))

    def test_calls_outside_the_allow_list(self):
        # Refused by omission: default EPERM. Unconfined, the kernel answers (whatever it says).
        out = self.run_probe()
        self.assertEqual(out, f"vsock: {EPERM}\nnorandom: {EPERM}\ngetpid: ok\n")
        out = self.run_probe("--security-opt", "seccomp=unconfined")
        self.assertNotIn(EPERM, out)
        self.assertIn("norandom: ok\n", out)

    def test_profile_from_a_file(self):
        path = self.write_profile("no-mkdir.json", json.dumps(BLOCK_MKDIR))
        script = "mkdir /tmp/d && echo made"
        self.assertEqual(self.ok(script), "made\n")
        res = self.imgtool_run("--security-opt", f"seccomp={path}", IMAGE, "sh", "-c", script)
        self.assertEqual(res.rc, 1, str(res))
        self.assertIn(f"can't create directory '/tmp/d': {EPERM}", res.err)
        # The profile's default is allow: what docker's default refuses goes through.
        res = self.imgtool_run("--security-opt", f"seccomp={path}", IMAGE, "sh", "-c", "unshare -U true && echo ns")
        self.assertEqual((res.rc, res.out), (0, "ns\n"), str(res))
        # --privileged has no filter, whatever profile is named.
        self.assertEqual(self.ok(script, "--privileged", "--security-opt", f"seccomp={path}"), "made\n")

    def test_broken_profile_is_one_line_and_nothing_starts(self):
        out = self.out_dir()
        cases = [
            (self.write_profile("bad-action.json", json.dumps(BAD_ACTION)),
             ["bad-action.json", "syscalls[1].action", 'unknown action "SCMP_ACT_MAYBE"']),
            (self.write_profile("truncated.json", '{"defaultAction": "SCMP_ACT_ERRNO", "sysc'),
             ["truncated.json", "invalid JSON"]),
            (self.write_profile("huge.json", '{"defaultAction": "SCMP_ACT_ALLOW", "comment": "'
                                + "x" * (1 << 20) + '"}'),
             ["huge.json", "too large"]),
            (os.path.join(os.path.dirname(self.write_profile("x.json", "{}")), "missing.json"),
             ["missing.json", "no such file"]),
        ]
        for path, needles in cases:
            with self.subTest(path=os.path.basename(path)):
                res = self.imgtool_run("--security-opt", f"seccomp={path}", "-v", f"{out}:/out", IMAGE,
                               "sh", "-c", "touch /out/started")
                harness.assert_one_error_line(self, res, "run", "seccomp profile", *needles, rc=125)
                self.assertEqual(os.listdir(out), [], "the container's command ran")


class RootSeccompTest(SeccompChecks, test_run.RunTest):
    """As root: test_run's RunTest checks the host's mount table and the store's tmp/ around each run."""

    def imgtool_run(self, *args) -> harness.Result:
        return self.run_ctr(*args)

    def write_profile(self, name: str, text: str) -> str:
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def out_dir(self) -> str:
        path = os.path.join(self.work, "out")
        os.makedirs(path, exist_ok=True)
        return path

    def run_probe(self, *opts) -> str:
        probe = test_run.probe_binary(ALLOWLIST_PROBE_C, "allowlist-probe")
        res = self.run_ctr(*opts, "-v", f"{probe}:/probe:ro", IMAGE, "/probe")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        return res.out


class RootlessSeccompTest(SeccompChecks, unittest.TestCase):
    """As test_rootless's user: the filter is loaded inside the user's namespace (the container's
    root holds CAP_SYS_ADMIN there), and the profile is read with the user's rights."""

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
        cls.scratch = tempfile.mkdtemp(prefix="imgtool-seccomp-rl-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.scratch, True)
        os.chmod(cls.scratch, 0o755)
        cls.binary = os.path.join(cls.scratch, "imgtool")
        cls.probe = os.path.join(cls.scratch, "probe")
        image = os.path.join(cls.scratch, "busybox.tar")
        for src, dst, mode in ((harness.imgtool_binary(), cls.binary, 0o755),
                               (test_run.probe_binary(ALLOWLIST_PROBE_C, "allowlist-probe"), cls.probe, 0o755),
                               (harness.image_path("busybox", test_run.FMT), image, 0o644)):
            shutil.copy(src, dst)
            os.chmod(dst, mode)
        cls.home = os.path.join(cls.scratch, "home")
        os.mkdir(cls.home, 0o700)
        os.chown(cls.home, cls.user.uid, cls.user.gid)
        cls.env = {"IMGTOOL_ROOT": os.path.join(cls.home, "store")}
        res = rl.run_as(cls.user, [cls.binary, "pull-local", image], home=cls.home, env=cls.env)
        if res.rc != 0:
            raise AssertionError(f"rootless pull failed\n{res}")

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="t-", dir=self.scratch)
        os.chmod(self.dir, 0o755)
        self.addCleanup(self._no_user_processes_left)

    def _no_user_processes_left(self):
        if not harness.wait_for(lambda: not rl.user_processes(self.user), timeout=10):
            left = rl.user_processes(self.user)
            for pid, _, _ in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.fail(f"processes of {self.user.name} left after the test: {left}")

    def imgtool_run(self, *args) -> harness.Result:
        return rl.run_as(self.user, [self.binary, "run", *args], home=self.home, env=self.env, timeout=60)

    def write_profile(self, name: str, text: str) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def out_dir(self) -> str:
        path = os.path.join(self.dir, "out")
        os.makedirs(path, exist_ok=True)
        os.chown(path, self.user.uid, self.user.gid)
        return path

    def run_probe(self, *opts) -> str:
        res = self.imgtool_run(*opts, "-v", f"{self.probe}:/probe:ro", IMAGE, "/probe")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        return res.out


if __name__ == "__main__":
    unittest.main()
