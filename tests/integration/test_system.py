"""imgtool info, system df (df) and prune, driven as root on scratch stores (plus one rootless case).

What is checked, beyond the output's shape: `info` creates nothing (a missing store stays missing) and
names the driver `mount` then records; `df` counts a layer two images share once; `prune` removes
dangling images (with -a every image no mount or container uses), unreferenced layers, stale init
layers, blobs and tmp/ leftovers, never what a concurrent import is staging (it waits for the store's
exclusive lock), and removes a symlink planted in tmp/ as a link, its target untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import unittest

import harness

BASIC = ("basic", "docker-archive")    # 3 layers
SHARED = ("shared", "docker-archive")  # shares basic's 2 lower layers, has 1 of its own
BUSYBOX = ("busybox", "docker-archive")
BASIC_TAG = "imgtool-test/basic:latest"


def setUpModule():
    harness.require_root()
    harness.images()


def layer_size(root: str, hexid: str) -> int:
    with open(os.path.join(root, "layers", hexid, "layer.json")) as fh:
        return json.load(fh)["size"]


def diff_hexes(name_fmt) -> list:
    return [d.split(":", 1)[1] for d in harness.image_record(*name_fmt)["diff_ids"]]


class SystemTest(unittest.TestCase):
    def setUp(self):
        self.root = harness.new_store(self)

    def imgtool(self, *args, **kwargs) -> harness.Result:
        return harness.run(self.root, *args, **kwargs)

    def ok(self, *args) -> harness.Result:
        res = self.imgtool(*args)
        self.assertEqual(res.rc, 0, str(res))
        return res

    def pull(self, name_fmt, *args) -> str:
        return harness.pull(self, self.root, harness.image_path(*name_fmt), *args)

    def make_dangling_basic(self) -> tuple:
        """basic and shared imported; basic's only tag moved to shared: basic is dangling."""
        basic = self.pull(BASIC)
        shared = self.pull(SHARED, "--tag", BASIC_TAG)
        return basic, shared

    def prune(self, *args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(harness.imgtool_argv(self.root, "prune", *args), input=stdin,
                              stdin=None if stdin is not None else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=harness.base_env(),
                              timeout=60)

    # ---------------------------------------------------------------- info

    def test_info_json_and_text(self):
        self.pull(BASIC)
        info = json.loads(self.ok("info", "--format", "json").out)
        for key in ("host", "store", "version"):
            self.assertIn(key, info)
        host, store = info["host"], info["store"]
        for key in ("kernel", "rootless", "idMappings", "cgroupVersion", "cgroupControllers",
                    "cgroupV2Mount", "cgroupV2Controllers", "features"):
            self.assertIn(key, host)
        for key in ("newMountAPI", "idmappedMounts", "overlay", "overlayLowerdirPlus", "seccomp",
                    "userNamespaces"):
            self.assertIsInstance(host["features"][key], bool, key)
        self.assertFalse(host["rootless"])
        self.assertEqual(host["idMappings"]["uidmap"],
                         [{"container_id": 0, "host_id": 0, "size": 4294967295}])
        self.assertEqual(host["kernel"], os.uname().release)
        self.assertEqual(store["graphRoot"], self.root)
        self.assertTrue(store["exists"])
        self.assertEqual(store["imageStore"]["number"], 1)
        self.assertEqual(store["layerStore"]["number"], 3)
        self.assertEqual(store["layerStore"]["size"],
                         sum(layer_size(self.root, h) for h in diff_hexes(BASIC)))
        self.assertIn(store["graphDriverName"], ("overlay", "copy"))
        self.assertTrue(store["graphDriverReason"])
        # This host: cgroup v1 controllers beside a v2 hierarchy at /sys/fs/cgroup/unified.
        if os.path.isdir("/sys/fs/cgroup/unified") and os.path.isdir("/sys/fs/cgroup/memory"):
            self.assertEqual(host["cgroupVersion"], "hybrid")
            self.assertIn("memory", host["cgroupControllers"])
            self.assertEqual(host["cgroupV2Mount"], "/sys/fs/cgroup/unified")
        text = self.ok("info").out
        self.assertIn("host:\n", text)
        self.assertIn(f"  graphRoot: {self.root}\n", text)
        self.assertIn(f"  graphDriverName: {store['graphDriverName']}\n", text)
        self.assertIn("  rootless: false\n", text)
        self.assertIn("  cgroupVersion: ", text)

        # The driver info names is the one a following default mount records.
        target = os.path.join(harness.scratch_dir(self, "target-"), "view")
        os.mkdir(target)
        with harness.host_mount_lock():
            self.ok("mount", BASIC_TAG, target)
            try:
                rows = self.ok("mounts").out.splitlines()[1:]
                self.assertEqual(len(rows), 1, rows)
                self.assertEqual(rows[0].split()[1], store["graphDriverName"], rows)
                after = json.loads(self.ok("info", "--format", "json").out)
                self.assertEqual(after["store"]["mounts"]["number"], 1)
            finally:
                self.imgtool("umount", target)

    def test_info_on_a_missing_store_creates_nothing(self):
        parent = os.path.dirname(self.root)
        before = sorted(os.listdir(parent))
        for args in (("info",), ("info", "--format", "json")):
            res = self.ok(*args)
            self.assertFalse(os.path.lexists(self.root), str(res))
        info = json.loads(self.ok("info", "--format", "json").out)
        self.assertFalse(info["store"]["exists"])
        self.assertEqual(info["store"]["imageStore"]["number"], 0)
        self.assertEqual(sorted(os.listdir(parent)), before)
        # A directory holding only a lock file (an interrupted first command): reported, not completed.
        os.mkdir(self.root, 0o700)
        with open(os.path.join(self.root, "lock"), "w"):
            pass
        info = json.loads(self.ok("info", "--format", "json").out)
        self.assertTrue(info["store"]["exists"])
        self.assertFalse(info["store"]["complete"])
        self.assertEqual(os.listdir(self.root), ["lock"])

    # ---------------------------------------------------------------- df

    def test_df_counts_a_shared_layer_once(self):
        basic = self.pull(BASIC)
        shared = self.pull(SHARED)
        b, s = diff_hexes(BASIC), diff_hexes(SHARED)
        common = sorted(set(b) & set(s))
        self.assertEqual(len(common), 2)
        sizes = {h: layer_size(self.root, h) for h in set(b) | set(s)}
        df = json.loads(self.ok("system", "df", "--format", "json").out)
        self.assertEqual(df["Images"]["Total"], 2)
        self.assertEqual(df["Images"]["Active"], 0)
        self.assertEqual(df["Images"]["Size"], sum(sizes.values()))
        self.assertEqual(df["Images"]["Reclaimable"], sum(sizes.values()))
        self.assertEqual(df["Layers"]["Total"], 4)
        self.assertEqual(df["Layers"]["Shared"], 2)
        self.assertEqual(df["Layers"]["SharedSize"], sum(sizes[h] for h in common))
        self.assertEqual(df["Layers"]["Unique"], 2)
        self.assertEqual(df["Layers"]["UniqueSize"], sum(sizes.values()) - sum(sizes[h] for h in common))
        rows = {r["Id"]: r for r in df["ImageDetails"]}
        self.assertEqual(rows[basic]["Size"], sum(sizes[h] for h in b))
        self.assertEqual(rows[basic]["SharedSize"], sum(sizes[h] for h in common))
        self.assertEqual(rows[shared]["UniqueSize"], sum(sizes[h] for h in set(s) - set(common)))
        self.assertEqual(rows[basic]["RepoTags"], [BASIC_TAG])
        # `imgtool df` is the same command.
        self.assertEqual(json.loads(self.ok("df", "--format", "json").out), df)
        table = self.ok("system", "df").out.splitlines()
        self.assertEqual(table[0].split(), ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"])
        self.assertEqual(table[1].split()[:3], ["Images", "2", "0"])
        verbose = self.ok("system", "df", "-v").out
        self.assertIn("Images space usage:", verbose)
        self.assertIn("SHARED SIZE", verbose)
        self.assertIn(basic.split(":")[1][:12], verbose)

    # ---------------------------------------------------------------- prune

    def test_prune_removes_dangling_images_and_what_only_they_used(self):
        basic, shared = self.make_dangling_basic()
        own = set(diff_hexes(BASIC)) - set(diff_hexes(SHARED))
        stale = os.path.join(self.root, "tmp", "layer-999999-deadbeef")
        os.makedirs(os.path.join(stale, "diff"))
        with open(os.path.join(stale, "diff", "f"), "wb") as fh:
            fh.write(b"x" * 5000)
        res = self.prune("-f")
        out = res.stdout.decode()
        self.assertEqual(res.returncode, 0, res)
        self.assertIn(f"deleted: {basic}\n", out)
        self.assertNotIn(shared, out)
        for h in own:
            self.assertIn(f"sha256:{h}\n", out)
            self.assertFalse(os.path.exists(os.path.join(self.root, "layers", h)))
        self.assertIn("tmp/layer-999999-deadbeef\n", out)
        self.assertFalse(os.path.lexists(stale))
        self.assertRegex(out, r"Total reclaimed space: [0-9.]+[kMG]?B\n$")
        self.assertEqual(sorted(harness.layer_hexes(self.root)), sorted(diff_hexes(SHARED)))
        ids = {row["ID"] for row in harness.images_json(self, self.root)}
        self.assertEqual(ids, {shared})
        # The survivor is whole: it mounts and lists as before; a second prune finds nothing.
        again = self.prune("-f")
        self.assertEqual(again.stdout.decode(), "Total reclaimed space: 0B\n")

    def test_prune_all_keeps_images_a_mount_or_a_container_uses(self):
        basic = self.pull(BASIC)
        shared = self.pull(SHARED)
        busybox = self.pull(BUSYBOX)
        demo = self.pull(("demo", "docker-archive"))
        # A stopped, kept container of busybox (ps -a), and a mount of basic.
        res = self.ok("run", "-d", "--name", "done", busybox, "true")
        harness.wait_for(lambda: "Exited" in self.imgtool("ps", "-a").out, 20)
        target = os.path.join(harness.scratch_dir(self, "target-"), "view")
        os.mkdir(target)
        with harness.host_mount_lock():
            self.ok("mount", basic, target)
            try:
                res = self.prune("-a", "-f")
                self.assertEqual(res.returncode, 0, res)
                out = res.stdout.decode()
                ids = {row["ID"] for row in harness.images_json(self, self.root)}
                self.assertEqual(ids, {basic, busybox}, out)
                self.assertIn(f"untagged: imgtool-test/shared:latest\n", out)
                self.assertIn(f"deleted: {shared}\n", out)
                self.assertIn(f"deleted: {demo}\n", out)
                self.assertEqual(sorted(harness.layer_hexes(self.root)),
                                 sorted(set(diff_hexes(BASIC)) | set(diff_hexes(BUSYBOX))))
                # The mount still shows basic's tree.
                self.assertTrue(os.listdir(target))
            finally:
                self.imgtool("umount", target)
        self.ok("rm", "done")
        res = self.prune("-a", "-f")
        self.assertEqual({row["ID"] for row in harness.images_json(self, self.root)}, set())
        self.assertEqual(harness.layer_hexes(self.root), [])

    def test_prune_removes_orphan_layers_init_layers_and_blobs(self):
        self.pull(BASIC)
        junk = "ab" * 32
        for d in ("layers", "inits"):
            os.makedirs(os.path.join(self.root, d, junk, "diff"))
            with open(os.path.join(self.root, d, junk, "diff", "f"), "wb") as fh:
                fh.write(b"y" * 300)
        with open(os.path.join(self.root, "blobs", "sha256", junk), "wb") as fh:
            fh.write(b"{}")
        # Not the store's names: never touched.
        os.makedirs(os.path.join(self.root, "layers", "not-a-digest"))
        res = self.prune("-f")
        self.assertEqual(res.returncode, 0, res)
        out = res.stdout.decode()
        self.assertIn(f"Deleted Layers:\nsha256:{junk}\n", out)
        self.assertIn(f"inits/{junk}\n", out)
        self.assertIn(f"blobs/sha256/{junk}\n", out)
        for d in ("layers", "inits", "blobs/sha256"):
            self.assertFalse(os.path.lexists(os.path.join(self.root, d, junk)), d)
        self.assertTrue(os.path.isdir(os.path.join(self.root, "layers", "not-a-digest")))
        self.assertEqual(len(harness.images_json(self, self.root)), 1)
        self.assertIn("Total reclaimed space: 602B\n", out)  # 300 + 300 + 2: measured, no layer.json

    def test_prune_refuses_with_an_unreadable_image_record(self):
        basic, _ = self.make_dangling_basic()
        shared_rec = [n for n in os.listdir(os.path.join(self.root, "images"))
                      if not n.startswith(basic.split(":")[1])][0]
        with open(os.path.join(self.root, "images", shared_rec), "w") as fh:
            fh.write("{not json")
        layers = harness.layer_hexes(self.root)
        proc = self.prune("-f")
        res = harness.Result(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        harness.assert_one_error_line(self, res, "prune", "cannot prune", shared_rec[:12])
        self.assertEqual(harness.layer_hexes(self.root), layers)

    def test_prune_waits_for_an_import_in_progress(self):
        """pull-local is stopped while its layers are staged in tmp/; prune must wait for the
        store's lock instead of taking the staging for a leftover; the import then completes."""
        source = harness.image_path("layers200", "oci-archive")
        self.ok("images")  # the store exists
        tmp = os.path.join(self.root, "tmp")
        pull = harness.popen(self.root, "pull-local", source)
        harness.reap_at_cleanup(self, pull)
        staged = harness.wait_for(lambda: [n for n in os.listdir(tmp) if n.startswith("layer-")], 30,
                                  interval=0.0005)
        os.kill(pull.pid, signal.SIGSTOP)
        try:
            self.assertTrue(staged, "pull-local staged nothing in tmp/")
            staged = [n for n in os.listdir(tmp) if n.startswith("layer-")]
            pruner = harness.popen(self.root, "prune", "-f")
            harness.reap_at_cleanup(self, pruner)
            time.sleep(1.0)
            self.assertIsNone(pruner.poll(), "prune did not wait for the import")
            for name in staged:
                self.assertTrue(os.path.exists(os.path.join(tmp, name)), name)
        finally:
            os.kill(pull.pid, signal.SIGCONT)
        out, err = pull.communicate(timeout=60)
        self.assertEqual(pull.returncode, 0, err.decode())
        pout, perr = pruner.communicate(timeout=60)
        self.assertEqual(pruner.returncode, 0, perr.decode())
        image = out.decode().strip()
        self.assertIn(image, {row["ID"] for row in harness.images_json(self, self.root)})
        self.assertNotIn("layer-", pout.decode())

    def test_prune_removes_a_symlink_in_tmp_as_a_link(self):
        self.pull(BASIC)
        sentinel = harness.Sentinel(self)
        tmp = os.path.join(self.root, "tmp")
        os.symlink(sentinel.path, os.path.join(tmp, "evil"))
        os.makedirs(os.path.join(tmp, "area", "diff"))
        os.symlink(sentinel.path, os.path.join(tmp, "area", "diff", "escape"))
        os.symlink("/", os.path.join(tmp, "area", "root"))
        res = self.prune("-f")
        self.assertEqual(res.returncode, 0, res)
        self.assertFalse(os.path.lexists(os.path.join(tmp, "evil")))
        self.assertFalse(os.path.lexists(os.path.join(tmp, "area")))
        self.assertTrue(sentinel.unchanged(), "prune followed a symlink out of the store")
        # Only the links' own bytes were counted, not the sentinel's.
        self.assertRegex(res.stdout.decode(), r"Total reclaimed space: [0-9]+B\n$")

    def test_prune_asks_first(self):
        basic, _ = self.make_dangling_basic()
        res = self.prune(stdin=b"n\n")
        self.assertEqual(res.returncode, 0, res)
        self.assertIn("WARNING! This will remove:", res.stdout.decode())
        self.assertIn("Are you sure you want to continue? [y/N] ", res.stdout.decode())
        self.assertIn(basic, {row["ID"] for row in harness.images_json(self, self.root)})
        # No answer at all (stdin closed), as podman: an error, nothing removed.
        res = self.prune()
        self.assertEqual(res.returncode, 1, res)
        self.assertEqual(res.stderr.decode().splitlines(),
                         ["imgtool: prune: no answer on standard input: nothing removed "
                          "(use -f to prune without asking)"])
        self.assertIn(basic, {row["ID"] for row in harness.images_json(self, self.root)})
        res = self.prune(stdin=b"y\n")
        self.assertEqual(res.returncode, 0, res)
        self.assertIn(f"deleted: {basic}", res.stdout.decode())


class RootlessSystemTest(unittest.TestCase):
    """An ordinary user's store (run under `flock /tmp/imgtool-rootless.lock`, as test_rootless)."""

    def setUp(self):
        import shutil
        import tempfile
        import test_rootless as rl
        self.rl = rl
        rl.ensure_users()
        self.user = rl.USERS[rl.USER]
        self.scratch = tempfile.mkdtemp(prefix="imgtool-sys-rl-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.scratch, True)
        os.chmod(self.scratch, 0o755)
        self.binary = os.path.join(self.scratch, "imgtool")
        shutil.copy(harness.imgtool_binary(), self.binary)
        for name_fmt in (BASIC, SHARED):
            shutil.copy(harness.image_path(*name_fmt), self.scratch)
            os.chmod(os.path.join(self.scratch, os.path.basename(harness.image_path(*name_fmt))), 0o644)
        self.home = os.path.join(self.scratch, "home")
        os.mkdir(self.home, 0o700)
        os.chown(self.home, self.user.uid, self.user.gid)
        self.root = os.path.join(self.home, "store")

    def imgtool(self, *args) -> harness.Result:
        return self.rl.run_as(self.user, [self.binary, *args], home=self.home,
                              env={"IMGTOOL_ROOT": self.root})

    def ok(self, *args) -> harness.Result:
        res = self.imgtool(*args)
        self.assertEqual(res.rc, 0, str(res))
        return res

    def test_rootless_info_df_prune(self):
        info = json.loads(self.ok("info", "--format", "json").out)
        self.assertFalse(info["store"]["exists"])
        self.assertFalse(os.path.lexists(self.root))
        self.assertTrue(info["host"]["rootless"])
        self.assertEqual(info["host"]["idMappings"]["uidmap"][0],
                         {"container_id": 0, "host_id": self.user.uid, "size": 1})
        self.assertEqual([(r["start"], r["size"]) for r in info["host"]["subordinateIds"]["subuid"]],
                         self.user.subuids)
        # Outside `imgtool unshare` an overlay would vanish with the command: mount needs the copy driver.
        self.assertEqual(info["store"]["graphDriverName"], "copy")
        basic = self.ok("pull-local", os.path.join(self.scratch, "basic.docker.tar")).out.strip()
        shared = self.ok("pull-local", os.path.join(self.scratch, "shared.docker.tar"),
                         "--tag", BASIC_TAG).out.strip()
        inside = json.loads(self.ok("unshare", self.binary, "info", "--format", "json").out)
        self.assertEqual(inside["store"]["graphDriverName"], "overlay")
        self.assertTrue(inside["store"]["graphOptions"]["userxattr"])
        df = json.loads(self.ok("system", "df", "--format", "json").out)
        self.assertEqual(df["Images"]["Total"], 2)
        self.assertEqual(df["Layers"]["Shared"], 2)
        out = self.ok("prune", "-f").out
        self.assertIn(f"deleted: {basic}\n", out)
        self.assertIn("Total reclaimed space: ", out)
        rows = json.loads(self.ok("images", "--format", "json").out)
        self.assertEqual({r["ID"] for r in rows}, {shared})


if __name__ == "__main__":
    unittest.main()
