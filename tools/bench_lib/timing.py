"""Timed process execution with little overhead of our own.

posix_spawn + wait4: the wall time runs from just before the spawn to the return of wait4,
and wait4's rusage gives the child's CPU time (with the descendants it waited for).

Peak RSS cannot come from that rusage: posix_spawn vforks, and at exec Linux folds the high-water
RSS of the mm being replaced (this Python process's) into the child's maxrss. With rss=True the
command runs under `/usr/bin/time -f %M`, a small process whose fork starts from a small mm, so
%M is the command's own peak (for `sh -c` loops: the largest of sh and its children). That adds
one fork+exec of GNU time to the wall time (a few ms; see docs/performance.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass


class CommandFailed(Exception):
    pass


@dataclass
class Sample:
    wall: float          # seconds
    cpu: float           # user + system seconds, child and its waited descendants
    rss_kb: int          # peak resident set size (KiB)
    sync: float = 0.0    # syncfs of the output right after the command (disk runs; not in wall)
    load: float = 0.0    # 1-minute load average just before the sample


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def resolve(argv0: str) -> str:
    if "/" in argv0:
        return argv0
    p = shutil.which(argv0)
    if not p:
        raise CommandFailed(f"{argv0}: not found in PATH")
    return p


def load1() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def spawn_timed(argv: list[str], log_prefix: str, env: dict | None = None,
                timeout: int = 900, rss: bool = False) -> Sample:
    """Run argv with stdin from /dev/null and stdout/stderr into log_prefix.{out,err};
    raise CommandFailed (with the stderr tail) on a non-zero exit."""
    shown = argv
    rss_file = log_prefix + ".rss"
    if rss:
        argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file, resolve(argv[0]), *argv[1:]]
    path = resolve(argv[0])
    out, err = log_prefix + ".out", log_prefix + ".err"
    fa = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    pid = None
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(path, argv, os.environ if env is None else env, file_actions=fa)
        _, status, ru = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
        pid = None
    except _Timeout:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise CommandFailed(f"{' '.join(shown)}: timed out after {timeout} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = ""
        for p in (err, out):
            try:
                with open(p, errors="replace") as f:
                    lines = [l.strip() for l in f.read().splitlines() if l.strip()]
                if lines:
                    tail = " | ".join(lines[-4:])
                    break
            except OSError:
                pass
        raise CommandFailed(f"{os.path.basename(shown[0])} exited {code}: {tail}"[:600])
    rss_kb = 0
    if rss:
        with open(rss_file) as f:
            rss_kb = int(f.read().split()[-1])
    return Sample(wall=wall, cpu=ru.ru_utime + ru.ru_stime, rss_kb=rss_kb)


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
