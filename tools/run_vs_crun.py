#!/usr/bin/env python3
"""Differential table: `imgtool run` against crun running a bundle that encodes docker's defaults.

Usage (as root):
  python3 tools/run_vs_crun.py [--imgtool PATH] [--image busybox.docker.tar] [--only NAME...]
                               [--no-seccomp] [--keep] [--write docs/run-vs-crun.md]

What it does:
  1. `imgtool --root STORE pull-local` the busybox test image (tools/gen_images.py; generated
     into WORK if not given), then `imgtool mount --writable --suid --dev` it as the bundle's
     rootfs (an overlay, as docker's, without the nosuid/nodev a view for people gets).
  2. Writes config.json for crun with docker's defaults as moby sets them (daemon/pkg/oci/
     defaults.go, daemon/oci_linux.go): capabilities, mounts, masked and read-only paths,
     namespaces, the device cgroup, the user as moby's getUser resolves it from the image's
     passwd/group, Env/Cwd, HOSTNAME and HOME, and moby's default seccomp profile converted to the
     runtime-spec format for this architecture and the default capability set.
  3. Runs every probe (a busybox shell snippet) with `imgtool run` and with `crun run`, the
     latter in a private mount namespace with /sys/fs/cgroup/unified unmounted (crun 1.8 refuses
     this hybrid cgroup host otherwise), normalises what naturally differs (container IDs,
     overlay paths, pipe inode numbers), and prints a Markdown table.

Each probe's entry in DIFFERENCES says why the two sides may differ and whether that is intended;
a difference without an entry is unexplained. tests/integration/test_run_vs_crun.py runs the same
probes. Standard library only.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
IMAGE_TAG = "imgtool-test/busybox:latest"

# --------------------------------------------------------------------------------------------
# Docker's defaults (moby daemon/pkg/oci/defaults.go, caps/defaults.go, daemon/oci_linux.go)

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]

# Masked: moby's list (with /proc/interrupts and /sys/devices/virtual/powercap, GHSA-6fw5-f8r9-fgfm
# and GHSA-jq35-85cj-fj4p); moby adds each existing /sys/devices/system/cpu/cpuN/thermal_throttle.
DOCKER_MASKED = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                 "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                 "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware"]
DOCKER_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

DOCKER_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["ro", "nosuid", "noexec", "nodev"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    # moby appends size= from HostConfig.ShmSize (default 64 MiB).
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
]

# The device cgroup: deny all, then moby's allow list (runc/crun add the implicit mknod rules).
DOCKER_DEVICE_RULES = [{"allow": False, "access": "rwm"}] + [
    {"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
    for ma, mi in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))
] + [{"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}]

# moby's default seccomp profile (github.com/moby/profiles/seccomp v0.2.3, default.json),
# converted: the unconditional allow list, then the conditional rules evaluated for this
# architecture, kernel >= 4.8 and the default capability set (only CAP_SYS_CHROOT of the
# capability-gated rules applies: chroot; the CAP_SYS_ADMIN exclusions apply: clone without
# namespace flags, clone3 -> ENOSYS).
SECCOMP_ALLOW = """
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid
getuid32 getxattr getxattrat inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set
io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listmount listxattr listxattrat llistxattr _llseek
lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create
memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect
mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall
munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe
rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send
sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid
setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
set_thread_area set_tid_address setuid setuid32 setxattr setxattrat shmat shmctl shmdt shmget
shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat
stat64 statfs statfs64 statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo tee
tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat uretprobe
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
process_vm_readv process_vm_writev ptrace chroot
""".split()
SECCOMP_ARCH = {  # native architecture -> (runtime-spec architectures, arch-only allowed calls)
    "x86_64": (["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], ["arch_prctl", "modify_ldt"]),
    "aarch64": (["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
                 "cacheflush", "set_tls"]),
}
CLONE_NS_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET


def docker_seccomp() -> dict | None:
    arch = SECCOMP_ARCH.get(platform.machine())
    if arch is None:
        return None
    archs, extra = arch

    def allow_arg0(op: str, value: int, value2: int = 0) -> dict:
        a = {"index": 0, "value": value, "op": op}
        if value2:
            a["valueTwo"] = value2
        return {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [a]}

    rules = [{"names": SECCOMP_ALLOW + extra, "action": "SCMP_ACT_ALLOW"}]
    # socket(): every family but AF_ALG (38) and AF_VSOCK (40).
    rules += [allow_arg0("SCMP_CMP_LT", 38), allow_arg0("SCMP_CMP_EQ", 39),
              allow_arg0("SCMP_CMP_GT", 40)]
    # personality(): PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, query.
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
              for v in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF)]
    # clone() without namespace flags (value is the mask, valueTwo the expected 0).
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0,
                            "op": "SCMP_CMP_MASKED_EQ"}]})
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": archs,
            "syscalls": rules}


# --------------------------------------------------------------------------------------------
# Probes

MOUNT_POINTS = ["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                "/sys/fs/cgroup"]


@dataclass
class Probe:
    name: str
    cmd: str | list             # a shell snippet for `sh -c`, or an argv executed directly
    user: str | None = None     # -u
    net: str = "host"           # host | none
    stdin: bytes | None = None  # fed to imgtool's stdin (crun's is /dev/null: docker without -i)
    norm: str = ""              # mountinfo digest: mount:MOUNTPOINT | mountlist:PREFIX,...
    compare: str = "all"        # all | rc (exit status only; runtimes word their errors apart)
    seccomp: bool = False       # depends on the seccomp filter

    @property
    def argv(self) -> list:
        return self.cmd if isinstance(self.cmd, list) else ["sh", "-c", self.cmd]


STATUS = "grep -E '^({})' /proc/self/status"
PROBES = [
    Probe("id", "id"),
    Probe("id -u 1000", "id", user="1000"),
    Probe("id -u 1000:0", "id", user="1000:0"),
    Probe("groups (root)", "grep -E '^(Uid|Gid|Groups)' /proc/self/status"),
    Probe("groups -u 1000", "grep -E '^(Uid|Gid|Groups)' /proc/self/status", user="1000"),
    Probe("capabilities", STATUS.format("CapInh|CapPrm|CapEff|CapBnd|CapAmb")),
    Probe("capabilities -u 1000", STATUS.format("CapInh|CapPrm|CapEff|CapBnd|CapAmb"),
          user="1000"),
    Probe("NoNewPrivs, Seccomp", STATUS.format("NoNewPrivs|Seccomp"), seccomp=True),
    Probe("/proc/1/cmdline", "tr '\\0' ' ' </proc/1/cmdline; echo"),
    Probe("PID namespace", "echo pid=$$; cat /proc/1/comm"),
    Probe("hostname", "hostname; cat /proc/sys/kernel/hostname"),
    *[Probe(f"mount {mp}", "cat /proc/self/mountinfo", norm="mount:" + mp) for mp in MOUNT_POINTS],
    Probe("mount points in /dev, /etc", "cat /proc/self/mountinfo", norm="mountlist:/dev/,/etc/"),
    Probe("mount points in /proc, /sys", "cat /proc/self/mountinfo",
          norm="mountlist:/proc/,/sys/"),
    Probe("masked paths",
          "for p in " + " ".join(DOCKER_MASKED) + "; do"
          " if [ ! -e $p ]; then s=absent;"
          " elif [ -d $p ]; then s=\"dir, $(ls -A $p 2>/dev/null | wc -l) entries\";"
          " else s=\"file, $(cat $p 2>/dev/null | wc -c) bytes\"; fi; echo \"$p: $s\"; done"),
    Probe("read-only paths",
          "for p in " + " ".join(DOCKER_READONLY) + "; do"
          " if [ ! -e $p ]; then echo \"$p: absent\"; continue; fi;"
          " o=$(awk -v p=$p '$5==p {split($6,a,\",\"); print a[1]}' /proc/self/mountinfo);"
          " echo \"$p: ${o:-not a mount point}\"; done"),
    Probe("write /proc/sys/kernel/hostname",
          "echo rvc >/proc/sys/kernel/hostname 2>&1; echo rc=$?; hostname | grep -c rvc"),
    Probe("/dev listing",
          "for f in /dev/* /dev/pts/* /dev/shm /dev/mqueue; do"
          " stat -c '%N %A %u:%g %t:%T' $f; done"),
    Probe("/dev/pts/ptmx", "stat -c '%a %u:%g %t:%T' /dev/pts/ptmx; ls -l /dev/ptmx | "
          "awk '{print $1, $NF}'"),
    Probe("umask", "umask"),
    Probe("working directory", "pwd"),
    Probe("environment", "env | sort"),
    Probe("environment -u 1000", "env | sort", user="1000"),
    Probe("exit 3", "exit 3"),
    Probe("kill -9 of PID 1 itself", "kill -9 $$; echo survived"),
    Probe("kill -9 of a child", "sh -c 'kill -9 $$'; echo rc=$?"),
    Probe("command not found", ["no-such-command"], compare="rc"),
    Probe("not executable", ["/etc/passwd"], compare="rc"),
    Probe("command not found (shell)", "no-such-command"),
    Probe("stdin without -i", "cat; readlink /proc/self/fd/0", stdin=b"from the host's stdin\n"),
    Probe("ulimit -n", "ulimit -n; ulimit -Hn"),
    Probe("/etc/hosts, hostname, resolv.conf",
          "for f in hosts hostname resolv.conf; do if [ -e /etc/$f ]; then"
          " echo \"$f: $(wc -l </etc/$f) lines, $(grep -c localhost /etc/$f) localhost\";"
          " else echo \"$f: absent\"; fi; done; cat /etc/hostname"),
    Probe("mknod + open (root fs)",
          "cd /tmp; mknod rvc-null c 1 3 && echo 'mknod 1:3 ok';"
          " echo x >rvc-null && echo 'write 1:3 ok';"
          " mknod rvc-kmsg c 1 11 && echo 'mknod 1:11 ok';"
          " head -c 1 rvc-kmsg >/dev/null && echo 'read 1:11 ok'; rm -f rvc-null rvc-kmsg"),
    Probe("mknod + open (/dev)",
          "cd /dev; mknod rvc-null c 1 3 2>&1 && echo 'mknod ok';"
          " echo x >rvc-null 2>&1 && echo 'write ok'; rm -f rvc-null"),
    Probe("network (host)", "ip -o link | awk '{print $2}' | wc -l"),
    Probe("network --net none", "ip -o link | awk '{print $2, $3}'; ip -o addr | "
          "awk '{print $2, $4}'", net="none"),
    Probe("mount tmpfs", "mount -t tmpfs none /mnt 2>&1; echo rc=$?", seccomp=True),
    Probe("unshare -U", "unshare -U true 2>&1; echo rc=$?", seccomp=True),
    Probe("unshare -m", "unshare -m true 2>&1; echo rc=$?", seccomp=True),
    Probe("chroot", "chroot / true 2>&1; echo rc=$?"),
    Probe("keyctl", "command -v keyctl >/dev/null || echo 'busybox has no keyctl: skipped'"),
    Probe("raw socket (CAP_NET_RAW)", "ping -c1 -W1 127.0.0.1 >/dev/null 2>&1; echo rc=$?"),
    Probe("chown (CAP_CHOWN)", "touch /tmp/rvc-c; chown 1000:1000 /tmp/rvc-c 2>&1; echo rc=$?;"
          " rm -f /tmp/rvc-c"),
    Probe("write to /sys", "echo 1 >/sys/kernel/profiling 2>&1; echo rc=$?"),
    Probe("sethostname", "hostname rvc 2>&1; echo rc=$?", seccomp=True),
    Probe("dmesg (syslog)", "dmesg >/dev/null 2>&1; echo rc=$?", seccomp=True),
]

# Why a probe differs, and whether that is intended. "intended": a deliberate, documented choice
# of imgtool, or docker behaviour a bare crun bundle does not have; "crun": crun itself departs
# from docker (runc) and imgtool matches docker; "finding": imgtool departs from docker's default.
_NODEV = ("docs/security.md: every filesystem the container can write or that comes from the "
          "image is `nodev`, the root and `/dev` included; the device cgroup is a second wall")
DIFFERENCES: dict[str, tuple[str, str]] = {
    "mount /": ("intended", "imgtool's root is `nodev` (" + _NODEV + "); docker's overlay root "
                "is not. Otherwise the same: an overlay, `rw,relatime`."),
    "mount /dev": ("intended", "`/dev` is `nodev` (" + _NODEV + "); otherwise as docker's: "
                   "tmpfs, `nosuid`, `strictatime`, mode 755."),
    "mount /sys/fs/cgroup": ("finding", "docker mounts the cgroup filesystem read-only at "
                             "`/sys/fs/cgroup` (moby `defaults.go`; on this cgroup v1 host a tmpfs "
                             "with the container's cgroup of each controller bound read-only below "
                             "it, as crun shows; on cgroup v2 a read-only cgroup2 in a private "
                             "cgroup namespace). imgtool mounts nothing there, so `/sys/fs/cgroup` "
                             "is the empty directory of the container's sysfs and programs that "
                             "read their own cgroup limits there (JVMs, systemd) find none. "
                             "Side note: crun leaves that tmpfs `rw` where runc (docker's "
                             "runtime) remounts it read-only."),
    "mount points in /dev, /etc": ("intended", "imgtool binds the host's standard nodes "
                                   "read-only (docs/security.md: \"the standard nodes are the "
                                   "host's, bind-mounted read-only\"; CVE-2025-31133) where "
                                   "runc and crun `mknod` them (without a user namespace); and, "
                                   "as docker does, binds its own `/etc/hosts`, `/etc/hostname` "
                                   "and `/etc/resolv.conf`, which a bare crun bundle does not."),
    "mount points in /proc, /sys": ("finding", "docker's `/sys/fs/cgroup` is missing in imgtool "
                                    "(see *mount /sys/fs/cgroup*)."),
    "/dev listing": ("crun", "crun always makes `/dev/core -> /proc/kcore`; runc, docker's "
                     "runtime, makes it only when `/proc/kcore` exists, which it does not on "
                     "this kernel. imgtool matches docker. The nodes themselves (modes, owners, "
                     "numbers) are the same."),
    "command not found": ("intended", "docker maps a command that cannot be found to exit status "
                          "127 (docker run reference, \"Exit status\"); imgtool does so (README); "
                          "`crun run` itself exits 1. The messages are each tool's own."),
    "not executable": ("intended", "docker maps a command that cannot be invoked to 126; imgtool "
                       "does so (README); `crun run` exits 1."),
    "/etc/hosts, hostname, resolv.conf": ("intended", "imgtool writes the container's own "
                                          "`/etc/hosts` (localhost and its host name), "
                                          "`/etc/hostname` and `/etc/resolv.conf` as docker does; a "
                                          "bare crun bundle shows the image's files (here only "
                                          "`/etc/hostname`, \"busybox\")."),
    "mknod + open (root fs)": ("intended", "docker lets the container's root make and use "
                               "`c 1:3` on its root filesystem (the device cgroup allows it, the "
                               "root is not `nodev`) and refuses `c 1:11` (/dev/kmsg) through the "
                               "device cgroup (EPERM). imgtool refuses both at `nodev` (EACCES) "
                               "before its device cgroup is reached: " + _NODEV + "."),
    "mknod + open (/dev)": ("intended", "the same on `/dev`: docker's `/dev` tmpfs is not `nodev`, "
                            "imgtool's is (" + _NODEV + ")."),
}


# --------------------------------------------------------------------------------------------
# Normalisation


def _unescape(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def parse_mountinfo(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if " - " not in line or len(parts) < 10:
            continue
        sep = parts.index("-")
        out.append({"root": _unescape(parts[3]), "mp": _unescape(parts[4]),
                    "opts": parts[5], "type": parts[sep + 1], "source": parts[sep + 2],
                    "super": parts[sep + 3] if len(parts) > sep + 3 else ""})
    return out


SUPER_KEEP = re.compile(r"^(size|mode|gid|uid|ptmxmode|nr_inodes|newinstance)=?")


def norm_mount(text: str, mp: str) -> str:
    """The topmost mount at mp: type, per-mount flags and the super options that matter
    (overlay's lowerdir/upperdir/workdir are paths that differ by nature); for /sys/fs/cgroup,
    a summary of the controller mounts below it."""
    mounts = parse_mountinfo(text)
    found = [m for m in mounts if m["mp"] == mp]
    if not found:
        return "not mounted"
    m = found[-1]
    sup = ("lowerdir,upperdir,workdir" if m["type"] == "overlay" else
           ",".join(o for o in m["super"].split(",") if SUPER_KEEP.match(o)))
    out = f"{m['type']} {m['opts']} [{sup}]"
    below = [m for m in mounts if m["mp"].startswith(mp + "/")]
    if mp == "/sys/fs/cgroup" and below:
        out += f"; below it {len(below)} mounts ({'; '.join(sorted({b['opts'] for b in below}))})"
    return out


def norm_mountlist(text: str, prefixes: list[str]) -> str:
    """The mount points below the prefixes (sorted); cgroup controllers summarised."""
    mps = [m["mp"] for m in parse_mountinfo(text) if m["mp"].startswith(tuple(prefixes))]
    cg = [p for p in mps if p.startswith("/sys/fs/cgroup/")]
    out = sorted(p for p in mps if not p.startswith("/sys/fs/cgroup/"))
    if cg:
        out.append(f"/sys/fs/cgroup/* ({len(cg)})")
    return " ".join(out) or "none"


def normalise(probe: Probe, text: str, raw: bool = False) -> str:
    kind, _, arg = probe.norm.partition(":")
    if kind == "mount" and not raw:
        return norm_mount(text, arg)
    if kind == "mountlist" and not raw:
        return norm_mountlist(text, arg.split(","))
    # Both sides' host names are 12 hex digits (imgtool's short container ID, as docker's).
    text = re.sub(r"\b[0-9a-f]{12}\b", "<hostname>", text)
    text = re.sub(r"(pipe|socket):\[\d+\]", r"\1:[N]", text)
    return text.strip()


# --------------------------------------------------------------------------------------------
# Running


@dataclass
class Outcome:
    rc: int
    out: str
    err: str

    def cell(self, compare: str) -> str:
        body = self.out
        if self.err:
            body += ("\n" if body else "") + "stderr: " + self.err
        return body + ("\n" if body else "") + f"[exit {self.rc}]" if compare == "rc" or \
            self.rc else body

    def key(self, compare: str):
        return self.rc if compare == "rc" else (self.rc, self.out, self.err)


@dataclass
class Row:
    probe: Probe
    imgtool: Outcome
    crun: Outcome

    @property
    def same(self) -> bool:
        return self.imgtool.key(self.probe.compare) == self.crun.key(self.probe.compare)


class Setup:
    """A store with the busybox image, a writable overlay of it as the bundle's rootfs."""

    def __init__(self, imgtool: str, work: str, image: str | None):
        self.imgtool, self.work = imgtool, work
        self.store = os.path.join(work, "store")
        self.bundle = os.path.join(work, "bundle")
        self.rootfs = os.path.join(self.bundle, "rootfs")
        self.state = os.path.join(work, "crun-state")
        self.image = image or self._generate()
        self.mounted = False

    def _generate(self) -> str:
        out = os.path.join(self.work, "images")
        subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "tools", "gen_images.py"), out,
                        "--only", "busybox"], check=True, stdout=subprocess.DEVNULL)
        return os.path.join(out, "busybox.docker.tar")

    def it(self, *args, **kw) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env.pop("IMGTOOL_ROOT", None)
        return subprocess.run([self.imgtool, "--root", self.store, *args], env=env, **kw)

    def prepare(self) -> None:
        os.makedirs(self.rootfs, exist_ok=True)
        os.makedirs(self.state, exist_ok=True)
        r = self.it("pull-local", "-q", self.image, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"pull-local {self.image}: {r.stderr.strip()}")
        self.id = r.stdout.split()[-1]
        info = json.loads(self.it("inspect", self.id, capture_output=True, text=True,
                                  check=True).stdout)[0]
        self.config = info.get("Config") or {}
        r = self.it("mount", "--writable", "--suid", "--dev", self.id, self.rootfs,
                    capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"mount: {r.stderr.strip()}")
        self.mounted = True

    def cleanup(self, keep: bool) -> None:
        if self.mounted:
            self.it("umount", self.rootfs, capture_output=True)
            self.mounted = False
        if not keep:
            shutil.rmtree(self.work, ignore_errors=True)

    # --- docker's user and environment, as moby's getUser / CreateDaemonEnvironment ---

    def _table(self, name: str) -> list[list[str]]:
        try:
            with open(os.path.join(self.rootfs, "etc", name)) as fh:
                return [ln.rstrip("\n").split(":") for ln in fh if ln.strip()
                        and not ln.startswith("#")]
        except FileNotFoundError:
            return []

    def docker_user(self, spec: str | None) -> tuple[dict, str]:
        """(runtime-spec user, HOME) for `-u SPEC` (else the image's User) as moby resolves it:
        uid/gid from passwd; additionalGids = [gid] + the groups naming the user."""
        spec = spec or self.config.get("User") or ""
        uarg, _, garg = spec.partition(":")
        passwd, group = self._table("passwd"), self._table("group")
        uid, gid, home, name = 0, 0, "/", ""
        if uarg == "":
            rows = [p for p in passwd if len(p) >= 6 and p[2] == "0"]
        elif uarg.isdigit():
            rows = [p for p in passwd if len(p) >= 6 and p[2] == uarg]
            uid = int(uarg)
        else:
            rows = [p for p in passwd if len(p) >= 6 and p[0] == uarg]
        if rows:
            name, uid, gid, home = rows[0][0], int(rows[0][2]), int(rows[0][3]), rows[0][5]
        sgids = []
        if garg:
            g = [r for r in group if len(r) >= 3 and (r[2] == garg if garg.isdigit()
                                                      else r[0] == garg)]
            gid = int(g[0][2]) if g else int(garg)
        elif name:
            sgids = [int(r[2]) for r in group
                     if len(r) >= 4 and name in r[3].split(",")]
        return {"uid": uid, "gid": gid, "additionalGids": [gid] + sgids}, home

    def docker_env(self, hostname: str, home: str) -> list[str]:
        env = list(self.config.get("Env") or [])
        keys = {e.split("=", 1)[0] for e in env}
        out = ([] if "PATH" in keys else
               ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
        out += [f"HOSTNAME={hostname}"] + env
        if "HOME" not in keys:
            out.append(f"HOME={home}")
        return out

    def crun_config(self, probe: Probe, hostname: str, seccomp: bool, cgroups: bool) -> dict:
        user, home = self.docker_user(probe.user)
        namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
        if probe.net == "none":
            namespaces.append({"type": "network"})
        linux = {"namespaces": namespaces, "maskedPaths": DOCKER_MASKED,
                 "readonlyPaths": DOCKER_READONLY,
                 "resources": {"devices": DOCKER_DEVICE_RULES}}
        if cgroups:
            linux["cgroupsPath"] = f"/{CGROUP_PARENT}/{hostname}"
        sc = docker_seccomp() if seccomp else None
        if sc:
            linux["seccomp"] = sc
        return {
            "ociVersion": "1.0.2",
            "process": {
                "terminal": False, "user": user, "args": probe.argv,
                "env": self.docker_env(hostname, home),
                "cwd": self.config.get("WorkingDir") or "/",
                "capabilities": {k: DOCKER_CAPS for k in ("bounding", "effective", "permitted")},
                "noNewPrivileges": False,
            },
            "root": {"path": "rootfs", "readonly": False},
            "hostname": hostname,
            "mounts": DOCKER_MOUNTS,
            "linux": linux,
        }


def run_imgtool(setup: Setup, probe: Probe) -> Outcome:
    args = ["run"]
    if probe.user:
        args += ["-u", probe.user]
    if probe.net != "host":
        args += ["--net", probe.net]
    p = setup.it(*args, setup.id, *probe.argv, input=probe.stdin,
                 stdin=None if probe.stdin else subprocess.DEVNULL, capture_output=True,
                 timeout=60)
    return Outcome(p.returncode, p.stdout.decode(errors="replace"),
                   p.stderr.decode(errors="replace"))


CLONE_NEWNS, MS_REC, MS_PRIVATE, MNT_DETACH = 0x20000, 0x4000, 0x40000, 2
CGROUP_PARENT = "run-vs-crun"  # not imgtool-*: imgtool's run removes stale cgroups of that name


def _remove_cgroup_parent() -> None:
    """crun removes each container's cgroup, not the parent it made in every v1 hierarchy."""
    try:
        hierarchies = os.listdir("/sys/fs/cgroup")
    except OSError:
        return
    for h in hierarchies:
        try:
            os.rmdir(os.path.join("/sys/fs/cgroup", h, CGROUP_PARENT))
        except OSError:
            pass


def _private_mount_ns() -> None:
    """This process gets its own mount namespace with the host's cgroup2 'unified' mount gone:
    crun 1.8 refuses a hybrid cgroup host even with --cgroup-manager=disabled."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    with open("/proc/self/mountinfo") as fh:
        mps = [_unescape(line.split()[4]) for line in fh]
    for mp in sorted((p for p in mps if p == "/sys/fs/cgroup/unified"
                      or p.startswith("/sys/fs/cgroup/unified/")), key=len, reverse=True):
        libc.umount2(mp.encode(), MNT_DETACH)


def run_crun_all(setup: Setup, probes: list[Probe], seccomp: bool) -> tuple[list, str]:
    """Runs every probe with crun in a forked child that has the private mount namespace;
    returns [(Outcome, hostname)] and the cgroup manager used."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(rfd)
            _private_mount_ns()
            manager = "cgroupfs"
            results = []
            for i, probe in enumerate(probes):
                hostname = secrets.token_hex(6)
                while True:
                    cfg = setup.crun_config(probe, hostname, seccomp, manager == "cgroupfs")
                    with open(os.path.join(setup.bundle, "config.json"), "w") as fh:
                        json.dump(cfg, fh, indent=1)
                    p = subprocess.run(
                        ["crun", "--root", setup.state, f"--cgroup-manager={manager}", "run",
                         "-b", setup.bundle, f"rvc-{os.getpid()}-{i}"],
                        stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
                    err = p.stderr.decode(errors="replace")
                    if manager == "cgroupfs" and p.returncode != 0 and "cgroup" in err and \
                            "crun:" in err:
                        manager = "disabled"  # no usable cgroup v1 here: no device cgroup
                        continue
                    break
                results.append(({"rc": p.returncode, "out": p.stdout.decode(errors="replace"),
                                 "err": err}, hostname))
            _remove_cgroup_parent()
            with os.fdopen(wfd, "w") as fh:
                json.dump({"results": results, "manager": manager}, fh)
            code = 0
        except BaseException:  # noqa: BLE001 - report and leave the child
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd) as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not data:
        raise RuntimeError("the crun runs failed (see the traceback above)")
    d = json.loads(data)
    return [(Outcome(**o), h) for o, h in d["results"]], d["manager"]


def run_probes(imgtool: str, work: str, image: str | None, only: list[str] | None = None,
               seccomp: bool = True, keep: bool = False) -> tuple[list[Row], dict]:
    if os.geteuid() != 0:
        raise RuntimeError("run as root (imgtool run and crun run need it)")
    if shutil.which("crun") is None:
        raise RuntimeError("crun not found: apt-get install crun")
    probes = [p for p in PROBES if not only or p.name in only]
    setup = Setup(imgtool, work, image)
    try:
        setup.prepare()
        crun_results, manager = run_crun_all(setup, probes, seccomp)
        rows = []
        for probe, (c_out, c_host) in zip(probes, crun_results):
            i_out = run_imgtool(setup, probe)
            for o in (i_out, c_out):
                o.out, o.err = normalise(probe, o.out), normalise(probe, o.err, raw=True)
            rows.append(Row(probe, i_out, c_out))
    finally:
        setup.cleanup(keep)
    meta = {"cgroup_manager": manager, "seccomp": bool(seccomp and docker_seccomp())}
    return rows, meta


# --------------------------------------------------------------------------------------------
# Output


def md_cell(text: str) -> str:
    text = (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("`", "'").replace("\t", " "))
    return "<br>".join(text.splitlines()) or "(nothing)"


def table(rows: list[Row], meta: dict) -> str:
    out = ["| probe | imgtool | crun (docker's defaults) | same? |", "|---|---|---|---|"]
    for r in rows:
        name = r.probe.name
        if r.probe.seccomp and not meta["seccomp"]:
            name += " (crun without seccomp)"
        if r.same:
            same = "yes"
        else:
            kind = DIFFERENCES.get(r.probe.name, ("unexplained", ""))[0]
            same = f"no ({kind})"
        out.append(f"| {md_cell(name)} | {md_cell(r.imgtool.cell(r.probe.compare))} | "
                   f"{md_cell(r.crun.cell(r.probe.compare))} | {same} |")
    return "\n".join(out)


def explanations(rows: list[Row]) -> str:
    out = []
    for r in rows:
        if r.same:
            continue
        kind, why = DIFFERENCES.get(r.probe.name, ("unexplained", "no explanation recorded: "
                                                   "investigate"))
        out.append(f"- **{r.probe.name}** ({kind}): {why}")
    return "\n".join(out) or "None."


def versions(imgtool: str) -> dict:
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return {"crun": first(["crun", "--version"]), "kernel": platform.release(),
            "imgtool": first([imgtool, "--version"]),
            "commit": first(["git", "-C", SOURCE_DIR, "rev-parse", "--short", "HEAD"])}


DOC_HEAD = """# `imgtool run` against crun with docker's defaults

Produced on {date} by `{command}` (as root), with {imgtool} (source commit {commit}),
{crun} and kernel {kernel} ({arch}). `tests/integration/test_run_vs_crun.py` runs the same probes
and fails when a probe expected to match differs.

Each probe is a busybox shell snippet run as `imgtool run IMAGE sh -c PROBE` (with the probe's
`-u`/`--net`) and as `crun run` of a bundle whose `config.json` encodes docker's defaults as moby
sets them (`daemon/pkg/oci/defaults.go`, `daemon/oci_linux.go`): docker's 14 default capabilities
(inheritable and ambient empty); moby's mounts (`/proc`; `/dev` tmpfs `nosuid,strictatime,mode=755`;
`/dev/pts` `newinstance,ptmxmode=0666,mode=0620,gid=5`; `/dev/shm` `nosuid,nodev,noexec` 64 MiB;
`/dev/mqueue`; `/sys` and `/sys/fs/cgroup` read-only); moby's masked and read-only paths; the pid,
ipc, uts and mount namespaces (network: the host's, as imgtool's default; a new one for
`--net none`); the device cgroup (deny all, allow `c 1:3 1:5 1:8 1:9 5:0 5:1`); the image's Env,
WorkingDir and User, with `HOSTNAME` and `HOME` added and the groups resolved as moby's `getUser`
does; a random 12-hex host name; no rlimits; `noNewPrivileges` false; and
{seccomp}.
The bundle's rootfs is `imgtool mount --writable --suid --dev` of the image (an overlay, as docker's
graph driver gives). crun ran in a private mount namespace with `/sys/fs/cgroup/unified` unmounted
(crun 1.8 refuses this hybrid cgroup host otherwise), with `--cgroup-manager={manager}`.

Normalised: both host names (`<hostname>`), the overlay's `lowerdir`/`upperdir`/`workdir`, pipe
inode numbers. The `mount` rows show the type, the per-mount flags and the size/mode/gid options of
each of docker's mount points; the `mount points` rows list every mount below `/dev`, `/etc`,
`/proc` and `/sys`. Cells show stdout, then `stderr:`, then a non-zero exit status.

"""


NOT_COVERED = """## Not covered by a probe

- `keyctl`: busybox has no such applet (imgtool's filter refuses `keyctl`, `add_key` and
  `request_key` as docker's does: `test_run` `SeccompTest`).
- The calls docker's profile refuses only by leaving them out of its allow list (NUMA calls, `kcmp`,
  `pidfd_getfd`, `process_madvise`, `fanotify_init`, `socket(AF_VSOCK)`, unusual `personality`
  flags): busybox cannot make them. imgtool's filter is a deny-list that leaves them open
  (docs/security.md, "Out of scope, and known limits").
- The cgroup namespace (docker: the host's on cgroup v1, a private one on v2), rlimits beyond
  `nofile` (both inherit the caller's: docker sets none), and the private time namespace moby gives
  containers since April 2026 (d5370d34d3) where the kernel has one.
"""


def write_doc(path: str, rows: list[Row], meta: dict, imgtool: str, command: str) -> None:
    v = versions(imgtool)
    head = DOC_HEAD.format(
        command=command, date=datetime.date.today().isoformat(), arch=platform.machine(),
        seccomp=("moby's default seccomp profile (`github.com/moby/profiles/seccomp` v0.2.3)\n"
                 "converted to the runtime-spec format for this architecture and the default "
                 "capability set") if meta["seccomp"] else "no seccomp filter (probes marked).",
        manager=meta["cgroup_manager"], **v)
    diffs = sum(1 for r in rows if not r.same)
    body = (head + table(rows, meta) + f"\n\n## Differences ({diffs} of {len(rows)} probes)\n\n"
            "*intended*: a deliberate, documented choice of imgtool, or something docker does "
            "that a bare crun bundle does not; *crun*: crun itself departs from docker's runtime "
            "(runc) and imgtool matches docker; *finding*: imgtool departs from docker's "
            "default.\n\n" + explanations(rows) + "\n\n" + NOT_COVERED)
    with open(path, "w") as fh:
        fh.write(body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--imgtool", default=os.path.join(SOURCE_DIR, "build", "src", "imgtool"))
    ap.add_argument("--image", help="busybox test image (default: build/test-tmp/images/"
                    "busybox.docker.tar, else generated)")
    ap.add_argument("--work", help="scratch directory (default: a new one under build/test-tmp)")
    ap.add_argument("--only", nargs="+", metavar="PROBE")
    ap.add_argument("--no-seccomp", action="store_true", help="run crun without seccomp")
    ap.add_argument("--keep", action="store_true", help="leave the scratch directory")
    ap.add_argument("--write", metavar="DOC", help="write the table and explanations to DOC")
    args = ap.parse_args()
    image = args.image
    default_image = os.path.join(SOURCE_DIR, "build", "test-tmp", "images", "busybox.docker.tar")
    if image is None and os.path.isfile(default_image):
        image = default_image
    base = os.path.join(SOURCE_DIR, "build", "test-tmp")
    os.makedirs(base, exist_ok=True)
    work = args.work or tempfile.mkdtemp(prefix="run-vs-crun-", dir=base)
    rows, meta = run_probes(os.path.abspath(args.imgtool), work, image, args.only,
                            not args.no_seccomp, args.keep)
    print(table(rows, meta))
    print()
    print(explanations(rows))
    if args.write:
        cmd = "python3 tools/run_vs_crun.py --write " + shlex.quote(args.write)
        write_doc(args.write, rows, meta, os.path.abspath(args.imgtool), cmd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
