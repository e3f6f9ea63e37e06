"""The peers' own extraction tests (tools/gen_peer_cases.py) against imgtool, as root and rootless.

Each case ports one subtest of containerd, moby's go-archive, umoci or containers/storage: its
layers, the peer's expected result and imgtool's (see the generator's docstring). One test method
per family and mode; every case is a subTest, so one failing case never hides the others. Each
family shares one store, and its cases are pulled in the generator's order.

For every case:
  - pull-local: an expected error is exit 1, nothing on stdout and exactly one stderr line
    "imgtool: pull-local: ..." holding the case's substrings (and naming the layer, where the case
    says which), the store listing unchanged; an expected success prints the ID and nothing else
    (rootless: at most the device-node note, with the right count); ROOT/tmp/ empty either way;
  - nothing outside the store changed: the sentinel the cases' absolute links point into
    (contents, modes, owners, times, xattrs, inodes, link counts), the host's /etc, / and
    core_pattern, and no imgtool-peers-* name anywhere outside the layer directories;
  - for successes, the overlay view (`imgtool mount`) and the copy view (`imgtool mount --driver
    copy`) each equal the expected tree entry by entry (names, types, link targets, contents,
    modes, owners, hardlink groups, xattrs), and neither shows a whiteout (a 0:0 device, or an entry
    that cannot be stat'ed: the `c?????????` of ls);
  - rootless (user imgtool-rl of test_rootless, views taken inside `imgtool unshare`): device nodes
    are expected absent, and every entry of the copy view is owned, seen from the host, by the id
    the user's map gives the image's owner;
  - as a third opinion (root only), `umoci unpack` of every case imgtool should accept, compared
    with the same expected tree; where umoci 0.4.7 differs or refuses, the case says so.

The corpus is generated once per generator source into $IMGTOOL_TEST_TMP/peers. The rootless
methods run as the users test_rootless creates, and hold /tmp/imgtool-rootless.lock (unless an
ancestor process already does, e.g. `flock /tmp/imgtool-rootless.lock python3 -m unittest ...`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness
from harness import treecmp

import gen_peer_cases  # noqa: E402  (harness put tools/ on sys.path)
import test_rootless as rl
from test_hostile import host_state, make_sentinel, sentinel_fingerprint, state_diff

GEN = os.path.join(harness.TOOLS_DIR, "gen_peer_cases.py")
CORPUS_DIR = os.path.join(harness.TEST_TMP, "peers")
# Baked into the images (absolute links point into it), so one fixed path per build tree that the
# rootless user can reach too.
SENTINEL_BASE = "/tmp/peer-cases-" + hashlib.sha256(harness.TEST_TMP.encode()).hexdigest()[:10]
MARKER = gen_peer_cases.MARKER
ROOTLESS_LOCK = "/tmp/imgtool-rootless.lock"
RESULTS: dict = {}  # mode -> case -> what happened ($IMGTOOL_TEST_TMP/peers-results.json)
TIMES: dict = {}    # "family mode" -> seconds

# Runs in a private mount namespace (root: unshare -m; rootless: imgtool unshare): mounts each
# image both ways, snapshots the views (never failing on an entry it cannot stat: that is what it
# must report), unmounts the overlay view and leaves the copy for the host-side owner check.
VIEWS_HELPER = r'''
import json, os, stat, subprocess, sys
spec = json.load(open(sys.argv[1]))
sys.path.insert(0, spec["treecmp_dir"])
import treecmp

def snap(top):
    entries, inodes = {}, {}
    entries["/"] = treecmp._describe(top, os.lstat(top), mtimes=False, dir_mtimes=False)
    stack = [(top, "/")]
    while stack:
        path, rel = stack.pop()
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            entries[rel]["error"] = "readdir: " + e.strerror
            continue
        for name in names:
            full, r = os.path.join(path, name), rel.rstrip("/") + "/" + name
            try:
                st = os.lstat(full)
            except OSError as e:
                entries[r] = {"type": "unstatable", "error": e.strerror}
                continue
            try:
                entries[r] = treecmp._describe(full, st, mtimes=False, dir_mtimes=False)
            except OSError as e:
                entries[r] = {"type": "unreadable", "error": e.strerror}
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append((full, r))
            elif st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(r)
    for paths in inodes.values():
        if len(paths) > 1:
            for p in paths:
                entries[p]["link_group"] = min(paths)
    return entries

def imgtool(*args):
    p = subprocess.run(spec["imgtool"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # A success says nothing: a note (such as falling back to the copy driver) means the view is not
    # the one asked for.
    if p.returncode == 0 and p.stderr:
        return "succeeded but said: " + p.stderr.strip()
    return None if p.returncode == 0 else (p.stderr.strip() or "exit %d" % p.returncode)

out = {}
for job in spec["jobs"]:
    r = out[job["name"]] = {}
    for view, extra in (("overlay", []), ("copy", ["--driver", "copy"])):
        error = imgtool("mount", *extra, job["id"], job[view])
        if error:
            r[view + "_error"] = error
            continue
        r[view] = snap(job[view])
        if view == "overlay":
            error = imgtool("umount", job[view])
            if error:
                r["umount_error"] = error
with open(sys.argv[2] + ".tmp", "w") as fh:
    json.dump(out, fh)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
'''


# --------------------------------------------------------------------------
# The corpus


_corpus: dict | None = None


def corpus() -> dict:
    global _corpus
    if _corpus is None:
        os.makedirs(harness.TEST_TMP, exist_ok=True)
        stamp = json.dumps({name: harness.sha256_file(os.path.join(harness.TOOLS_DIR, name))
                            for name in ("gen_peer_cases.py", "gen_hostile.py", "gen_images.py")}
                           | {"sentinel_base": SENTINEL_BASE, "arch": platform.machine()},
                           sort_keys=True)
        harness.generate_once("peers", CORPUS_DIR, "peers.json", stamp,
                              [sys.executable, GEN, CORPUS_DIR, "--sentinel-base", SENTINEL_BASE])
        with open(os.path.join(CORPUS_DIR, "peers.json")) as fh:
            _corpus = json.load(fh)
    return _corpus


def family_cases(family: str) -> list:
    return [c for c in corpus()["cases"] if c["family"] == family]


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.require_tool("umoci")
    corpus()
    os.makedirs(SENTINEL_BASE, exist_ok=True)
    os.chmod(SENTINEL_BASE, 0o755)


def tearDownModule():
    if RESULTS:
        with open(os.path.join(harness.TEST_TMP, "peers-results.json"), "w") as fh:
            json.dump(RESULTS, fh, indent=1, sort_keys=True)
    if TIMES:
        print("\ntest_peers: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(TIMES.items())),
              file=sys.stderr)
    if _rootless_scratch and not os.environ.get("IMGTOOL_TEST_KEEP"):
        shutil.rmtree(_rootless_scratch, ignore_errors=True)
    shutil.rmtree(SENTINEL_BASE, ignore_errors=True)


# --------------------------------------------------------------------------
# Expectations


def expected_snapshot(tree: dict, rootless: bool) -> dict:
    """The case's expected tree in treecmp's snapshot form ("/"-prefixed paths, root left out)."""
    out, groups = {}, {}
    for path, e in tree.items():
        if rootless and e["type"] in ("chr", "blk"):
            continue  # skipped by a rootless pull (rule 11)
        entry = {"type": e["type"], "mode": e["mode"], "uid": e["uid"], "gid": e["gid"]}
        if e["type"] == "file":
            data = bytes.fromhex(e["content_hex"])
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
        elif e["type"] == "symlink":
            entry["target"] = e["target"]
        elif e["type"] in ("chr", "blk"):
            entry["rdev"] = e["rdev"]
        if e.get("xattrs"):
            entry["xattrs"] = dict(sorted(e["xattrs"].items()))
        out["/" + path] = entry
        if "same_as" in e:
            groups.setdefault(e["same_as"], {e["same_as"]}).add(path)
    for members in groups.values():
        leader = min("/" + p for p in members)
        for p in members:
            out["/" + p]["link_group"] = leader
    return out


def view_problems(snapshot: dict, expected: dict) -> list:
    """Whiteouts that show, then every difference from the expected tree."""
    problems = []
    for path, e in sorted(snapshot.items()):
        if e.get("type") in ("unstatable", "unreadable"):
            problems.append(f"{path}: {e['type']} ({e['error']}): a whiteout shows "
                            f"(ls: c?????????)")
        elif e.get("type") == "chr" and e.get("rdev") == "0:0":
            problems.append(f"{path}: a 0:0 whiteout device shows")
        elif "error" in e:
            problems.append(f"{path}: {e['error']}")
    actual = {p: {k: v for k, v in e.items() if k != "error"} for p, e in snapshot.items()
              if p != "/" and e.get("type") not in ("unstatable", "unreadable")}
    return problems + treecmp.compare(expected, actual)


def stray_markers(tops: list) -> list:
    """imgtool-peers-* names below tops (skipping layer directories) and in /, /etc, /tmp."""
    found = []
    for top in tops:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not (d == "diff" and os.path.basename(
                os.path.dirname(os.path.dirname(os.path.join(dirpath, d)))) == "layers")]
            found += [os.path.join(dirpath, n) for n in dirnames + filenames if MARKER in n]
    for d in ("/", "/etc", "/tmp", harness.TEST_TMP):
        with contextlib.suppress(OSError):
            found += [os.path.join(d, n) for n in os.listdir(d) if MARKER in n]
    return sorted(set(found))


def device_entries(case: dict, layer_index: int) -> int:
    return sum(e["type"] in ("char", "block") for e in case["layers"][layer_index])


# --------------------------------------------------------------------------
# The rootless user


_rootless_scratch: str | None = None
_rootless_skip: str | None = None


def rootless_setup() -> str:
    """Scratch dir (readable by the users) with the binary, treecmp, the helper and the corpus;
    the users; raises SkipTest if the kernel lacks unprivileged user namespaces or overlay."""
    global _rootless_scratch, _rootless_skip
    if _rootless_skip:
        raise unittest.SkipTest(_rootless_skip)
    if _rootless_scratch:
        return _rootless_scratch
    for tool in ("newuidmap", "newgidmap", "setpriv", "unshare"):
        rl.require(tool)
    rl.ensure_users()
    scratch = tempfile.mkdtemp(prefix="peer-cases-rl-", dir="/tmp")
    _rootless_scratch = scratch
    os.chmod(scratch, 0o755)
    shutil.copy(harness.imgtool_binary(), os.path.join(scratch, "imgtool"))
    shutil.copy(harness.TREECMP, os.path.join(scratch, "treecmp.py"))
    with open(os.path.join(scratch, "views.py"), "w") as fh:
        fh.write(VIEWS_HELPER)
    shutil.copytree(CORPUS_DIR, os.path.join(scratch, "corpus"))
    os.makedirs(os.path.join(scratch, "homes"))
    rl._publish(scratch)
    rl.SCRATCH = scratch  # test_rootless' helpers (user_dir, the overlay probe) work below it
    probe = subprocess.run(rl.as_user(rl.USERS[rl.USER], ["unshare", "--user", "--map-root-user",
                                                          "true"], home="/"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    if probe.returncode != 0:
        _rootless_skip = f"the kernel refuses unprivileged user namespaces: {probe.stderr.strip()}"
    else:
        _rootless_skip = rl.rootless_overlay_unavailable()
    if _rootless_skip:
        raise unittest.SkipTest(_rootless_skip)
    return scratch


def _held_by_ancestor(path: str) -> bool:
    """True if a flock on path is held by this process or one of its ancestors."""
    st = os.stat(path)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = set()
    with open("/proc/locks") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == inode:
                holders.add(int(fields[4]))
    pid = os.getpid()
    while pid > 1:
        if pid in holders:
            return True
        with open(f"/proc/{pid}/stat") as fh:
            pid = int(fh.read().rpartition(")")[2].split()[1])
    return False


@contextlib.contextmanager
def rootless_lock():
    """/tmp/imgtool-rootless.lock, shared with everyone who runs things as the rootless users."""
    with open(ROOTLESS_LOCK, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not _held_by_ancestor(ROOTLESS_LOCK):
                fcntl.flock(fh, fcntl.LOCK_EX)
        yield


# --------------------------------------------------------------------------
# Root and rootless runners: where the store is and how imgtool runs


class RootRunner:
    rootless = False

    def __init__(self, tc: unittest.TestCase, family: str):
        self.tc = tc
        self.work = harness.scratch_dir(tc, f"peers-{family}-")
        self.store = os.path.join(self.work, "root")
        self.corpus = CORPUS_DIR

    def make_sentinel(self, path: str) -> None:
        make_sentinel(path)

    def init(self) -> None:
        """The base image first, so that "a refused pull leaves the store unchanged" means
        something."""
        res = self.pull(os.path.join(self.corpus, corpus()["base"]["path"]))
        self.tc.assertEqual((res.rc, res.err), (0, ""), str(res))

    def pull(self, source: str) -> harness.Result:
        return harness.run(self.store, "pull-local", source)

    def views(self, jobs: list) -> dict:
        spec = os.path.join(self.work, "views.json")
        out = os.path.join(self.work, "views-out.json")
        helper = os.path.join(self.work, "views.py")
        with open(helper, "w") as fh:
            fh.write(VIEWS_HELPER)
        with open(spec, "w") as fh:
            json.dump({"imgtool": [harness.imgtool_binary(), "--root", self.store],
                       "treecmp_dir": harness.TOOLS_DIR, "jobs": jobs}, fh)
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, helper,
                               spec, out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=600, env=harness.base_env())
        self.tc.assertEqual(proc.returncode, 0, f"views helper failed: {proc.stderr}")
        with open(out) as fh:
            return json.load(fh)

    def view_dir(self, name: str) -> str:
        path = os.path.join(self.work, "views", name)
        os.makedirs(path)
        return path

    def host_owner(self, uid: int, gid: int) -> tuple:
        return uid, gid


class RootlessRunner:
    rootless = True

    def __init__(self, tc: unittest.TestCase, family: str):
        self.tc = tc
        self.scratch = rootless_setup()
        self.user = rl.USERS[rl.USER]
        tc.addCleanup(self._no_user_processes_left)  # registered first: runs last
        self.home = rl.user_dir(tc, self.user, f"peers-{family}-")
        self.store = os.path.join(self.home, "store")
        self.corpus = os.path.join(self.scratch, "corpus")

    def _no_user_processes_left(self):
        left = []
        if not harness.wait_for(lambda: not rl.user_processes(self.user), timeout=10):
            left = rl.user_processes(self.user)
        self.tc.assertEqual(left, [], f"processes of {self.user.name} left after the test")

    def make_sentinel(self, path: str) -> None:
        make_sentinel(path)
        for dirpath, dirnames, filenames in os.walk(path):
            for n in [""] + dirnames + filenames:
                os.chown(os.path.join(dirpath, n) if n else dirpath, self.user.uid, self.user.gid,
                         follow_symlinks=False)

    def imgtool(self, *args, timeout: float = 120) -> harness.Result:
        return rl.run_as(self.user, [os.path.join(self.scratch, "imgtool"), *args], home=self.home,
                         env={"IMGTOOL_ROOT": self.store}, timeout=timeout)

    def init(self) -> None:
        res = self.pull(os.path.join(self.corpus, corpus()["base"]["path"]))
        self.tc.assertEqual((res.rc, res.err), (0, ""), str(res))

    def pull(self, source: str) -> harness.Result:
        return self.imgtool("pull-local", source)

    def views(self, jobs: list) -> dict:
        spec = os.path.join(self.home, "views.json")
        out = os.path.join(self.home, "views-out.json")
        with open(spec, "w") as fh:
            json.dump({"imgtool": [os.path.join(self.scratch, "imgtool")],
                       "treecmp_dir": self.scratch, "jobs": jobs}, fh)
        os.chmod(spec, 0o644)
        res = self.imgtool("unshare", "python3", os.path.join(self.scratch, "views.py"), spec, out,
                           timeout=600)
        self.tc.assertEqual(res.rc, 0, f"views helper failed\n{res}")
        with open(out) as fh:
            return json.load(fh)

    def view_dir(self, name: str) -> str:
        path = os.path.join(self.home, "views", name)
        os.makedirs(path)
        for p in (os.path.dirname(path), path):
            os.chown(p, self.user.uid, self.user.gid)
        return path

    def host_owner(self, uid: int, gid: int) -> tuple:
        return self.user.host_uid(uid), self.user.host_gid(gid)


# --------------------------------------------------------------------------


class PeerCasesTest(unittest.TestCase):
    """One method per family and mode; each case a subTest."""

    maxDiff = 6000

    def run_family(self, family: str, rootless: bool) -> None:
        started = time.monotonic()
        mode = "rootless" if rootless else "root"
        cases = family_cases(family)
        self.assertTrue(cases, f"the corpus has no {family} cases")
        if rootless:
            # Released by the last cleanup, after the check that no process of the user is left.
            self.enterContext(rootless_lock())
        runner = (RootlessRunner if rootless else RootRunner)(self, family)
        runner.init()
        sentinel = corpus()["sentinel"]
        runner.make_sentinel(sentinel)
        self.addCleanup(shutil.rmtree, sentinel, True)
        results = RESULTS.setdefault(mode, {})
        pulled = []
        for case in cases:
            with self.subTest(case=case["name"], mode=mode, check="pull"):
                image_id = self.check_pull(runner, case, sentinel, results)
                if image_id:
                    pulled.append((case, image_id))
        if pulled:
            self.check_views(runner, pulled, results)
        if not rootless:
            self.check_umoci(cases, results)
        TIMES[f"{family} {mode}"] = time.monotonic() - started

    def expectation(self, case: dict, rootless: bool) -> dict:
        return case.get("expect_rootless", case["expect"]) if rootless else case["expect"]

    def describe(self, case: dict) -> str:
        src = case["source"]
        return (f"{case['name']}: {src['repo']} {src['file']} {src['test']}"
                + (f" [{src['variant']}]" if src["variant"] else "")
                + f"\n  peer: {case['peer']['outcome']}: {case['peer']['states']}"
                + (f"\n  why imgtool differs: {case['why']}" if case["why"] else ""))

    # ---- pull-local ------------------------------------------------------------

    def check_pull(self, runner, case: dict, sentinel: str, results: dict) -> str | None:
        """Pulls the case; returns the image ID if it was pulled as expected."""
        expect = self.expectation(case, runner.rootless)
        info = self.describe(case)
        source = os.path.join(runner.corpus, case["path"])
        listing = harness.store_listing(runner.store)
        present = set(harness.layer_hexes(runner.store))
        sentinel_before, host_before = sentinel_fingerprint(sentinel), host_state()
        res = runner.pull(source)
        line = res.err.strip().splitlines()[0] if res.err.strip() else ""
        rec = results[case["name"]] = {"expected": expect["outcome"],
                                       "got": "ok" if res.rc == 0 else "error", "line": line}
        info = f"{info}\n{res}"
        try:
            self.assertEqual(harness.tmp_entries(runner.store), [], f"left in tmp/\n{info}")
            self.assertEqual(sentinel_fingerprint(sentinel), sentinel_before,
                             f"the sentinel {sentinel} changed\n{info}")
            host_after = host_state()
            self.assertEqual(host_after, host_before,
                             f"host state changed:\n{state_diff(host_before, host_after)}\n{info}")
            self.assertEqual(stray_markers([os.path.dirname(runner.store), SENTINEL_BASE]), [],
                             f"entries planted outside the layer directories\n{info}")
            if expect["outcome"] == "error":
                self.assertEqual(res.rc, 1, f"expected a refusal\n{info}")
                self.assertEqual(res.out, "", info)
                lines = res.err.splitlines()
                self.assertEqual(len(lines), 1, f"expected exactly one error line\n{info}")
                self.assertTrue(lines[0].startswith("imgtool: pull-local: "), info)
                for needle in expect["error"]:
                    self.assertIn(needle, lines[0], info)
                if expect.get("names_layer") is not None:
                    i = expect["names_layer"]
                    names = (case["diff_ids"][i].split(":")[1][:12],
                             case["layer_digests"][i].split(":")[1][:12])
                    self.assertTrue(any(n in lines[0] for n in names),
                                    f"the error must name layer {i} ({' or '.join(names)})\n{info}")
                after = harness.store_listing(runner.store)
                self.assertEqual(after, listing, "a refused pull changed the store:\n"
                                 + harness.listing_diff(listing, after) + f"\n{info}")
                rec["result"] = "pass"
                return None
            self.assertEqual(res.rc, 0, f"expected the pull to succeed\n{info}")
            ids = res.out.splitlines()
            self.assertEqual(len(ids), 1, info)
            self.assertTrue(ids[0].startswith("sha256:"), info)
            want_err = ""
            if runner.rootless:
                skipped = sum(device_entries(case, i) for i, d in enumerate(case["diff_ids"])
                              if d.split(":")[1] not in present)
                if skipped:
                    want_err = rl.device_note(skipped) + "\n"
            self.assertEqual(res.err, want_err, info)
            rec["result"] = "pulled"
            return ids[0]
        except AssertionError as e:
            rec["result"] = "fail"
            rec["failure"] = str(e).splitlines()[0]
            raise

    # ---- the views -------------------------------------------------------------

    def check_views(self, runner, pulled: list, results: dict) -> None:
        jobs = []
        for i, (case, image_id) in enumerate(pulled):
            jobs.append({"name": case["name"], "id": image_id,
                         "overlay": runner.view_dir(f"{i:03d}-overlay"),
                         "copy": runner.view_dir(f"{i:03d}-copy")})
        views = runner.views(jobs)
        for (case, _), job in zip(pulled, jobs):
            rec = results[case["name"]]
            with self.subTest(case=case["name"], mode="rootless" if runner.rootless else "root",
                              check="views"):
                expected = expected_snapshot(self.expectation(case, runner.rootless)["tree"],
                                             runner.rootless)
                got = views[case["name"]]
                problems = {}
                for view in ("overlay", "copy"):
                    if view + "_error" in got:
                        problems[view] = [f"imgtool mount failed: {got[view + '_error']}"]
                    else:
                        problems[view] = view_problems(got[view], expected)
                if "umount_error" in got:
                    problems["overlay"].append(f"imgtool umount failed: {got['umount_error']}")
                if runner.rootless and "copy" in got:
                    problems["copy"] += self.host_owner_problems(runner, job["copy"], got["copy"])
                rec["views"] = {v: p[:10] for v, p in problems.items() if p}
                rec["result"] = "fail" if rec["views"] else "pass"
                text = "\n".join(f"{view} view of {case['name']}, {len(p)} problem(s):\n  "
                                 + "\n  ".join(p[:30]) for view, p in problems.items() if p)
                self.assertFalse(text, f"{self.describe(case)}\n{text}")

    def host_owner_problems(self, runner, top: str, snapshot: dict) -> list:
        """Seen from the host, the copy view's owners are the user's mapped ids."""
        problems = []
        for path, e in snapshot.items():
            if "uid" not in e or path == "/":
                continue
            st = os.lstat(os.path.join(top, path.lstrip("/")))
            want = runner.host_owner(e["uid"], e["gid"])
            if (st.st_uid, st.st_gid) != want:
                problems.append(f"{path}: host owner {st.st_uid}:{st.st_gid}, want "
                                f"{want[0]}:{want[1]} (image {e['uid']}:{e['gid']} through the "
                                f"user's map)")
        return problems

    # ---- umoci -----------------------------------------------------------------

    def check_umoci(self, cases: list, results: dict) -> None:
        """umoci unpack of every case imgtool should accept, against the same expected tree."""
        accepted = [c for c in cases if c["expect"]["outcome"] == "ok"]
        work = harness.scratch_dir(self, "peers-umoci-")

        def unpack(i_case):
            i, case = i_case
            bundle = os.path.join(work, f"{i:03d}")
            proc = subprocess.run(["umoci", "unpack", "--image",
                                   f"{os.path.join(CORPUS_DIR, case['path'])}:latest", bundle],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  timeout=300)
            if proc.returncode != 0:
                return case, None, proc.stderr.strip()
            snap = treecmp.snapshot(os.path.join(bundle, "rootfs"), mtimes=False)
            snap.pop("/", None)
            shutil.rmtree(bundle, ignore_errors=True)
            return case, snap, None

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(unpack, enumerate(accepted)))
        for case, snap, error in outcomes:
            with self.subTest(case=case["name"], mode="root", check="umoci"):
                declared = case.get("umoci") or {"outcome": "same"}
                rec = results[case["name"]]
                if error is not None:
                    rec["umoci"] = f"refuses: {error.splitlines()[-1] if error else ''}"
                    self.assertEqual(declared["outcome"], "error",
                                     f"umoci unpack refused it: {error}\n{self.describe(case)}")
                    continue
                diffs = treecmp.compare(expected_snapshot(case["expect"]["tree"], False), snap)
                rec["umoci"] = "same" if not diffs else diffs[:10]
                if declared["outcome"] == "same":
                    self.assertEqual(diffs, [], f"umoci unpack (B) differs from imgtool's expected "
                                                f"tree (A)\n{self.describe(case)}")
                elif declared["outcome"] == "differs":
                    paths = {line[len("only in A: "):] if line.startswith("only in ")
                             else line.split(":")[0] for line in diffs}
                    self.assertTrue(diffs, f"umoci now agrees: drop the case's umoci note\n"
                                           f"{self.describe(case)}")
                    self.assertLessEqual(paths, set(declared["paths"]), "\n".join(diffs))
                else:
                    self.fail(f"umoci unpack accepted it, the case says {declared}\n"
                              f"{self.describe(case)}")


def _add_tests() -> None:
    for family in gen_peer_cases.FAMILIES:
        for rootless in (False, True):
            mode = "rootless" if rootless else "root"

            def test(self, family=family, rootless=rootless):
                self.run_family(family, rootless)
            test.__name__ = f"test_{family.replace('-', '_')}_{mode}"
            test.__doc__ = f"{family} cases, {mode}"
            setattr(PeerCasesTest, test.__name__, test)


_add_tests()


if __name__ == "__main__":
    unittest.main()
