"""Host plumbing for the benchmark: logging, commands, packages, mounts, cleanup."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import time

_T0 = time.monotonic()

# Debian packages the benchmark drives (only what is missing gets installed).
BENCH_PACKAGES = [
    "umoci", "skopeo", "podman", "debootstrap", "pigz", "isal", "zstd", "crun", "runc",
    "python3", "busybox-static", "tar", "coreutils", "util-linux", "time", "buildah",
]


def log(msg: str) -> None:
    el = time.monotonic() - _T0
    print(f"[{int(el) // 60:3d}:{int(el) % 60:02d}] {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> None:
    print(f"bench: error: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd: list[str], *, check: bool = True, capture: bool = False, env=None,
        cwd=None, quiet: bool = False) -> subprocess.CompletedProcess:
    """Untimed helper command. Output is captured (and shown on failure) unless capture."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                       text=True, errors="replace")
    if check and r.returncode != 0:
        tail = (r.stderr or r.stdout or "").strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: " + " | ".join(tail))
    if not capture and not quiet and r.returncode != 0:
        log(f"note: {' '.join(cmd)} exited {r.returncode}")
    return r


def missing_packages(pkgs: list[str]) -> list[str]:
    missing = []
    for p in pkgs:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    return missing


_apt_updated = False


def ensure_packages(pkgs: list[str]) -> None:
    global _apt_updated
    missing = missing_packages(pkgs)
    if not missing:
        return
    if os.geteuid() != 0:
        die(f"packages missing and not root: apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        log("apt-get update")
        run(["apt-get", "update", "-qq"], env=env)
        _apt_updated = True
    log(f"installing Debian packages: {' '.join(missing)}")
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def tool_version(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace", timeout=30)
        lines = [l.strip(" *") for l in r.stdout.splitlines() if l.strip(" *")]
        return lines[0] if lines else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


# --- mounts -------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def _unescape_mountinfo(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 4 <= len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mounts_under(path: str) -> list[str]:
    """Mount points at or below path, deepest first."""
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape_mountinfo(line.split()[4])
            if mp == path or mp.startswith(path.rstrip("/") + "/"):
                found.append(mp)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def fs_type(path: str) -> str:
    """Filesystem type of the mount holding path (from mountinfo, longest prefix)."""
    path = os.path.realpath(path)
    best, typ = "", "?"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            mp = _unescape_mountinfo(left.split()[4])
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, typ = mp, right.split()[0]
    return typ


def mount_options(path: str) -> set[str]:
    """Per-mount and superblock options of the mount holding path."""
    path = os.path.realpath(path)
    best, opts = "", set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            lf, rf = left.split(), right.split()
            mp = _unescape_mountinfo(lf[4])
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best = mp
                opts = set(lf[5].split(",")) | set(rf[2].split(",") if len(rf) > 2 else [])
    return opts


def mount_loop_ext4(image: str, target: str, size: str) -> str:
    """A fresh ext4 in a sparse file, attached with direct I/O (no second page cache) and
    mounted at target without online discard. Returns the loop device."""
    if os.path.exists(image):
        os.unlink(image)
    run(["truncate", "-s", size, image])
    # Initialise inode tables and journal now, not in a kernel thread during the samples.
    run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", image])
    dev = run(["losetup", "-f", "--show", "--direct-io=on", image], capture=True).stdout.strip()
    os.makedirs(target, exist_ok=True)
    try:
        run(["mount", "-t", "ext4", "-o", "nodiscard", dev, target])
    except RuntimeError:
        run(["losetup", "-d", dev], check=False)
        raise
    return dev


def unmount_loop(target: str, dev: str, image: str) -> None:
    if is_mountpoint(target):
        umount(target)
    run(["losetup", "-d", dev], check=False)
    if os.path.exists(image):
        os.unlink(image)


def umount(path: str, detach: bool = False) -> None:
    if _libc.umount2(path.encode(), MNT_DETACH if detach else 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"umount {path}: {os.strerror(e)}")


def is_mountpoint(path: str) -> bool:
    return os.path.realpath(path) in mounts_under(path)


def mount_tmpfs(path: str, size: str) -> bool:
    """Mount a tmpfs at path unless one is already there. Returns True if we mounted it."""
    os.makedirs(path, exist_ok=True)
    if is_mountpoint(path) and fs_type(path) == "tmpfs":
        return False
    run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path])
    return True


def clean(path: str) -> None:
    """Remove path: unmount everything below it first (podman's overlay driver bind-mounts
    its own home; a leftover imgtool mount would be a bug but must not stop the run), never
    following symlinks (shutil.rmtree does not)."""
    if not os.path.lexists(path):
        return
    for mp in mounts_under(path):
        if mp == os.path.realpath(path):
            continue
        try:
            umount(mp)
        except OSError:
            umount(mp, detach=True)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def syncfs(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _libc.syncfs(fd)
    finally:
        os.close(fd)
