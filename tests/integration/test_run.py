"""Integration tests for `imgtool run`, driving the built binary as root.

Most tests use the busybox test image (tools/gen_images.py): /bin/busybox with applet links,
/etc/passwd with root, user (1000:1000, /home/user) and nobody, Env PATH + GREETING=hello,
Cmd ["/bin/sh","-c","echo $GREETING from $(pwd)"], WorkingDir /srv, /srv/hello.txt in layer 2.
Hostile variants of it (symlinked /proc, /dev, workdirs through symlinks and magic links) are
built here from the generator's own model, written as OCI layouts and pulled.

Every `run` goes through RunTest.run_ctr, which also checks that the host's mount table (the
mountinfo lines about the test scratch space) is the same before and after and that nothing is
left in the store's tmp/.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import harness
import test_rootless as rl
from harness import gen_images, treecmp
from test_peers import rootless_lock

FMT = "oci-archive"
IMAGE = "imgtool-test/busybox"
HELLO = "hello from the second layer\n"
# docker's default capability set (CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID
# SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE).
DOCKER_DEFAULT_CAPS = "00000000a80425fb"


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.require_tool("unshare")
    harness.images()


# --------------------------------------------------------------------------
# Host-side helpers


host_mount_lines = harness.host_mount_lines


host_mount_lock = harness.host_mount_lock


wait_for = harness.wait_for


descendants = harness.descendants


def proc_comm(pid: int):
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return None


def proc_state(pid: int):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def catches(pid: int, sig: int) -> bool:
    """True if pid has a handler installed for sig (SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            fields = status_fields(fh.read())
    except OSError:
        return False
    return bool(int(fields.get("SigCgt", "0"), 16) & (1 << (sig - 1)))


def descendant_named(pid: int, comm: str):
    for p in descendants(pid):
        if proc_comm(p) == comm:
            return p
    return None


def status_fields(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def env_dict(text: str) -> dict:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# --------------------------------------------------------------------------
# Devices: cgroups, the kernel log, a probe that calls ioctl(TIOCSTI)

# What `devices.list` of a container's cgroup v1 holds: docker's default allow list (moby's default
# spec plus the rules runc appends to every container).
DOCKER_DEVICE_RULES = {"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                       "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                       "c 10:200 rwm"}


def host_disk() -> str:
    """"MAJOR MINOR" of a real block device of this host (the first in /proc/partitions): what
    `mknod /dev/x b ...` is after. Only ever opened read-only here."""
    with open("/proc/partitions") as fh:
        for line in fh.read().splitlines()[2:]:
            major, minor, *_ = line.split()
            return f"{major} {minor}"
    return "8 0"


def cgroup_mounts() -> dict:
    """{"v1": mount point of the cgroup v1 devices hierarchy, "v2": of cgroup2}, None if absent."""
    found = {"v1": None, "v2": None}
    for line in harness.mountinfo_lines():
        left, _, right = line.partition(" - ")
        fstype, _source, options = (right.split() + ["", ""])[:3]
        point = left.split()[4].replace("\\040", " ")
        if fstype == "cgroup2" and found["v2"] is None:
            found["v2"] = point
        elif fstype == "cgroup" and "devices" in options.split(",") and found["v1"] is None:
            found["v1"] = point
    return found


def proc_cgroups(pid: int) -> dict:
    """{"v1": the devices cgroup of pid, "v2": its cgroup2 path} as /proc/PID/cgroup names them."""
    out = {"v1": None, "v2": None}
    with open(f"/proc/{pid}/cgroup") as fh:
        for line in fh.read().splitlines():
            hid, controllers, path = line.split(":", 2)
            if hid == "0" and controllers == "":
                out["v2"] = path
            elif "devices" in controllers.split(","):
                out["v1"] = path
    return out


def cgroup_dirs(pid: int) -> dict:
    """{"v1"/"v2": the directory of pid's cgroup} for the hierarchies mounted here."""
    mounts, paths = cgroup_mounts(), proc_cgroups(pid)
    return {v: mounts[v] + paths[v] for v in ("v1", "v2") if mounts[v] and paths[v]}


# Run by the host's python inside a container's cgroup: joins it (cgroup.procs, argv[1]), then
# opens each PATH:MODE and prints the errno name (or "opened"). Opening /dev/kmsg for writing and
# closing it again writes nothing.
JOIN_CGROUP_AND_OPEN = r"""
import errno, os, sys
with open(sys.argv[1], "w") as fh:
    fh.write(str(os.getpid()))
for spec in sys.argv[2:]:
    path, mode = spec.rsplit(":", 1)
    try:
        os.close(os.open(path, os.O_WRONLY if mode == "w" else os.O_RDONLY))
        print(path, "opened")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
"""


class KernelLog:
    """The host's kernel log records written after construction (/dev/kmsg, read non-blocking)."""

    def __init__(self, tc: unittest.TestCase):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        tc.addCleanup(os.close, self.fd)
        os.lseek(self.fd, 0, os.SEEK_END)

    def new_records(self) -> str:
        out = []
        while True:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # older records were overwritten meanwhile: go on
                continue
            if not record:
                break
            out.append(record.decode(errors="replace"))
        return "".join(out)


# A static probe for the container (the image has only busybox, which cannot call ioctl):
#   probe REPORT TEXT  pushes TEXT and a newline into the input queue (ioctl TIOCSTI) of every
#                      terminal it can reach (fds 0-2 and /dev/tty); a line per attempt to REPORT.
PROBE_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void inject(FILE *report, int fd, const char *name, const char *text) {
    for (const char *p = text;; p++) {
        const char c = *p ? *p : '\n';  /* the line ends as if typed: the shell runs it */
        if (ioctl(fd, TIOCSTI, &c) != 0) {
            fprintf(report, "%s: %s\n", name, strerror(errno));
            return;
        }
        if (!*p) break;
    }
    fprintf(report, "%s: injected\n", name);
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *report = fopen(argv[1], "w");
    if (report == NULL) return 3;
    char name[16];
    for (int fd = 0; fd < 3; fd++) {
        snprintf(name, sizeof name, "fd %d", fd);
        if (isatty(fd)) inject(report, fd, name, argv[2]);
        else fprintf(report, "%s: not a terminal\n", name);
    }
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (tty < 0) fprintf(report, "/dev/tty: %s\n", strerror(errno));
    else inject(report, tty, "/dev/tty", argv[2]);
    return fclose(report) == 0 ? 0 : 4;
}
"""


# A static probe of the system calls the container's seccomp filter decides (one line per attempt):
#   keyadd DESC DATA        (on the host) adds a "user" key to the caller's user keyring: its serial
#   keyread SERIAL          "read: DATA" or "read: <error>"
#   keyupdate SERIAL DATA   "update: ok" or the error
#   keysearch DESC          "search: ..." (keyctl KEYCTL_SEARCH in @u), "request: ..." (request_key)
#   keydrop SERIAL          (on the host) invalidates the key
#   ns                      clone/clone3 with CLONE_NEWUSER, a plain fork, unshare(CLONE_NEWUSER)
#   uring                   io_uring_setup with one entry: "io_uring: ok" or the error
SYSCALL_PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, long rc) {
    if (rc < 0) printf("%s: %s\n", what, strerror(errno));
    else printf("%s: ok\n", what);
}

static void child_and_wait(const char *what, long pid) {
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
    report(what, pid);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "keyadd") && argc == 4) {
        long id = syscall(SYS_add_key, "user", argv[2], argv[3], strlen(argv[3]),
                          KEY_SPEC_USER_KEYRING);
        if (id < 0) { printf("add: %s\n", strerror(errno)); return 1; }
        printf("%ld\n", id);
    } else if (!strcmp(cmd, "keyread") && argc == 3) {
        char buf[256];
        long n = syscall(SYS_keyctl, KEYCTL_READ, atol(argv[2]), buf, sizeof buf - 1);
        if (n < 0) printf("read: %s\n", strerror(errno));
        else printf("read: %.*s\n", (int)(n < 255 ? n : 255), buf);
    } else if (!strcmp(cmd, "keyupdate") && argc == 4) {
        report("update",
               syscall(SYS_keyctl, KEYCTL_UPDATE, atol(argv[2]), argv[3], strlen(argv[3])));
    } else if (!strcmp(cmd, "keysearch") && argc == 3) {
        report("search",
               syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", argv[2], 0));
        report("request", syscall(SYS_request_key, "user", argv[2], NULL, 0));
    } else if (!strcmp(cmd, "keydrop") && argc == 3) {
        report("invalidate", syscall(SYS_keyctl, KEYCTL_INVALIDATE, atol(argv[2])));
    } else if (!strcmp(cmd, "ns")) {
        child_and_wait("clone newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
        struct clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = CLONE_NEWUSER;
        ca.exit_signal = SIGCHLD;
        child_and_wait("clone3 newuser", syscall(SYS_clone3, &ca, sizeof ca));
        child_and_wait("fork", fork());
        report("unshare newuser", unshare(CLONE_NEWUSER));
    } else if (!strcmp(cmd, "uring")) {
        struct io_uring_params params;
        memset(&params, 0, sizeof params);
        report("io_uring", syscall(SYS_io_uring_setup, 1, &params));
    } else {
        return 2;
    }
    return 0;
}
"""


def probe_binary(source: str = PROBE_C, name: str = "probe") -> str:
    """A static C program (no libc in the image), compiled once per source text into TEST_TMP."""
    cc = shutil.which("cc")
    if cc is None:
        raise harness.SetupError("cc not found: install the Debian packages gcc and libc6-dev "
                                 "(the test probes are static C programs)")
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    out = os.path.join(harness.TEST_TMP, f"{name}-{digest}")
    if not os.path.exists(out):
        tmp = f"{out}.{os.getpid()}"
        with open(tmp + ".c", "w") as fh:
            fh.write(source)
        proc = subprocess.run([cc, "-static", "-O2", "-o", tmp, tmp + ".c"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        os.unlink(tmp + ".c")
        if proc.returncode != 0:
            raise harness.SetupError(f"cannot build the probe (install libc6-dev): {proc.stdout}")
        os.replace(tmp, out)  # atomic: other test processes see all of it or nothing
    return out


class Tmux:
    """A tmux server on its own socket (tmux -S), killed in the test's cleanup."""

    def __init__(self, tc: unittest.TestCase, workdir: str):
        harness.require_tool("tmux")
        # A socket of our own (not in the shared /tmp/tmux-UID), removed with workdir.
        self.socket = os.path.join(workdir, f"tmux-{uuid.uuid4().hex[:8]}.sock")
        self.tc = tc
        tc.addCleanup(self.kill)

    def tmux(self, *args, check=True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["tmux", "-S", self.socket, *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=30)
        if check:
            self.tc.assertEqual(proc.returncode, 0, f"tmux {args}: {proc.stderr}")
        return proc

    def start(self, command: str, name: str = "s"):
        self.tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "30", command)

    def screen(self, name: str = "s") -> str:
        proc = self.tmux("capture-pane", "-p", "-t", name, check=False)
        return proc.stdout if proc.returncode == 0 else ""

    def type(self, text: str, name: str = "s"):
        self.tmux("send-keys", "-t", name, "-l", text)
        self.tmux("send-keys", "-t", name, "Enter")

    def alive(self, name: str = "s") -> bool:
        return self.tmux("has-session", "-t", name, check=False).returncode == 0

    def kill(self):
        self.tmux("kill-server", check=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)


# --------------------------------------------------------------------------
# Hostile images: the busybox image with one thing changed

def _busybox_binary() -> bytes:
    with open(harness.BUSYBOX, "rb") as fh:
        return fh.read()


def hostile_image(outdir: str, name: str, *, drop=(), extra=(), workdir="/srv",
                  cmd=("/bin/sh", "-c", "pwd"), user="") -> str:
    """Write an OCI layout of busybox's layer 1 minus `drop` plus `extra` entries; returns path."""
    binary = _busybox_binary()
    base = gen_images.busybox_layers(binary)[0].entries
    entries = [e for e in base if e.name not in drop] + list(extra)
    runtime = gen_images.runtime(list(cmd), env=(gen_images.DEFAULT_PATH,), workdir=workdir,
                                 user=user, labels={"org.example.test": "hostile-" + name})
    img = gen_images.Image([gen_images.Layer(entries, "gzip", f"hostile {name}")], runtime,
                           arch=gen_images.static_elf_arch(binary))
    job = gen_images.Job(name, [f"imgtool-test/hostile-{name}:latest"], [img], ("oci-layout",))
    gen_images.emit(job, outdir)
    return os.path.join(outdir, name + ".oci")


# --------------------------------------------------------------------------


class RunTest(unittest.TestCase):
    """Fresh store with the busybox image per test."""

    def setUp(self):
        self.root = harness.new_store(self)
        self.image_id = harness.pull(self, self.root, harness.image_path("busybox", FMT))
        self.work = os.path.realpath(harness.scratch_dir(self, "run-"))

    # ---- running ----------------------------------------------------------

    def run_ctr(self, *args, env=None, pass_fds=(), timeout=60, stdin=subprocess.DEVNULL,
                check_tmp=True) -> harness.Result:
        """`imgtool --root R run ARGS...`; checks mount table and tmp/ around it."""
        argv = harness.imgtool_argv(self.root, "run", *args)
        with host_mount_lock():
            before = host_mount_lines()
            proc = subprocess.run(argv, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env or harness.base_env(),
                                  pass_fds=pass_fds, timeout=timeout)
            after = host_mount_lines()
        res = harness.Result(argv, proc.returncode, proc.stdout.decode(errors="replace"),
                             proc.stderr.decode(errors="replace"))
        self.assertEqual(after, before, f"host mount table changed by run\n{res}")
        if check_tmp:
            self.assertEqual(harness.tmp_entries(self.root), [], f"left in tmp/\n{res}")
        return res

    def sh(self, script: str, *opts, image: str = IMAGE, **kw) -> harness.Result:
        return self.run_ctr(*opts, image, "sh", "-c", script, **kw)

    def ok(self, script: str, *opts, **kw) -> str:
        res = self.sh(script, *opts, **kw)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        return res.out

    def assert_run_error(self, res: harness.Result, rc: int, *needles) -> str:
        return harness.assert_one_error_line(self, res, "run", *needles, rc=rc)

    def popen_run(self, *args, **kw) -> subprocess.Popen:
        proc = harness.popen(self.root, "run", *args, **kw)

        return harness.reap_at_cleanup(self, proc)

    def layer_hashes(self, image: str = IMAGE) -> dict:
        [info] = harness.inspect(self, self.root, image)
        dirs = info["GraphDriver"]["Data"]["LowerDir"].split(":")
        return {d: treecmp.tree_hash(d) for d in dirs}


# --------------------------------------------------------------------------


class CommandTest(RunTest):

    def test_default_command_from_entrypoint_and_cmd(self):
        res = self.run_ctr(IMAGE)
        self.assertEqual((res.rc, res.out, res.err), (0, "hello from /srv\n", ""), str(res))
        res = self.run_ctr(self.image_id[len("sha256:"):][:12])  # an ID prefix works as well
        self.assertEqual((res.rc, res.out), (0, "hello from /srv\n"), str(res))
        res = self.run_ctr(IMAGE, "echo", "a", "b  c")
        self.assertEqual((res.rc, res.out), (0, "a b  c\n"), str(res))
        res = self.run_ctr("--entrypoint", "/bin/echo", IMAGE, "x", "y")
        self.assertEqual((res.rc, res.out), (0, "x y\n"), str(res))

    def test_exit_status_passthrough(self):
        for code in (0, 1, 42, 255):
            with self.subTest(code=code):
                res = self.sh(f"exit {code}")
                self.assertEqual((res.rc, res.out, res.err), (code, "", ""), str(res))

    def test_missing_command_is_127(self):
        res = self.run_ctr(IMAGE, "no-such-command", "arg")
        self.assert_run_error(res, 127, "exec no-such-command: executable file not found in $PATH")
        # A path is not looked up in $PATH: its own reason, as docker's
        # `exec: "/nonexistent/path": stat /nonexistent/path: no such file or directory` (also 127).
        for path in ("/no/such/path", "srv/no-such"):
            with self.subTest(path=path):
                res = self.run_ctr(IMAGE, path)
                line = self.assert_run_error(res, 127, f"exec {path}: no such file or directory in the container")
                self.assertNotIn("$PATH", line)

    def test_not_executable_is_126(self):
        res = self.run_ctr(IMAGE, "/etc/passwd")
        self.assert_run_error(res, 126, "/etc/passwd")
        res = self.run_ctr(IMAGE, "/srv")  # a directory
        self.assert_run_error(res, 126, "/srv")

    def test_killed_by_signal(self):
        # With --init the shell is not PID 1, so it can kill itself: init reports 128+9.
        res = self.sh("kill -9 $$", "--init")
        self.assertEqual((res.rc, res.err), (137, ""), str(res))
        # Without --init the command is PID 1 and immune to its own signals (as in docker);
        # a SIGKILL from the host kills it and imgtool reports 128+9.
        proc = self.popen_run(IMAGE, "sleep", "30")
        pid = wait_for(lambda: descendant_named(proc.pid, "sleep"), timeout=20)
        self.assertTrue(pid, "the container's sleep never started")
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 137, err)
        self.assertEqual(harness.tmp_entries(self.root), [])

    def test_unknown_image_is_125(self):
        res = self.run_ctr("no-such-image:latest")
        self.assert_run_error(res, 125, "no-such-image")


class EnvironmentTest(RunTest):

    def test_env_sources_and_precedence(self):
        env_file = os.path.join(self.work, "env")
        with open(env_file, "w") as fh:
            fh.write("# a comment\n\nFROM_FILE=file value\n  INDENTED=yes\nGREETING=from file\n"
                     "OVERRIDDEN=by file\n")
        env = harness.base_env(IMGTOOL_TEST_HOST_VAR="host value",
                               IMGTOOL_TEST_NOT_PASSED="must not leak")
        env.pop("IMGTOOL_TEST_UNSET", None)
        res = self.run_ctr("--env-file", env_file, "-e", "OVERRIDDEN=by cli", "-e",
                           "IMGTOOL_TEST_HOST_VAR", "-e", "IMGTOOL_TEST_UNSET", "-e", "EMPTY=",
                           IMAGE, "env", env=env)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        got = env_dict(res.out)
        self.assertRegex(got.pop("HOSTNAME", ""), r"^[0-9a-f]{12}$")  # the container's short ID
        self.assertEqual(got, {
            "PATH": gen_images.DEFAULT_PATH.split("=", 1)[1],
            "GREETING": "from file",
            "FROM_FILE": "file value",
            "INDENTED": "yes",
            "OVERRIDDEN": "by cli",
            "IMGTOOL_TEST_HOST_VAR": "host value",
            "EMPTY": "",
            "HOME": "/root",
        }, res.out)
        # The image's own value when nothing overrides it; -e replaces it.
        self.assertEqual(self.run_ctr(IMAGE).out, "hello from /srv\n")
        res = self.run_ctr("-e", "GREETING=bye", IMAGE)
        self.assertEqual((res.rc, res.out), (0, "bye from /srv\n"), str(res))

    def test_working_directory(self):
        self.assertEqual(self.ok("pwd"), "/srv\n")
        self.assertEqual(self.ok("pwd", "-w", "/etc"), "/etc\n")
        # A missing directory is created (in the container's writable layer only).
        hashes = self.layer_hashes()
        self.assertEqual(self.ok("pwd; ls -ld . | busybox cut -c1", "-w", "/new/dir"),
                         "/new/dir\nd\n")
        self.assertEqual(self.layer_hashes(), hashes)
        # -w wins over the image's WorkingDir (/srv) and changes nothing else.
        default, other = self.ok("pwd; ls -a /"), self.ok("pwd; ls -a /", "-w", "/etc")
        self.assertEqual(default.splitlines()[0], "/srv")
        self.assertEqual(other.splitlines()[0], "/etc")
        self.assertEqual(other.splitlines()[1:], default.splitlines()[1:])
        res = self.run_ctr("-w", "relative", IMAGE, "pwd")
        self.assert_run_error(res, 125, "relative")

    def test_user(self):
        self.assertEqual(self.ok('id -u; id -g; echo "$HOME"'), "0\n0\n/root\n")
        self.assertEqual(self.ok('id -u; id -g; id -G; echo "$HOME"', "-u", "user"),
                         "1000\n1000\n1000\n/home/user\n")
        self.assertEqual(self.ok("id -u; id -g", "-u", "1000:65534"), "1000\n65534\n")
        self.assertEqual(self.ok("id -u; id -g", "-u", "user:nogroup"), "1000\n65534\n")
        self.assertEqual(self.ok('id -u; id -g; echo "$HOME"', "-u", "4242"), "4242\n0\n/\n")
        self.assertEqual(self.ok('echo "$HOME"', "-u", "user", "-e", "HOME=/x"), "/x\n")
        res = self.sh("id", "-u", "nosuchuser")
        self.assert_run_error(res, 125, "nosuchuser")
        res = self.sh("id", "-u", "user:nosuchgroup")
        self.assert_run_error(res, 125, "nosuchgroup")


class NamespaceTest(RunTest):

    def test_pid_namespace(self):
        # "; true": otherwise sh execs ps, the last command, in its own place.
        out = self.ok("echo $$; ps -o pid,comm; true")
        lines = out.splitlines()
        self.assertEqual(lines[0], "1", "the command must be PID 1")
        self.assertEqual(lines[1].split(), ["PID", "COMMAND"], out)
        procs = sorted((int(pid), comm) for pid, comm in (ln.split(None, 1) for ln in lines[2:]))
        self.assertEqual(len(procs), 2, f"only sh and ps may be visible:\n{out}")
        self.assertEqual(procs[0], (1, "sh"), out)
        self.assertEqual(procs[1][1], "ps", out)
        host_pids = [p for p in os.listdir("/proc") if p.isdigit()]
        self.assertGreater(len(host_pids), 5, "host sanity check")
        # /proc is the container's own.
        out = self.ok("ls /proc | busybox grep -c '^[0-9]'")
        self.assertLessEqual(int(out), 3, out)

    def test_hostname(self):
        host = socket.gethostname()
        # Each container its own: the short form of a random container ID (docker's default).
        names = [self.ok("hostname; echo $HOSTNAME").split() for _ in range(2)]
        for short, env in names:
            self.assertRegex(short, r"^[0-9a-f]{12}$")
            self.assertEqual(env, short)
            self.assertNotEqual(short, host)
        self.assertNotEqual(names[0][0], names[1][0])
        self.assertEqual(self.ok("hostname", "--hostname", "box-x"), "box-x\n")
        # Changing it inside touches only the container's UTS namespace.
        self.assertEqual(self.ok("hostname changed-inside; hostname", "--privileged"),
                         "changed-inside\n")
        self.assertEqual(socket.gethostname(), host)

    def test_container_mounts_stay_inside(self):
        out = self.ok("mkdir -p /mnt && mount -t tmpfs inner-tmpfs /mnt && "
                      "busybox grep -c ' /mnt .* inner-tmpfs ' /proc/self/mountinfo",
                      "--privileged")
        self.assertEqual(out, "1\n")
        # While the container is alive, its mounts are not in the host's table.
        sync = os.path.join(self.work, "sync")
        os.mkdir(sync)
        with host_mount_lock():
            before = host_mount_lines()
            proc = self.popen_run("--privileged", "-v", f"{sync}:/sync", IMAGE, "sh", "-c",
                                  "mkdir -p /mnt && mount -t tmpfs inner-tmpfs /mnt && "
                                  "touch /sync/ready && "
                                  "while [ ! -e /sync/go ]; do sleep 0.05; done")
            ready = wait_for(lambda: os.path.exists(os.path.join(sync, "ready")) or
                             proc.poll() is not None, timeout=20)
            self.assertTrue(ready)
            self.assertIsNone(proc.poll(), "the container exited early")
            during = host_mount_lines()
            open(os.path.join(sync, "go"), "w").close()
            proc.communicate(timeout=20)
            after = host_mount_lines()
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(during, before, "container mounts visible on the host")
        self.assertEqual(after, before)
        self.assertEqual(harness.tmp_entries(self.root), [])

    def test_mounts_do_not_propagate_to_a_shared_parent(self):
        # systemd makes / shared: copies of it in the container would propagate mounts back
        # unless the container's tree is made private first.  Counted: mountinfo lines about
        # the test scratch space (where the container's root and all its mounts live).
        sync = os.path.join(self.work, "sync")
        os.mkdir(sync)
        script = (
            'mount --make-rshared / || exit 90\n'
            'before=$(grep -c -F "$5" /proc/self/mountinfo)\n'
            '"$1" --root "$2" run --privileged -v "$3:/sync" "$4" sh -c '
            '"mkdir -p /mnt && mount -t tmpfs inner-tmpfs /mnt && touch /sync/ready && '
            'while [ ! -e /sync/go ]; do sleep 0.05; done" &\n'
            'pid=$!\n'
            'n=0; while [ ! -e "$3/ready" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done\n'
            'during=$(grep -c -F "$5" /proc/self/mountinfo)\n'
            'inner=$(grep -c inner-tmpfs /proc/self/mountinfo)\n'
            'touch "$3/go"; wait $pid; rc=$?\n'
            'after=$(grep -c -F "$5" /proc/self/mountinfo)\n'
            'echo "$rc $before $during $after $inner"\n')
        proc = subprocess.run(["unshare", "-m", "--propagation", "shared", "sh", "-c", script,
                               "sh", harness.imgtool_binary(), self.root, sync, IMAGE,
                               os.path.realpath(harness.TEST_TMP) + "/"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.exists(os.path.join(sync, "ready")), proc.stderr)
        rc, before, during, after, inner = proc.stdout.split()
        self.assertEqual(rc, "0", proc.stderr)
        self.assertEqual((during, after, inner), (before, before, "0"),
                         "container mounts propagated to the parent namespace")
        self.assertEqual(harness.tmp_entries(self.root), [])


class FilesystemTest(RunTest):

    def test_writes_vanish(self):
        hashes = self.layer_hashes()
        self.ok("echo x > /srv/new; rm /srv/hello.txt; mkdir /newdir; ls /srv")
        out = self.ok("cat /srv/hello.txt; ls -a /srv; [ -e /newdir ] && echo newdir; true")
        self.assertEqual(out, HELLO + ".\n..\nhello.txt\n")
        self.assertEqual(self.layer_hashes(), hashes, "a container write reached a layer dir")
        with open(os.path.join(list(hashes)[0], "srv/hello.txt")) as fh:
            self.assertEqual(fh.read(), HELLO)

    def test_upper_keeps_changes(self):
        hashes = self.layer_hashes()
        upper = os.path.join(self.work, "upper")
        self.ok("echo x > /srv/new; rm /srv/hello.txt", "--upper", upper)
        with open(os.path.join(upper, "srv/new")) as fh:
            self.assertEqual(fh.read(), "x\n")
        self.assertTrue(harness.is_whiteout(os.lstat(os.path.join(upper, "srv/hello.txt"))),
                        "the deletion must be a whiteout in the upper dir")
        self.assertEqual(self.ok("ls /srv; cat /srv/new", "--upper", upper), "new\nx\n")
        self.assertEqual(self.ok("ls /srv"), "hello.txt\n", "without --upper: the image")
        self.assertEqual(self.layer_hashes(), hashes)

    def test_copy_driver_has_no_upper(self):
        # A copy is one writable tree, thrown away at the end: --upper would silently keep nothing.
        upper = os.path.join(self.work, "upper-copy")
        res = self.sh("echo x > /srv/new", "--driver", "copy", "--upper", upper)
        self.assert_run_error(res, 125, "--upper needs the overlay driver")
        self.assertFalse(os.path.exists(upper), "nothing made for a refused run")

    def test_read_only_root(self):
        res = self.sh("touch /x", "--read-only")
        self.assertNotEqual(res.rc, 0, str(res))
        self.assertIn("Read-only file system", res.err)
        self.assertEqual(self.ok("touch /x && echo ok"), "ok\n", "control: writable by default")
        self.assertEqual(self.ok("touch /scratch/x && echo ok", "--read-only", "--tmpfs",
                                 "/scratch"), "ok\n")

    def test_volumes(self):
        data = os.path.join(self.work, "vol")
        os.mkdir(data)
        with open(os.path.join(data, "in.txt"), "w") as fh:
            fh.write("from host\n")
        out = self.ok("cat /data/in.txt; echo back > /data/out.txt", "-v", f"{data}:/data")
        self.assertEqual(out, "from host\n")
        with open(os.path.join(data, "out.txt")) as fh:
            self.assertEqual(fh.read(), "back\n")
        res = self.sh("echo no > /data/ro.txt", "-v", f"{data}:/data:ro")
        self.assertNotEqual(res.rc, 0, str(res))
        self.assertIn("Read-only file system", res.err)
        self.assertFalse(os.path.exists(os.path.join(data, "ro.txt")))


class SecurityTest(RunTest):

    def test_masked_proc_paths(self):
        script = ('for f in /proc/kcore /proc/keys /proc/timer_list; do '
                  'if [ -e $f ]; then echo "$f $(busybox cat $f 2>/dev/null | busybox wc -c)"; '
                  'else echo "$f absent"; fi; done')
        for line in self.ok(script).splitlines():
            path, what = line.split(" ", 1)
            self.assertIn(what, ("0", "absent"), f"{path} readable with content: {line}")
        # Control: the host's timer_list has content, and --privileged does not mask it.
        with open("/proc/timer_list", "rb") as fh:
            self.assertGreater(len(fh.read()), 0)
        out = self.ok("busybox cat /proc/timer_list | busybox wc -c", "--privileged")
        self.assertGreater(int(out), 0, "control: --privileged must not mask /proc/timer_list")

    def test_proc_sys_is_read_only(self):
        res = self.sh("echo x > /proc/sys/kernel/domainname")
        self.assertNotEqual(res.rc, 0, str(res))
        self.assertIn("Read-only file system", res.err)
        res = self.sh("echo h > /proc/sysrq-trigger")
        self.assertNotEqual(res.rc, 0, str(res))
        # Control: writable with --privileged (in the container's own UTS namespace).
        self.assertEqual(self.ok("echo inner > /proc/sys/kernel/domainname && "
                                 "cat /proc/sys/kernel/domainname", "--privileged"), "inner\n")

    def test_mount_needs_privileged(self):
        res = self.sh("mkdir -p /mnt && mount -t tmpfs none /mnt")
        self.assertNotEqual(res.rc, 0, str(res))
        self.assertEqual(self.ok("mkdir -p /mnt && mount -t tmpfs none /mnt && "
                                 "busybox grep -c ' /mnt ' /proc/self/mountinfo",
                                 "--privileged"), "1\n")
        self.assertEqual(self.ok("mkdir -p /mnt && mount -t tmpfs none /mnt && echo ok",
                                 "--cap-add", "SYS_ADMIN"), "ok\n")

    def _caps(self, *opts) -> dict:
        return status_fields(self.ok("busybox grep ^Cap /proc/self/status", *opts))

    def test_default_capabilities(self):
        caps = self._caps()
        self.assertEqual(caps["CapEff"], DOCKER_DEFAULT_CAPS, caps)
        self.assertEqual(caps["CapPrm"], DOCKER_DEFAULT_CAPS, caps)
        self.assertEqual(caps["CapBnd"], DOCKER_DEFAULT_CAPS, caps)
        self.assertEqual(caps["CapAmb"], "0000000000000000", caps)
        caps = self._caps("--cap-drop", "ALL")
        self.assertEqual((caps["CapEff"], caps["CapPrm"], caps["CapBnd"]), ("0" * 16,) * 3, caps)
        caps = self._caps("--cap-drop", "CHOWN", "--cap-add", "NET_ADMIN")
        want = format((int(DOCKER_DEFAULT_CAPS, 16) & ~(1 << 0)) | (1 << 12), "016x")
        self.assertEqual(caps["CapEff"], want, caps)
        caps = self._caps("-u", "user")
        self.assertEqual((caps["CapEff"], caps["CapPrm"]), ("0" * 16,) * 2, caps)
        self.assertEqual(caps["CapBnd"], DOCKER_DEFAULT_CAPS, caps)
        res = self.sh("true", "--cap-add", "NO_SUCH_CAP")
        self.assert_run_error(res, 125, "NO_SUCH_CAP")

    def test_inheritable_capabilities_are_empty(self):
        # docker/moby CVE-2022-24769: a non-empty inheritable set lets a process that changes
        # to a non-root user regain capabilities through file-inheritable binaries.
        caps = self._caps()
        self.assertEqual(caps["CapInh"], "0000000000000000", caps)

    def test_only_standard_fds(self):
        # imgtool itself gets an extra inheritable fd: it must not reach the container.
        leak_r, leak_w = os.pipe()
        os.set_inheritable(leak_w, True)
        try:
            res = self.sh("sleep 5 & sleep 0.2; busybox ls -1 /proc/$!/fd", pass_fds=(leak_w,))
        finally:
            os.close(leak_r)
            os.close(leak_w)
        self.assertEqual((res.rc, res.out, res.err), (0, "0\n1\n2\n", ""), str(res))
        leak_r, leak_w = os.pipe()
        os.set_inheritable(leak_w, True)
        try:
            res = self.sh("sleep 5 & sleep 0.2; busybox ls -1 /proc/$!/fd", "--init",
                          pass_fds=(leak_w,))
        finally:
            os.close(leak_r)
            os.close(leak_w)
        self.assertEqual((res.rc, res.out, res.err), (0, "0\n1\n2\n", ""), str(res))

    def test_dev(self):
        out = self.ok("ls -1 /dev; stat -c '%n %F %t:%T %a' /dev/null /dev/zero /dev/full "
                      "/dev/random /dev/urandom /dev/tty")
        names = set(out.splitlines()[:-6])
        self.assertLessEqual({"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts",
                              "shm"}, names, out)
        self.assertEqual(out.splitlines()[-6:], [
            "/dev/null character special file 1:3 666",
            "/dev/zero character special file 1:5 666",
            "/dev/full character special file 1:7 666",
            "/dev/random character special file 1:8 666",
            "/dev/urandom character special file 1:9 666",
            "/dev/tty character special file 5:0 666",
        ])
        self.assertEqual(self.ok("busybox head -c 5 /dev/zero | busybox wc -c; "
                                 "echo gone > /dev/null && echo written"), "5\nwritten\n")
        # The standard nodes work on the nodev /dev (they are the host's, bind-mounted), and the
        # device cgroup lets them through.
        res = self.sh("busybox head -c 1 /dev/urandom | busybox wc -c; "
                      "busybox head -c 1 /dev/random | busybox wc -c; echo x > /dev/full")
        self.assertEqual(res.out, "1\n1\n", str(res))
        self.assertIn("No space left on device", res.err, "/dev/full must reach its driver")

    def test_standard_nodes_cannot_change_the_hosts(self):
        # They are bind mounts of the host's nodes, which share its inodes: read-only mounts, so
        # the container's root (CAP_FOWNER, CAP_CHOWN) cannot chmod, chown or touch /dev/null.
        # (Harmless attempts: were they to succeed, a timestamp and two ctimes would change.)
        before = {n: os.stat(f"/dev/{n}") for n in ("null", "zero", "full")}
        self.addCleanup(os.utime, "/dev/null",
                        ns=(before["null"].st_atime_ns, before["null"].st_mtime_ns))
        res = self.sh("busybox touch -d '2001-02-03 04:05' /dev/null; "
                      "busybox chmod 666 /dev/zero; busybox chown 0:0 /dev/full; "
                      "echo x > /dev/null && echo still-writable")
        self.assertEqual(res.out, "still-writable\n", str(res))
        self.assertEqual(res.err.count("Read-only file system"), 3, str(res))
        after = {n: os.stat(f"/dev/{n}") for n in ("null", "zero", "full")}
        self.assertEqual(after["null"].st_mtime_ns, before["null"].st_mtime_ns,
                         "the host's /dev/null was touched")
        self.assertEqual(after["zero"].st_ctime_ns, before["zero"].st_ctime_ns,
                         "the host's /dev/zero was chmod-ed")
        self.assertEqual(after["full"].st_ctime_ns, before["full"].st_ctime_ns,
                         "the host's /dev/full was chown-ed")

    def test_dev_null_must_be_the_null_device(self):
        # CVE-2025-31133: the masked paths are bind mounts of /dev/null; whatever covers it is
        # checked before (a host file there would be bound over /proc/kcore, /proc/keys...).
        notnull = os.path.join(self.work, "notnull")
        with open(notnull, "w") as fh:
            fh.write("a host file\n")
        res = self.run_ctr("-v", f"{notnull}:/dev/null", IMAGE, "busybox", "cat", "/proc/keys")
        self.assert_run_error(res, 125, "/dev/null", "not the null device")
        emptydir = os.path.join(self.work, "emptydir")
        os.mkdir(emptydir)
        res = self.run_ctr("-v", f"{emptydir}:/dev", IMAGE, "true")
        self.assert_run_error(res, 125, "/dev/null")
        with open(notnull) as fh:
            self.assertEqual(fh.read(), "a host file\n")
        self.assertEqual(os.listdir(emptydir), [])

    def test_init_is_not_dumpable(self):
        # runc CVE-2019-5736: --init's PID 1 is imgtool's own image; if the container could open
        # /proc/1/exe it could read (and, reopening it later, overwrite) the host's binary.
        script = ('echo "pid 1 is $(busybox cat /proc/1/comm)"; '
                  'for f in /proc/1/exe /proc/1/mem /proc/1/environ; do '
                  'if (exec 3<"$f") 2>/dev/null; then echo "$f opened"; '
                  'else echo "$f refused"; fi; done; '
                  'busybox readlink /proc/1/exe || echo "exe link refused"; '
                  '(exec 3<"/proc/$$/exe") && echo "own exe opened"')
        res = self.sh(script, "--init")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(res.out, "pid 1 is imgtool\n/proc/1/exe refused\n/proc/1/mem refused\n"
                                  "/proc/1/environ refused\nexe link refused\nown exe opened\n",
                         str(res))

    def test_device_nodes_in_the_root_are_inert(self):
        # One made in the container (CAP_MKNOD is in the default set)...
        res = self.sh("busybox mknod /srv/null2 c 1 3 && echo made; "
                      "echo x > /srv/null2 && echo WROTE; busybox cat /srv/null2 && echo READ; "
                      "true")
        self.assertEqual((res.rc, res.out), (0, "made\n"),
                         f"a device node on the root filesystem worked\n{res}")
        self.assertIn("Permission denied", res.err)
        # ...and one shipped in an image layer.
        path = hostile_image(self.work, "devnode",
                             extra=[gen_images.chardev("srv/zero", 1, 5),
                                    gen_images.chardev("srv/null", 1, 3)])
        harness.pull(self, self.root, path)
        res = self.sh("busybox head -c 1 /srv/zero && echo READ; echo x > /srv/null && "
                      "echo WROTE; ls -l /srv/zero | busybox cut -c1",
                      image="imgtool-test/hostile-devnode")
        self.assertEqual((res.rc, res.out), (0, "c\n"), str(res))
        self.assertIn("Permission denied", res.err)

    def test_network_none(self):
        self.assertEqual(self.ok("ls /sys/class/net", "--net", "none"), "lo\n")
        # lo is up (IFF_UP, 0x1): 127.0.0.1 answers, as in every runtime's "none".
        self.assertEqual(int(self.ok("cat /sys/class/net/lo/flags", "--net", "none"), 16) & 1, 1)
        out = self.ok("ping -c 1 -W 2 127.0.0.1 >/dev/null && echo reached", "--net", "none")
        self.assertEqual(out, "reached\n")
        # Control: the default shares the host's network.
        self.assertEqual(self.ok("ls /sys/class/net").split(), sorted(os.listdir("/sys/class/net")))


class InitLayerTest(RunTest):
    """docker's init layer: /etc/hosts, /etc/hostname and /etc/resolv.conf of the container's own,
    bind-mounted from files the run makes, never the image's stale ones; --tmpfs options; /dev."""

    def host_resolv(self) -> str:
        with open("/etc/resolv.conf") as fh:
            return fh.read()

    def test_own_files(self):
        out = self.ok("hostname; echo ---; cat /etc/hostname; echo ---; cat /etc/hosts; echo ---; "
                      "cat /etc/resolv.conf; echo ---; busybox grep -E ' /etc/(hosts|hostname|resolv.conf) ' /proc/mounts")
        name, hostname, hosts, resolv, mounts = out.split("---\n")
        name = name.strip()
        self.assertEqual(hostname, name + "\n")
        self.assertIn("127.0.0.1\tlocalhost\n", hosts)
        self.assertIn(f"127.0.1.1\t{name}\n", hosts)
        # The host's network: the host's resolvers, as they are.
        self.assertEqual(resolv.strip(), self.host_resolv().strip())
        # Bind mounts, read-write (docker's are).
        self.assertEqual(len(mounts.splitlines()), 3, mounts)
        for line in mounts.splitlines():
            self.assertIn(" rw,", line)
        # Name resolution of localhost and of the container's own name works without a network.
        out = self.ok("ping -c 1 -W 2 localhost >/dev/null && ping -c 1 -W 2 $(hostname) >/dev/null && echo ok",
                      "--net", "none")
        self.assertEqual(out, "ok\n")

    def test_add_host_dns_and_search(self):
        out = self.ok("cat /etc/hosts; echo ---; cat /etc/resolv.conf", "--add-host", "db:10.9.8.7",
                      "--add-host", "v6:fd00::1", "--dns", "192.0.2.53", "--dns-search", "corp.example",
                      "--hostname", "web")
        hosts, resolv = out.split("---\n")
        self.assertIn("10.9.8.7\tdb\n", hosts)
        self.assertIn("fd00::1\tv6\n", hosts)
        self.assertIn("127.0.1.1\tweb\n", hosts)
        self.assertEqual([l for l in resolv.splitlines() if l.startswith("nameserver")], ["nameserver 192.0.2.53"])
        self.assertTrue(resolv.startswith("search corp.example\n"), resolv)
        for bad in (["--add-host", "db"], ["--add-host", "db:not-an-ip"], ["--dns", "dns.example"],
                    ["--hostname", "h\n6.6.6.6 google.com"]):
            res = self.run_ctr(*bad, IMAGE, "true")
            self.assert_run_error(res, 125, bad[0])

    def test_own_network_drops_loopback_resolvers(self):
        # In --net none no resolver listens on the host's loopback: docker's rule drops those.
        out = self.ok("cat /etc/resolv.conf", "--net", "none")
        host_servers = [l.split()[1] for l in self.host_resolv().splitlines() if l.startswith("nameserver")]
        expected = [a for a in host_servers if not (a.startswith("127.") or a == "::1")] or ["8.8.8.8", "8.8.4.4"]
        self.assertEqual([l.split()[1] for l in out.splitlines() if l.startswith("nameserver")], expected)

    def test_image_files_are_replaced_never_followed(self):
        # A stale /etc/hosts and a resolv.conf symlink (Debian's systemd-resolved layout, here aimed
        # at a host file): the container sees its own; the image's layer and the host are untouched.
        ref = "imgtool-test/hostile-etc"
        path = hostile_image(self.work, "etc", extra=[
            gen_images.f("etc/hosts", b"10.0.0.1 stale-build-host\n"),
            gen_images.sym("etc/resolv.conf", "/../../../../etc/shadow"),
            gen_images.sym("etc/hostname", "../run/missing/hostname")])
        harness.pull(self, self.root, path)
        hashes = self.layer_hashes(ref)
        with open("/etc/shadow", "rb") as fh:
            shadow = fh.read()
        out = self.ok("cat /etc/hosts /etc/resolv.conf /etc/hostname; ls /run 2>/dev/null || echo no-run", image=ref)
        self.assertTrue(out.endswith("no-run\n"), out)  # the hostname symlink's target was not made
        self.assertNotIn("stale-build-host", out)
        self.assertIn("localhost", out)
        self.assertNotIn("root:", out)
        self.assertEqual(self.layer_hashes(ref), hashes)
        with open("/etc/shadow", "rb") as fh:
            self.assertEqual(fh.read(), shadow)
        # A writable run can write its hosts file; the next run starts from its own again.
        self.ok("echo 10.1.1.1 extra-entry >> /etc/hosts && busybox grep -c extra-entry /etc/hosts", image=ref)
        self.assertNotIn("extra-entry", self.ok("cat /etc/hosts", image=ref))

    def test_etc_symlink_gets_no_init_layer(self):
        # An image whose /etc is a symlink (to /srv/etc here): the shared init layer would hide it
        # behind a directory, so none is stacked; the container still gets its own files, made
        # through the symlink inside its root as before.
        ref = "imgtool-test/hostile-etclink"
        path = hostile_image(self.work, "etclink", drop=("etc", "etc/group", "etc/hostname", "etc/passwd"),
                             extra=[gen_images.d("srv/etc"), gen_images.f("srv/etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                                    gen_images.f("srv/etc/group", b"root:x:0:\n"), gen_images.sym("etc", "srv/etc")])
        harness.pull(self, self.root, path)
        out = self.ok("readlink /etc; cat /etc/passwd; grep -c localhost /etc/hosts", image=ref)
        self.assertEqual(out.splitlines()[:2], ["srv/etc", "root:x:0:0::/root:/bin/sh"])
        self.assertNotEqual(out.splitlines()[2], "0")
        self.assertEqual(os.listdir(os.path.join(self.root, "inits")), [])

    def test_with_read_only_root(self):
        out = self.ok("cat /etc/hostname; touch /etc/x 2>/dev/null || echo ro", "--read-only", "--hostname", "roh")
        self.assertEqual(out, "roh\nro\n")

    def test_volume_over_hosts_wins(self):
        mine = os.path.join(self.work, "myhosts")
        with open(mine, "w") as fh:
            fh.write("1.2.3.4 mine\n")
        self.assertEqual(self.ok("cat /etc/hosts", "-v", f"{mine}:/etc/hosts:ro"), "1.2.3.4 mine\n")

    def test_tmpfs_options(self):
        out = self.ok("busybox grep ' /run ' /proc/mounts; busybox stat -c '%a %u' /run",
                      "--tmpfs", "/run:size=1m,mode=700,uid=1000")
        mount, st = out.splitlines()
        self.assertEqual(mount.split()[:3], ["tmpfs", "/run", "tmpfs"])
        opts = mount.split()[3].split(",")
        for want in ("rw", "nosuid", "nodev", "noexec", "size=1024k", "mode=700", "uid=1000"):
            self.assertIn(want, opts, mount)
        self.assertEqual(st, "700 1000")
        opts = self.ok("busybox grep ' /x ' /proc/mounts", "--tmpfs", "/x:exec,ro").split()[3].split(",")
        self.assertIn("ro", opts)
        self.assertNotIn("noexec", opts)
        self.assertIn("nodev", opts)
        self.assertFalse(os.path.exists(os.path.join(self.work, "run:size=1m")))
        for bad, needle in (("/run:size=lots", "size=lots"), ("/run:dev", "dev"), ("run", "absolute")):
            self.assert_run_error(self.run_ctr("--tmpfs", bad, IMAGE, "true"), 125, "--tmpfs", needle)

    def test_dev_is_nosuid_not_noexec(self):
        line = self.ok("busybox grep ' /dev ' /proc/mounts")
        opts = line.split()[3].split(",")
        self.assertIn("nosuid", opts)
        self.assertIn("mode=755", opts)
        self.assertNotIn("noexec", opts)

    def test_init_shows_no_host_command_line(self):
        out = self.ok("cat /proc/1/cmdline | tr '\\0' ' '", "--init")
        self.assertTrue(out.startswith("imgtool-init -- sh -c"), out)
        for host_part in (self.root, harness.imgtool_binary(), "--root", "run"):
            self.assertNotIn(host_part, out.replace("imgtool-init", ""))


class SeccompTest(RunTest):
    """The seccomp filter (docker's most important blocks): the kernel keyring, which is not
    namespaced, and new namespaces or mounts without CAP_SYS_ADMIN. --privileged has none, as
    docker's."""

    def setUp(self):
        super().setUp()
        self.probe = probe_binary(SYSCALL_PROBE_C, "syscall-probe")

    def probe_in(self, script: str, *opts) -> str:
        """Runs script (with /probe) in a container; its stdout."""
        return self.ok(script, "-v", f"{self.probe}:/probe:ro", *opts)

    def host_probe(self, *args) -> str:
        proc = subprocess.run([self.probe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr + proc.stdout)
        return proc.stdout

    def test_filter_is_on_without_no_new_privs(self):
        # Mode 2 is a filter; no_new_privs stays off (setuid binaries work, as in docker's
        # containers), whoever the command runs as: the filter is loaded before the user changes.
        fields = "busybox grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"
        want = {"Seccomp": "2", "NoNewPrivs": "0"}
        for opts in ((), ("-u", "user"), ("--cap-add", "SYS_ADMIN"), ("--init",)):
            with self.subTest(opts=opts):
                got = status_fields(self.ok(fields, *opts))
                self.assertEqual({k: got.get(k) for k in want}, want, got)
        # --init: imgtool's own PID 1 is filtered too (it loads the filter before it forks).
        got = status_fields(self.ok("busybox grep -E '^Seccomp:' /proc/1/status", "--init"))
        self.assertEqual(got.get("Seccomp"), "2", got)
        got = status_fields(self.ok(fields, "--privileged"))
        self.assertEqual(got.get("Seccomp"), "0", f"control: --privileged has no filter {got}")

    def test_security_opt(self):
        fields = "busybox grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; /probe keysearch imgtool-none"
        out = self.probe_in(fields, "--security-opt", "seccomp=unconfined")
        self.assertEqual(status_fields(out).get("Seccomp"), "0", out)
        # Unconfined, keyctl reaches the kernel (which finds no such key) instead of EPERM.
        self.assertNotIn("search: Operation not permitted", out)
        out = self.probe_in(fields, "--security-opt", "no-new-privileges")
        self.assertEqual({k: status_fields(out).get(k) for k in ("Seccomp", "NoNewPrivs")},
                         {"Seccomp": "2", "NoNewPrivs": "1"}, out)
        self.assertIn("search: Operation not permitted", out)
        # (seccomp=PROFILE.json is supported: test_seccomp.)
        for bad in ("apparmor=unconfined", "seccomp=", "label=disable"):
            self.assert_run_error(self.run_ctr("--security-opt", bad, IMAGE, "true"), 125, "--security-opt", bad)

    def test_host_keyring_is_out_of_reach(self):
        # Container uid 0 is host uid 0: without the filter it shares root's user keyring.
        desc = f"imgtool-test-{uuid.uuid4().hex[:12]}"
        secret = f"hunter2-{uuid.uuid4().hex[:8]}"
        serial = self.host_probe("keyadd", desc, secret).strip()
        self.addCleanup(self.host_probe, "keydrop", serial)
        self.assertEqual(self.host_probe("keyread", serial), f"read: {secret}\n")
        script = (f"/probe keyread {serial}; /probe keyupdate {serial} replaced-by-the-container; "
                  f"/probe keysearch {desc}")
        denied = ("read: Operation not permitted\nupdate: Operation not permitted\n"
                  "search: Operation not permitted\nrequest: Operation not permitted\n")
        for opts in ((), ("-u", "user"), ("--cap-add", "SYS_ADMIN"), ("--cap-add", "ALL")):
            with self.subTest(opts=opts):
                self.assertEqual(self.probe_in(script, *opts), denied)
        self.assertEqual(self.host_probe("keyread", serial), f"read: {secret}\n", "the key changed")
        # Control: the same probe without the filter reads and replaces the host's key.
        out = self.probe_in(script, "--privileged")
        self.assertEqual(out.splitlines()[:2], [f"read: {secret}", "update: ok"], out)
        self.assertEqual(self.host_probe("keyread", serial), "read: replaced-by-the-container\n")

    def test_no_new_namespaces_without_sys_admin(self):
        # A nested user namespace would give the container's root a full capability set to attack
        # the kernel with; clone3 says ENOSYS so that libc falls back to clone, whose flags are
        # checked.
        want = ("clone newuser: Operation not permitted\nclone3 newuser: Function not implemented\n"
                "fork: ok\nunshare newuser: Operation not permitted\n")
        self.assertEqual(self.probe_in("/probe ns"), want)
        self.assertEqual(self.probe_in("/probe ns", "-u", "user"), want)
        res = self.sh("unshare -U true; unshare -Urm true; echo $?")
        self.assertEqual(res.out, "1\n", str(res))
        self.assertEqual(res.err.count("Operation not permitted"), 2, str(res))
        # Docker lets CAP_SYS_ADMIN have them (the kernel then decides); --privileged has no filter.
        allowed = "clone newuser: ok\nclone3 newuser: ok\nfork: ok\nunshare newuser: ok\n"
        self.assertEqual(self.probe_in("/probe ns", "--cap-add", "SYS_ADMIN"), allowed)
        self.assertEqual(self.probe_in("/probe ns", "--privileged"), allowed)
        self.assertEqual(self.ok("unshare -Urm id -u", "--cap-add", "SYS_ADMIN"), "0\n")

    def test_io_uring_is_refused(self):
        # As docker's profile since moby 25: whatever the capabilities.
        if self.host_probe("uring") != "io_uring: ok\n":
            self.skipTest("this kernel refuses io_uring (kernel.io_uring_disabled or not built)")
        for opts in ((), ("--cap-add", "ALL")):
            with self.subTest(opts=opts):
                self.assertEqual(self.probe_in("/probe uring", *opts),
                                 "io_uring: Operation not permitted\n")
        self.assertEqual(self.probe_in("/probe uring", "--privileged"), "io_uring: ok\n",
                         "control: no filter")


class DeviceTest(RunTest):
    """Device nodes the container makes (CAP_MKNOD is in docker's default set) or finds in its
    image reach no device: nodev on every filesystem it can write, and a device cgroup (cgroup v1
    devices and/or a cgroup v2 BPF filter) for what nodev cannot cover."""

    def node_result(self, path: str, *opts, dev: str = "c 1 7") -> harness.Result:
        """mknod PATH, then write to it: the errors say how far the write got."""
        res = self.sh(f"busybox mknod {path} {dev} || exit 90; echo x > {path}", *opts)
        self.assertNotEqual(res.rc, 90, f"mknod failed\n{res}")
        return res

    def assert_inert(self, res: harness.Result, why: str = "Permission denied"):
        # 1:7 is /dev/full, which the device cgroup allows: only nodev (EACCES) stops the write;
        # a write that reaches the driver fails with ENOSPC.
        self.assertNotIn("No space left on device", res.err, f"the node worked\n{res}")
        self.assertIn(why, res.err, str(res))

    def assert_usable(self, res: harness.Result):
        self.assertIn("No space left on device", res.err, f"the node did not work\n{res}")

    def test_nodes_made_in_the_container_are_inert(self):
        vol = os.path.join(self.work, "vol")
        os.mkdir(vol)
        cases = {
            "/dev": ("/dev/full2",),
            "/dev/shm": ("/dev/shm/full2",),
            "overlay root": ("/srv/full2",),
            "copy-driver root": ("/srv/full2", "--driver", "copy"),
            "--tmpfs": ("/scratch/full2", "--tmpfs", "/scratch"),
            "-v": ("/data/full2", "-v", f"{vol}:/data"),
        }
        for what, (path, *opts) in cases.items():
            with self.subTest(filesystem=what):
                self.assert_inert(self.node_result(path, *opts))

    def test_privileged_lifts_nodev_on_dev_and_volumes(self):
        # As docker's --privileged: no device cgroup, and /dev (and volumes) without nodev.
        self.assert_usable(self.node_result("/dev/full2", "--privileged"))
        vol = os.path.join(self.work, "vol")
        os.mkdir(vol)
        if not os.statvfs(vol).f_flag & os.ST_NODEV:  # the host's own filesystem allows nodes
            self.assert_usable(self.node_result("/data/full2", "--privileged",
                                                "-v", f"{vol}:/data"))
        # The image's nodes stay inert on the root, privileged or not.
        self.assert_inert(self.node_result("/srv/full2", "--privileged"))

    def test_kernel_log_and_disk_are_unreachable(self):
        # The attack from issue 12: a node for /dev/kmsg, then a write to it; and the raw disk.
        # Only read-only opens of the disk, so that a regression is never destructive.
        log = KernelLog(self)
        marker = f"imgtool-test-kmsg-{uuid.uuid4().hex}"
        res = self.sh(f"busybox mknod /dev/k c 1 11 && echo {marker} > /dev/k; "
                      f"busybox mknod /dev/x b {host_disk()} && "
                      "busybox head -c 1 /dev/x | busybox wc -c")
        # EACCES from nodev or EPERM from the device cgroup: the driver is never reached.
        denied = "(Permission denied|Operation not permitted)"
        self.assertRegex(res.err, f"can't create /dev/k: {denied}")
        self.assertRegex(res.err, f"head: /dev/x: {denied}")
        self.assertEqual(res.out, "0\n", str(res))
        time.sleep(0.2)
        self.assertNotIn(marker, log.new_records(), "the container wrote to the host's kernel log")
        # Control: the same write from a --privileged container (no nodev, no device cgroup)
        # does reach the kernel log, so the reading above would have seen it.
        control = marker + "-privileged-control"
        self.ok(f"busybox mknod /dev/k c 1 11 && echo {control} > /dev/k", "--privileged")
        self.assertTrue(wait_for(lambda: control in log.new_records(), timeout=5),
                        "control: the --privileged write never showed up in /dev/kmsg")

    def test_device_cgroup_stops_what_nodev_cannot(self):
        # With CAP_SYS_ADMIN the container can mount a filesystem without nodev: then only the
        # device cgroup stands between its nodes and the host's devices (as in docker).
        script = ("busybox mkdir -p /mnt && busybox mount -t tmpfs plain /mnt || exit 90; "
                  "busybox mknod /mnt/null c 1 3 && echo x > /mnt/null && echo null-works; "
                  "busybox mknod /mnt/full c 1 7 && echo x > /mnt/full; "
                  "busybox mknod /mnt/k c 1 11 && ( : > /mnt/k ); "
                  f"busybox mknod /mnt/x b {host_disk()} && busybox head -c 1 /mnt/x; true")
        res = self.sh(script, "--cap-add", "SYS_ADMIN")
        if not any(cgroup_mounts().values()):
            # No hierarchy here at all: imgtool must refuse rather than run unprotected.
            self.assert_run_error(res, 125, "no device cgroup", "SYS_ADMIN")
            return
        self.assertEqual((res.rc, res.out), (0, "null-works\n"), str(res))
        self.assertIn("No space left on device", res.err, "control: 1:7 is allowed\n" + str(res))
        self.assertIn("can't create /mnt/k: Operation not permitted", res.err, str(res))
        self.assertIn("head: /mnt/x: Operation not permitted", res.err, str(res))

    def _container_in_cgroups(self, *opts):
        """Starts a container that waits for the test; returns (proc, its PID 1, sync dir)."""
        sync = os.path.join(self.work, "sync")
        os.mkdir(sync)
        proc = self.popen_run("-v", f"{sync}:/sync", *opts, IMAGE, "sh", "-c",
                              "touch /sync/ready; while [ ! -e /sync/go ]; do sleep 0.05; done")
        self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(sync, "ready")) or
                                 proc.poll() is not None, timeout=20))
        self.assertIsNone(proc.poll(), "the container exited early")
        pid = descendant_named(proc.pid, "sh")
        self.assertTrue(pid, "no container process")
        return proc, pid, sync

    def _finish(self, proc, sync):
        open(os.path.join(sync, "go"), "w").close()
        _, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, err)

    def _check_hierarchy(self, version: str):
        if cgroup_mounts()[version] is None:
            self.skipTest(f"no cgroup {version} {'devices ' if version == 'v1' else ''}hierarchy "
                          "is mounted on this host")
        proc, pid, sync = self._container_in_cgroups()
        ours = cgroup_dirs(os.getpid())[version]
        cg = cgroup_dirs(pid)[version]
        self.assertEqual(os.path.dirname(cg), ours.rstrip("/"), "a child of imgtool's own cgroup")
        self.assertTrue(os.path.basename(cg).startswith(f"imgtool-{proc.pid}-"), cg)
        # A host process that joins this cgroup only (nothing else restricts it, and the host's
        # /dev is not nodev) gets exactly the container's device rights.
        joined = subprocess.run([sys.executable, "-c", JOIN_CGROUP_AND_OPEN,
                                 os.path.join(cg, "cgroup.procs"), "/dev/kmsg:w", "/dev/null:w",
                                 "/dev/full:w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, timeout=30)
        self.assertEqual(joined.returncode, 0, joined.stderr)
        self.assertEqual(joined.stdout, "/dev/kmsg EPERM\n/dev/null opened\n/dev/full opened\n")
        if version == "v1":
            with open(os.path.join(cg, "devices.list")) as fh:
                self.assertEqual(set(fh.read().splitlines()), DOCKER_DEVICE_RULES)
        self._finish(proc, sync)
        self.assertFalse(os.path.exists(cg), "the container's cgroup outlived it")

    def test_device_cgroup_v1(self):
        self._check_hierarchy("v1")

    def test_device_cgroup_v2_bpf_filter(self):
        self._check_hierarchy("v2")

    def test_device_cgroup_removed_when_the_command_is_killed(self):
        if not any(cgroup_mounts().values()):
            self.skipTest("no cgroup v1 devices or cgroup v2 hierarchy is mounted on this host")
        proc, pid, _ = self._container_in_cgroups()
        dirs = cgroup_dirs(pid)
        self.assertTrue(all("/imgtool-" in d for d in dirs.values()), dirs)
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 137, err)
        self.assertEqual([d for d in dirs.values() if os.path.exists(d)], [])

    def test_cgroup_of_a_killed_imgtool_is_removed_by_the_next_run(self):
        if not any(cgroup_mounts().values()):
            self.skipTest("no cgroup v1 devices or cgroup v2 hierarchy is mounted on this host")
        proc, pid, _ = self._container_in_cgroups()
        dirs = cgroup_dirs(pid)
        proc.kill()
        proc.communicate(timeout=20)
        self.assertTrue(wait_for(lambda: proc_comm(pid) is None, timeout=10),
                        "the container outlived imgtool")
        self.assertEqual(self.ok("true", check_tmp=False), "")
        self.assertEqual([d for d in dirs.values() if os.path.exists(d)], [])

    def test_no_device_cgroup_on_privileged(self):
        if not any(cgroup_mounts().values()):
            self.skipTest("no cgroup v1 devices or cgroup v2 hierarchy is mounted on this host")
        # Seen from the host: inside, the container's cgroup namespace shows "/" either way.
        for opts, own in ((("--privileged",), False), ((), True)):
            proc, pid, sync = self._container_in_cgroups(*opts)
            with open(f"/proc/{pid}/cgroup") as fh:
                text = fh.read()
            self._finish(proc, sync)
            self.assertEqual("/imgtool-" in text, own, f"{opts}: {text}")
            shutil.rmtree(sync)

    def test_without_a_device_cgroup(self):
        # A read-only cgroupfs (as inside many containers): no device cgroup can be made. nodev
        # still keeps nodes inert, unless the container may mount: then imgtool refuses to run.
        mounts = [m for m in cgroup_mounts().values() if m]
        script = ('while [ "$1" != -- ]; do mount -o remount,bind,ro "$1" || exit 90; shift; '
                  'done; shift; exec "$@"')

        def run(*args) -> harness.Result:
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                    *mounts, "--", *harness.imgtool_argv(self.root, "run", *args)]
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, timeout=60)
            return harness.Result(argv, proc.returncode, proc.stdout, proc.stderr)

        res = run(IMAGE, "sh", "-c", "busybox mknod /dev/full2 c 1 7 && echo x > /dev/full2; "
                                     "busybox ls /sys/fs/cgroup")
        self.assertNotEqual(res.rc, 90, str(res))
        self.assert_inert(res)
        self.assertEqual(res.out, "", "no cgroup of its own to show")
        res = run("--cap-add", "SYS_ADMIN", IMAGE, "true")
        self.assert_run_error(res, 125, "no device cgroup", "SYS_ADMIN")
        self.assertEqual(harness.tmp_entries(self.root), [])


class SignalTest(RunTest):

    def test_sigterm_with_init(self):
        proc = self.popen_run("--init", IMAGE, "sleep", "30")
        sleep = wait_for(lambda: descendant_named(proc.pid, "sleep"), timeout=20)
        self.assertTrue(sleep, "the container's sleep never started")
        # PID 1 of a namespace ignores SIGTERM until it has a handler: wait for init's.
        with open(f"/proc/{sleep}/stat") as fh:
            init = int(fh.read().rsplit(")", 1)[1].split()[1])
        self.assertEqual(proc_comm(init), "imgtool", "--init: imgtool's init is sleep's parent")
        self.assertTrue(wait_for(lambda: catches(init, signal.SIGTERM), timeout=20),
                        "init never installed its SIGTERM handler")
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 143, err)  # -15 would be imgtool dying of it
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(harness.tmp_entries(self.root), [])

    def test_sigterm_forwarded_without_init(self):
        proc = self.popen_run(IMAGE, "sh", "-c",
                              'trap "exit 7" TERM; echo ready; while :; do sleep 0.1; done')
        self.assertEqual(proc.stdout.readline(), b"ready\n")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 7, err)

    def test_init_reaps_zombies(self):
        # An orphan dies after 0.1 s; PID 1 (sleep without --init, imgtool's init with it)
        # inherits it; ps looks for zombies after 0.5 s.
        script = "(sleep 0.1 &); (sleep 0.6; ps -o pid,stat,comm) & exec sleep 1.2"
        out = self.ok(script)
        self.assertRegex(out, r"(?m)^\s*\d+\s+Z", "control: a non-reaping PID 1 keeps a zombie")
        out = self.ok(script, "--init")
        self.assertIn("sleep", out)
        self.assertNotRegex(out, r"(?m)^\s*\d+\s+Z", f"zombie left with --init:\n{out}")

    def test_sigkill_of_imgtool_kills_the_container(self):
        with host_mount_lock():
            before = host_mount_lines()
            proc = self.popen_run(IMAGE, "sleep", "30")
            pid = wait_for(lambda: descendant_named(proc.pid, "sleep"), timeout=20)
            self.assertTrue(pid, "the container's sleep never started")
            proc.kill()
            proc.communicate(timeout=20)
            gone = wait_for(lambda: proc_comm(pid) != "sleep" or proc_state(pid) == "Z",
                            timeout=10)
            self.assertTrue(gone, "the container outlived imgtool")
            after = host_mount_lines()
        self.assertEqual(after, before)
        # The next imgtool clears what the killed one left in tmp/.
        harness.images_json(self, self.root)
        self.assertEqual(harness.tmp_entries(self.root), [])


def proc_start_time(pid: int):
    """Field 22 of /proc/PID/stat (start time in clock ticks after boot), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


def kill_if_same(pid: int, start: str):
    """SIGKILL pid if it is still the process that started at `start` (a test's cleanup)."""
    if proc_start_time(pid) == start:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# PID 1 of the container execs a copy of busybox that is setuid to nobody: the kernel clears the
# parent-death signal on such an exec, for good (the finding's reproduction).
SETUID_SLEEP = ("mkdir /s && cp /bin/busybox /s/sleep && chown 65534 /s/sleep && "
                "chmod 4755 /s/sleep && exec /s/sleep 31")


class LifetimeTest(RunTest):
    """A container never outlives its `run`, even when imgtool is killed with SIGKILL after the
    container's processes changed credentials (which clears PR_SET_PDEATHSIG); and while it lives,
    its writable layer names it (tmp/AREA/container.pid) so other imgtool commands leave it
    alone."""

    def assert_dies_with_imgtool(self, *args, user: str = "65534"):
        """Starts `run ARGS` (whose command ends as `sleep`), checks that sleep runs with `user` as
        its effective uid, SIGKILLs imgtool and wants the sleep gone."""
        with host_mount_lock():
            before = host_mount_lines()
            # No pipes: a container that survived would hold them open.
            proc = self.popen_run(*args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sleep = wait_for(lambda: descendant_named(proc.pid, "sleep"), timeout=20)
            self.assertTrue(sleep, f"the container's sleep never started: {args}")
            start = proc_start_time(sleep)
            self.addCleanup(kill_if_same, sleep, start)  # should the test fail
            with open(f"/proc/{sleep}/status") as fh:
                uids = status_fields(fh.read())["Uid"].split()
            self.assertEqual(uids[1], user, f"the sleep's real, effective, saved, fs uids: {uids}")
            proc.kill()
            proc.wait(timeout=20)
            gone = wait_for(lambda: proc_start_time(sleep) != start or proc_state(sleep) == "Z",
                            timeout=10)
            self.assertTrue(gone, f"the container outlived imgtool: {args}")
            after = host_mount_lines()
        self.assertEqual(after, before)
        harness.images_json(self, self.root)  # the next imgtool clears what the killed one left
        self.assertEqual(harness.tmp_entries(self.root), [])

    def test_user_switch_does_not_let_the_container_outlive_imgtool(self):
        # setresuid clears the parent-death signal: -u, and the image's own User.
        self.assert_dies_with_imgtool("-u", "65534", IMAGE, "sleep", "31")
        path = hostile_image(self.work, "user-nobody", user="nobody")
        harness.pull(self, self.root, path)
        self.assert_dies_with_imgtool("imgtool-test/hostile-user-nobody", "sleep", "31")

    def test_init_rearms_the_parent_death_signal(self):
        # --init's PID 1 is imgtool's and changes user before it forks the command: only its
        # re-armed parent-death signal takes the namespace down with imgtool.
        self.assert_dies_with_imgtool("--init", "-u", "65534", IMAGE, "sleep", "31")
        self.assert_dies_with_imgtool("--init", "-u", "user", IMAGE, "sleep", "31", user="1000")

    def test_setuid_exec_does_not_let_the_container_outlive_imgtool(self):
        # No re-arming can help here: the supervisor outside the container's PID namespace can.
        self.assert_dies_with_imgtool(IMAGE, "sh", "-c", SETUID_SLEEP)
        self.assert_dies_with_imgtool("--init", IMAGE, "sh", "-c", SETUID_SLEEP)

    def test_supervisor_is_invisible_in_the_container(self):
        # The command is still PID 1 of its own namespace, whose parent is outside it (ppid 0).
        out = self.ok("echo $$; busybox awk '{print $4}' /proc/1/stat; "
                      "ls /proc | busybox grep -c '^[0-9]'")
        self.assertEqual(out.splitlines()[:2], ["1", "0"], out)
        self.assertLessEqual(int(out.splitlines()[2]), 3, out)

    def test_supervisor_holds_nothing_of_the_host(self):
        sync = os.path.join(self.work, "sync")
        os.mkdir(sync)
        proc = self.popen_run("-v", f"{sync}:/sync", IMAGE, "sh", "-c",
                              "touch /sync/ready; while [ ! -e /sync/go ]; do sleep 0.05; done")
        try:
            self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(sync, "ready")),
                                     timeout=20))
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
                [supervisor] = [int(p) for p in fh.read().split()]
            with open(f"/proc/{supervisor}/status") as fh:
                status = status_fields(fh.read())
            with open(f"/proc/{supervisor}/stat") as fh:
                pgid, sid = (int(f) for f in fh.read().rsplit(")", 1)[1].split()[2:4])
            # PID 1 of a namespace of its own, the container's PID 1 below it.
            self.assertEqual(status["NSpid"].split(), [str(supervisor), "1"], status)
            sh = descendant_named(proc.pid, "sh")
            with open(f"/proc/{sh}/status") as fh:
                self.assertEqual(status_fields(fh.read())["NSpid"].split()[1:], ["2", "1"])
            # A session of its own: signals from the user's terminal reach imgtool, which forwards
            # them once, not the supervisor too.
            self.assertEqual((pgid, sid), (supervisor, supervisor))
            # No fd of the host but /dev/null on 0-2.
            fds = {int(fd): os.readlink(f"/proc/{supervisor}/fd/{fd}")
                   for fd in os.listdir(f"/proc/{supervisor}/fd")}
            self.assertEqual(fds, {0: "/dev/null", 1: "/dev/null", 2: "/dev/null"})
        finally:
            open(os.path.join(sync, "go"), "w").close()
            _, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, err)

    def _area(self) -> str:
        areas = harness.tmp_entries(self.root)
        self.assertEqual(len(areas), 1, areas)
        return os.path.join(self.root, "tmp", areas[0])

    def test_container_pid_file_names_the_live_container(self):
        for opts in ((), ("--init",)):
            with self.subTest(opts=opts):
                sync = os.path.join(self.work, f"sync{len(opts)}")
                os.mkdir(sync)
                proc = self.popen_run(*opts, "-v", f"{sync}:/sync", IMAGE, "sh", "-c",
                                      "touch /sync/ready; "
                                      "while [ ! -e /sync/go ]; do sleep 0.05; done")
                try:
                    self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(sync, "ready")) or
                                             proc.poll() is not None, timeout=20))
                    self.assertIsNone(proc.poll(), "the container exited early")
                    area = self._area()
                    pid_file = os.path.join(area, "container.pid")
                    self.assertTrue(os.path.exists(pid_file),
                                    f"no container.pid in {os.listdir(area)}")
                    with open(pid_file) as fh:
                        text = fh.read()
                    m = re.fullmatch(r"([1-9][0-9]*) ([0-9]+) ([1-9][0-9]*) ([0-9]+)\n", text)
                    self.assertTrue(m, repr(text))
                    pid, start = int(m.group(1)), m.group(2)
                    self.assertEqual(proc_start_time(pid), start,
                                     "the start time is the process's own")
                    # Then the run process the container dies with: imgtool itself here.
                    self.assertEqual((int(m.group(3)), m.group(4)), (proc.pid, proc_start_time(proc.pid)))
                    sh = descendant_named(proc.pid, "sh")
                    self.assertIn(pid, descendants(proc.pid), "a process of this run")
                    self.assertIn(sh, [pid] + descendants(pid),
                                  "the container's own or its ancestor")
                    # Written atomically: no temporary beside it.
                    self.assertEqual(sorted(os.listdir(area)),
                                     ["container.json", "container.pid", "diff", "hostname", "hosts", "resolv.conf",
                                      "root", "work"])
                finally:
                    open(os.path.join(sync, "go"), "w").close()
                    _, err = proc.communicate(timeout=20)
                self.assertEqual(proc.returncode, 0, err)
                self.assertEqual(harness.tmp_entries(self.root), [])

    def test_area_of_a_live_container_survives_other_commands(self):
        # An orphaned container cannot happen any more (it dies with imgtool), so the orphan is a
        # process the test keeps alive and names in an area as run would.
        keeper = subprocess.Popen(["sleep", "60"])
        self.addCleanup(lambda: (keeper.kill(), keeper.wait()))
        start = proc_start_time(keeper.pid)
        tmp = os.path.join(self.root, "tmp")
        cases = {"alive": f"{keeper.pid} {start}\n",
                 "pid-reused": f"{keeper.pid} {int(start) + 1}\n",
                 "dead": f"{2 ** 22 + 1} {start}\n"}  # above pid_max's ceiling: no such process
        for name, text in cases.items():
            os.makedirs(os.path.join(tmp, name, "diff"))
            with open(os.path.join(tmp, name, "diff", "data"), "w") as fh:
                fh.write("the container's writes\n")
            with open(os.path.join(tmp, name, "container.pid"), "w") as fh:
                fh.write(text)
        harness.images_json(self, self.root)
        self.assertEqual(harness.tmp_entries(self.root), ["alive"],
                         "only the area of a live container is kept")
        with open(os.path.join(tmp, "alive", "diff", "data")) as fh:
            self.assertEqual(fh.read(), "the container's writes\n")
        keeper.kill()
        keeper.wait()
        harness.images_json(self, self.root)
        self.assertEqual(harness.tmp_entries(self.root), [], "its container gone, the area goes")


    def test_rm_does_not_wait_for_a_running_container(self):
        # docker: a tag goes at once; the image a running container uses stays, named in one line.
        self.assertEqual(harness.run(self.root, "tag", IMAGE, "other:v1").rc, 0)
        proc = self.popen_run(IMAGE, "sh", "-c", "hostname; exec sleep 60")
        short_id = proc.stdout.readline().decode().strip()  # the container's short ID
        res = harness.run(self.root, "rm", "other:v1", timeout=15)
        self.assertEqual((res.rc, res.out), (0, "Untagged: other:v1\n"), str(res))
        res = harness.run(self.root, "rm", IMAGE, timeout=15)
        harness.assert_one_error_line(self, res, "rm", "being used by running container " + short_id)
        ctr = harness.run(self.root, "run", IMAGE, "true")  # a second container beside it
        self.assertEqual(ctr.rc, 0, str(ctr))
        self.assertEqual(harness.run(self.root, "stop", "-t", "0", short_id).rc, 0)
        proc.wait(timeout=20)
        res = harness.run(self.root, "rm", IMAGE, timeout=15)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(harness.tmp_entries(self.root), [])


class ContainersTest(RunTest):
    """Containers users can see: ps, --name."""

    def start(self, *args) -> tuple:
        """A container running `sleep 60` (killed at cleanup); returns (Popen, its short ID)."""
        proc = self.popen_run(*args, IMAGE, "sh", "-c", "hostname; exec sleep 60")
        short_id = proc.stdout.readline().decode().strip()
        self.assertRegex(short_id, r"^[0-9a-f]{12}$")
        return proc, short_id

    def test_ps_lists_running_containers(self):
        self.assertEqual(harness.run(self.root, "ps", "-q").out, "")
        first, first_id = self.start("--name", "web")
        second, second_id = self.start()
        res = harness.run(self.root, "ps")
        self.assertEqual(res.rc, 0, str(res))
        header, *rows = res.out.splitlines()
        self.assertEqual(header.split()[:3], ["CONTAINER", "ID", "IMAGE"])
        by_id = {row.split()[0]: row for row in rows}
        self.assertEqual(set(by_id), {first_id, second_id})
        self.assertIn(IMAGE, by_id[first_id])
        self.assertIn("\"sh -c hostname; exe…\"", by_id[first_id])
        self.assertTrue(by_id[first_id].rstrip().endswith(" web"), by_id[first_id])
        self.assertIn(" Up ", by_id[second_id])
        [doc] = [c for c in json.loads(harness.run(self.root, "ps", "--format", "json").out) if c["Names"] == ["web"]]
        self.assertEqual(doc["Id"][:12], first_id)
        self.assertEqual(doc["ImageID"], self.image_id)
        self.assertEqual(doc["Command"], ["sh", "-c", "hostname; exec sleep 60"])
        self.assertEqual(doc["State"], "running")
        # The pid is the container's: its sleep is a descendant.
        self.assertTrue(wait_for(lambda: descendant_named(doc["Pid"], "sleep"), timeout=10))
        # stop waits for the container's end: a killed imgtool's supervisor would die a moment later.
        self.assertEqual(harness.run(self.root, "stop", "-t", "0", first_id).rc, 0)
        first.wait(timeout=20)
        self.assertEqual(harness.run(self.root, "ps", "-q").out, second_id + "\n")
        self.assertEqual(harness.run(self.root, "ps", "-q", "--no-trunc").out.strip()[:12], second_id)

    def test_names_are_unique_among_running_containers(self):
        proc, short_id = self.start("--name", "db")
        res = self.run_ctr("--name", "db", IMAGE, "true", check_tmp=False)
        self.assert_run_error(res, 125, '"db"', "in use", short_id)
        for bad in ("-x", "a", "a/b", "ä-name", "x" * 129):
            self.assert_run_error(self.run_ctr("--name", bad, IMAGE, "true", check_tmp=False), 125,
                                  "invalid container name")
        self.assertEqual(harness.run(self.root, "stop", "-t", "0", "db").rc, 0)
        proc.wait(timeout=20)
        # Its container gone, the name is free again.
        self.assertEqual(self.ok("true", "--name", "db"), "")


    def test_stop(self):
        # docker's stop: SIGTERM, then SIGKILL after -t seconds. A PID 1 without a handler (sleep)
        # ignores SIGTERM, so the kill ends it: 137. With --init the SIGTERM reaches sleep: 143.
        proc, short_id = self.start("--name", "victim")
        started = time.monotonic()
        res = harness.run(self.root, "stop", "-t", "1", "victim")
        self.assertEqual((res.rc, res.out), (0, "victim\n"), str(res))
        self.assertGreaterEqual(time.monotonic() - started, 1.0)
        self.assertEqual(proc.wait(timeout=20), 137)
        proc, short_id = self.start("--init")
        res = harness.run(self.root, "stop", short_id[:6])
        self.assertEqual((res.rc, res.out), (0, short_id[:6] + "\n"), str(res))
        self.assertEqual(proc.wait(timeout=20), 143)
        self.assertEqual(harness.run(self.root, "ps", "-q").out, "")
        harness.assert_one_error_line(self, harness.run(self.root, "stop", "nothere"), "stop", "no such container")


class TerminalTest(RunTest):

    def _shell_cmd(self, *run_args, out=None, rc_file) -> str:
        argv = harness.imgtool_argv(self.root, "run", *run_args)
        cmd = " ".join(shlex.quote(a) for a in argv)
        if out:
            cmd += f" >{shlex.quote(out)} 2>&1"
        return f"{cmd}; echo $? >{shlex.quote(rc_file)}.tmp; mv {shlex.quote(rc_file)}.tmp " \
               f"{shlex.quote(rc_file)}"

    def _wait_file(self, path: str, timeout: float = 20) -> str:
        self.assertTrue(wait_for(lambda: os.path.exists(path), timeout), f"{path} never appeared")
        with open(path) as fh:
            return fh.read()

    def script(self, *run_args) -> bytes:
        """`imgtool run RUN_ARGS` on a terminal of its own (script(1)), stdin /dev/null: the bytes shown."""
        argv = harness.imgtool_argv(self.root, "run", *run_args)
        proc = subprocess.run(["script", "-qec", " ".join(shlex.quote(a) for a in argv), "/dev/null"],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=harness.base_env())
        self.assertEqual(proc.returncode, 0, proc)
        return proc.stdout

    def test_tty_output_console_and_group(self):
        # -t alone attaches no input (docker): nothing of stdin reaches the container, and the
        # output is the container pty's bytes as they are (no stray NUL, no doubled CR).
        self.assertEqual(self.script("-t", IMAGE, "busybox", "seq", "1", "3"), b"1\r\n2\r\n3\r\n")
        out = self.script("-t", IMAGE, "sh", "-c", "busybox stat -c '%t:%T %g' /dev/console $(tty); "
                          "busybox grep -c ' /dev/pts devpts .*gid=5' /proc/mounts; echo to-console > /dev/console")
        console, tty, gid_option, written = out.decode().splitlines()
        self.assertEqual(console, tty)  # /dev/console is the container's pty
        self.assertTrue(console.endswith(" 5"), console)  # the tty group, as docker's devpts gid=5
        self.assertEqual((gid_option, written), ("1", "to-console"))

    def test_interactive_tty_shell(self):
        tmux = Tmux(self, self.work)
        rc_file = os.path.join(self.work, "rc")
        tmux.start(self._shell_cmd("-it", IMAGE, "sh", rc_file=rc_file))
        self.assertTrue(wait_for(lambda: re.search(r"(?m)^/srv # ?$", tmux.screen()), 20),
                        f"no prompt:\n{tmux.screen()}")
        tmux.type("echo $((6*7))")
        self.assertTrue(wait_for(lambda: re.search(r"(?m)^42\s*$", tmux.screen()), 20),
                        f"no 42:\n{tmux.screen()}")
        tmux.type("exit 3")
        self.assertEqual(self._wait_file(rc_file).strip(), "3")
        self.assertTrue(wait_for(lambda: not tmux.alive(), 10), "session still alive")
        self.assertEqual(harness.tmp_entries(self.root), [])

    def test_no_controlling_terminal_without_t(self):
        probe = ("busybox tty; echo probe 2>/dev/null >/dev/tty && echo HAVE_CTTY || "
                 "echo NO_CTTY")
        results = {}
        for i, opts in enumerate(((), ("-i",), ("-t",))):
            out, rc_file = os.path.join(self.work, f"out{i}"), os.path.join(self.work, f"rc{i}")
            Tmux(self, self.work).start(self._shell_cmd(*opts, IMAGE, "sh", "-c", probe, out=out,
                                             rc_file=rc_file))
            rc = self._wait_file(rc_file).strip()
            with open(out) as fh:
                results[opts] = (rc, fh.read().replace("\r", ""))
        for opts in ((), ("-i",)):
            self.assertEqual(results[opts], ("0", "not a tty\nNO_CTTY\n"),
                             f"run {opts} from a terminal")
        self.assertIn("HAVE_CTTY", results[("-t",)][1], f"control: -t gives a terminal {results}")

    def test_tty_is_the_containers_own_pty(self):
        tmux = Tmux(self, self.work)
        out, rc_file = os.path.join(self.work, "out"), os.path.join(self.work, "rc")
        tmux.start(self._shell_cmd("-t", IMAGE, "sh", "-c", "tty; ls /dev/pts", out=out,
                                   rc_file=rc_file))
        rc = self._wait_file(rc_file).strip()
        with open(out) as fh:
            text = fh.read().replace("\r", "")
        # As in docker: the terminal is /dev/pts/0 of the container's own devpts.
        self.assertEqual((rc, text.split()), ("0", ["/dev/pts/0", "0", "ptmx"]), text)

    def _user_shell(self) -> Tmux:
        """A tmux pane running a plain bash with a known prompt, as the user's terminal."""
        tmux = Tmux(self, self.work)
        tmux.start("env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=screen PS1='HOST$ ' bash --norc --noprofile")
        self.assertTrue(wait_for(lambda: "HOST$" in tmux.screen(), 20), tmux.screen())
        self._runs = 0
        return tmux

    def _run_in(self, tmux: Tmux, *run_args, script: str):
        """Types `imgtool run RUN_ARGS sh -c SCRIPT` after `clear`; waits until SCRIPT began (GO<n>)."""
        self._runs += 1
        marker = f"GO{self._runs}"
        argv = harness.imgtool_argv(self.root, "run", *run_args, IMAGE, "sh", "-c",
                                    f"printf 'GO%s\\n' {self._runs}; {script}")
        tmux.type("clear; " + " ".join(shlex.quote(a) for a in argv))
        self.assertTrue(wait_for(lambda: re.search(rf"(?m)^{marker}\s*$", tmux.screen()), 30),
                        f"the container never started:\n{tmux.screen()}")

    def _prompt_back(self, tmux: Tmux, timeout: float = 20) -> bool:
        return wait_for(lambda: re.search(r"(?m)^HOST\$[ \t]*$", tmux.screen()), timeout)

    def _exit_status(self, tmux: Tmux) -> str:
        # The prompt came back at column 0 on a line of its own (not after the pty's "^C").
        self.assertTrue(self._prompt_back(tmux), tmux.screen())
        screen = tmux.screen()
        self.assertNotRegex(screen, r"\^C[ \t]*HOST\$", screen)
        tmux.type("echo rc=$?")
        self.assertTrue(wait_for(lambda: re.search(r"(?m)^rc=\d+", tmux.screen()), 20), tmux.screen())
        return re.search(r"(?m)^rc=(\d+)", tmux.screen()).group(1)

    def test_ctrl_c_and_a_pid1_without_handler(self):
        # docker: Ctrl-C does nothing to a PID 1 without a SIGINT handler (the kernel drops it).
        # imgtool keeps that, says so once, and a third Ctrl-C kills the container (137).
        tmux = self._user_shell()
        hint = "the container's PID 1 (sleep) has no SIGINT handler"
        # -it: ^C reaches the container's pty; without -t: the terminal signals imgtool, which passes it on.
        for opts in (("-it",), ()):
            with self.subTest(opts=opts):
                self._run_in(tmux, *opts, script="exec sleep 60")
                tmux.tmux("send-keys", "-t", "s", "C-c")
                self.assertTrue(wait_for(lambda: hint in tmux.screen(), 10), tmux.screen())
                self.assertFalse(self._prompt_back(tmux, 0.5), f"the container ended on one Ctrl-C\n{tmux.screen()}")
                for _ in range(2):
                    tmux.tmux("send-keys", "-t", "s", "C-c")
                    time.sleep(0.1)
                self.assertEqual(self._exit_status(tmux), "137")
                self.assertEqual(tmux.screen().count(hint), 1, tmux.screen())
                self.assertEqual(harness.run(self.root, "ps", "-q").out, "")

        # A PID 1 that handles SIGINT gets it, and nothing is said.
        self._run_in(tmux, "-it", script="trap 'echo caught; exit 5' INT; while :; do sleep 1; done")
        tmux.tmux("send-keys", "-t", "s", "C-c")
        self.assertEqual(self._exit_status(tmux), "5")
        self.assertIn("caught", tmux.screen())
        self.assertNotIn("imgtool:", tmux.screen())

    def test_interrupted_run_leaves_the_prompt_on_its_own_line(self):
        # "^C" is echoed (by the container's pty with -it, by the user's terminal with -t) and the run
        # ends with 130; the user's shell prints its prompt where the cursor is, so imgtool ends that
        # line first. (-t alone: the terminal's SIGINT goes to imgtool, which passes it on.)
        tmux = self._user_shell()
        for opts, script in ((("-it", "--init"), "sleep 60"), (("-t", "--init"), "sleep 60"),
                             (("-it",), "trap 'exit 130' INT; while :; do sleep 1; done")):
            with self.subTest(opts=opts):
                self._run_in(tmux, *opts, script=script)
                tmux.tmux("send-keys", "-t", "s", "C-c")
                self.assertEqual(self._exit_status(tmux), "130")
                self.assertNotIn("imgtool:", tmux.screen())

    def test_tiocsti_cannot_reach_the_host_shell(self):
        # bubblewrap CVE-2017-5226: a process that shares the user's terminal pushes characters
        # into its input queue (ioctl TIOCSTI); the user's shell runs them once imgtool exits.
        # Without -t the container's fds are the user's terminal itself; the new session means it
        # is not the container's controlling terminal, and TIOCSTI needs that.
        with open("/proc/sys/dev/tty/legacy_tiocsti") as fh:
            if fh.read().strip() == "0":
                self.skipTest("this kernel refuses TIOCSTI without CAP_SYS_ADMIN "
                              "(dev.tty.legacy_tiocsti=0): the attack cannot happen here")
        probe = probe_binary()
        tmux = Tmux(self, self.work)
        tmux.start("sh")  # the user's shell, reading the pane's terminal
        step = 0

        def shell(command: str):
            nonlocal step
            step += 1
            done = os.path.join(self.work, f"done{step}")
            # The typed line is queued behind anything injected before it: once `done` exists,
            # the shell has run whatever was injected.
            tmux.type(f"{command}; touch {shlex.quote(done)}")
            self.assertTrue(wait_for(lambda: os.path.exists(done), 30),
                            f"shell never finished {command!r}:\n{tmux.screen()}")

        # Control: the probe run by the user's shell itself does inject.
        control = os.path.join(self.work, "CONTROL")
        shell(f"{probe} {self.work}/report0 {shlex.quote(f'touch {control}')}")
        shell("true")
        self.assertTrue(os.path.exists(control),
                        f"control: TIOCSTI did not inject\n{tmux.screen()}")

        # A container gets pipes, never the user's terminal (CAP_SYS_ADMIN could inject into any, and any
        # process holding it could read what the user types next: attacker pass 3).
        for i, opts in enumerate((("-i",), ("-it",), ("-i", "--cap-add", "SYS_ADMIN"), ("-i", "--privileged")),
                                 start=1):
            with self.subTest(opts=opts):
                injected = os.path.join(self.work, f"INJECTED{i}")
                argv = harness.imgtool_argv(self.root, "run", *opts, "-v", f"{probe}:/probe:ro",
                                            "-v", f"{self.work}:/out", IMAGE, "/probe",
                                            f"/out/report{i}", f"touch {injected}")
                shell(" ".join(shlex.quote(a) for a in argv) + f"; echo $? > {self.work}/rc{i}")
                shell("true")
                with open(os.path.join(self.work, f"rc{i}")) as fh:
                    self.assertEqual(fh.read().strip(), "0", tmux.screen())
                with open(os.path.join(self.work, f"report{i}")) as fh:
                    report = fh.read()
                self.assertFalse(os.path.exists(injected),
                                 f"the container typed into the host's shell\n{report}")
                if "-it" not in opts:
                    # Pipes relayed by imgtool, whatever its capabilities: never the user's terminal.
                    self.assertEqual(report, "fd 0: not a terminal\nfd 1: not a terminal\n"
                                             "fd 2: not a terminal\n"
                                             "/dev/tty: No such device or address\n")
                else:
                    # -t: its own pty, where injecting only reaches itself.
                    self.assertEqual(report, "fd 0: injected\nfd 1: injected\nfd 2: injected\n"
                                             "/dev/tty: injected\n")


class HostileImageTest(RunTest):
    """Images that try to make imgtool touch host paths: the host and the store stay intact."""

    def setUp(self):
        super().setUp()
        self.sentinel = harness.Sentinel(self)
        self.etc_before = sorted(os.listdir("/etc"))
        self.hashes_before = None

    def build(self, name: str, **kw) -> str:
        path = hostile_image(self.work, name, **kw)
        harness.pull(self, self.root, path)
        ref = f"imgtool-test/hostile-{name}"
        self.hashes_before = self.layer_hashes(ref)
        return ref

    def assert_host_and_store_intact(self, ref: str):
        self.assertEqual(sorted(os.listdir("/etc")), self.etc_before, "host /etc changed")
        self.assertFalse(os.path.lexists("/etc/sub"))
        self.assertFalse(os.path.lexists("/etc/newsub"))
        self.assertTrue(self.sentinel.unchanged(), "host sentinel tree changed")
        self.assertEqual(self.layer_hashes(ref), self.hashes_before, "layer dirs changed")
        self.assertEqual(harness.tmp_entries(self.root), [])

    def test_workdir_through_magic_links(self):
        for i, wd in enumerate(("/proc/self/fd/3", "/proc/self/cwd", "/proc/1/root/etc",
                                "/proc/self/root/etc/sub", "/proc/thread-self/cwd")):
            with self.subTest(workdir=wd):
                ref = self.build(f"wd-magic{i}", workdir=wd,
                                 cmd=("/bin/sh", "-c", "pwd; busybox ls -a"))
                for opts in ((), ("-w", wd)):
                    res = self.run_ctr(*opts, ref)
                    if res.rc == 125:
                        self.assert_run_error(res, 125)
                    else:
                        # Allowed only if the command runs inside the container.
                        self.assertEqual(res.rc, 0, str(res))
                        cwd, *listing = res.out.splitlines()
                        self.assertFalse(cwd.startswith(harness.TEST_TMP), str(res))
                        inside = self.sh(f"busybox ls -a {shlex.quote(cwd)}", image=ref)
                        self.assertEqual(inside.out.splitlines(), listing, str(res))
                self.assert_host_and_store_intact(ref)

    def test_workdir_with_dotdot_stays_inside(self):
        ref = self.build("wd-dotdot", workdir="/../../../../../etc/sub",
                         cmd=("/bin/sh", "-c", "pwd; ls /etc/passwd"))
        res = self.run_ctr(ref)
        self.assertEqual((res.rc, res.out), (0, "/etc/sub\n/etc/passwd\n"), str(res))
        self.assert_host_and_store_intact(ref)

    def test_workdir_through_a_symlink(self):
        for target in ("/etc", self.sentinel.path):
            with self.subTest(symlink_to=target):
                ref = self.build("wd-link" + str(len(target)),
                                 extra=[gen_images.sym("w", target)], workdir="/w/newsub",
                                 cmd=("/bin/sh", "-c", "pwd; ls -d " + target + "/newsub"))
                res = self.run_ctr(ref)
                if target == self.sentinel.path and res.rc == 125:
                    # Dangling inside the container: refusing is fine, following it out is not.
                    self.assert_run_error(res, 125, "/w")
                else:
                    self.assertEqual((res.rc, res.out, res.err),
                                     (0, f"{target}/newsub\n{target}/newsub\n", ""), str(res))
                self.assertFalse(os.path.lexists(os.path.join(target, "newsub")),
                                 "the working directory was created on the host")
                self.assert_host_and_store_intact(ref)

    def test_system_dirs_replaced_by_symlinks(self):
        for name in ("proc", "dev", "sys"):
            for target in ("/etc", self.sentinel.path):
                with self.subTest(dir=name, symlink_to=target):
                    ref = self.build(f"{name}-link{len(target)}", drop=(name,),
                                     extra=[gen_images.sym(name, target)])
                    res = self.run_ctr(ref, "sh", "-c", "echo ran")
                    self.assert_run_error(res, 125, f"/{name}", "not a directory")
                    self.assert_host_and_store_intact(ref)

    def test_dev_null_symlink_in_image(self):
        ref = self.build("devnull-link", extra=[gen_images.sym("dev/null", "/etc/passwd")],
                         cmd=("/bin/sh", "-c",
                              "stat -c '%F %t:%T' /dev/null; echo junk > /dev/null; "
                              "cat /etc/passwd | busybox md5sum; "
                              "busybox cat /proc/keys | busybox wc -c"))
        res = self.run_ctr(ref)
        self.assertEqual(res.rc, 0, str(res))
        lines = res.out.splitlines()
        self.assertEqual(lines[0], "character special file 1:3", str(res))
        passwd = next(e.data for e in gen_images.busybox_layers(_busybox_binary())[0].entries
                      if e.name == "etc/passwd")
        self.assertEqual(lines[1].split()[0], hashlib.md5(passwd).hexdigest(),
                         "the image's /etc/passwd was written through /dev/null")
        self.assertEqual(lines[2], "0", "masked /proc/keys must be the real null device")
        self.assert_host_and_store_intact(ref)



class RootlessRunTest(unittest.TestCase):
    """The seccomp filter and the container's lifetime as an ordinary user (test_rootless's user; as
    everything run as it, under /tmp/imgtool-rootless.lock). Rootless there is no device cgroup:
    what kills a container whose PID 1 changed user or exec'd a setuid binary is the supervisor
    alone."""

    @classmethod
    def setUpClass(cls):
        cls.enterClassContext(rootless_lock())
        rl.ensure_users()
        cls.user = rl.USERS[rl.USER]
        argv = rl.as_user(cls.user, ["unshare", "--user", "--map-root-user", "true"], home="/")
        probe = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd="/")
        if probe.returncode != 0:
            raise unittest.SkipTest(f"the kernel refuses unprivileged user namespaces: "
                                    f"{probe.stderr.strip()}")
        # The build tree may be out of the user's reach: what it runs is copied to /tmp.
        cls.scratch = tempfile.mkdtemp(prefix="imgtool-run-rl-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.scratch, True)
        os.chmod(cls.scratch, 0o755)
        cls.binary = os.path.join(cls.scratch, "imgtool")
        cls.probe = os.path.join(cls.scratch, "probe")
        image = os.path.join(cls.scratch, "busybox.tar")
        for src, dst, mode in ((harness.imgtool_binary(), cls.binary, 0o755),
                               (probe_binary(SYSCALL_PROBE_C, "syscall-probe"), cls.probe, 0o755),
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

    def setUp(self):
        self.addCleanup(self._no_user_processes_left)

    def _no_user_processes_left(self):
        if not wait_for(lambda: not rl.user_processes(self.user), timeout=10):
            left = rl.user_processes(self.user)
            for pid, _, _ in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.fail(f"processes of {self.user.name} left after the test: {left}")

    def run_as_user(self, *args) -> harness.Result:
        return rl.run_as(self.user, [self.binary, "run", "-v", f"{self.probe}:/probe:ro", *args],
                         home=self.home, env=self.env, timeout=60)

    def test_tty(self):
        # devpts with gid=5 and /dev/console on the pty work in the user's namespace too.
        argv = [self.binary, "run", "-t", IMAGE, "sh", "-c",
                "busybox stat -c '%t:%T %g' /dev/console $(tty); busybox seq 1 2"]
        res = rl.run_as(self.user, ["script", "-qec", " ".join(shlex.quote(a) for a in argv), "/dev/null"],
                        home=self.home, env=self.env, timeout=60)
        self.assertEqual(res.rc, 0, str(res))
        console, tty, one, two = res.out.splitlines()
        self.assertEqual((console, one, two), (tty, "1", "2"))
        self.assertTrue(console.endswith(" 5"), console)

    def test_init_layer_files_loopback_and_tmpfs(self):
        res = self.run_as_user("--net", "none", "--tmpfs", "/run:size=1m", "--add-host", "db:10.1.2.3", IMAGE,
                               "sh", "-c", "hostname; cat /etc/hostname; busybox grep -c '^10.1.2.3.db$' /etc/hosts; "
                               "cat /sys/class/net/lo/flags; busybox grep ' /run ' /proc/mounts")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        name, hostname, db, flags, run = res.out.splitlines()
        self.assertRegex(name, r"^[0-9a-f]{12}$")
        self.assertEqual((hostname, db), (name, "1"))
        self.assertEqual(int(flags, 16) & 1, 1)
        self.assertIn("size=1024k", run)

    def test_filter_is_on(self):
        res = self.run_as_user(IMAGE, "sh", "-c",
                               "busybox grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                               "/probe ns; /probe keysearch x")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        self.assertEqual(res.out, "NoNewPrivs:\t0\nSeccomp:\t2\n"
                                  "clone newuser: Operation not permitted\n"
                                  "clone3 newuser: Function not implemented\nfork: ok\n"
                                  "unshare newuser: Operation not permitted\n"
                                  "search: Operation not permitted\n"
                                  "request: Operation not permitted\n", str(res))
        res = self.run_as_user("--privileged", IMAGE, "busybox", "grep", "^Seccomp:",
                               "/proc/self/status")
        self.assertEqual((res.rc, res.out), (0, "Seccomp:\t0\n"),
                         "control: --privileged\n" + str(res))

    def test_container_dies_with_imgtool(self):
        for args in (("-u", "65534", IMAGE, "sleep", "31"),
                     ("--init", "-u", "65534", IMAGE, "sleep", "31"),
                     (IMAGE, "sh", "-c", SETUID_SLEEP)):
            with self.subTest(args=args):
                argv = rl.as_user(self.user, [self.binary, "run", *args], home=self.home,
                                  env=self.env)
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, cwd="/")
                harness.reap_at_cleanup(self, proc)
                sleep = wait_for(lambda: descendant_named(proc.pid, "sleep"), timeout=20)
                self.assertTrue(sleep, "the container's sleep never started")
                with open(f"/proc/{sleep}/status") as fh:
                    euid = int(status_fields(fh.read())["Uid"].split()[1])
                self.assertEqual(euid, self.user.host_uid(65534),
                                 "the sleep runs as the container's nobody")
                proc.kill()
                proc.wait(timeout=20)
                self.assertTrue(wait_for(lambda: not rl.user_processes(self.user), timeout=10),
                                f"left after kill -9 of imgtool: {rl.user_processes(self.user)}")


if __name__ == "__main__":
    unittest.main()
