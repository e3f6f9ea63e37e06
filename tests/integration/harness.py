"""Shared helpers for the imgtool integration tests (standard library only).

Environment (set by CTest, see CMakeLists.txt; defaults for running by hand):
  IMGTOOL             the imgtool binary (default: build/src/imgtool in the source tree)
  IMGTOOL_SOURCE_DIR  the source tree (default: two levels above this file)
  IMGTOOL_TEST_TMP    scratch space (default: build/test-tmp in the source tree)
  IMGTOOL_TEST_KEEP   if set, per-test stores are left behind for inspection

Test images come from tools/gen_images.py and are generated once per source of
the generator: several ctest processes may start at once, so generation runs
under a lock file and is marked done by a stamp holding the inputs' hashes.

Missing test tools make tests FAIL with the Debian package to install; only a
kernel that lacks a feature (probed by trying it) makes a test skip.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest
from dataclasses import dataclass

SOURCE_DIR = os.path.abspath(
    os.environ.get("IMGTOOL_SOURCE_DIR")
    or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOOLS_DIR = os.path.join(SOURCE_DIR, "tools")
TEST_TMP = os.path.abspath(
    os.environ.get("IMGTOOL_TEST_TMP") or os.path.join(SOURCE_DIR, "build", "test-tmp"))
GENERATOR = os.path.join(TOOLS_DIR, "gen_images.py")
TREECMP = os.path.join(TOOLS_DIR, "treecmp.py")
BUSYBOX = "/bin/busybox"

if TOOLS_DIR not in sys.path:
    sys.path.insert(0, TOOLS_DIR)
import gen_images  # noqa: E402  (the generator's model is the source of expectations)
import treecmp  # noqa: E402

# Debian package providing each external tool the tests drive.
PACKAGES = {
    "skopeo": "skopeo",
    "umoci": "umoci",
    "unshare": "util-linux",
    "mount": "mount",
    "zstd": "zstd",
    "podman": "podman",
    "runc": "runc",
    "crun": "crun",
}


class SetupError(AssertionError):
    """Something the test script should have installed is missing: a failure, never a skip."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise SetupError("the integration tests drive overlayfs, mknod and chown: run them as root")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SetupError(f"{name} not found in PATH: install the Debian package "
                         f"{PACKAGES.get(name, name)} (tools/test.sh installs it)")
    return path


def skopeo_argv() -> list:
    """skopeo run with a blob-info cache of its own. As root, skopeo (and podman) share one cache,
    /var/lib/containers/cache, across every run on the machine: it remembers which compressed blobs
    stood for an uncompressed layer, and a later copy of the same layer (to another registry, or with
    --format v2s2) reuses or rejects them ("zstd compression is not supported for type ...gzip").
    That made a test's result depend on what earlier runs had pushed. A private mount namespace with
    a tmpfs there gives each run an empty cache and leaves the machine's alone."""
    skopeo = require_tool("skopeo")
    if os.geteuid() != 0:
        return [skopeo]  # an ordinary user's cache is under its own HOME
    cache = "/var/lib/containers/cache"
    return [require_tool("unshare"), "--mount", "--propagation", "private", "sh", "-c",
            f'mkdir -p {cache} && mount -t tmpfs -o size=64m,mode=0700 imgtool-test {cache} && exec "$0" "$@"',
            skopeo]


def imgtool_binary() -> str:
    path = os.environ.get("IMGTOOL") or os.path.join(SOURCE_DIR, "build", "src", "imgtool")
    if not os.access(path, os.X_OK):
        raise SetupError(f"imgtool binary {path} not found or not executable: build it "
                         f"(ninja -C build imgtool) or set IMGTOOL")
    return os.path.abspath(path)


# --------------------------------------------------------------------------
# Test images (generated once, shared by every test process)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _images_stamp() -> str:
    # Inputs that decide the generator's output: its source, the busybox payload, the host arch.
    if not os.path.isfile(BUSYBOX):
        raise SetupError(f"{BUSYBOX} missing: install the Debian package busybox-static")
    return json.dumps({"generator": sha256_file(GENERATOR), "busybox": sha256_file(BUSYBOX),
                       "arch": platform.machine()}, sort_keys=True)


_images_cache: dict | None = None


def images_dir() -> str:
    return os.path.join(TEST_TMP, "images")


def generate_once(name: str, out: str, index_file: str, stamp: str, argv: list) -> None:
    """Runs a generator (argv) into `out` unless TEST_TMP/NAME.stamp already holds `stamp` and
    out/index_file exists. Several ctest processes may get here at once: NAME.lock serialises them,
    and the stamp is written last, so a killed generation is redone."""
    stamp_path = os.path.join(TEST_TMP, f"{name}.stamp")
    with open(os.path.join(TEST_TMP, f"{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        try:
            with open(stamp_path) as fh:
                fresh = fh.read() == stamp and os.path.isfile(os.path.join(out, index_file))
        except FileNotFoundError:
            fresh = False
        if fresh:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stamp_path)
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SetupError(f"{os.path.basename(argv[1])} failed ({proc.returncode}): {proc.stderr}")
        with open(stamp_path + ".tmp", "w") as fh:
            fh.write(stamp)
        os.replace(stamp_path + ".tmp", stamp_path)


@contextlib.contextmanager
def host_mount_lock():
    """Serialises the tests (test_mount, test_run) that count the host's mountinfo lines."""
    os.makedirs(TEST_TMP, exist_ok=True)
    with open(os.path.join(TEST_TMP, "host-mounts.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def images() -> dict:
    """images.json of the generated test images (generating them first if needed)."""
    global _images_cache
    if _images_cache is not None:
        return _images_cache
    require_tool("zstd")
    os.makedirs(TEST_TMP, exist_ok=True)
    out = images_dir()
    generate_once("images", out, "images.json", _images_stamp(),
                  [sys.executable, GENERATOR, out, "--busybox", BUSYBOX])
    with open(os.path.join(out, "images.json")) as fh:
        index = json.load(fh)
    if index["skipped"]:
        # The generator skips busybox only when /bin/busybox is not a static binary.
        raise SetupError(f"gen_images.py skipped {index['skipped']}: install busybox-static")
    _images_cache = index
    return index


def image_record(name: str, fmt: str) -> dict:
    for rec in images()["images"]:
        if rec["name"] == name and rec["format"] == fmt:
            return rec
    raise KeyError(f"images.json has no {name} in format {fmt}")


def image_path(rec_or_name, fmt: str | None = None) -> str:
    rec = rec_or_name if isinstance(rec_or_name, dict) else image_record(rec_or_name, fmt)
    return os.path.join(images_dir(), rec["path"])


def host_platform() -> str:
    return "linux/" + gen_images.host_arch()


# --------------------------------------------------------------------------
# Running imgtool


@dataclass
class Result:
    argv: list
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return (f"$ {' '.join(self.argv)}\nexit {self.rc}\n--- stdout\n{self.out}"
                f"--- stderr\n{self.err}")


def base_env(**extra) -> dict:
    env = dict(os.environ)
    # Never let an inherited IMGTOOL_ROOT (or the default /var/lib/imgtool) catch a test's writes.
    env.pop("IMGTOOL_ROOT", None)
    env.update(extra)
    return env


def imgtool_argv(root: str | None, *args) -> list:
    argv = [imgtool_binary()]
    if root is not None:
        argv += ["--root", root]
    return argv + [str(a) for a in args]


def run(root: str | None, *args, env: dict | None = None, timeout: float = 120) -> Result:
    """Run `imgtool [--root ROOT] ARGS...` with stdin closed, capturing both streams."""
    argv = imgtool_argv(root, *args)
    if root is None and (env is None or "IMGTOOL_ROOT" not in env):
        raise ValueError("refusing to run imgtool on the default store /var/lib/imgtool")
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env or base_env(), timeout=timeout)
    return Result(argv, proc.returncode, proc.stdout.decode(errors="replace"),
                  proc.stderr.decode(errors="replace"))


def popen(root: str, *args, **kwargs) -> subprocess.Popen:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    kwargs.setdefault("env", base_env())
    return subprocess.Popen(imgtool_argv(root, *args), **kwargs)


def scratch_dir(tc: unittest.TestCase, prefix: str = "t-") -> str:
    """A fresh directory under IMGTOOL_TEST_TMP, removed after the test."""
    os.makedirs(os.path.join(TEST_TMP, "work"), exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix, dir=os.path.join(TEST_TMP, "work"))
    if not os.environ.get("IMGTOOL_TEST_KEEP"):
        tc.addCleanup(shutil.rmtree, path, True)
    return path


def new_store(tc: unittest.TestCase) -> str:
    """Path of a store root that does not exist yet (imgtool creates it)."""
    return os.path.join(scratch_dir(tc, "store-"), "root")


def pull(tc: unittest.TestCase, root: str, source: str, *args) -> str:
    """pull-local that must succeed; returns the single printed ID."""
    res = run(root, "pull-local", source, *args)
    tc.assertEqual(res.rc, 0, str(res))
    lines = res.out.splitlines()
    tc.assertEqual(len(lines), 1, str(res))
    return lines[0]


def inspect(tc: unittest.TestCase, root: str, *refs) -> list:
    res = run(root, "inspect", *refs)
    tc.assertEqual(res.rc, 0, str(res))
    return json.loads(res.out)


def images_json(tc: unittest.TestCase, root: str) -> list:
    res = run(root, "images", "--format", "json")
    tc.assertEqual(res.rc, 0, str(res))
    return json.loads(res.out)


def tag_map(tc: unittest.TestCase, root: str) -> dict:
    """'repo:tag' -> ID for every tagged row of `images --format json`."""
    return {f"{row['Repository']}:{row['Tag']}": row["ID"] for row in images_json(tc, root)
            if row["Repository"] != "<none>"}


def assert_one_error_line(tc: unittest.TestCase, res: Result, verb: str, *needles, rc: int = 1) -> str:
    """exit `rc`, nothing on stdout, exactly one stderr line 'imgtool: VERB: ...' containing every
    needle; returns it."""
    tc.assertEqual(res.rc, rc, str(res))
    tc.assertEqual(res.out, "", str(res))
    lines = res.err.splitlines()
    tc.assertEqual(len(lines), 1, f"expected exactly one error line\n{res}")
    tc.assertTrue(res.err.endswith("\n"), str(res))
    tc.assertTrue(lines[0].startswith(f"imgtool: {verb}: "), str(res))
    for needle in needles:
        tc.assertIn(needle, lines[0], str(res))
    return lines[0]


def wait_for(predicate, timeout: float, interval: float = 0.005):
    """Polls predicate until it returns something truthy or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def descendants(pid: int) -> list:
    """Every process below pid (through /proc/PID/task/TID/children), children first."""
    """PIDs (host view) of every descendant of pid."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:  # gone meanwhile (ENOENT or ESRCH)
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    kids = [int(x) for x in fh.read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def sections(text: str) -> dict:
    """Split output made of '@@NAME' header lines into {NAME: body}."""
    out, name = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("@@"):
            name = line[2:].strip()
            out[name] = ""
        elif name is not None:
            out[name] += line
    return out


def reap_at_cleanup(tc: unittest.TestCase, proc: subprocess.Popen) -> subprocess.Popen:
    """Kills proc (if still running) and collects its output when the test ends; returns proc."""
    def reap():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    tc.addCleanup(reap)
    return proc


def mountinfo_lines() -> list:
    with open("/proc/self/mountinfo") as fh:
        return fh.read().splitlines()


def host_mount_lines() -> list:
    """The lines of this mount namespace's mountinfo that concern the test scratch space
    (IMGTOOL_TEST_TMP): its mount point or a source/option path lies below it.  Every mount
    imgtool makes for these tests (targets, stores, container roots, upper dirs, sentinels) is
    there; lines elsewhere are ignored because other processes on the machine may mount at any
    time."""
    tmp = os.path.realpath(TEST_TMP) + "/"
    return [line for line in mountinfo_lines() if tmp in line]

# --------------------------------------------------------------------------
# Looking at a store


def layer_hexes(root: str) -> list:
    return sorted(os.listdir(os.path.join(root, "layers")))


def tmp_entries(root: str) -> list:
    return sorted(os.listdir(os.path.join(root, "tmp")))


def store_listing(root: str) -> dict:
    """Every path below the store (tmp/ included) with type, mode, owner, size, content
    hash, link target, device number and xattrs; mtimes are left out."""
    return treecmp.snapshot(root, mtimes=False)


def inode_map(path: str) -> dict:
    """relative path -> (inode, mtime_ns, ctime_ns) for everything below path."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [""] + dirnames + filenames:
            full = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(full)
            out[os.path.relpath(full, path)] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    return out


def listing_diff(before: dict, after: dict) -> str:
    return "\n".join(treecmp.compare(before, after)[:40])


class Sentinel:
    """A directory outside the store whose full state (mtimes too) must not change."""

    def __init__(self, tc: unittest.TestCase):
        self.path = os.path.join(scratch_dir(tc, "sentinel-"), "tree")
        os.makedirs(os.path.join(self.path, "sub"))
        with open(os.path.join(self.path, "file.txt"), "w") as fh:
            fh.write("must stay as it is\n")
        with open(os.path.join(self.path, "sub", "x"), "wb") as fh:
            fh.write(b"\0\1\2")
        os.chmod(os.path.join(self.path, "sub", "x"), 0o600)
        os.symlink("../file.txt", os.path.join(self.path, "sub", "link"))
        self.hash = treecmp.tree_hash(self.path)

    def unchanged(self) -> bool:
        return treecmp.tree_hash(self.path) == self.hash


# --------------------------------------------------------------------------
# Kernel features and reference unpackers

_UNPROBED = object()
_overlay_probe = _UNPROBED  # None (works) or the reason why not, once probed


def _run_in_private_mount_ns(script: str, *args) -> subprocess.CompletedProcess:
    require_tool("unshare")
    # A private mount namespace: the mount vanishes with the child, even if a test dies.
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                           "sh", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=300)


def overlay_unavailable() -> str | None:
    """None if a read-only multi-lower overlay mount works here, else why not."""
    global _overlay_probe
    if _overlay_probe is _UNPROBED:
        base = tempfile.mkdtemp(prefix="overlay-probe-", dir=TEST_TMP)
        try:
            for d in ("l1", "l2", "m"):
                os.mkdir(os.path.join(base, d))
            proc = _run_in_private_mount_ns(
                'mount -t overlay overlay -o "ro,lowerdir=$1/l1:$1/l2" "$1/m"', base)
            _overlay_probe = (None if proc.returncode == 0 else
                              f"kernel cannot mount overlayfs here: {proc.stderr.strip()}")
        finally:
            shutil.rmtree(base, ignore_errors=True)
    return _overlay_probe


@contextlib.contextmanager
def overlay_view(lowerdirs):
    """Snapshot (treecmp) of the read-only overlay of lowerdirs (TOP FIRST, as in
    GraphDriver.Data.LowerDir; a list or a colon-separated string).

    The mount lives in a child's private mount namespace and is gone before this
    yields.  Mount options are limited to one page, so use it with few layers."""
    if isinstance(lowerdirs, str):
        lowerdirs = lowerdirs.split(":")
    options = "ro,lowerdir=" + ":".join(lowerdirs)
    if len(options) >= 4000:
        raise ValueError(f"overlay options of {len(options)} bytes exceed one page")
    work = tempfile.mkdtemp(prefix="overlay-view-", dir=TEST_TMP)
    try:
        mnt, out = os.path.join(work, "m"), os.path.join(work, "snap.json")
        os.mkdir(mnt)
        if len(lowerdirs) == 1:
            # Without an upper dir overlayfs wants two lower layers; an empty one adds nothing.
            os.mkdir(os.path.join(work, "empty"))
            options += ":" + os.path.join(work, "empty")
        proc = _run_in_private_mount_ns(
            'mount -t overlay overlay -o "$1" "$2" && exec "$3" "$4" snapshot "$2" -o "$5"',
            options, mnt, sys.executable, TREECMP, out)
        if proc.returncode != 0:
            raise AssertionError(f"overlay view of {options} failed: {proc.stderr.strip()}")
        yield treecmp.load(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


_umoci_dir: str | None = None
_umoci_cache: dict = {}


def _oci_layout_ref(layout: str) -> str:
    with open(os.path.join(layout, "index.json")) as fh:
        index = json.load(fh)
    for desc in index.get("manifests", []):
        ref = desc.get("annotations", {}).get(gen_images.ANN_REF_NAME)
        if ref:
            return ref
    raise AssertionError(f"{layout}/index.json has no {gen_images.ANN_REF_NAME} annotation")


def umoci_rootfs(image: str, fmt: str) -> str:
    """Root filesystem of `image` (path in format fmt, as in images.json) unpacked by umoci.

    skopeo first copies it into an OCI layout with gzip layers: umoci 0.4.7 cannot
    read zstd layers.  Results are cached for the lifetime of this process."""
    global _umoci_dir
    key = (os.path.abspath(image), fmt)
    if key in _umoci_cache:
        return _umoci_cache[key]
    skopeo, umoci = require_tool("skopeo"), require_tool("umoci")
    if _umoci_dir is None:
        os.makedirs(TEST_TMP, exist_ok=True)
        _umoci_dir = tempfile.mkdtemp(prefix="umoci-", dir=TEST_TMP)
        atexit.register(shutil.rmtree, _umoci_dir, True)
    if fmt in ("docker-archive", "docker-archive-new"):
        src = f"docker-archive:{image}"
    elif fmt == "oci-archive":
        src = f"oci-archive:{image}"
    elif fmt == "oci-layout":
        src = f"oci:{image}:{_oci_layout_ref(image)}"
    else:
        raise ValueError(f"unknown format {fmt}")
    work = os.path.join(_umoci_dir, str(len(_umoci_cache)))
    os.makedirs(work)
    layout, bundle = os.path.join(work, "oci"), os.path.join(work, "bundle")
    for argv in ([*skopeo_argv(), "--insecure-policy", "copy", "-q", "--dest-compress",
                  "--dest-compress-format", "gzip", src, f"oci:{layout}:img"],
                 [umoci, "unpack", "--image", f"{layout}:img", bundle]):
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=300)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")
    _umoci_cache[key] = os.path.join(bundle, "rootfs")
    return _umoci_cache[key]


def all_xattrs(path: str, follow_symlinks: bool = False) -> dict:
    """{name: value bytes} of every extended attribute of path.  A failure to list them raises
    (a check that an attribute is absent must never pass because the file could not be read);
    only ENODATA for one name, an attribute removed between the list and the read, is skipped."""
    out = {}
    for name in sorted(os.listxattr(path, follow_symlinks=follow_symlinks)):
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=follow_symlinks)
        except OSError as e:
            if e.errno != errno.ENODATA:
                raise
    return out


def check_inside(tc: unittest.TestCase, layer_dir, checks: list, info: str, *,
                 host_ids=None, rootless: bool = False) -> None:
    """Checks a hostile case's expect.inside list (tools/gen_hostile.py) against layer
    directories; layer_dir(index) gives the diff/ directory of the case's layer `index` (None:
    the top one).

    host_ids(uid, gid) -> (uid, gid) maps an image's owner to the host's (a rootless store holds
    the ids its user namespace maps them to); rootless applies docs/rootless.md's other rules:
    device nodes other than 0:0 whiteouts are skipped, opaque markers are user.overlay.opaque."""
    types = {"file": stat.S_ISREG, "dir": stat.S_ISDIR, "symlink": stat.S_ISLNK,
             "chr": stat.S_ISCHR, "blk": stat.S_ISBLK, "fifo": stat.S_ISFIFO}
    host_ids = host_ids or (lambda uid, gid: (uid, gid))
    for check in checks:
        check = dict(check)
        if rootless and (check["type"] == "blk" or (check["type"] == "chr"
                                                    and check.get("rdev") != "0:0")):
            check = {"path": check["path"], "type": "absent", "layer": check.get("layer")}
        if rootless and "xattrs" in check:
            check["xattrs"] = {("user.overlay.opaque" if n == "trusted.overlay.opaque" else n): v
                               for n, v in check["xattrs"].items()}
            if "user.overlay.opaque" in check["xattrs"]:
                check["absent_xattrs"] = check.get("absent_xattrs", []) + ["trusted.overlay.opaque"]
        top = layer_dir(check.get("layer"))
        rel = check["path"]
        where = f"layer path {rel!r}: {check}\n{info}"
        path = _resolve_inside(tc, top, rel, check.get("follow", False), info)
        if check["type"] == "absent":
            tc.assertFalse(os.path.lexists(path), where)
            continue
        st = os.stat(path) if check.get("follow") else os.lstat(path)
        tc.assertTrue(types[check["type"]](st.st_mode),
                      f"want a {check['type']}, found mode {st.st_mode:o}: {where}")
        if "content" in check:
            with open(path, "rb") as fh:
                tc.assertEqual(fh.read(), check["content"].encode(), where)
        if "target" in check:
            tc.assertEqual(os.readlink(path), check["target"], where)
        if "rdev" in check:
            tc.assertEqual(f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}", check["rdev"], where)
        if "mode" in check:
            tc.assertEqual(format(stat.S_IMODE(st.st_mode), "04o"), check["mode"], where)
        if "uid" in check or "gid" in check:
            want = host_ids(check.get("uid", 0), check.get("gid", 0))
            if "uid" in check:
                tc.assertEqual(st.st_uid, want[0], f"owner uid: {where}")
            if "gid" in check:
                tc.assertEqual(st.st_gid, want[1], f"owner gid: {where}")
        if "size" in check:
            tc.assertEqual(st.st_size, check["size"], where)
        if "nlink" in check:
            tc.assertEqual(st.st_nlink, check["nlink"], where)
        if "max_allocated" in check:
            tc.assertLessEqual(st.st_blocks * 512, check["max_allocated"],
                               f"not sparse on disk\n{where}")
        if "same_inode_as" in check:
            other = os.lstat(_resolve_inside(tc, top, check["same_inode_as"], False, info))
            tc.assertEqual((st.st_dev, st.st_ino), (other.st_dev, other.st_ino), where)
        xattrs = all_xattrs(path, follow_symlinks=check.get("follow", False))
        for name, value in check.get("xattrs", {}).items():
            tc.assertIn(name, xattrs, where)
            tc.assertEqual(xattrs[name], value.encode(), where)
        for name in check.get("absent_xattrs", []):
            tc.assertNotIn(name, xattrs, where)


def _resolve_inside(tc: unittest.TestCase, top: str, rel: str, follow: bool, info: str) -> str:
    """top/rel, failing if an intermediate component is a symlink (unless follow): the checks
    must never be led out of the layer by what they check."""
    path = top
    parts = [p for p in rel.split("/") if p]
    for i, part in enumerate(parts):
        path = os.path.join(path, part)
        if i < len(parts) - 1 and not follow and os.path.islink(path):
            tc.fail(f"{rel}: {part} is a symlink inside the layer\n{info}")
    return path


def file_type(mode: int) -> str:
    return treecmp._file_type(mode)  # one vocabulary for "dir", "file", "chr", ...


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
