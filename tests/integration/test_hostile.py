"""Hostile inputs (tools/gen_hostile.py) against the built imgtool, one test per case.

Each case is an image that attacks one thing (see the generator's docstring and each case's
doc).  imgtool is deterministic, so each case expects exactly one outcome.  Every test checks:

  - the exit status: 0, or 1 for pull-local / 125 for run; a failure prints exactly one
    stderr line "imgtool: VERB: ..." holding every expected substring (the file or setting
    and the reason) and nothing on stdout; a pull that succeeds prints nothing on stderr;
  - the case's sentinel tree, which the image's links point at, is unchanged: contents,
    modes, owners, mtimes, every xattr (overlay ones too), link counts, inodes and ctimes;
  - the host's /etc (listing, passwd, group, hostname), / and core_pattern are unchanged;
  - ROOT/tmp/ is empty right after the command; after a failure the whole store listing is
    unchanged (each store starts as a copy of one holding a small base image); after a
    success neither ROOT nor ROOT/layers is reachable by other users;
  - no entry named imgtool-hostile-* exists outside the layer directories (store, its
    parents, /, /etc, /tmp, the sentinel, the image source);
  - imgtool's peak RSS and wall time stay within the case's limits.
"contained" cases also check what the layer directory holds (harness.check_inside, which
fails when an entry's xattrs cannot be read); run cases also check the command's status and
output, that no mount is left on the host and that the image's layer directories, the host's
busybox and the imgtool binary are unchanged; the pull-kill case SIGKILLs a pull mid-layer
and checks that the next imgtool command clears tmp/ without following the links it finds
there.

The corpus is generated once per generator source (like harness.images()) into
$IMGTOOL_TEST_TMP/hostile; the sentinels live in $IMGTOOL_TEST_TMP/sentinel-<case>.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import treecmp

GEN_HOSTILE = os.path.join(harness.TOOLS_DIR, "gen_hostile.py")
import gen_hostile  # noqa: E402  (harness put tools/ on sys.path)

MARKER = gen_hostile.MARKER
CORPUS_DIR = os.path.join(harness.TEST_TMP, "hostile")
EXIT_STATUS = {"pull-local": 1, "run": 125}
HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/hostname", "/etc/shadow")
TIMINGS: dict = {}  # case -> [outcome, imgtool seconds, peak RSS in MiB, test seconds]
_template_store: str | None = None


def setUpModule():
    global _template_store
    harness.require_root()
    harness.imgtool_binary()
    corpus()
    # Every case starts from a copy of one store holding the base image: pulling it again
    # per case would cost a syncfs each time.
    os.makedirs(os.path.join(harness.TEST_TMP, "work"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="hostile-template-", dir=os.path.join(harness.TEST_TMP, "work"))
    _template_store = os.path.join(work, "root")
    base = os.path.join(CORPUS_DIR, corpus()["base"]["path"])
    res = harness.run(_template_store, "pull-local", base)
    if res.rc != 0:
        raise AssertionError(f"pulling the base image failed\n{res}")


def tearDownModule():
    if _template_store and not os.environ.get("IMGTOOL_TEST_KEEP"):
        shutil.rmtree(os.path.dirname(_template_store), ignore_errors=True)
    if not TIMINGS:
        return
    imgtool = sum(t[1] for t in TIMINGS.values())
    total = sum(t[3] for t in TIMINGS.values())
    print(f"\ntest_hostile: {len(TIMINGS)} cases in {total:.1f} s, {imgtool:.1f} s of it in "
          f"imgtool; slowest:", file=sys.stderr)
    with open(os.path.join(harness.TEST_TMP, "hostile-results.json"), "w") as fh:
        json.dump(TIMINGS, fh, indent=1, sort_keys=True)
    for name, (outcome, secs, rss, test_secs, *_) in sorted(TIMINGS.items(),
                                                             key=lambda t: -t[1][3])[:15]:
        print(f"  {name:40s} {outcome:6s} imgtool {secs:6.2f} s {rss:6.1f} MiB, "
              f"test {test_secs:6.2f} s", file=sys.stderr)


# --------------------------------------------------------------------------
# The corpus (generated once per generator source, shared by concurrent test processes)


_corpus: dict | None = None


def corpus() -> dict:
    global _corpus
    if _corpus is not None:
        return _corpus
    os.makedirs(harness.TEST_TMP, exist_ok=True)
    if not os.path.isfile(harness.BUSYBOX):
        raise harness.SetupError(f"{harness.BUSYBOX} missing: install busybox-static")
    stamp = json.dumps({"gen_hostile": harness.sha256_file(GEN_HOSTILE),
                        "gen_images": harness.sha256_file(harness.GENERATOR),
                        "busybox": harness.sha256_file(harness.BUSYBOX),
                        "sentinel_base": harness.TEST_TMP, "arch": platform.machine()},
                       sort_keys=True)
    harness.generate_once("hostile", CORPUS_DIR, "hostile.json", stamp,
                          [sys.executable, GEN_HOSTILE, CORPUS_DIR, "--sentinel-base", harness.TEST_TMP,
                           "--busybox", harness.BUSYBOX])
    with open(os.path.join(CORPUS_DIR, "hostile.json")) as fh:
        _corpus = json.load(fh)
    _corpus["by_name"] = {c["name"]: c for c in _corpus["cases"]}
    return _corpus


# --------------------------------------------------------------------------
# Host-side state

def make_sentinel(path: str) -> None:
    """The same tree as harness.Sentinel, at a fixed path the corpus' links point at."""
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=True)
    os.makedirs(os.path.join(path, "sub"))
    with open(os.path.join(path, "file.txt"), "w") as fh:
        fh.write("must stay as it is\n")
    with open(os.path.join(path, "sub", "x"), "wb") as fh:
        fh.write(b"\0\1\2")
    os.chmod(os.path.join(path, "sub", "x"), 0o600)
    os.symlink("../file.txt", os.path.join(path, "sub", "link"))


def inode_state(path: str) -> tuple:
    st = os.lstat(path)
    return (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
            st.st_ino, st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
            tuple(sorted(harness.all_xattrs(path).items())))


def sentinel_fingerprint(path: str) -> dict:
    """tree_hash (content, modes, owners, mtimes, xattrs but overlay ones) plus, for every
    entry, inode, link count, ctime and all xattrs: a hardlink made to a sentinel file or an
    overlay xattr set on it shows here even if tree_hash misses it."""
    out = {"tree_hash": treecmp.tree_hash(path)}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [""] + dirnames + filenames:
            full = os.path.join(dirpath, name) if name else dirpath
            out[os.path.relpath(full, path)] = inode_state(full)
    return out


def host_state() -> dict:
    state = {"/etc": sorted(os.listdir("/etc")), "/": sorted(os.listdir("/")),
             "/etc:inode": inode_state("/etc")[:4] + inode_state("/etc")[7:8]
             + inode_state("/etc")[9:]}
    for path in HOST_FILES:
        if os.path.exists(path):
            state[path] = (harness.sha256_file(path),) + inode_state(path)
    with open("/proc/sys/kernel/core_pattern") as fh:
        state["core_pattern"] = fh.read()
    return state


def state_diff(before: dict, after: dict) -> str:
    lines = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            lines.append(f"{key}: {before.get(key)!r} -> {after.get(key)!r}")
    return "\n".join(lines[:20])


def walk_names(top: str, prune=None):
    """Every path below top (iteratively: deep hostile trees exceed Python's recursion limit;
    unreadable or too-long paths are skipped).  prune(path) -> True skips a directory."""
    stack = [top]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = list(it)
        except OSError:
            continue
        for de in entries:
            yield de.path
            try:
                is_dir = de.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir and not (prune and prune(de.path)):
                stack.append(de.path)


def stray_markers(root: str, sentinel: str, source: str) -> list:
    """Entries named imgtool-hostile-* outside the store's layer directories."""
    found = []
    layers = os.path.join(root, "layers")
    scratch = os.path.dirname(root)

    def prune(path: str) -> bool:
        return os.path.basename(path) == "diff" and os.path.dirname(os.path.dirname(path)) == layers

    for top in (scratch, sentinel) + ((source,) if os.path.isdir(source) else ()):
        found += [p for p in walk_names(top, prune) if MARKER in os.path.basename(p)]
    listed = {"/", "/etc", "/tmp", harness.TEST_TMP, os.path.dirname(sentinel)}
    parent = scratch
    while parent != "/":
        parent = os.path.dirname(parent)
        listed.add(parent)
    for d in sorted(listed):
        with contextlib.suppress(OSError):
            found += [os.path.join(d, n) for n in os.listdir(d) if MARKER in n]
    return sorted(set(found))


def remove_tree(top: str) -> None:
    """rm -rf that costs O(entries) at any depth (GNU rm and shutil.rmtree slow down or give up
    on 10,000 nested directories): descend by directory fd, never following symlinks, and go
    back up through "..", holding one directory fd at a time."""
    if not os.path.lexists(top):
        return
    if not os.path.isdir(top) or os.path.islink(top):
        os.unlink(top)
        return
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fd = os.open(top, flags)
    names: list = []
    try:
        while True:
            subdir = None
            for de in os.scandir(fd):
                if de.is_dir(follow_symlinks=False):
                    subdir = de.name
                    break
                os.unlink(de.name, dir_fd=fd)
            if subdir is not None:
                child = os.open(subdir, flags, dir_fd=fd)
                os.close(fd)
                fd, _ = child, names.append(subdir)
                continue
            if not names:
                break
            parent = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(names.pop(), dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(top)


def mount_points() -> set:
    """(mount point, fs root, fs type, source) of every mount in this mount namespace."""
    out = set()
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index("-")
            out.add((fields[4], fields[3], fields[sep + 1], fields[sep + 2]))
    return out


def leaked_mounts(before: set, after: set, roots: tuple) -> list:
    """Mounts that appeared on the host at or below one of roots, or over a system directory.
    (Counting lines is not enough: other test sessions mount and unmount concurrently.)"""
    system = ("/", "/etc", "/proc", "/sys", "/dev", "/tmp")
    return sorted(m for m in after - before
                  if m[0] in system or m[0].startswith("/etc/")
                  or any(m[0] == r or m[0].startswith(r + "/") or r in m[3] for r in roots))


host_mount_lock = harness.host_mount_lock


# --------------------------------------------------------------------------
# Running imgtool with its peak RSS

# A small parent for imgtool: wait4's ru_maxrss of a child includes the high-water mark of the
# memory it had before exec, which for a child of this test process is the whole Python heap.
_RSS_WRAPPER = r"""
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
os.write(int(sys.argv[1]), b"%d %d" % (status, usage.ru_maxrss))
"""


def run_measured(argv: list, timeout: float) -> tuple:
    """(Result, seconds, peak RSS in MiB, timed_out) of argv run under _RSS_WRAPPER; on timeout
    the whole process group is killed."""
    report_r, report_w = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _RSS_WRAPPER, str(report_w),
                                 *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=harness.base_env(), pass_fds=(report_w,),
                                start_new_session=True)
        os.close(report_w)
        timed_out = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
        seconds = time.monotonic() - start
        with os.fdopen(report_r, "rb") as fh:
            report = fh.read().split()
        if report:
            status, rss = int(report[0]), int(report[1]) / 1024.0
            rc = os.waitstatus_to_exitcode(status)
        else:
            rc, rss = proc.returncode, 0.0
        out.seek(0)
        err.seek(0)
        res = harness.Result(argv, rc, out.read().decode(errors="replace"),
                             err.read().decode(errors="replace"))
    return res, seconds, rss, timed_out


# --------------------------------------------------------------------------

class HostileTest(unittest.TestCase):
    """One generated test method per corpus case (test_<category>_<name>)."""

    maxDiff = 4000

    def case(self, name: str) -> None:
        started = time.monotonic()
        rec = corpus()["by_name"][name]
        self.rec = rec
        source = os.path.join(CORPUS_DIR, rec["path"])
        sentinel = rec["sentinel"]
        make_sentinel(sentinel)
        self.addCleanup(shutil.rmtree, sentinel, True)
        sentinel_before = sentinel_fingerprint(sentinel)
        host_before = host_state()

        self.root = self.big_tree_store() if rec.get("big_tree") else harness.new_store(self)
        if rec.get("deep") and not os.environ.get("IMGTOOL_TEST_KEEP"):
            # Before harness's shutil.rmtree, which recurses in Python.
            self.addCleanup(remove_tree, os.path.dirname(self.root))
        shutil.copytree(_template_store, self.root, symlinks=True)
        TIMINGS[name] = ["-", 0.0, 0.0, 0.0]
        try:
            self.check_case(rec, source, sentinel, sentinel_before, host_before)
        finally:
            TIMINGS[name][3] = time.monotonic() - started

    def big_tree_store(self) -> str:
        """A store for cases that leave tens of thousands of directories behind, on tmpfs when
        /dev/shm is one: on a disk mounted with online discard every freed block costs
        milliseconds, and removing 20,000 directories there takes most of a minute."""
        with open("/proc/self/mounts") as fh:
            on_tmpfs = any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in fh)
        if not on_tmpfs:
            return harness.new_store(self)
        path = tempfile.mkdtemp(prefix="hostile-store-", dir="/dev/shm")
        if not os.environ.get("IMGTOOL_TEST_KEEP"):
            self.addCleanup(shutil.rmtree, path, True)
        return os.path.join(path, "root")

    def check_case(self, rec, source, sentinel, sentinel_before, host_before) -> None:
        if rec["verb"] == "run":
            self.run_case(rec, source)
        elif rec["verb"] == "pull-kill":
            self.pull_kill_case(rec, source)
        else:
            self.pull_case(rec, source)

        self.assertEqual(sentinel_fingerprint(sentinel), sentinel_before,
                         f"the sentinel {sentinel} changed")
        host_after = host_state()
        self.assertEqual(host_after, host_before,
                         f"host state changed:\n{state_diff(host_before, host_after)}")
        strays = stray_markers(self.root, sentinel, source)
        self.assertEqual(strays, [], "entries planted outside the layer directories")

    # ---- pull-local --------------------------------------------------------------

    def finished(self, rec: dict, what: str, outcome: str, res, secs: float, rss: float,
                 timed_out: bool) -> str:
        """Records a measured command's timing; checks it finished and left nothing in tmp/ (right
        away: the next imgtool command would clear what a crash left there). Returns the context
        for later assertion messages."""
        TIMINGS[rec["name"]][:3] = [outcome, secs, rss]
        TIMINGS[rec["name"]].append(res.err.splitlines()[:2])
        info = f"{rec['name']}: {rec['doc']}\n{res}\npeak RSS {rss:.1f} MiB, {secs:.2f} s"
        timeout = rec["limits"].get("timeout", 60)
        self.assertFalse(timed_out, f"{what} did not finish in {timeout} s\n{info}")
        self.assertEqual(harness.tmp_entries(self.root), [], f"left in tmp/\n{info}")
        return info

    def pull_case(self, rec: dict, source: str) -> None:
        expect, limits = rec["expect"], rec["limits"]
        listing_before = harness.store_listing(self.root)
        res, secs, rss, timed_out = run_measured(
            harness.imgtool_argv(self.root, "pull-local", source), limits.get("timeout", 60))
        outcome = "ok" if res.rc == 0 else "error"
        info = self.finished(rec, "imgtool", outcome, res, secs, rss, timed_out)
        self.check_limits(limits, secs, rss, info)

        allowed = {"error": ("error",), "contained": ("ok",)}
        self.assertIn(outcome, allowed[expect["outcome"]],
                      f"expected outcome {expect['outcome']}\n{info}")
        if outcome == "error":
            self.check_error_line(res, "pull-local", expect.get("error"), info)
            listing_after = harness.store_listing(self.root)
            self.assertEqual(listing_after, listing_before,
                             f"failed pull changed the store:\n"
                             f"{harness.listing_diff(listing_before, listing_after)}\n{info}")
        else:
            self.assertEqual(res.err, "", info)
            lines = res.out.splitlines()
            self.assertEqual(len(lines), 1, info)
            self.assertTrue(lines[0].startswith("sha256:"), info)
            self.check_inside(rec, expect.get("inside", []), info)
            for d in (self.root, os.path.join(self.root, "layers")):
                self.assertEqual(stat.S_IMODE(os.stat(d).st_mode) & 0o007, 0,
                                 f"{d} is reachable by other users: setuid files in layers "
                                 f"could be run by anyone\n{info}")

    def pull_kill_case(self, rec: dict, source: str) -> None:
        """SIGKILL pull-local once the case's kill_marker is in tmp/, then let `imgtool images`
        (which clears what dead processes left in tmp/) run: it must not follow the links."""
        tmp = os.path.join(self.root, "tmp")
        listing_before = harness.store_listing(self.root)
        proc = harness.popen(self.root, "pull-local", source, start_new_session=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        deadline = time.monotonic() + rec["limits"].get("timeout", 60)
        seen = False
        while not seen and proc.poll() is None and time.monotonic() < deadline:
            seen = any(os.path.basename(p) == rec["kill_marker"] for p in walk_names(tmp))
            if not seen:
                time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        TIMINGS[rec["name"]][:3] = ["killed" if seen else "finished", 0.0, 0.0]
        info = f"{rec['name']}: {rec['doc']}\nexit {proc.returncode}\n{err.decode()}"
        self.assertTrue(seen, f"pull-local finished before {rec['kill_marker']} appeared in "
                              f"tmp/\n{info}")
        self.assertNotEqual(harness.tmp_entries(self.root), [], "the killed pull left nothing")
        res = harness.run(self.root, "images")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(harness.tmp_entries(self.root), [], f"tmp/ not cleared\n{res}")
        listing_after = harness.store_listing(self.root)
        self.assertEqual(listing_after, listing_before,
                         harness.listing_diff(listing_before, listing_after))

    def check_limits(self, limits: dict, secs: float, rss: float, info: str) -> None:
        if "max_rss_mb" in limits:
            self.assertLessEqual(rss, limits["max_rss_mb"], f"peak RSS too high\n{info}")
        if "max_seconds" in limits:
            self.assertLessEqual(secs, limits["max_seconds"], f"too slow\n{info}")

    def check_error_line(self, res: harness.Result, verb: str, needle, info: str) -> None:
        self.assertEqual(res.rc, EXIT_STATUS[verb], info)
        self.assertEqual(res.out, "", info)
        lines = res.err.splitlines()
        self.assertEqual(len(lines), 1, f"expected exactly one error line\n{info}")
        self.assertTrue(res.err.endswith("\n"), info)
        self.assertTrue(lines[0].startswith(f"imgtool: {verb}: "), info)
        needles = gen_hostile.error_needles(needle)
        self.assertTrue(needles, f"an error case names the message it expects\n{info}")
        for n in needles:
            self.assertIn(n, lines[0], info)
        # Each context level once ("x.oci: index.json: why", never "index.json: index.json: why").
        self.assertIsNone(re.search(r"(?:^|: )([^: ]+): \1: ", lines[0]), f"a doubled prefix\n{info}")

    def layer_dir(self, rec: dict, index) -> str:
        diff_ids = rec["diff_ids"]
        diff_id = diff_ids[-1 if index is None else index]
        path = os.path.join(self.root, "layers", diff_id.split(":", 1)[1], "diff")
        self.assertTrue(os.path.isdir(path), f"layer directory {path} missing")
        return path

    def check_inside(self, rec: dict, checks: list, info: str) -> None:
        harness.check_inside(self, lambda index: self.layer_dir(rec, index), checks, info)

    # ---- run -----------------------------------------------------------------------

    def run_case(self, rec: dict, source: str) -> None:
        expect, limits = rec["expect"], rec["limits"]
        image_id = harness.pull(self, self.root, source)
        busybox_hash = harness.sha256_file(harness.BUSYBOX)
        layer_hashes = {d: treecmp.tree_hash(self.layer_dir(rec, i))
                        for i, d in enumerate(rec["diff_ids"])}
        argv = harness.imgtool_argv(self.root, *[image_id if a == "{image}" else a
                                                 for a in rec["command"]])
        with host_mount_lock():
            mounts_before = mount_points()
            res, secs, rss, timed_out = run_measured(argv, limits.get("timeout", 60))
            mounts_after = mount_points()
        outcome = "error" if res.rc == 125 else "ran"
        info = self.finished(rec, "imgtool run", outcome, res, secs, rss, timed_out)
        leaked = leaked_mounts(mounts_before, mounts_after,
                               (os.path.dirname(self.root), rec["sentinel"], harness.TEST_TMP))
        self.assertEqual(leaked, [], f"mounts left on the host\n{info}")
        self.check_limits(limits, secs, rss, info)
        self.assertEqual(harness.sha256_file(harness.BUSYBOX), busybox_hash,
                         "the host's busybox was written to")
        with open(harness.imgtool_binary(), "rb") as fh:
            fh.seek(-64, os.SEEK_END)
            self.assertNotIn(b"pwned", fh.read(), "the imgtool binary was written to")

        allowed = {"error": ("error",), "run": ("ran",)}
        self.assertIn(outcome, allowed[expect["outcome"]],
                      f"expected outcome {expect['outcome']}\n{info}")
        if outcome == "error":
            self.check_error_line(res, "run", expect.get("error"), info)
        else:
            self.assertEqual(res.rc, expect["rc"], info)
            self.assertFalse(any(line.startswith("imgtool:") for line in res.err.splitlines()),
                             f"imgtool complained although the command ran\n{info}")
            if expect.get("stdout") is not None:
                self.assertEqual(res.out, expect["stdout"], info)
            for needle in expect.get("stdout_contains", []):
                self.assertIn(needle, res.out, info)
            for needle in expect.get("stdout_not_contains", []):
                self.assertNotIn(needle, res.out, info)
        for i, d in enumerate(rec["diff_ids"]):
            self.assertEqual(treecmp.tree_hash(self.layer_dir(rec, i)), layer_hashes[d],
                             f"layer {d} changed by run\n{info}")


class HarnessXattrTest(unittest.TestCase):
    """harness.all_xattrs, which every "xattr absent" check relies on: a failure to read must
    fail the check, never look like a file without xattrs."""

    def setUp(self):
        self.path = os.path.join(harness.scratch_dir(self), "f")
        with open(self.path, "w") as fh:
            fh.write("x\n")
        os.setxattr(self.path, "user.a", b"1")
        os.setxattr(self.path, "user.b", b"2")

    def test_listxattr_failure_raises(self):
        real = os.listxattr

        def failing(path, *, follow_symlinks=True):
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        os.listxattr = failing
        try:
            with self.assertRaises(OSError):
                harness.all_xattrs(self.path)
            with self.assertRaises(OSError):  # an "absent" check must not pass
                harness.check_inside(self, lambda index: os.path.dirname(self.path),
                                     [{"path": "f", "type": "file",
                                       "absent_xattrs": ["user.overlay.opaque"]}], "self-test")
        finally:
            os.listxattr = real
        with self.assertRaises(FileNotFoundError):
            harness.all_xattrs(self.path + "-missing")

    def test_attribute_gone_between_list_and_read_is_skipped(self):
        real = os.getxattr

        def racing(path, name, *, follow_symlinks=True):
            if name == "user.a":
                raise OSError(errno.ENODATA, os.strerror(errno.ENODATA), path)
            return real(path, name, follow_symlinks=follow_symlinks)
        os.getxattr = racing
        try:
            self.assertEqual(harness.all_xattrs(self.path), {"user.b": b"2"})
        finally:
            os.getxattr = real
        self.assertEqual(harness.all_xattrs(self.path), {"user.a": b"1", "user.b": b"2"})

    def test_other_getxattr_errors_raise(self):
        real = os.getxattr

        def failing(path, name, *, follow_symlinks=True):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)
        os.getxattr = failing
        try:
            with self.assertRaises(PermissionError):
                harness.all_xattrs(self.path)
        finally:
            os.getxattr = real


def _add_tests() -> None:
    for category, name in gen_hostile.case_names():
        method = f"test_{category}_{name}".replace("-", "_")

        def test(self, name=name):
            self.case(name)
        test.__name__ = method
        test.__doc__ = f"{category}/{name}"
        setattr(HostileTest, method, test)


_add_tests()


if __name__ == "__main__":
    unittest.main()
