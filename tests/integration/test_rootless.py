"""Integration tests for rootless imgtool: every command run by an ordinary user.

Set-up (setUpModule, as root, idempotent):
  - user imgtool-rl with subordinate ranges in /etc/subuid and /etc/subgid (added with usermod if it
    has none; the expectations read the actual ranges back from the files), and user
    imgtool-rl-nosub with none (ranges Debian's useradd gave it are deleted);
  - a scratch directory under /tmp (0755, files 0644) holding copies of the imgtool binary,
    tools/treecmp.py, the test images used here and a few hostile cases from tools/gen_hostile.py:
    the build tree may live where these users cannot read.
Each test gets its own HOME and store (IMGTOOL_ROOT), owned by the user, removed afterwards as root;
every command runs as `setpriv --reuid USER ... -- env -i HOME=... IMGTOOL_ROOT=... imgtool ...`
(setpriv and env exec in place, so the PID the test holds is imgtool's own).  After every test no
process of the user (its own uid or a subordinate one) may be left, so nothing else may run as
these users meanwhile.

Expectations: images.json and the generator's model (tools/gen_images.py) for IDs, owners, device
nodes, whiteouts and opaque directories; a root pull / root `imgtool mount` of the same image for
the merged tree; `umoci unpack --rootless` run as the same user for a third opinion.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import pwd
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import harness
from harness import gen_images, treecmp
from test_pull_local import IMPLICIT, WHITEOUT, expected_layer, lower_dirs

import gen_hostile  # noqa: E402  (harness put tools/ on sys.path)

USER = "imgtool-rl"
NOSUB_USER = "imgtool-rl-nosub"
FMT = "oci-archive"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MOUNTS_HEADER = f"{'IMAGE ID':<14} {'DRIVER':<8} {'MODE':<9} TARGET"
def device_note(n: int) -> str:
    """pull-local's note for n skipped device nodes (singular for one)."""
    return (f"imgtool: pull-local: note: {n} device node{'' if n == 1 else 's'} skipped (rootless: only "
            "the host's real root may create device nodes; containers get a fresh /dev)")
SQUASH_NOTE = ("imgtool: pull-local: note: {} entries' owners squashed to yours (no subordinate "
               "ids: add ranges for you in /etc/subuid and /etc/subgid and install uidmap to keep "
               "them)")
# (name, format) of every generated image this module copies for the users.
IMAGES = [("basic", "oci-archive"), ("basic", "docker-archive"), ("basic", "oci-layout"),
          ("busybox", "oci-archive"), ("rootopq", "oci-archive"), ("shared", "oci-archive"),
          ("demo", "oci-archive"), ("multiarch", "oci-archive"), ("layers200", "oci-archive")]
# Hostile cases: every pull-local case of tools/gen_hostile.py (the corpus test_hostile runs as root).
# Debian package of each tool used here that harness.PACKAGES does not know.
PACKAGES = {"newuidmap": "uidmap", "newgidmap": "uidmap", "setpriv": "util-linux",
            "useradd": "passwd", "usermod": "passwd"}

SCRATCH: str | None = None
BINARY: str | None = None    # the imgtool copy the users run
TREECMP: str | None = None   # tools/treecmp.py copy the users run
HOSTILE: dict = {}           # case name -> hostile.json record (path made absolute)
USERS: dict = {}             # USER / NOSUB_USER -> User


class User:
    def __init__(self, name: str):
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid
        self.subuids = subid_ranges("/etc/subuid", name, self.uid)
        self.subgids = subid_ranges("/etc/subgid", name, self.uid)

    @staticmethod
    def _host(n: int, own: int, ranges: list) -> int:
        # imgtool's map (podman's layout): 0 -> own id, 1.. -> the ranges in file order.
        if n == 0:
            return own
        n -= 1
        for start, count in ranges:
            if n < count:
                return start + n
            n -= count
        raise AssertionError(f"id {n} is not mapped")

    def host_uid(self, n: int) -> int:
        return self._host(n, self.uid, self.subuids)

    def host_gid(self, n: int) -> int:
        return self._host(n, self.gid, self.subgids)

    def owns_uid(self, uid: int) -> bool:
        return uid == self.uid or any(s <= uid < s + c for s, c in self.subuids)

    def owns_gid(self, gid: int) -> bool:
        return gid == self.gid or any(s <= gid < s + c for s, c in self.subgids)


# --------------------------------------------------------------------------
# Set-up


def require(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pkg = PACKAGES.get(name) or harness.PACKAGES.get(name, name)
        raise harness.SetupError(f"{name} not found in PATH: install the Debian package {pkg} "
                                 f"(tools/test.sh installs it)")
    return path


def subid_ranges(path: str, name: str, uid: int) -> list:
    """[(start, count)] of name (or its numeric uid) in /etc/subuid or /etc/subgid."""
    out = []
    with contextlib.suppress(FileNotFoundError), open(path) as fh:
        for line in fh:
            fields = line.strip().split(":")
            if len(fields) == 3 and fields[0] in (name, str(uid)):
                out.append((int(fields[1]), int(fields[2])))
    return out


def _run_checked(argv: list) -> None:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise harness.SetupError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr}")


def _free_range_start(path: str, count: int = 65536) -> int:
    """First start >= 100000 after every range in the file (no overlap with anyone's)."""
    end = 100000
    with contextlib.suppress(FileNotFoundError), open(path) as fh:
        for line in fh:
            fields = line.strip().split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                end = max(end, int(fields[1]) + int(fields[2]))
    return end


def ensure_users() -> None:
    for name in (USER, NOSUB_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            _run_checked([require("useradd"), "-m", "-s", "/bin/sh", name])
    main = pwd.getpwnam(USER)
    for path, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        if not subid_ranges(path, USER, main.pw_uid):
            start = _free_range_start(path)
            _run_checked([require("usermod"), flag, f"{start}-{start + 65535}", USER])
    nosub = pwd.getpwnam(NOSUB_USER)
    for path, flag in (("/etc/subuid", "--del-subuids"), ("/etc/subgid", "--del-subgids")):
        for start, count in subid_ranges(path, NOSUB_USER, nosub.pw_uid):
            _run_checked([require("usermod"), flag, f"{start}-{start + count - 1}", NOSUB_USER])
    for name in (USER, NOSUB_USER):
        USERS[name] = User(name)
    u = USERS[USER]
    if not u.subuids or not u.subgids or u.subuids[0][1] < 65536 or u.subgids[0][1] < 65536:
        raise harness.SetupError(f"{USER} needs a range of 65536 ids in /etc/subuid and "
                                 f"/etc/subgid, has {u.subuids} / {u.subgids}")
    if USERS[NOSUB_USER].subuids or USERS[NOSUB_USER].subgids:
        raise harness.SetupError(f"{NOSUB_USER} still has subordinate ids")


def _publish(path: str) -> None:
    """Directories 0755, files 0644 (executables 0755), so every user can read them."""
    for dirpath, dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for n in filenames:
            full = os.path.join(dirpath, n)
            os.chmod(full, 0o755 if os.stat(full).st_mode & 0o100 else 0o644)


def image(name: str, fmt: str = FMT) -> str:
    """The users' copy of a generated image."""
    return os.path.join(SCRATCH, "images", harness.image_record(name, fmt)["path"])


def setUpModule():
    global SCRATCH, BINARY, TREECMP
    harness.require_root()
    source_binary = harness.imgtool_binary()
    for tool in ("newuidmap", "newgidmap", "setpriv", "unshare", "umoci", "skopeo"):
        require(tool)
    harness.images()
    ensure_users()
    SCRATCH = tempfile.mkdtemp(prefix="imgtool-rl-", dir="/tmp")
    os.chmod(SCRATCH, 0o755)
    BINARY = os.path.join(SCRATCH, "imgtool")
    shutil.copy(source_binary, BINARY)
    TREECMP = os.path.join(SCRATCH, "treecmp.py")
    shutil.copy(harness.TREECMP, TREECMP)
    for name, fmt in IMAGES:
        src = harness.image_path(name, fmt)
        dst = os.path.join(SCRATCH, "images", os.path.basename(src))
        if os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(src, dst)
    proc = subprocess.run([sys.executable, os.path.join(harness.TOOLS_DIR, "gen_hostile.py"),
                           os.path.join(SCRATCH, "hostile"), "--sentinel-base",
                           os.path.join(SCRATCH, "sentinels"), "--busybox", harness.BUSYBOX],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise harness.SetupError(f"gen_hostile.py failed ({proc.returncode}): {proc.stderr}")
    with open(os.path.join(SCRATCH, "hostile", "hostile.json")) as fh:
        index = json.load(fh)
    HOSTILE["base"] = dict(index["base"], path=os.path.join(SCRATCH, "hostile",
                                                           index["base"]["path"]))
    for rec in index["cases"]:
        HOSTILE[rec["name"]] = dict(rec, path=os.path.join(SCRATCH, "hostile", rec["path"]))
    os.makedirs(os.path.join(SCRATCH, "sentinels"))
    os.makedirs(os.path.join(SCRATCH, "homes"))
    _publish(SCRATCH)
    # Everything here needs unprivileged user namespaces: a kernel without them skips the module.
    probe = subprocess.run(as_user(USERS[USER], ["unshare", "--user", "--map-root-user", "true"],
                                   home="/"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, cwd="/")
    if probe.returncode != 0:
        raise unittest.SkipTest(f"the kernel refuses unprivileged user namespaces: "
                                f"{probe.stderr.strip()}")


def tearDownModule():
    if SCRATCH and not os.environ.get("IMGTOOL_TEST_KEEP"):
        shutil.rmtree(SCRATCH, ignore_errors=True)


# --------------------------------------------------------------------------
# Running things as a user


def as_user(user: User, argv: list, *, home: str, env: dict | None = None) -> list:
    values = {"PATH": PATH_ENV, "HOME": home, "LANG": "C.UTF-8", "SHELL": "/bin/sh",
              "USER": user.name, "LOGNAME": user.name}
    values.update(env or {})
    return (["setpriv", "--reuid", user.name, "--regid", str(user.gid), "--init-groups", "--",
             "env", "-i"] + [f"{k}={v}" for k, v in values.items()] + [str(a) for a in argv])


def run_as(user: User, argv: list, *, home: str, env: dict | None = None, timeout: float = 120,
           stdin=subprocess.DEVNULL) -> harness.Result:
    full = as_user(user, argv, home=home, env=env)
    proc = subprocess.run(full, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, cwd="/")
    return harness.Result(full, proc.returncode, proc.stdout.decode(errors="replace"),
                          proc.stderr.decode(errors="replace"))


def user_dir(tc: unittest.TestCase, user: User, prefix: str = "t-") -> str:
    """A fresh directory owned by user (0700), removed as root after the test."""
    path = tempfile.mkdtemp(prefix=prefix, dir=os.path.join(SCRATCH, "homes"))
    os.chown(path, user.uid, user.gid)
    if not os.environ.get("IMGTOOL_TEST_KEEP"):
        tc.addCleanup(shutil.rmtree, path, True)
    return path


def proc_status(pid) -> dict:
    try:
        with open(f"/proc/{pid}/status") as fh:
            text = fh.read()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def proc_comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return None


def user_processes(user: User) -> list:
    """(pid, comm, state) of every process running as user's own uid or a subordinate one."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        status = proc_status(name)
        if "Uid" not in status:
            continue
        uids = [int(x) for x in status["Uid"].split()]
        if any(user.owns_uid(u) for u in uids):
            found.append((int(name), status.get("Name"), status.get("State", "")[:1]))
    return found


descendants = harness.descendants


wait_for = harness.wait_for


sections = harness.sections


_overlay_probe: list = []


def rootless_overlay_unavailable() -> str | None:
    """None if the user can mount a read-only overlay with userxattr in a user namespace of its
    own (kernel >= 5.11), else why not; probed once, by trying."""
    if not _overlay_probe:
        reason = harness.overlay_unavailable()
        if reason is None:
            user = USERS[USER]
            base = tempfile.mkdtemp(prefix="overlay-probe-", dir=os.path.join(SCRATCH, "homes"))
            try:
                for d in ("l1", "l2", "m"):
                    os.mkdir(os.path.join(base, d))
                    os.chown(os.path.join(base, d), user.uid, user.gid)
                os.chown(base, user.uid, user.gid)
                proc = subprocess.run(as_user(user, [
                    "unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                    'mount -t overlay overlay -o "ro,userxattr,lowerdir=$1/l1:$1/l2" "$1/m"',
                    "sh", base], home=base), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, cwd="/")
                if proc.returncode != 0:
                    reason = (f"the kernel cannot mount overlayfs with userxattr in a user "
                              f"namespace: {proc.stderr.strip()}")
            finally:
                shutil.rmtree(base, ignore_errors=True)
        _overlay_probe.append(reason)
    return _overlay_probe[0]


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[1][:12]


def all_xattrs(path: str) -> dict:
    return {n: v for n, v in harness.all_xattrs(path).items() if n != "security.selinux"}


def ns_capability(value: bytes, rootid: int) -> bytes:
    """security.capability as the kernel stores it when root of a user namespace whose root is
    host uid `rootid` writes `value` (a revision 2 vfs_cap_data): revision 3 with the rootid."""
    magic = struct.unpack_from("<I", value)[0]
    assert magic & 0xFF000000 == 0x02000000, value.hex()
    return struct.pack("<I", (magic & 0x00FFFFFF) | 0x03000000) + value[4:20] + \
        struct.pack("<I", rootid)


def model_images() -> dict:
    """job name -> the primary gen_images.Image of every good generated image."""
    jobs, _ = gen_images.all_jobs(harness.BUSYBOX)
    return {j.name: j.primary for j in jobs if j.broken is None}


def device_entries(img) -> list:
    """Every char/block device entry of every layer (each one is skipped once per pull)."""
    return [e for layer in img.layers for e in layer.entries if e.kind in ("char", "block")]


def squashed_entries(img) -> int:
    """Entries a pull without subordinate ids squashes: owned by anyone but 0:0 (devices are
    skipped, whiteout markers carry no owner)."""
    n = 0
    for layer in img.layers:
        for e in layer.entries:
            if e.kind in ("char", "block") or posixpath.basename(e.name).startswith(".wh."):
                continue
            n += (e.uid, e.gid) != (0, 0)
    return n


def decode_rootless_xattr(data: bytes) -> tuple:
    """(uid, gid) from umoci's user.rootlesscontainers (protobuf: uint32 uid = 1, gid = 2;
    0xFFFFFFFF means unchanged, i.e. root)."""
    fields, i = {}, 0
    while i < len(data):
        key = data[i]
        i += 1
        assert key & 7 == 0, f"unexpected wire type in {data.hex()}"
        value = shift = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        fields[key >> 3] = value
    uid, gid = fields.get(1, 0), fields.get(2, 0)
    return (0 if uid == 0xFFFFFFFF else uid, 0 if gid == 0xFFFFFFFF else gid)


# --------------------------------------------------------------------------


class RootlessTestCase(unittest.TestCase):
    """A fresh HOME and store for self.user; no process of the user survives the test."""

    user_name = USER
    maxDiff = 6000

    def setUp(self):
        self.user = USERS[self.user_name]
        self.addCleanup(self._no_user_processes_left)  # registered first: runs last
        self.home = user_dir(self, self.user)
        self.store = os.path.join(self.home, "store")

    def _no_user_processes_left(self):
        left = []
        if not wait_for(lambda: not user_processes(self.user), timeout=10):
            left = user_processes(self.user)
        self.assertEqual(left, [], f"processes of {self.user.name} left after the test")

    def env(self, **extra) -> dict:
        env = {"IMGTOOL_ROOT": self.store}
        env.update(extra)
        return env

    def imgtool(self, *args, env: dict | None = None, timeout: float = 120) -> harness.Result:
        return run_as(self.user, [BINARY, *args], home=self.home,
                      env=self.env() if env is None else env, timeout=timeout)

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(as_user(self.user, [BINARY, *args], home=self.home,
                                        env=self.env()), cwd="/", **kwargs)

        return harness.reap_at_cleanup(self, proc)

    def pull(self, source: str, err: str = "") -> str:
        """Rootless pull-local that must succeed with exactly `err` on stderr; returns the ID."""
        res = self.imgtool("pull-local", source)
        self.assertEqual((res.rc, res.err), (0, err), str(res))
        lines = res.out.splitlines()
        self.assertEqual(len(lines), 1, str(res))
        return lines[0]

    def unshare(self, script: str, *args, timeout: float = 120) -> harness.Result:
        """`imgtool unshare sh -c SCRIPT sh ARGS...` as the user."""
        return self.imgtool("unshare", "sh", "-c", script, "sh", *[str(a) for a in args],
                            timeout=timeout)

    def user_dir(self, prefix: str = "d-") -> str:
        return user_dir(self, self.user, prefix)

    def assert_store_owned_by_user(self, root: str) -> int:
        """No entry of the store is owned by host uid/gid 0 or by anyone not the user's."""
        count = 0
        for dirpath, dirnames, filenames in os.walk(root):
            for n in [""] + dirnames + filenames:
                path = os.path.join(dirpath, n) if n else dirpath
                st = os.lstat(path)
                count += 1
                self.assertNotEqual(st.st_uid, 0, f"{path} owned by host root")
                self.assertNotEqual(st.st_gid, 0, f"{path} in host group 0")
                self.assertTrue(self.user.owns_uid(st.st_uid) and self.user.owns_gid(st.st_gid),
                                f"{path} owned by {st.st_uid}:{st.st_gid}, not one of "
                                f"{self.user.name}'s ids")
        return count


def root_pull(tc: unittest.TestCase, source: str) -> tuple:
    """(root store, ID) of a root pull into a fresh store."""
    root = harness.new_store(tc)
    return root, harness.pull(tc, root, source)


def root_mount_snapshot(tc: unittest.TestCase, root: str, image_id: str) -> dict:
    """treecmp snapshot of a root `imgtool mount` (in a private mount namespace)."""
    work = harness.scratch_dir(tc, "rootmnt-")
    target, out = os.path.join(work, "m"), os.path.join(work, "snap.json")
    os.mkdir(target)
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         '"$1" --root "$2" mount "$3" "$4" >/dev/null || exit 91\n'
         'python3 "$5" snapshot "$4" -o "$6"; rc=$?\n'
         '"$1" --root "$2" umount "$4" || exit 92\n'
         'exit $rc', "sh", harness.imgtool_binary(), root, image_id, target, harness.TREECMP,
         out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
        env=harness.base_env())
    tc.assertEqual(proc.returncode, 0, f"root mount + snapshot failed: {proc.stderr}")
    return treecmp.load(out)


def check_rootless_layer(tc: unittest.TestCase, user: User, diff: str, entries) -> None:
    """diff/ (a layer unpacked rootless) holds exactly what the tar entries describe, with owners
    mapped through the user's ranges, devices left out, user.overlay.opaque for opaque dirs and
    file capabilities in their user-namespace form; entry by entry."""
    exp, opaque, root_entry = expected_layer(entries)
    skipped = {p for p, e in exp.items()
               if e not in (WHITEOUT, IMPLICIT) and e.kind in ("char", "block")}
    actual = {}
    for dirpath, dirnames, filenames in os.walk(diff):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            actual[os.path.relpath(full, diff)] = os.lstat(full)
    tc.assertEqual(sorted(actual), sorted(set(exp) - skipped), f"names in {diff}")
    opaque_x = {"user.overlay.opaque": b"y"}
    tc.assertEqual(all_xattrs(diff), opaque_x if "" in opaque else {},
                   f"xattrs of the layer root {diff}")
    st = os.lstat(diff)
    want_root = (user.host_uid(root_entry.uid), user.host_gid(root_entry.gid)) \
        if root_entry is not None else (user.uid, user.gid)
    tc.assertEqual((st.st_uid, st.st_gid), want_root, f"owner of the layer root {diff}")
    mine = (user.uid, user.gid)
    inode_names = {}
    for path, want in exp.items():
        if path in skipped:
            continue
        st, full = actual[path], os.path.join(diff, path)
        what = f"{path} in {diff}"
        want_x = dict(opaque_x) if path in opaque else {}
        if want is WHITEOUT:
            tc.assertTrue(harness.is_whiteout(st), f"{what}: want a 0:0 char device whiteout, "
                          f"got mode {st.st_mode:o} rdev {st.st_rdev:x}")
            tc.assertEqual((st.st_uid, st.st_gid), mine, what)
            tc.assertEqual(all_xattrs(full), {}, what)
            continue
        if want is IMPLICIT:
            tc.assertTrue(stat.S_ISDIR(st.st_mode), f"{what}: implicit parent must be a dir")
            tc.assertEqual((st.st_uid, st.st_gid), mine, what)
            tc.assertEqual(all_xattrs(full), want_x, what)
            continue
        kind = "file" if want.kind == "hardlink" else want.kind
        tc.assertEqual(harness.file_type(st.st_mode), kind, what)
        if want.kind == "hardlink":
            target = posixpath.normpath(want.target)
            tc.assertEqual(st.st_ino, actual[target].st_ino, f"{what}: shares {target}'s inode")
            inode_names.setdefault(st.st_ino, set()).update({path, target})
            continue
        if want.kind != "symlink":
            tc.assertEqual(format(stat.S_IMODE(st.st_mode), "04o"), format(want.mode, "04o"),
                           f"{what}: mode")
        tc.assertEqual((st.st_uid, st.st_gid), (user.host_uid(want.uid), user.host_gid(want.gid)),
                       f"{what}: owner (image {want.uid}:{want.gid})")
        tc.assertEqual(st.st_mtime_ns, want.mtime * 10**9, f"{what}: mtime")
        if want.kind == "file":
            with open(full, "rb") as fh:
                tc.assertEqual(fh.read(), want.data, f"{what}: content")
            for name, value in want.xattrs:
                want_x[name] = (ns_capability(value, user.uid)
                                if name == "security.capability" else value)
        elif want.kind == "symlink":
            tc.assertEqual(os.readlink(full), want.target, what)
        tc.assertEqual(all_xattrs(full), want_x, f"{what}: xattrs")
    for ino, names in inode_names.items():
        tc.assertEqual(next(actual[n].st_nlink for n in names), len(names),
                       f"link count of {sorted(names)}")


# --------------------------------------------------------------------------


class PullTest(RootlessTestCase):
    """pull-local as an ordinary user with subordinate ids."""

    def test_same_id_as_root_pull_in_three_formats(self):
        rec = harness.image_record("basic", FMT)
        note = device_note(len(device_entries(model_images()["basic"]))) + "\n"
        root_store = harness.new_store(self)
        for i, fmt in enumerate(("oci-archive", "docker-archive", "oci-layout")):
            with self.subTest(fmt=fmt):
                # Only the first pull unpacks (and skips devices); the others reuse its layers.
                got = self.pull(image(rec["name"], fmt), note if i == 0 else "")
                self.assertEqual(got, rec["id"])
                self.assertEqual(harness.pull(self, root_store, image(rec["name"], fmt)), got,
                                 "a root pull of the same file gives the same ID")
        self.assertEqual(harness.layer_hexes(self.store), harness.layer_hexes(root_store))
        self.assertEqual(harness.tag_map(self, root_store), {"imgtool-test/basic:latest":
                                                             rec["id"]})
        res = self.imgtool("images", "--format", "json")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        self.assertEqual([(r["Repository"], r["Tag"], r["ID"]) for r in json.loads(res.out)],
                         [("imgtool-test/basic", "latest", rec["id"])])
        res = self.imgtool("inspect", "imgtool-test/basic")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        [info] = json.loads(res.out)
        self.assertEqual(info["RootFS"]["Layers"], rec["diff_ids"])
        self.assertEqual(info["GraphDriver"]["Data"]["LowerDir"].split(":"),
                         lower_dirs(self.store, rec["diff_ids"]))

    def test_store_mode_owners_and_layer_contents(self):
        rec = harness.image_record("basic", FMT)
        layers = gen_images.basic_layers()
        self.assertEqual([layer.diff_id for layer in layers], rec["diff_ids"])
        self.pull(image("basic"), device_note(3) + "\n")
        st = os.lstat(self.store)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid),
                         (0o700, self.user.uid, self.user.gid), "store root: 0700, the user's")
        self.assertGreater(self.assert_store_owned_by_user(self.store), 100)
        diffs = [os.path.join(self.store, "layers", d.split(":")[1], "diff")
                 for d in rec["diff_ids"]]
        for i, layer in enumerate(layers):
            with self.subTest(layer=i + 1, comment=layer.comment):
                check_rootless_layer(self, self.user, diffs[i], layer.entries)
        # Spot checks that do not go through the derivation from the model.
        l1, l2, l3 = diffs
        sub = self.user.subuids[0][0], self.user.subgids[0][0]
        st = os.lstat(f"{l1}/home/user/notes.txt")
        self.assertEqual((st.st_uid, st.st_gid), (sub[0] + 999, sub[1] + 999),
                         "image uid/gid 1000 is host subuid/subgid start + 999")
        st = os.lstat(f"{l1}/var/www")
        self.assertEqual((st.st_uid, st.st_gid), (sub[0] + 32, sub[1] + 32))
        st = os.lstat(f"{l1}/etc/hostname")
        self.assertEqual((st.st_uid, st.st_gid), (self.user.uid, self.user.gid),
                         "image root is the user")
        for wh in (f"{l2}/etc/remove-me", f"{l2}/gone", f"{l3}/hard/a"):
            st = os.lstat(wh)
            self.assertTrue(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0), wh)
        self.assertEqual(os.getxattr(f"{l2}/opq", "user.overlay.opaque"), b"y")
        self.assertEqual([n for n in os.listxattr(f"{l2}/opq") if n.startswith("trusted.")], [])
        self.assertEqual(sorted(os.listdir(f"{l2}/opq")), ["new1"])
        self.assertEqual(sorted(os.listdir(f"{l1}/dev")), [], "device nodes are skipped")
        self.assertTrue(stat.S_ISFIFO(os.lstat(f"{l1}/run/pipe").st_mode), "FIFOs are kept")
        self.assertEqual(stat.S_IMODE(os.lstat(f"{l1}/usr/bin/suid-tool").st_mode), 0o4755)
        self.assertEqual(stat.S_IMODE(os.lstat(f"{l1}/usr/bin/sgid-tool").st_mode), 0o2755)
        # Owned by image uid 1000 (a subordinate id): the bits survive the chown.
        for name, mode in (("suid-user", 0o4755), ("sgid-user", 0o2755)):
            st = os.lstat(f"{l1}/usr/bin/{name}")
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid),
                             (mode, sub[0] + 999, sub[1] + 999), f"usr/bin/{name}")
        self.assertEqual(harness.tmp_entries(self.store), [])

    def test_rootopq_layer_root_is_opaque(self):
        img = model_images()["rootopq"]
        self.pull(image("rootopq"))
        for i, layer in enumerate(img.layers):
            with self.subTest(layer=i + 1):
                check_rootless_layer(self, self.user, os.path.join(
                    self.store, "layers", layer.diff_id.split(":")[1], "diff"), layer.entries)

    def test_device_note_exactly_when_the_image_has_devices(self):
        models = model_images()
        # layers200 (no devices either) is the crash test's image: its clean pull checks stderr.
        names = ("basic", "shared", "rootopq", "busybox", "demo", "multiarch")
        self.assertEqual({n for n in names if device_entries(models[n])}, {"basic", "shared"},
                         "the generator's model: only basic's base layer has device nodes")
        for name in names:
            with self.subTest(image=name):
                self.store = os.path.join(self.home, f"store-{name}")
                n = len(device_entries(models[name]))
                err = device_note(n) + "\n" if n else ""
                self.assertEqual(self.pull(image(name), err),
                                 harness.image_record(name, FMT)["id"])
                # Once more with the layers present: nothing is unpacked, so no note.
                res = self.imgtool("pull-local", image(name))
                self.assertEqual((res.rc, res.err), (0, ""), str(res))
                self.assertEqual(harness.tmp_entries(self.store), [])

    def small_image(self, name: str, entries: list) -> tuple:
        """(path, ID) of a one-layer OCI layout holding entries, readable by the user."""
        layer = gen_images.Layer(entries, "gzip", name)
        img = gen_images.Image([layer], gen_images.runtime(["/bin/sh"],
                                                           labels={"org.example.test": name}))
        job = gen_images.Job(name, [f"imgtool-test/{name}:latest"], [img], ("oci-layout",))
        path = os.path.join(self.user_dir("img-"), f"{name}.oci")
        gen_images.write_dir(path, gen_images.build_oci(job).files)
        return path, img.id

    def test_owner_outside_the_mapped_ids_is_an_error(self):
        # docs/rootless.md: "An owner outside the mapped ids is an error. It names the file and
        # the owner, and the store is unchanged."  Ids 0..N are mapped (0: the user, 1..N: the
        # subordinate ranges); N itself still works, N + 1 does not.
        last_uid = sum(count for _, count in self.user.subuids)
        last_gid = sum(count for _, count in self.user.subgids)
        path, image_id = self.small_image("lastid", [
            gen_images.d("etc"), gen_images.f("etc/last-id", "x\n", 0o644, last_uid, last_gid)])
        self.assertEqual(self.pull(path), image_id)
        [layer_hex] = harness.layer_hexes(self.store)
        st = os.lstat(os.path.join(self.store, "layers", layer_hex, "diff", "etc/last-id"))
        self.assertEqual((st.st_uid, st.st_gid),
                         (self.user.host_uid(last_uid), self.user.host_gid(last_gid)))
        listing = harness.store_listing(self.store)
        bad_uid, bad_gid = last_uid + 1, last_gid + 1
        for what, entry, owner in (
                ("file uid", gen_images.f("etc/too-high", "x\n", 0o644, bad_uid, 0),
                 f"{bad_uid}:0"),
                ("file gid", gen_images.f("etc/too-high", "x\n", 0o644, 0, bad_gid),
                 f"0:{bad_gid}"),
                ("directory", gen_images.d("etc/too-high", 0o755, bad_uid, bad_gid),
                 f"{bad_uid}:{bad_gid}"),
                ("symlink", gen_images.Entry("etc/too-high", "symlink", 0o777, bad_uid, 0,
                                             target="last-id"), f"{bad_uid}:0")):
            with self.subTest(entry=what):
                path, _ = self.small_image("toohigh", [gen_images.d("etc"), entry])
                res = self.imgtool("pull-local", path)
                line = harness.assert_one_error_line(self, res, "pull-local", "toohigh.oci",
                                                     ": etc/too-high",  # a directory: etc/too-high/
                                                     f": owner {owner} is outside the ids mapped "
                                                     "for you", "/etc/subuid and /etc/subgid")
                self.assertNotIn("Invalid argument", line)
                after = harness.store_listing(self.store)
                self.assertEqual(after, listing, harness.listing_diff(listing, after))
                self.assertEqual(harness.tmp_entries(self.store), [])

    def test_trusted_xattrs_are_skipped_and_counted(self):
        # docs/rootless.md: trusted.* needs real root, so it is skipped and counted; other
        # xattrs of the same file are kept.
        path, image_id = self.small_image("xattrs", [
            gen_images.d("etc"),
            gen_images.f("etc/x", "x\n", xattrs=[("trusted.imgtool-test", b"root only"),
                                                 ("user.kept", b"yes")])])
        root_store, root_id = root_pull(self, path)
        self.assertEqual(root_id, image_id)
        [root_diff] = [os.path.join(root_store, "layers", h, "diff")
                       for h in harness.layer_hexes(root_store)]
        self.assertEqual(all_xattrs(os.path.join(root_diff, "etc/x")),
                         {"trusted.imgtool-test": b"root only", "user.kept": b"yes"},
                         "root keeps both: the image really carries a trusted.* xattr")
        self.assertEqual(self.pull(path, gen_hostile.SKIPPED_XATTRS_NOTE.format(1) + "\n"),
                         image_id)
        [diff] = [os.path.join(self.store, "layers", h, "diff")
                  for h in harness.layer_hexes(self.store)]
        self.assertEqual(all_xattrs(os.path.join(diff, "etc/x")), {"user.kept": b"yes"})

    def test_default_store_locations(self):
        env = {}  # no IMGTOOL_ROOT, no XDG_DATA_HOME: ~/.local/share/imgtool
        res = self.imgtool("images", env=env)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        default = os.path.join(self.home, ".local", "share", "imgtool")
        st = os.lstat(default)
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o700, self.user.uid))
        self.assertTrue(os.path.isdir(os.path.join(default, "layers")))
        xdg = os.path.join(self.home, "xdg")
        res = self.imgtool("images", env={"XDG_DATA_HOME": xdg})
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        st = os.lstat(os.path.join(xdg, "imgtool"))
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o700, self.user.uid))
        flag = os.path.join(self.home, "flag")
        res = self.imgtool("--root", flag, "images", env=self.env(XDG_DATA_HOME=xdg))
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        self.assertTrue(os.path.isdir(os.path.join(flag, "layers")), "--root wins")
        self.assertFalse(os.path.exists(self.store), "IMGTOOL_ROOT must lose against --root")


# --------------------------------------------------------------------------


class RegistryPullTest(RootlessTestCase):
    """imgtool pull as an ordinary user: the same pipeline as pull-local, from a registry on loopback
    (started by root, as a test fixture)."""

    @classmethod
    def setUpClass(cls):
        import registry
        cls.reg = registry.Registry(auth="basic")
        cls.reg.push("oci-archive:" + image("basic", "oci-archive"), "t/basic:v1")

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()

    def test_pull_as_a_user_equals_pull_local(self):
        rec = harness.image_record("basic", "oci-archive")
        note = device_note(len(device_entries(model_images()["basic"]))) + "\n"
        ref = f"{self.reg.host}/t/basic:v1"
        res = self.imgtool("pull", "--tls-verify=false", "--creds", "alice:wonderland", ref)
        self.assertEqual((res.rc, res.out, res.err), (0, rec["id"] + "\n", note.replace("pull-local", "pull")),
                         str(res))
        self.assertEqual(os.listdir(os.path.join(self.store, "tmp")), [])
        self.assertEqual(os.listdir(os.path.join(self.store, "partial")), [])
        self.assert_store_owned_by_user(self.store)
        local = self.user_dir("local-")
        res = self.imgtool("pull-local", image("basic", "oci-archive"),
                           env=self.env(IMGTOOL_ROOT=os.path.join(local, "store")))
        self.assertEqual(res.out, rec["id"] + "\n", str(res))
        self.assertEqual(harness.layer_hexes(self.store), harness.layer_hexes(os.path.join(local, "store")))
        res = self.imgtool("inspect", ref)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(json.loads(res.out)[0]["RepoTags"], [ref])


class OverlayTestCase(RootlessTestCase):
    """Tests that mount a rootless overlay: skipped, with the reason, where the kernel cannot."""

    def setUp(self):
        reason = rootless_overlay_unavailable()
        if reason:
            self.skipTest(reason)
        super().setUp()

    def rootless_snapshot(self, image_id: str) -> dict:
        """treecmp snapshot of `imgtool mount IMAGE` inside `imgtool unshare` (image owners)."""
        target, out = self.user_dir("mnt-"), os.path.join(self.home, f"snap-{image_id[7:19]}")
        res = self.unshare('"$1" mount "$2" "$3" >/dev/null || exit 91\n'
                           'python3 "$4" snapshot "$3" -o "$5"; rc=$?\n'
                           '"$1" umount "$3" || exit 92\n'
                           'exit $rc', BINARY, image_id, target, TREECMP, out)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        self.assertEqual(os.listdir(target), [], "the mount must not be visible outside")
        return treecmp.load(out)


class MergedTreeTest(OverlayTestCase):
    """The merged tree in `imgtool unshare` equals a root mount and umoci's rootless unpack."""

    def umoci_rootless(self, source: str) -> dict:
        """umoci unpack --rootless, run as the user, of a gzip OCI layout of source; snapshot
        with the owners umoci recorded in user.rootlesscontainers."""
        layout = os.path.join(tempfile.mkdtemp(prefix="umoci-", dir=SCRATCH), "oci")
        self.addCleanup(shutil.rmtree, os.path.dirname(layout), True)
        proc = subprocess.run([*harness.skopeo_argv(), "--insecure-policy", "copy", "-q", "--dest-compress",
                               "--dest-compress-format", "gzip", f"oci-archive:{source}",
                               f"oci:{layout}:img"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        _publish(os.path.dirname(layout))
        bundle = os.path.join(self.user_dir("umoci-"), "bundle")
        res = run_as(self.user, ["umoci", "unpack", "--rootless", "--image", f"{layout}:img",
                                 bundle], home=self.home)
        self.assertEqual(res.rc, 0, str(res))
        out = {}
        for path, entry in treecmp.snapshot(os.path.join(bundle, "rootfs")).items():
            entry = dict(entry)
            # Rootless umoci makes everything the user's and keeps the image owner aside.
            self.assertEqual((entry["uid"], entry["gid"]), (self.user.uid, self.user.gid), path)
            xattrs = dict(entry.pop("xattrs", {}))
            raw = xattrs.pop("user.rootlesscontainers", None)
            entry["uid"], entry["gid"] = decode_rootless_xattr(bytes.fromhex(raw)) \
                if raw else (0, 0)
            if xattrs:
                entry["xattrs"] = xattrs
            out[path] = entry
        return out

    def test_merged_tree_equals_root_mount_and_umoci_rootless(self):
        models = model_images()
        for name in ("basic", "rootopq", "busybox"):
            with self.subTest(image=name):
                self.store = os.path.join(self.home, f"store-{name}")
                devices = {"/" + posixpath.normpath(e.name) for e in device_entries(models[name])}
                image_id = self.pull(image(name), device_note(len(devices)) + "\n"
                                     if devices else "")
                root_store, root_id = root_pull(self, image(name))
                self.assertEqual(root_id, image_id)
                theirs = root_mount_snapshot(self, root_store, root_id)
                ours = self.rootless_snapshot(image_id)
                self.assertGreaterEqual(len(ours), 4)
                self.assertEqual({p for p, e in theirs.items() if e["type"] in ("chr", "blk")},
                                 devices, "the root mount shows the model's device nodes")
                # Owners are compared too: inside the namespace they are the image's ids.
                want = [f"only in A: {p}" for p in sorted(devices, key=lambda p: p.split("/"))]
                diffs = treecmp.compare(theirs, ours)
                self.assertEqual(diffs, want, "root mount (A) vs rootless mount (B)")
                if name == "basic":
                    self.assertEqual((ours["/home/user/notes.txt"]["uid"],
                                      ours["/var/www"]["gid"]), (1000, 33))
                    for path, mode, owner in (("/usr/bin/suid-user", "4755", 1000),
                                              ("/usr/bin/sgid-user", "2755", 1000),
                                              ("/usr/bin/suid-tool", "4755", 0),
                                              ("/usr/bin/sgid-tool", "2755", 0)):
                        self.assertEqual((ours[path]["mode"], ours[path]["uid"],
                                          ours[path]["gid"]), (mode, owner, owner),
                                         f"{path}: setuid/setgid kept in the rootless mount")
                    self.assertEqual(ours["/usr/bin/capable"]["xattrs"]["security.capability"],
                                     gen_images.vfs_cap_v2(gen_images.CAP_NET_BIND_SERVICE).hex())
                    for hidden in ("/etc/remove-me", "/gone", "/opq/old1", "/hard/a",
                                   "/a_dir/child1"):
                        self.assertNotIn(hidden, ours)
                    self.assertEqual(ours["/hard/b"].get("link_group"), "/hard/b")
                if name == "rootopq":
                    self.assertEqual(set(ours), {"/", "/new", "/new/one.txt", "/two.txt"})

                umoci = self.umoci_rootless(image(name))
                for dev in devices:  # umoci --rootless leaves an empty file in their place
                    self.assertEqual((umoci[dev]["type"], umoci[dev]["size"]), ("file", 0), dev)
                # umoci --rootless cannot set security.capability (it ignores the EPERM).
                caps = {p for p, e in ours.items()
                        if "security.capability" in e.get("xattrs", {})}
                self.assertEqual(caps, {"/usr/bin/capable"} if name == "basic" else set())

                def comparable(snap, drop):
                    out = {}
                    for p, e in snap.items():
                        if p == "/" or p in drop:  # the root's own mode/mtime may differ
                            continue
                        e = dict(e)
                        x = {k: v for k, v in e.pop("xattrs", {}).items()
                             if k != "security.capability"}
                        if x:
                            e["xattrs"] = x
                        out[p] = e
                    return out
                diffs = treecmp.compare(comparable(ours, ()), comparable(umoci, devices))
                self.assertEqual(diffs, [], f"rootless mount (A) vs umoci --rootless (B), "
                                 f"{len(diffs)} differences:\n" + "\n".join(diffs[:40]))


# --------------------------------------------------------------------------


class MountTest(OverlayTestCase):

    def setUp(self):
        super().setUp()
        self.image_id = self.pull(image("busybox"))
        res = self.imgtool("images")
        self.assertEqual(res.rc, 0, str(res))
        self.listing = harness.store_listing(self.store)

    def host_mount_lines(self, path: str) -> list:
        return [line for line in harness.mountinfo_lines() if path in line]

    def assert_store_unchanged(self):
        after = harness.store_listing(self.store)
        self.assertEqual(after, self.listing,
                         "store changed:\n" + harness.listing_diff(self.listing, after))

    def test_mount_outside_unshare_is_refused(self):
        target = self.user_dir("target-")
        for args in (("mount", self.image_id, target), ("mount", "--writable", self.image_id, target),
                     ("mount", "--driver", "overlay", self.image_id, target)):
            with self.subTest(args=args):
                res = self.imgtool(*args)
                line = harness.assert_one_error_line(self, res, args[0])
                self.assertIn("`imgtool unshare`", line)
                self.assertIn("--driver copy", line)
                self.assertEqual(os.listdir(target), [])
                self.assertEqual(self.host_mount_lines(target), [])
                self.assert_store_unchanged()
        harness.assert_one_error_line(self, self.imgtool("umount", target), "umount", "not mounted by imgtool")

    def test_unshare_says_why_a_command_cannot_run(self):
        # As a shell says it: 127 for nothing there, 126 for something that cannot be executed.
        for args, rc, line in ((["nosuchcmd"], 127, "imgtool: unshare: nosuchcmd: command not found"),
                               (["/no/such/cmd"], 127, "imgtool: unshare: /no/such/cmd: no such file or directory"),
                               (["/etc/passwd"], 126, "imgtool: unshare: /etc/passwd: Permission denied")):
            with self.subTest(args=args):
                res = self.imgtool("unshare", *args)
                self.assertEqual((res.rc, res.out, res.err), (rc, "", line + "\n"), str(res))
        res = self.imgtool("unshare", "sh", "-c", "exit 7")  # the control: the command's own status
        self.assertEqual((res.rc, res.err), (7, ""), str(res))

    def test_copy_driver_works_outside_unshare(self):
        # A copy is plain files: it needs no mount namespace, and the host sees the mapped owners.
        target = self.user_dir("copy-")
        res = self.imgtool("mount", "--driver", "copy", self.image_id, target)
        self.assertEqual((res.rc, res.out, res.err), (0, target + "\n", ""), str(res))
        self.assertEqual(self.host_mount_lines(target), [])
        rows = self.imgtool("mounts").out.splitlines()
        self.assertIn(f"{self.image_id[7:19]:<14} {'copy':<8} {'copy':<9} {target}", rows)
        view = treecmp.snapshot(target)
        self.assertIn("/bin/busybox", view)
        self.assert_copy_is_mapped_view(view, self.rootless_snapshot(self.image_id))
        sub = self.user.subuids[0][0], self.user.subgids[0][0]
        self.assertEqual((view["/bin/busybox"]["uid"], view["/bin/busybox"]["gid"]),
                         (self.user.uid, self.user.gid), "image root is the user")
        self.assertEqual((view["/home/user"]["uid"], view["/home/user"]["gid"]),
                         (sub[0] + 999, sub[1] + 999), "image 1000:1000 is subordinate id + 999")
        res = self.imgtool("umount", target)
        self.assertEqual((res.rc, res.out, res.err), (0, "", ""), str(res))
        self.assertEqual(os.listdir(target), [])
        self.assertEqual(self.imgtool("mounts").out.splitlines(), [MOUNTS_HEADER])
        self.assert_store_unchanged()

    def assert_copy_is_mapped_view(self, copy: dict, inside: dict) -> None:
        """The copy (host view) is the merged tree seen inside `imgtool unshare`, entry by entry,
        with every owner mapped to the host id the user namespace gives it."""
        mapped = {}
        for p, e in inside.items():
            if p == "/":
                continue
            e = dict(e, uid=self.user.host_uid(e["uid"]), gid=self.user.host_gid(e["gid"]))
            if "security.capability" in e.get("xattrs", {}):  # stored namespaced (v3)
                cap = bytes.fromhex(e["xattrs"]["security.capability"])
                e["xattrs"] = dict(e["xattrs"], **{
                    "security.capability": ns_capability(cap, self.user.uid).hex()})
            mapped[p] = e
        diffs = treecmp.compare(mapped, {p: e for p, e in copy.items() if p != "/"})
        self.assertEqual(diffs, [], "unshare view, owners mapped (A) vs the copy (B):\n"
                         + "\n".join(diffs[:40]))

    def test_copy_driver_strips_setuid_bits_unless_asked_and_maps_owners(self):
        """A rootless copy is plain files on the host: a setuid bit there would run as the user (or
        one of its subordinate ids) for anyone who can reach it, so it is stripped unless --suid."""
        basic = self.pull(image("basic"), device_note(3) + "\n")
        sub = self.user.subuids[0][0], self.user.subgids[0][0]
        image_1000 = (sub[0] + 999, sub[1] + 999)
        for opts, modes in (((), ("0755", "0755", "0755")), (("--suid",), ("4755", "2755", "4755"))):
            with self.subTest(opts=opts):
                target = self.user_dir("copy-")
                res = self.imgtool("mount", "--driver", "copy", *opts, basic, target)
                self.assertEqual((res.rc, res.out, res.err), (0, target + "\n", ""), str(res))
                view = treecmp.snapshot(target)
                if opts:
                    self.assert_copy_is_mapped_view(view, self.rootless_snapshot(basic))
                for path, mode, (uid, gid) in zip(("/usr/bin/suid-user", "/usr/bin/sgid-user", "/usr/bin/suid-tool"),
                                                  modes, (image_1000, image_1000, (self.user.uid, self.user.gid))):
                    self.assertEqual((view[path]["mode"], view[path]["uid"], view[path]["gid"]),
                                     (mode, uid, gid), f"{path} in the copy")
                res = self.imgtool("umount", target)
                self.assertEqual((res.rc, res.out, res.err), (0, "", ""), str(res))
                self.assertEqual(os.listdir(target), [])

    def test_mount_mounts_umount_inside_unshare(self):
        target = self.user_dir("target-")
        script = r'''
echo @@id; id -u
echo @@mount; "$1" mount "$2" "$3"; echo "rc=$?"
echo @@mounts; "$1" mounts
echo @@mountinfo; grep -F " $3 " /proc/self/mountinfo
echo @@view; cat "$3/srv/hello.txt"; stat -c '%u:%g %a' "$3/home/user" "$3/etc/passwd"
echo @@write; touch "$3/srv/x" 2>/dev/null; echo "rc=$?"
echo @@umount; "$1" umount "$3"; echo "rc=$?"
echo @@after; "$1" mounts; grep -c -F " $3 " /proc/self/mountinfo; ls -A "$3"
echo @@writable; "$1" mount --writable "$2" "$3" >/dev/null; echo "rc=$?"
"$1" mounts | tail -n +2 | tr -s ' '
echo changed > "$3/etc/hostname" && rm "$3/srv/hello.txt" && echo new > "$3/srv/new.txt" &&
  mkdir "$3/newdir" && echo "rc=$?"
ls "$3/srv"; cat "$3/etc/hostname"; stat -c '%u:%g' "$3/srv/new.txt"
"$1" umount "$3"; echo "rc=$?"
echo @@again; "$1" mount --writable "$2" "$3" >/dev/null; echo "rc=$?"
ls "$3/srv"; cat "$3/etc/hostname"; ls -d "$3/newdir" 2>/dev/null; "$1" umount "$3"; echo "rc=$?"
echo @@root; echo "$IMGTOOL_ROOT"
'''
        res = self.unshare(script, BINARY, self.image_id, target)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        out = sections(res.out)
        self.assertEqual(out["id"], "0\n", "unshare runs as root of the user namespace")
        self.assertEqual(out["mount"], f"{target}\nrc=0\n")
        self.assertEqual(out["mounts"], f"{MOUNTS_HEADER}\n{short_id(self.image_id):<14} "
                                        f"{'overlay':<8} {'ro':<9} {target}\n")
        [info] = out["mountinfo"].splitlines()
        left, _, right = info.partition(" - ")
        point, fstype, source, options = left.split()[4], *right.split()[:3]
        # The source names the store (umount with another --root says whose view it is).
        self.assertEqual((point, fstype, source), (target, "overlay", "imgtool:" + os.path.realpath(self.store)), info)
        self.assertIn("userxattr", options.split(","), info)
        self.assertIn("ro", left.split()[5].split(","), info)
        self.assertEqual(out["view"], "hello from the second layer\n1000:1000 755\n0:0 644\n",
                         "owners inside the namespace are the image's")
        self.assertEqual(out["write"], "rc=1\n", "a read-only mount refuses writes")
        self.assertEqual(out["umount"], "rc=0\n")
        self.assertEqual(out["after"], f"{MOUNTS_HEADER}\n0\n")
        self.assertEqual(out["writable"],
                         f"rc=0\n{short_id(self.image_id)} overlay writable {target}\nrc=0\n"
                         "new.txt\nchanged\n0:0\nrc=0\n")
        self.assertEqual(out["again"], "rc=0\nhello.txt\nbusybox\nrc=0\n",
                         "the writable mount's changes vanished with its umount")
        self.assertEqual(out["root"], self.store + "\n", "unshare exports IMGTOOL_ROOT")
        self.assertEqual(os.listdir(target), [])
        self.assertEqual(self.host_mount_lines(target), [], "a mount leaked to the host")
        self.assert_store_unchanged()

    def test_mount_dies_with_the_unshare_session(self):
        target, target2 = self.user_dir("target-"), self.user_dir("target2-")
        # The session ends without umount: the mount goes with its namespace.
        res = self.unshare('"$1" mount "$2" "$3" >/dev/null && ls "$3/srv"', BINARY,
                           self.image_id, target)
        self.assertEqual((res.rc, res.out, res.err), (0, "hello.txt\n", ""), str(res))
        self.assertEqual(os.listdir(target), [])
        self.assertEqual(self.host_mount_lines(target), [])
        # A later session does not list it, and its next mount forgets the stale record.
        res = self.unshare('"$1" mounts; "$1" mount "$2" "$3" >/dev/null && "$1" umount "$3"',
                           BINARY, self.image_id, target2)
        self.assertEqual((res.rc, res.out, res.err), (0, MOUNTS_HEADER + "\n", ""), str(res))
        self.assertEqual(os.listdir(os.path.join(self.store, "mounts")), [],
                         "the stale mount record is cleaned up by the next mount")
        self.assert_store_unchanged()


# --------------------------------------------------------------------------


class RunTest(RootlessTestCase):
    """`imgtool run` as an ordinary user (the busybox image; see test_run.py for the model)."""

    IMAGE = "imgtool-test/busybox"

    def setUp(self):
        super().setUp()
        self.image_id = self.pull(image("busybox"))

    def ctr(self, *args, timeout: float = 60) -> harness.Result:
        res = self.imgtool("run", *args, timeout=timeout)
        self.assertEqual(harness.tmp_entries(self.store), [], f"left in tmp/\n{res}")
        return res

    def sh(self, script: str, *opts) -> harness.Result:
        return self.ctr(*opts, self.IMAGE, "sh", "-c", script)

    def ok(self, script: str, *opts) -> str:
        res = self.sh(script, *opts)
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        return res.out

    def assert_run_error(self, res: harness.Result, rc: int, *needles) -> str:
        return harness.assert_one_error_line(self, res, "run", *needles, rc=rc)

    def test_users(self):
        out = self.ok("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map")
        lines = out.splitlines()
        self.assertEqual(lines[:2], ["0", "0"], "the container sees uid 0 by default")
        (us, uc), (gs, gc) = self.user.subuids[0], self.user.subgids[0]
        self.assertEqual([ln.split() for ln in lines[2:]],
                         [["0", str(self.user.uid), "1"], ["1", str(us), str(uc)],
                          ["0", str(self.user.gid), "1"], ["1", str(gs), str(gc)]],
                         "the container's ids are the user's own and its subordinate ones")
        self.assertEqual(self.ok('id -u; id -g; echo "$HOME"', "-u", "1000"),
                         "1000\n1000\n/home/user\n")
        self.assertEqual(self.ok("id -u; id -g", "-u", "user:nogroup"), "1000\n65534\n")
        # A file made by uid 1000 in the container belongs to subuid start + 999 on the host:
        # seen through a volume owned by the user, made writable for everyone.
        vol = self.user_dir("vol-")
        os.chmod(vol, 0o777)
        self.assertEqual(self.ok("touch /v/by-1000 && echo ok", "-u", "1000", "-v", f"{vol}:/v"),
                         "ok\n")
        st = os.lstat(os.path.join(vol, "by-1000"))
        self.assertEqual((st.st_uid, st.st_gid), (us + 999, gs + 999))

    def test_exit_status(self):
        for code in (0, 7, 42):
            with self.subTest(code=code):
                res = self.sh(f"exit {code}")
                self.assertEqual((res.rc, res.out, res.err), (code, "", ""), str(res))
        self.assert_run_error(self.ctr(self.IMAGE, "no-such-command"), 127, "no-such-command")
        self.assert_run_error(self.ctr(self.IMAGE, "/etc/passwd"), 126, "/etc/passwd")
        res = self.sh("kill -9 $$", "--init")
        self.assertEqual((res.rc, res.err), (137, ""), str(res))
        res = self.ctr("-w", "relative", self.IMAGE, "pwd")
        self.assert_run_error(res, 125, "relative")

    def test_image_config(self):
        res = self.ctr(self.IMAGE)
        self.assertEqual((res.rc, res.out, res.err), (0, "hello from /srv\n", ""), str(res))
        res = self.ctr(self.IMAGE, "env")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        env = dict(line.split("=", 1) for line in res.out.splitlines())
        self.assertRegex(env.pop("HOSTNAME", ""), r"^[0-9a-f]{12}$")  # the container's short ID
        self.assertEqual(env, {"PATH": gen_images.DEFAULT_PATH.split("=", 1)[1],
                               "GREETING": "hello", "HOME": "/root"}, res.out)
        self.assertEqual(self.ok("pwd"), "/srv\n")
        self.assertEqual(self.ok("pwd", "-w", "/etc"), "/etc\n")
        res = self.ctr("-e", "GREETING=bye", self.IMAGE)
        self.assertEqual((res.rc, res.out), (0, "bye from /srv\n"), str(res))

    def test_namespaces(self):
        out = self.ok("echo $$; ps -o pid,comm; true")
        lines = out.splitlines()
        self.assertEqual(lines[0], "1", "the command must be PID 1")
        procs = sorted((int(pid), comm) for pid, comm in (ln.split(None, 1) for ln in lines[2:]))
        self.assertEqual([c for _, c in procs], ["sh", "ps"], f"only sh and ps:\n{out}")
        self.assertEqual(procs[0][0], 1)
        self.assertLessEqual(int(self.ok("ls /proc | busybox grep -c '^[0-9]'")), 3)
        host = os.uname().nodename
        name = self.ok("hostname").strip()
        self.assertRegex(name, r"^[0-9a-f]{12}$")  # the container's short ID
        self.assertNotEqual(name, host)
        self.assertEqual(os.uname().nodename, host)

    def test_writes_do_not_reach_the_store(self):
        # A first run makes the image's init layer (inits/); from then on nothing may change, the init
        # layer's /etc/hostname included.
        self.ok("true")
        listing = harness.store_listing(self.store)
        self.assertEqual(self.ok("echo x > /srv/new; rm /srv/hello.txt; "
                                 "echo changed > /etc/hostname; echo changed > /etc/passwd; mkdir /newdir; ls /srv"), "new\n")
        after = harness.store_listing(self.store)
        self.assertEqual(after, listing, "store changed by a container's writes:\n"
                         + harness.listing_diff(listing, after))
        self.assertEqual(self.ok("cat /srv/hello.txt; busybox grep -c changed /etc/passwd /etc/hostname; "
                                 "ls -d /newdir 2>&1; true"),
                         "hello from the second layer\n/etc/passwd:0\n/etc/hostname:0\n"
                         "ls: /newdir: No such file or directory\n")

    def test_dev(self):
        self.assertEqual(self.ok("stat -c '%F %t:%T' /dev/null /dev/zero; "
                                 "echo gone > /dev/null && echo written; "
                                 "busybox head -c 5 /dev/zero | busybox wc -c"),
                         "character special file 1:3\ncharacter special file 1:5\nwritten\n5\n")

    def test_sigterm_is_forwarded(self):
        proc = self.popen("run", self.IMAGE, "sh", "-c",
                          'trap "exit 7" TERM; echo ready; while :; do sleep 0.1; done')
        self.assertEqual(proc.stdout.readline(), b"ready\n")
        self.assertEqual(proc_comm(proc.pid), "imgtool", "the test holds imgtool's own PID")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        self.assertEqual((proc.returncode, err), (7, b""))

    def test_sigkill_of_imgtool_kills_the_container(self):
        proc = self.popen("run", self.IMAGE, "sleep", "30")
        sleep = wait_for(lambda: next((p for p in descendants(proc.pid)
                                       if proc_comm(p) == "sleep"), None), timeout=20)
        self.assertTrue(sleep, "the container's sleep never started")
        self.assertTrue(self.user.owns_uid(int(proc_status(sleep)["Uid"].split()[0])))
        proc.kill()
        proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, -signal.SIGKILL)
        left = wait_for(lambda: not user_processes(self.user), timeout=10)
        self.assertTrue(left, f"left after kill -9 of imgtool: {user_processes(self.user)}")
        res = self.imgtool("images")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(harness.tmp_entries(self.store), [])


# --------------------------------------------------------------------------


class StoreLocationTest(RootlessTestCase):
    """An ordinary user's --root must be theirs, with nothing above it writable by others. Checked
    before the user namespace is entered: inside it, the host's root and other users all show as the
    overflow id."""

    def test_store_owned_by_someone_else(self):
        for owner in (0, USERS[NOSUB_USER].uid):
            with self.subTest(owner=owner):
                root = tempfile.mkdtemp(prefix="theirs-", dir=SCRATCH)
                self.addCleanup(shutil.rmtree, root, True)
                os.chmod(root, 0o755)
                os.chown(root, owner, owner)
                res = self.imgtool("--root", root, "images")
                harness.assert_one_error_line(self, res, "images", "refusing store location", root,
                                              f"owned by uid {owner}")
                self.assertEqual(os.listdir(root), [])

    def test_symlinked_store_and_writable_parent(self):
        mine = self.user_dir("mine-")
        link = os.path.join(self.user_dir("links-"), "store")
        os.symlink(mine, link)
        res = self.imgtool("--root", link, "images")
        harness.assert_one_error_line(self, res, "images", "refusing store location", "is a symlink")
        self.assertEqual(os.listdir(mine), [])
        shared = tempfile.mkdtemp(prefix="shared-", dir=SCRATCH)
        self.addCleanup(shutil.rmtree, shared, True)
        os.chmod(shared, 0o777)
        res = self.imgtool("--root", os.path.join(shared, "store"), "images")
        harness.assert_one_error_line(self, res, "images", "refusing store location", "writable by everyone")
        self.assertEqual(os.listdir(shared), [])


class NoSubordinateIdsTest(RootlessTestCase):
    """A user without /etc/subuid ranges: only its own id is mapped."""

    user_name = NOSUB_USER

    def test_pull_squashes_owners(self):
        models = model_images()
        for name in ("basic", "busybox"):
            with self.subTest(image=name):
                img = models[name]
                want = []
                if device_entries(img):
                    want.append(device_note(len(device_entries(img))))
                want.append(SQUASH_NOTE.format(squashed_entries(img)))
                res = self.imgtool("pull-local", image(name))
                self.assertEqual((res.rc, res.out), (0, harness.image_record(name, FMT)["id"]
                                                     + "\n"), str(res))
                self.assertEqual(res.err.splitlines(), want, str(res))
                self.assertEqual(res.err.count("squashed"), 1, str(res))
        self.assertEqual(squashed_entries(models["basic"]), 6, "notes.txt, home/user, var/www, "
                         "index.html, suid-user and sgid-user are not root's in the model")
        st = os.lstat(self.store)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        for dirpath, dirnames, filenames in os.walk(self.store):
            for n in [""] + dirnames + filenames:
                path = os.path.join(dirpath, n) if n else dirpath
                st = os.lstat(path)
                self.assertEqual((st.st_uid, st.st_gid), (self.user.uid, self.user.gid), path)
        self.assertEqual(harness.tmp_entries(self.store), [])

    def test_run(self):
        self.pull(image("busybox"), SQUASH_NOTE.format(1) + "\n")
        res = self.imgtool("run", "imgtool-test/busybox", "id", "-u")
        self.assertEqual((res.rc, res.out, res.err), (0, "0\n", ""), str(res))
        res = self.imgtool("run", "-u", "1000", "imgtool-test/busybox", "id", "-u")
        self.assertEqual((res.rc, res.out), (125, ""), str(res))
        lines = res.err.splitlines()
        self.assertEqual(len(lines), 1, str(res))
        self.assertTrue(lines[0].startswith("imgtool: run: "), str(res))
        self.assertIn("1000", lines[0], "the error must say which id cannot be used")


    def test_store_made_under_another_id_map_is_refused(self):
        # Owners in a rootless store are right only for the map they were unpacked under: gaining
        # ranges later must not present the squashed layers as if they held the image's owners.
        self.pull(image("busybox"), SQUASH_NOTE.format(1) + "\n")
        listing = harness.store_listing(self.store)
        start = _free_range_start("/etc/subuid")
        rng = f"{start}-{start + 65535}"
        _run_checked([require("usermod"), "--add-subuids", rng, "--add-subgids", rng, NOSUB_USER])
        try:
            for args in (("pull-local", image("basic")), ("run", "imgtool-test/busybox", "true"),):
                with self.subTest(args=args[0]):
                    res = self.imgtool(*args)
                    harness.assert_one_error_line(self, res, args[0], "another id map", self.store,
                                                  rc=125 if args[0] == "run" else 1)
            self.assertEqual(harness.store_listing(self.store), listing, "a refused command changed the store")
        finally:
            _run_checked([require("usermod"), "--del-subuids", rng, "--del-subgids", rng, NOSUB_USER])
        res = self.imgtool("run", "imgtool-test/busybox", "id", "-u")
        self.assertEqual((res.rc, res.out, res.err), (0, "0\n", ""), str(res))


# --------------------------------------------------------------------------


def rootless_expect(rec: dict) -> dict:
    """A hostile case's expectations for a rootless pull: expect.rootless over expect."""
    expect = dict(rec["expect"])
    expect.update(expect.pop("rootless", {}))
    expect.setdefault("stderr", [])
    expect.setdefault("inside", [])
    return expect


class HostileInputTest(RootlessTestCase):
    """Hostile archives (tools/gen_hostile.py): refused with one line, or imported with what
    the case expects inside its layer (rootless rules applied); the store, the links' sentinel
    (owned by the user, so an escape could change it) and the user's files intact."""

    def make_sentinel(self, path: str) -> None:
        if os.path.lexists(path):
            shutil.rmtree(path)
        os.makedirs(os.path.join(path, "sub"))
        with open(os.path.join(path, "file.txt"), "w") as fh:
            fh.write("must stay as it is\n")
        with open(os.path.join(path, "sub", "x"), "wb") as fh:
            fh.write(b"\0\1\2")
        os.symlink("../file.txt", os.path.join(path, "sub", "link"))
        for dirpath, dirnames, filenames in os.walk(path):
            for n in [""] + dirnames + filenames:
                os.chown(os.path.join(dirpath, n) if n else dirpath, self.user.uid,
                         self.user.gid, follow_symlinks=False)
        os.chmod(os.path.join(path, "sub", "x"), 0o600)
        self.addCleanup(shutil.rmtree, path, True)

    def fingerprint(self, path: str, skip: str | None = None) -> dict:
        """tree_hash plus inode, link count, ctime and mtime of every entry (skip: a subtree
        left out)."""
        rel_skip = () if skip is None else ("/" + os.path.relpath(skip, path),)
        out = {"tree_hash": treecmp.tree_hash(path, ignore=rel_skip)}
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != skip]
            for n in [""] + dirnames + filenames:
                full = os.path.join(dirpath, n) if n else dirpath
                st = os.lstat(full)
                out[full] = (st.st_ino, st.st_nlink, st.st_ctime_ns, st.st_mtime_ns)
        return out

    def layer_dir(self, rec: dict, index) -> str:
        diff_id = rec["diff_ids"][-1 if index is None else index]
        path = os.path.join(self.store, "layers", diff_id.split(":", 1)[1], "diff")
        self.assertTrue(os.path.isdir(path), f"layer directory {path} missing")
        return path

    def strays(self) -> list:
        """Entries named like the corpus' planted files outside the stores' layer dirs."""
        found = []
        for top in (os.path.join(SCRATCH, "homes"), os.path.join(SCRATCH, "sentinels")):
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = [d for d in dirnames
                               if not (d == "layers" and os.path.isfile(
                                   os.path.join(dirpath, "lock")))]
                found += [os.path.join(dirpath, n) for n in dirnames + filenames
                          if gen_hostile.MARKER in n]
        for d in ("/", "/tmp", "/etc", SCRATCH, os.path.dirname(self.home)):
            found += [os.path.join(d, n) for n in os.listdir(d) if gen_hostile.MARKER in n]
        return found

    def test_hostile_pulls(self):
        # Every pull-local case of the corpus, with the expectations of tools/gen_hostile.py as
        # docs/rootless.md changes them (expect.rootless): "error" cases are refused as for root,
        # one line with the same reason, the store unchanged; "contained" ones import with
        # exactly the expected notes on stderr, and their layer holds what the case expects, with
        # owners mapped to the user's ids and device nodes skipped.  Nothing may ever escape:
        # sentinel, the user's files, planted names.  Trees 10,000 deep (deep/big_tree) are left
        # to test_hostile: the unpacker is the same, and Python's walks here cannot follow them.
        cases = [r for n, r in sorted(HOSTILE.items())
                 if n != "base" and r["verb"] == "pull-local" and not r.get("deep") and not r.get("big_tree")]
        self.assertGreaterEqual(len(cases), 150, "the hostile corpus lost its pull-local cases")
        contained_cases = [r for r in cases if rootless_expect(r)["outcome"] == "contained"]
        self.assertGreaterEqual(len(contained_cases), 30, "the hostile corpus lost its contained cases")
        for rec in cases:
            with self.subTest(case=rec["name"], doc=rec["doc"]):
                expect = rootless_expect(rec)
                outcome = expect["outcome"]
                self.assertIn(outcome, ("error", "contained"))
                self.store = os.path.join(self.user_dir("hostile-"), "store")
                self.pull(HOSTILE["base"]["path"])  # so that "unchanged" means something
                self.make_sentinel(rec["sentinel"])
                sentinel = self.fingerprint(rec["sentinel"])
                homes = self.fingerprint(os.path.join(SCRATCH, "homes"), skip=self.store)
                listing = harness.store_listing(self.store)
                res = self.imgtool("pull-local", rec["path"], timeout=300)
                if outcome == "error":
                    needles = gen_hostile.error_needles(expect.get("error"))
                    self.assertTrue(needles, "an error case names the message it expects")
                    harness.assert_one_error_line(self, res, "pull-local", *needles)
                    after = harness.store_listing(self.store)
                    self.assertEqual(after, listing, "store changed:\n"
                                     + harness.listing_diff(listing, after))
                else:
                    self.assertEqual((res.rc, res.err.splitlines()), (0, expect["stderr"]),
                                     str(res))
                    self.assertRegex(res.out, r"^sha256:[0-9a-f]{64}\n$", str(res))
                    user = self.user
                    harness.check_inside(
                        self, lambda index: self.layer_dir(rec, index), expect["inside"],
                        f"{rec['name']}: {rec['doc']}\n{res}", rootless=True,
                        host_ids=lambda uid, gid: (user.host_uid(uid), user.host_gid(gid)))
                self.assertEqual(harness.tmp_entries(self.store), [], f"left in tmp/\n{res}")
                self.assertEqual(self.fingerprint(rec["sentinel"]), sentinel,
                                 f"the sentinel {rec['sentinel']} changed")
                self.assertEqual(self.fingerprint(os.path.join(SCRATCH, "homes"),
                                                  skip=self.store), homes,
                                 "files of the user outside the store changed")
                self.assertEqual(self.strays(), [])
                subprocess.run(["rm", "-rf", "--one-file-system", os.path.dirname(self.store)], check=True)


# --------------------------------------------------------------------------


class CrashTest(RootlessTestCase):

    def test_sigkill_mid_pull(self):
        rec = harness.image_record("layers200", FMT)
        source = image("layers200")
        layers = {layer.diff_id: layer for layer in model_images()["layers200"].layers}
        # A clean pull for reference (and for how long a pull takes here).
        clean = self.store
        start = time.monotonic()
        self.assertEqual(self.pull(source), rec["id"])
        duration = time.monotonic() - start
        want = harness.store_listing(clean)
        hits, leftovers, crashed = 0, 0, None
        for attempt, fraction in enumerate((0.1, 0.3, 0.6, 0.05, 0.2, 0.4)):
            if hits == 3:
                break
            self.store = os.path.join(self.user_dir("crash-"), "store")
            delay = duration * fraction
            with self.subTest(attempt=attempt, delay=f"{delay:.2f}s"):
                proc = self.popen("pull-local", source)
                time.sleep(delay)
                self.assertEqual(proc_comm(proc.pid), "imgtool")
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=30)
                if proc.returncode != -signal.SIGKILL:
                    self.assertEqual(proc.returncode, 0)
                    duration = delay  # it finished first: aim earlier
                    continue
                hits += 1
                crashed = self.store
                # The namespace child dies with its parent.
                self.assertTrue(wait_for(lambda: not user_processes(self.user), timeout=10),
                                f"left after kill -9: {user_processes(self.user)}")
                names = (lambda sub: sorted(os.listdir(os.path.join(self.store, sub)))
                         if os.path.isdir(os.path.join(self.store, sub)) else [])
                self.assertEqual(names("images"), [], "no image record after a killed pull")
                leftovers += bool(names("tmp"))
                for hex_ in names("layers"):  # every visible layer is complete
                    with open(os.path.join(self.store, "layers", hex_, "layer.json")) as fh:
                        self.assertEqual(json.load(fh)["diff_id"], "sha256:" + hex_)
                    check_rootless_layer(self, self.user, os.path.join(
                        self.store, "layers", hex_, "diff"), layers["sha256:" + hex_].entries)
                res = self.imgtool("images", "--format", "json")
                self.assertEqual((res.rc, res.err), (0, ""), str(res))
                self.assertEqual(json.loads(res.out), [], "nothing half-done is listed")
                self.assertEqual(harness.tmp_entries(self.store), [],
                                 "the next command clears a killed pull's leftovers")
        self.assertGreaterEqual(hits, 2, "too few kills landed mid-pull")
        self.assertGreater(leftovers, 0, "no kill left anything in tmp/ to clean up")
        self.store = crashed
        self.assertEqual(self.pull(source), rec["id"])
        got = harness.store_listing(crashed)
        self.assertEqual(got, want, "store after crashes + pull differs from a clean pull:\n"
                         + harness.listing_diff(want, got))
        self.assert_store_owned_by_user(crashed)


# --------------------------------------------------------------------------

# Runs as the user: a user namespace of its own mapping only its own ids (so imgtool still runs
# as an ordinary user), user.max_user_namespaces set to 0 there, then imgtool.  The limit applies
# to every namespace below, exactly like the host-wide sysctl.
_NO_USERNS = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.getuid(), os.getgid()
if libc.unshare(0x10000000) != 0:
    print("helper: unshare: " + os.strerror(ctypes.get_errno()), file=sys.stderr)
    sys.exit(90)
for name, text in (("uid_map", f"{uid} {uid} 1\n"), ("setgroups", "deny"),
                   ("gid_map", f"{gid} {gid} 1\n")):
    with open(f"/proc/self/{name}", "w") as fh:
        fh.write(text)
with open("/proc/sys/user/max_user_namespaces", "w") as fh:
    fh.write("0\n")
with open("/proc/sys/user/max_user_namespaces") as fh:
    if fh.read().strip() != "0":
        sys.exit(91)
os.execv(sys.argv[1], sys.argv[1:])
"""


class UserNamespaceLimitTest(RootlessTestCase):
    """The kernel refuses to create user namespaces (user.max_user_namespaces = 0).

    The host-wide sysctl cannot be lowered here (root lacks CAP_SYS_RESOURCE in this sandbox, and
    lowering it would break every other session on the machine): the limit is set in a user
    namespace of the user's own, which the kernel enforces for every namespace created below it,
    with the same ENOSPC from unshare(CLONE_NEWUSER)."""

    def test_one_line_naming_the_sysctl(self):
        self.pull(image("busybox"))
        listing = harness.store_listing(self.store)
        for args in (("images",), ("pull-local", image("rootopq")),
                     ("run", "imgtool-test/busybox", "true")):
            with self.subTest(args=args):
                res = run_as(self.user, ["python3", "-I", "-c", _NO_USERNS, BINARY, *args],
                             home=self.home, env=self.env())
                self.assertNotIn(res.rc, (90, 91), f"could not lower the limit\n{res}")
                self.assertEqual(res.rc, 125 if args[0] == "run" else 1, str(res))
                self.assertEqual(res.out, "", str(res))
                lines = res.err.splitlines()
                self.assertEqual(len(lines), 1, f"expected one error line\n{res}")
                self.assertTrue(lines[0].startswith(f"imgtool: {args[0]}: "), str(res))
                self.assertIn("user namespace", lines[0])
                self.assertIn("user.max_user_namespaces", lines[0])
                after = harness.store_listing(self.store)
                self.assertEqual(after, listing, harness.listing_diff(listing, after))
        # Control: the same commands work without the limit.
        res = self.imgtool("run", "imgtool-test/busybox", "true")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))


if __name__ == "__main__":
    unittest.main()
