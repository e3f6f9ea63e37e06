"""Integration tests for containers as objects: run -d, logs, exec, stop, ps -a, rm (and rmi),
as root and as an ordinary user.

A detached container's record, log and writable layer stay after it stops, until `imgtool rm`;
`exec` enters a running container through its PID 1's pidfd (namespaces, cgroups) and runs with
the container's capabilities, seccomp filter, environment, user and working directory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import unittest

import harness
import test_rootless as rl
from test_run import (DOCKER_DEFAULT_CAPS, FMT, IMAGE, RunTest, RootlessRunTest, descendant_named,
                      status_fields, wait_for)

FULL_ID = re.compile(r"^[0-9a-f]{64}\n$")


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.images()


class DetachedTest(RunTest):
    """run -d, logs, ps -a, stop, rm, exec as root."""

    def setUp(self):
        super().setUp()
        self.addCleanup(self.remove_all)

    def remove_all(self):
        ids = harness.run(self.root, "ps", "-aq").out.split()
        if ids:
            harness.run(self.root, "rm", "-f", *ids)

    def imgtool(self, *args, **kw) -> harness.Result:
        return harness.run(self.root, *args, **kw)

    def detach(self, *args) -> str:
        started = time.monotonic()
        res = self.imgtool("run", "-d", *args)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        self.assertRegex(res.out, FULL_ID)
        self.assertLess(time.monotonic() - started, 20, "run -d waited for the container")
        return res.out.strip()

    def ps_json(self, *args) -> dict:
        return {c["Id"]: c for c in json.loads(self.imgtool("ps", "--format", "json", *args).out)}

    def test_detached_container_lifecycle(self):
        cid = self.detach("--name", "web", IMAGE, "sh", "-c", "echo out; echo err >&2; exec sleep 60")
        self.assertEqual(self.ps_json()[cid]["State"], "running")
        self.assertTrue(wait_for(lambda: self.imgtool("logs", "web").out == "out\nerr\n", timeout=10),
                        str(self.imgtool("logs", "web")))
        # The run that started it is gone; the container lives on under its monitor.
        pid = self.ps_json()[cid]["Pid"]
        self.assertTrue(wait_for(lambda: descendant_named(pid, "sleep"), timeout=10))
        # The name stays taken while the stopped container is kept.
        self.assertEqual(self.imgtool("stop", "-t", "0", "web").out, "web\n")
        self.assertEqual(self.imgtool("ps", "-q").out, "")
        doc = self.ps_json("-a")[cid]
        self.assertEqual((doc["State"], doc["ExitCode"]), ("exited", 137), doc)
        row = self.imgtool("ps", "-a").out.splitlines()[1]
        self.assertIn("Exited (137)", row)
        self.assertEqual(self.imgtool("logs", cid[:8]).out, "out\nerr\n")
        res = self.run_ctr("--name", "web", IMAGE, "true", check_tmp=False)
        self.assert_run_error(res, 125, '"web"', "stopped", cid[:12])
        harness.assert_one_error_line(self, self.imgtool("exec", "web", "true"), "exec", "not running", rc=125)
        # Its image is in use until the container is removed.
        harness.assert_one_error_line(self, self.imgtool("rmi", self.image_id), "rmi", "stopped container",
                                      cid[:12])
        self.assertEqual(len(harness.tmp_entries(self.root)), 1)
        self.assertEqual(self.imgtool("rm", "web").out, "web\n")
        self.assertEqual(self.imgtool("ps", "-aq").out, "")
        self.assertEqual(harness.tmp_entries(self.root), [])
        harness.assert_one_error_line(self, self.imgtool("logs", "web"), "logs", "no such container")

    def test_exit_code_and_logs_follow(self):
        cid = self.detach(IMAGE, "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done; exit 7")
        started = time.monotonic()
        res = self.imgtool("logs", "-f", cid)
        self.assertEqual((res.rc, res.out), (0, "1\n2\n3\n"), str(res))
        self.assertLess(time.monotonic() - started, 10)
        doc = self.ps_json("-a")[cid]
        self.assertEqual((doc["State"], doc["ExitCode"]), ("exited", 7), doc)
        self.assertEqual(self.imgtool("rm", cid[:12]).rc, 0)

    def container_upper(self, cid: str) -> list:
        def record_of(area):
            path = os.path.join(self.root, "tmp", area, "container.json")
            if not os.path.exists(path):
                return ""
            with open(path) as fh:
                return fh.read()
        [area] = [e for e in harness.tmp_entries(self.root) if cid in record_of(e)]
        upper = os.path.join(self.root, "tmp", area, "diff")
        return sorted(os.path.relpath(os.path.join(d, n), upper)
                      for d, dirs, files in os.walk(upper) for n in dirs + files)

    def test_init_layer_leaves_the_writable_layer_empty(self):
        # docker's init layer: /etc/hosts, /etc/hostname and /etc/resolv.conf to bind the container's
        # own files on come from a layer shared by the image's containers, made at its first run. A
        # container that writes nothing has nothing in its writable layer: no copy-up of /etc, no
        # mount-point files (busybox has none of the three; hostile-etc has all, as a file and symlinks).
        from test_run import hostile_image
        import gen_images
        ref = "imgtool-test/hostile-etc"
        harness.pull(self, self.root, hostile_image(self.work, "etc", extra=[
            gen_images.f("etc/hosts", b"10.0.0.1 stale-build-host\n"),
            gen_images.sym("etc/resolv.conf", "/../../../../etc/shadow")]))
        # A file volume on a file the image has: bound over it, not copied up first.
        volume = os.path.join(self.work, "group")
        with open(volume, "w") as fh:
            fh.write("root:x:0:\n")
        for image, opts in ((IMAGE, ()), (ref, ()), (IMAGE, ("-v", f"{volume}:/etc/group:ro"))):
            with self.subTest(image=image, opts=opts):
                cid = self.detach(*opts, image, "sleep", "60")
                self.assertEqual(self.container_upper(cid), [])
                # The image's /etc as it was: its mode, owner, entries, and the container's own files.
                out = self.imgtool("exec", cid, "sh", "-c",
                                   "stat -c '%a %u %g' /etc; ls /etc; grep -c localhost /etc/hosts")
                self.assertEqual(out.rc, 0, str(out))
                self.assertTrue(out.out.startswith("755 0 0\n"), out.out)
                self.assertIn("passwd", out.out)
                self.imgtool("rm", "-f", cid)
        inits = os.listdir(os.path.join(self.root, "inits"))
        self.assertEqual(len(inits), 2, inits)
        # Removed with its image.
        self.assertEqual(self.imgtool("rmi", ref).rc, 0)
        self.assertEqual(len(os.listdir(os.path.join(self.root, "inits"))), 1)

    def test_rm_removes_it_when_it_ends(self):
        cid = self.detach("--rm", IMAGE, "sh", "-c", "echo bye")
        self.assertTrue(wait_for(lambda: cid not in self.ps_json("-a"), timeout=10))
        self.assertTrue(wait_for(lambda: harness.tmp_entries(self.root) == [], timeout=10))

    def test_start_failure_is_reported_by_run(self):
        res = self.imgtool("run", "-d", "--name", "broken", IMAGE, "/nonexistent")
        harness.assert_one_error_line(self, res, "run", "/nonexistent", rc=127)
        doc = self.ps_json("-a")
        [c] = [c for c in doc.values() if c["Names"] == ["broken"]]
        self.assertEqual((c["State"], c["ExitCode"]), ("exited", 127))

    def test_interactive_detached_keeps_stdin_open(self):
        # docker's -di: a shell reading stdin waits instead of ending at once.
        cid = self.detach("-i", IMAGE, "sh")
        time.sleep(0.5)
        self.assertEqual(self.ps_json()[cid]["State"], "running")

    def test_container_dies_with_its_monitor(self):
        cid = self.detach(IMAGE, "sleep", "60")
        supervisor = self.ps_json()[cid]["Pid"]
        with open(f"/proc/{supervisor}/stat") as fh:
            monitor = int(fh.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{monitor}/comm") as fh:
            self.assertEqual(fh.read().strip(), "imgtool")
        os.kill(monitor, signal.SIGKILL)
        self.assertTrue(wait_for(lambda: self.ps_json("-a")[cid]["State"] == "exited", timeout=10))
        self.assertTrue(wait_for(lambda: not os.path.exists(f"/proc/{supervisor}"), timeout=10))
        # The record stays (how it ended is unknown), and the next command does not clean it.
        self.assertEqual(self.ps_json("-a")[cid]["ExitCode"], -1)
        self.assertEqual(self.imgtool("rm", cid).rc, 0)

    def test_rm_of_running_container(self):
        cid = self.detach("--name", "busy", IMAGE, "sleep", "60")
        harness.assert_one_error_line(self, self.imgtool("rm", "busy"), "rm", "is running", "rm -f")
        self.assertEqual(self.imgtool("rm", "-f", "busy").out, "busy\n")
        self.assertNotIn(cid, self.ps_json("-a"))
        # A foreground container: rm -f kills it, its run cleans up.
        proc = self.popen_run("--name", "fg", IMAGE, "sleep", "60")
        self.assertTrue(wait_for(lambda: any(c["Names"] == ["fg"] and c["State"] == "running"
                                             for c in self.ps_json().values()), timeout=10))
        self.assertEqual(self.imgtool("rm", "-f", "fg").out, "fg\n")
        self.assertEqual(proc.wait(timeout=20), 137)
        self.assertTrue(wait_for(lambda: harness.tmp_entries(self.root) == [], timeout=10))
        # rm tells containers from images: no container by that name removes the image, as rmi.
        harness.assert_one_error_line(self, self.imgtool("rm", "nosuchthing"), "rm", "no such container or image")
        self.assertEqual(self.imgtool("rm", IMAGE).rc, 0)

    # ---- the container never holds a host file (attacker pass) ---------------------------------

    def test_stdio_is_never_a_host_file(self):
        # Through /proc/self/fd/N a container could chmod the host's /dev/null inode (its stdin), or
        # rewrite and chmod the file run's stdout goes to: it gets its own /dev/null and pipes.
        before = os.stat("/dev/null")
        # Should the protection ever fail, the host must not keep a broken /dev/null.
        self.addCleanup(os.chmod, "/dev/null", before.st_mode & 0o7777)
        out_path = os.path.join(self.work, "out.txt")
        attack = "chmod 0600 /proc/self/fd/0; chmod 4755 /proc/self/fd/1; echo tail > /proc/self/fd/1; echo done"
        with open(out_path, "w") as out:
            argv = harness.imgtool_argv(self.root, "run", IMAGE, "sh", "-c", attack)
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                                  env=harness.base_env(), timeout=60)
        self.assertEqual(proc.returncode, 0, proc)
        self.assertEqual(os.stat("/dev/null").st_mode, before.st_mode, "the host's /dev/null changed mode")
        st = os.stat(out_path)
        self.assertEqual(st.st_mode & 0o7777, 0o644, "the container chmod-ed the caller's output file")
        with open(out_path) as fh:
            self.assertEqual(fh.read(), "tail\ndone\n")
        # The same for an exec'd process and for a detached container, whose output is its log.
        cid = self.detach("--name", "fds", IMAGE, "sh", "-c",
                          "echo first; chmod 777 /proc/self/fd/1; chmod 0600 /proc/self/fd/0; "
                          ": > /proc/self/fd/1; echo second; exec sleep 60")
        # chmod of the pipe works (a pipe's mode is nothing), of its /dev/null fails; the log keeps all.
        # (stdout and stderr are two pipes: their lines may interleave either way)
        self.assertTrue(wait_for(lambda: len(self.imgtool("logs", "fds").out.splitlines()) == 3, timeout=10),
                        str(self.imgtool("logs", "fds")))
        lines = self.imgtool("logs", "fds").out.splitlines()
        self.assertEqual([line for line in lines if "Read-only" not in line], ["first", "second"], lines)
        self.assertTrue(any("/proc/self/fd/0: Read-only file system" in line for line in lines), lines)
        res = self.imgtool("exec", "fds", "sh", "-c", "chmod 0600 /proc/self/fd/0; ls -l /proc/self/fd/1")
        self.assertIn("pipe:", res.out)
        self.assertEqual(os.stat("/dev/null").st_mode, before.st_mode, "the host's /dev/null changed mode")
        [log] = [os.path.join(self.root, "tmp", a, "container.log") for a in harness.tmp_entries(self.root)]
        self.assertEqual(os.stat(log).st_mode & 0o7777, 0o640, "the container chmod-ed its log")

    def test_monitor_holds_none_of_the_callers_fds(self):
        host_fd = os.open("/etc/hostname", os.O_RDONLY)
        self.addCleanup(os.close, host_fd)
        argv = harness.imgtool_argv(self.root, "run", "-d", IMAGE, "sleep", "60")
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              pass_fds=(host_fd,), env=harness.base_env(), timeout=60)
        self.assertEqual(proc.returncode, 0, proc)
        supervisor = self.ps_json()[proc.stdout.strip()]["Pid"]
        with open(f"/proc/{supervisor}/stat") as fh:
            monitor = int(fh.read().rsplit(")", 1)[1].split()[1])
        held = {os.path.realpath(f"/proc/{monitor}/fd/{fd}") for fd in os.listdir(f"/proc/{monitor}/fd")}
        self.assertNotIn("/etc/hostname", held)

    def test_ps_json_is_ascii(self):
        cid = self.detach(IMAGE, "sh", "-c", "exec sleep 60 # \u202e\x1b[2J")
        out = self.imgtool("ps", "--format", "json").out
        self.assertTrue(out.isascii(), out)
        self.assertEqual(json.loads(out)[0]["Command"][2], "exec sleep 60 # \u202e\x1b[2J")
        self.assertEqual(json.loads(out)[0]["Id"], cid)

    def test_exec_as_numeric_user_without_account_files(self):
        # A container that breaks its /etc/passwd cannot lock the operator out of exec -u 0:0.
        self.detach("--name", "nopw", IMAGE, "sh", "-c",
                    "rm /etc/passwd; mkfifo /etc/passwd; rm /etc/group; mkdir /etc/group; exec sleep 60")
        self.assertTrue(wait_for(lambda: self.imgtool("exec", "-u", "0:0", "nopw", "sh", "-c", "test -p /etc/passwd").rc == 0,
                                 timeout=10))
        # (busybox id would itself block on that FIFO: the kernel's view instead)
        res = self.imgtool("exec", "-u", "1000:1000", "nopw", "busybox", "grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status")
        self.assertEqual((res.rc, res.out), (0, "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n"
                                                "Groups:\t1000 \n"), str(res))
        harness.assert_one_error_line(self, self.imgtool("exec", "-u", "user", "nopw", "id"), "exec",
                                      "not a regular file", rc=125)

    # ---- exec ------------------------------------------------------------------------------

    def test_exec_joins_the_container(self):
        cid = self.detach("--name", "box", "-e", "ONLY_IN_RUN=1", IMAGE, "sh", "-c",
                          "echo made-by-pid1 > /tmp/mark; exec sleep 60")
        self.assertTrue(wait_for(lambda: self.imgtool("exec", "box", "cat", "/tmp/mark").out == "made-by-pid1\n",
                                 timeout=10))
        script = ("hostname; pwd; id -u; echo $GREETING $ONLY_IN_RUN $EXTRA; cat /proc/1/cmdline | tr '\\0' ' '; "
                  "echo; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; "
                  "[ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] && echo same-cgroups; "
                  "ls /proc/self/fd | tr '\\n' ' '")
        # An fd the caller passes (here 7, open on a host file) must not reach the container.
        host_fd = os.open("/etc/hostname", os.O_RDONLY)
        self.addCleanup(os.close, host_fd)
        os.dup2(host_fd, 7, inheritable=True)
        self.addCleanup(os.close, 7)
        argv = harness.imgtool_argv(self.root, "exec", "-e", "EXTRA=x", "box", "sh", "-c", script)
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, pass_fds=(7,),
                              env=harness.base_env(), timeout=60)
        res = harness.Result(argv, proc.returncode, proc.stdout, proc.stderr)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        lines = res.out.splitlines()
        self.assertEqual(lines[:5], [cid[:12], "/srv", "0", "hello 1 x", "sleep 60 "])
        self.assertEqual(lines[5:8], [f"CapEff:\t{DOCKER_DEFAULT_CAPS}", "NoNewPrivs:\t0", "Seccomp:\t2"])
        self.assertEqual(lines[8], "same-cgroups")
        self.assertEqual(lines[9].split(), ["0", "1", "2", "3"], "a host fd leaked into the exec'd process")
        res = self.imgtool("exec", "-u", "1000", "-w", "/tmp", "box", "sh", "-c", "id -u; pwd; exit 3")
        self.assertEqual((res.rc, res.out), (3, "1000\n/tmp\n"), str(res))
        harness.assert_one_error_line(self, self.imgtool("exec", "box", "nonexistent"), "exec",
                                      "executable file not found", rc=127)
        harness.assert_one_error_line(self, self.imgtool("exec", "box", "/no/such"), "exec",  # a path: its own reason
                                      "exec /no/such: no such file or directory in the container", rc=127)
        harness.assert_one_error_line(self, self.imgtool("exec", "nobox", "true"), "exec", "no such container",
                                      rc=125)

    def test_exec_device_cgroup(self):
        # The exec'd process is in the container's device cgroup, as seen from the host (inside, its
        # cgroup namespace shows "/" for the container's own cgroups, and "/.." paths for others).
        with open("/proc/self/cgroup") as fh:
            if not any(":devices:" in line for line in fh):
                self.skipTest("no cgroup v1 devices hierarchy here")
        cid = self.detach("--name", "dev", IMAGE, "sleep", "60")
        pid = self.ps_json()[cid]["Pid"]
        sleep = wait_for(lambda: descendant_named(pid, "sleep"), timeout=10)
        with open(f"/proc/{sleep}/cgroup") as fh:
            [container] = [line for line in fh.read().splitlines() if ":devices:" in line]
        self.assertIn("/imgtool-", container)
        exec_proc = harness.reap_at_cleanup(self, harness.popen(self.root, "exec", "dev", "sh", "-c",
                                                                 "cat /proc/self/cgroup; exec sleep 30"))
        exec_proc.stdout.readline()  # it runs
        exec_sleep = wait_for(lambda: descendant_named(exec_proc.pid, "sleep"), timeout=10)
        self.assertTrue(exec_sleep)
        with open(f"/proc/{exec_sleep}/cgroup") as fh:
            self.assertIn(container, fh.read().splitlines())
        exec_proc.kill()

    def test_exec_tty(self):
        self.detach("--name", "term", IMAGE, "sleep", "60")
        argv = harness.imgtool_argv(self.root, "exec", "-t", "term", "sh", "-c", "tty; echo $TERM")
        proc = subprocess.run(["script", "-qec", " ".join(argv), "/dev/null"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out = proc.stdout.decode().replace("\r", "").splitlines()
        self.assertEqual(proc.returncode, 0, proc)
        self.assertRegex(out[0], r"^/dev/pts/\d+$")
        self.assertEqual(out[1], "xterm")

    def test_exec_with_init_and_a_user(self):
        self.detach("--name", "inited", "--init", "-u", "1000", IMAGE, "sleep", "60")
        res = self.imgtool("exec", "inited", "sh", "-c", "id -u; cat /proc/1/cmdline | tr '\\0' ' '")
        self.assertEqual((res.rc, res.out.rstrip(" ")), (0, "1000\nimgtool-init -- sleep 60"), str(res))


class DetachedRootlessTest(unittest.TestCase):
    """The same as an ordinary user: exec joins the container's own user namespace from outside
    imgtool's; stop and rm -f reach a --init PID 1 that runs as another user. (The set-up of
    test_run's RootlessRunTest, without its tests.)"""

    setUpClass = classmethod(RootlessRunTest.setUpClass.__func__)
    setUp = RootlessRunTest.setUp
    _no_user_processes_left = RootlessRunTest._no_user_processes_left

    def imgtool(self, *args) -> harness.Result:
        return rl.run_as(self.user, [self.binary, *args], home=self.home, env=self.env, timeout=60)

    def test_detached_exec_stop_rm(self):
        res = self.imgtool("run", "-d", "--name", "rl1", IMAGE, "sh", "-c", "echo started; exec sleep 60")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        self.assertRegex(res.out, FULL_ID)
        cid = res.out.strip()
        self.assertTrue(wait_for(lambda: self.imgtool("logs", "rl1").out == "started\n", timeout=10))
        res = self.imgtool("exec", "rl1", "sh", "-c", "id -u; hostname; grep Seccomp: /proc/self/status; "
                                                       "cat /proc/self/uid_map | wc -l")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        self.assertEqual(res.out.splitlines()[:3], ["0", cid[:12], "Seccomp:\t2"])
        res = self.imgtool("exec", "-u", "1000", "rl1", "id", "-u")
        self.assertEqual((res.rc, res.out), (0, "1000\n"), str(res))
        self.assertEqual(self.imgtool("stop", "-t", "0", "rl1").rc, 0)
        self.assertIn("Exited (137)", self.imgtool("ps", "-a").out)
        self.assertEqual(self.imgtool("rm", "rl1").rc, 0)
        self.assertEqual(self.imgtool("ps", "-aq").out, "")

    def test_init_with_a_user_is_stopped_and_removed(self):
        for verb in ("stop", "rm"):
            with self.subTest(verb=verb):
                res = self.imgtool("run", "-d", "--init", "-u", "1000", "--name", "rl2", IMAGE, "sleep", "60")
                self.assertEqual(res.rc, 0, str(res))
                res = self.imgtool("exec", "rl2", "id", "-u")
                self.assertEqual((res.rc, res.out), (0, "1000\n"), str(res))
                if verb == "stop":
                    res = self.imgtool("stop", "-t", "1", "rl2")
                    self.assertEqual(res.rc, 0, str(res))
                    self.assertIn("Exited (143)", self.imgtool("ps", "-a").out)
                    res = self.imgtool("rm", "rl2")
                else:
                    res = self.imgtool("rm", "-f", "rl2")
                self.assertEqual((res.rc, res.out), (0, "rl2\n"), str(res))
                self.assertEqual(self.imgtool("ps", "-aq").out, "")


del RunTest, RootlessRunTest  # run in test_run, not again here

if __name__ == "__main__":
    unittest.main()
