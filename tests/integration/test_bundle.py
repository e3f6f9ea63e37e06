"""`imgtool bundle`: an OCI runtime bundle that crun and runc run as `imgtool run` would.

The same probe (identity, environment, working directory, capability sets, NoNewPrivs and Seccomp,
host name, /etc/hosts, /etc/hostname, resolv.conf) runs as `imgtool run` and as `crun run` / `runc
run` of a bundle made with the same options: the outputs must be equal. Then DIR's rules: absent or
empty only, `bundle --rm` removes only what bundle made and never follows a symlink, `imgtool umount
DIR/rootfs` works, the copy driver. Skips a runtime only when it is not installed.

crun 1.8 refuses this host's hybrid cgroup layout: it runs in a private mount namespace with
/sys/fs/cgroup/unified unmounted (as tools/run_vs_crun.py does), with --cgroup-manager=disabled.
runc (1.1) runs the bundle as it is, with its default cgroupfs manager (v1 controllers, so the
device cgroup of config.json applies).
"""

from __future__ import annotations

import json
import os
import pwd
import tempfile
import shutil
import subprocess
import unittest

import harness

HOSTNAME = "bundle-probe"
PROBE = ("id; env | sort; pwd; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "
         "/proc/self/status; hostname; cat /etc/hostname; grep -c localhost /etc/hosts; "
         "grep -c '^nameserver' /etc/resolv.conf; tr '\\0' ' ' </proc/1/cmdline; echo; umask; "
         # refused only by the seccomp filter (a user namespace needs no capability)
         "unshare -U true 2>&1; echo rc=$?; "
         "echo links=$(ip -o link | wc -l)")

# Run's options each variant is bundled and run with.
VARIANTS = {
    "default": [],
    "user, env, workdir": ["-u", "1000", "-e", "FOO=bar", "-w", "/tmp"],
    "caps, no-new-privileges, net none": ["--cap-drop", "CHOWN", "--cap-add", "NET_ADMIN",
                                          "--security-opt", "no-new-privileges", "--net", "none"],
}

# A private mount namespace without the cgroup2 'unified' mount (crun 1.8 refuses a hybrid host).
RUNTIME_SCRIPT = ("mount --make-rprivate / && "
                  "{ ! mountpoint -q /sys/fs/cgroup/unified || umount -l /sys/fs/cgroup/unified; } && "
                  "exec \"$@\"")


def runtime_argv(runtime: str, state: str, bundle: str, cid: str) -> list:
    if runtime == "crun":
        return ["crun", "--root", state, "--cgroup-manager=disabled", "run", "-b", bundle, cid]
    return ["runc", "--root", state, "run", "-b", bundle, cid]


class BundleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_root()
        cls.work = os.path.join(harness.TEST_TMP, "work")
        os.makedirs(cls.work, exist_ok=True)
        cls.top = tempfile.mkdtemp(prefix="bundle-", dir=cls.work)
        cls.root = os.path.join(cls.top, "store")
        res = harness.run(cls.root, "pull-local", "-q", harness.image_path("busybox", "docker-archive"))
        if res.rc != 0:
            raise AssertionError(str(res))
        cls.image = res.out.split()[-1]

    @classmethod
    def tearDownClass(cls):
        # Anything a failed test left mounted goes with the bundles.
        for name in os.listdir(cls.top):
            path = os.path.join(cls.top, name)
            if os.path.exists(os.path.join(path, ".imgtool-bundle")):
                harness.run(cls.root, "bundle", "--rm", path)
        if not os.environ.get("IMGTOOL_TEST_KEEP"):
            shutil.rmtree(cls.top, ignore_errors=True)

    def it(self, *args) -> harness.Result:
        return harness.run(self.root, *args)

    def new_dir(self, name: str) -> str:
        path = os.path.join(self.top, name)
        self.assertFalse(os.path.lexists(path), path)
        return path

    def make(self, dir_: str, *options, command=None) -> str:
        res = self.it("bundle", *options, self.image, dir_, *(command or []))
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(res.out.strip(), os.path.realpath(dir_), str(res))
        self.addCleanup(self.remove_quietly, dir_)
        return dir_

    def remove_quietly(self, dir_: str) -> None:
        if os.path.exists(os.path.join(dir_, ".imgtool-bundle")):
            self.it("bundle", "--rm", dir_)

    def mounted(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(line.split()[4] == real for line in harness.mountinfo_lines())

    # ---- the runtimes run it as imgtool run does ----------------------------------------------

    def run_in_runtime(self, runtime: str, bundle: str, cid: str) -> subprocess.CompletedProcess:
        state = os.path.join(self.top, runtime + "-state")
        os.makedirs(state, exist_ok=True)
        argv = runtime_argv(runtime, state, bundle, cid)
        if runtime == "crun":
            argv = ["unshare", "-m", "sh", "-c", RUNTIME_SCRIPT, "sh", *argv]
        return subprocess.run(argv,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)

    def test_crun_and_runc_print_what_run_prints(self):
        runtimes = [harness.require_tool(r) and r for r in ("crun", "runc")]  # tools/deps.sh installs both
        for i, (name, options) in enumerate(VARIANTS.items()):
            with self.subTest(variant=name):
                run = self.it("run", "--hostname", HOSTNAME, *options, self.image, "sh", "-c", PROBE)
                self.assertEqual(run.rc, 0, str(run))
                self.assertIn("Seccomp:\t2", run.out, str(run))
                dir_ = self.make(self.new_dir(f"probe-{i}"), "--hostname", HOSTNAME, *options,
                                 command=["sh", "-c", PROBE])
                for runtime in runtimes:
                    got = self.run_in_runtime(runtime, dir_, f"imgtool-bundle-test-{os.getpid()}-{i}")
                    self.assertEqual((got.returncode, got.stdout), (0, run.out),
                                     f"{runtime} run of bundle ({name}):\nstderr: {got.stderr}\n"
                                     f"imgtool run:\n{run.out}\n{runtime}:\n{got.stdout}")

    def test_runc_applies_the_device_cgroup(self):
        # runc's cgroupfs manager applies linux.resources.devices on this host (crun's disabled one does
        # not): /dev is a tmpfs without nodev there, so only the device cgroup refuses c 1:12 (a minor
        # of the mem driver that names no device: ENXIO where the cgroup allows it; no capability
        # check on the way, unlike /dev/kmsg's CAP_SYSLOG).
        harness.require_tool("runc")
        probe = ("cd /dev; mknod rvc-null c 1 3 && echo x >rvc-null && echo 'null ok'; "
                 "mknod rvc-x c 1 12 && echo 'mknod 1:12 ok'; head -c 1 rvc-x 2>&1; echo rc=$?")
        dir_ = self.make(self.new_dir("devices"), command=["sh", "-c", probe])
        got = self.run_in_runtime("runc", dir_, f"imgtool-bundle-test-{os.getpid()}-devices")
        self.assertEqual(got.returncode, 0, got.stderr)
        self.assertEqual(got.stdout, "null ok\nmknod 1:12 ok\nhead: rvc-x: Operation not permitted\nrc=1\n",
                         got.stderr)

    # ---- config.json --------------------------------------------------------------------------

    def test_config_json_and_init_files(self):
        dir_ = self.make(self.new_dir("config"), "--hostname", "h1", "--add-host", "db:10.0.0.2",
                         "-e", "A=1", "--memory", "64m", "--pids-limit", "50", command=["echo", "hi"])
        with open(os.path.join(dir_, "config.json")) as fh:
            config = json.load(fh)
        self.assertEqual(config["ociVersion"], "1.0.2")
        self.assertEqual(config["root"], {"path": "rootfs", "readonly": False})
        self.assertEqual(config["process"]["args"], ["echo", "hi"])
        self.assertIn("A=1", config["process"]["env"])
        self.assertEqual(config["hostname"], "h1")
        self.assertEqual(config["linux"]["resources"]["memory"], {"limit": 64 << 20, "swap": 128 << 20})
        self.assertEqual(config["linux"]["resources"]["pids"], {"limit": 50})
        binds = {m["destination"]: m["source"] for m in config["mounts"] if m["type"] == "bind"}
        real = os.path.realpath(dir_)
        self.assertEqual(binds, {f"/etc/{n}": f"{real}/{n}" for n in ("hosts", "hostname", "resolv.conf")})
        with open(os.path.join(dir_, "hosts")) as fh:
            hosts = fh.read()
        self.assertIn("127.0.1.1\th1\n", hosts)
        self.assertIn("10.0.0.2\tdb\n", hosts)
        with open(os.path.join(dir_, "hostname")) as fh:
            self.assertEqual(fh.read(), "h1\n")
        self.assertEqual(os.stat(dir_).st_mode & 0o777, 0o700)
        self.assertTrue(self.mounted(os.path.join(dir_, "rootfs")))
        self.assertTrue(os.path.exists(os.path.join(dir_, "rootfs", "bin", "busybox")))

    def test_config_json_matches_the_runtime_spec_schema(self):
        # The runtime-spec's own JSON schema, as Debian's golang-github-opencontainers-specs-dev ships it
        # (tools/deps.sh installs it, and python3-jsonschema); IMGTOOL_RUNTIME_SPEC_SCHEMA may name
        # another schema/ directory.
        schema_dir = os.environ.get("IMGTOOL_RUNTIME_SPEC_SCHEMA",
                                    "/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema")
        if not os.path.exists(os.path.join(schema_dir, "config-schema.json")):
            raise harness.SetupError(f"no runtime-spec schema in {schema_dir}: install the Debian package "
                                     "golang-github-opencontainers-specs-dev (tools/test.sh installs it)")
        import pathlib
        import warnings
        import jsonschema
        base = pathlib.Path(schema_dir).resolve()
        with open(base / "config-schema.json") as fh:
            schema = json.load(fh)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            resolver = jsonschema.RefResolver(base_uri=base.as_uri() + "/", referrer=schema)
            validator = jsonschema.Draft4Validator(schema, resolver=resolver)
        dir_ = self.make(self.new_dir("schema"), "-u", "1000", "--memory", "64m", "--cpus", "0.5",
                         "--tmpfs", "/run", "-v", "/tmp:/hosttmp:ro", "--net", "none")
        with open(os.path.join(dir_, "config.json")) as fh:
            errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(json.load(fh))]
        self.assertEqual(errors, [])

    # ---- DIR's rules --------------------------------------------------------------------------

    def test_refuses_a_dir_another_user_controls(self):
        # Root writes config.json in DIR and a runtime runs it as root over a rootfs that honours
        # setuid: an empty DIR another user made (in /tmp, say), or one in a directory others can
        # write, would let them swap config.json or reach the rootfs (attacker pass 4).
        import pwd
        other = pwd.getpwnam("nobody")
        theirs = self.new_dir("theirs")
        os.makedirs(theirs)
        os.chown(theirs, other.pw_uid, other.pw_gid)
        harness.assert_one_error_line(self, self.it("bundle", self.image, theirs), "bundle",
                                      "owned by uid", "another user")
        self.assertEqual((os.listdir(theirs), os.stat(theirs).st_mode & 0o7777), ([], 0o755))
        open_parent = self.new_dir("open-parent")
        os.makedirs(open_parent)
        os.chmod(open_parent, 0o777)  # writable by everyone, not sticky: DIR could be renamed away
        harness.assert_one_error_line(self, self.it("bundle", self.image, os.path.join(open_parent, "b")),
                                      "bundle", "writable by everyone")
        self.assertEqual(os.listdir(open_parent), [])
        # A sticky directory like /tmp is fine for a DIR that bundle makes itself.
        sticky = self.new_dir("sticky")
        os.makedirs(sticky)
        os.chmod(sticky, 0o1777)
        made = self.make(os.path.join(sticky, "b"))
        self.assertEqual(os.stat(made).st_uid, 0)
        self.assertEqual(self.it("bundle", "--rm", made).rc, 0)

    def test_refuses_a_dir_that_is_not_empty_or_not_a_directory(self):
        full = self.new_dir("full")
        os.makedirs(full)
        with open(os.path.join(full, "mine"), "w") as fh:
            fh.write("keep\n")
        harness.assert_one_error_line(self, self.it("bundle", self.image, full), "bundle", "not empty")
        self.assertEqual(os.listdir(full), ["mine"])
        link = self.new_dir("link")
        empty = self.new_dir("empty-target")
        os.makedirs(empty)
        os.symlink(empty, link)
        harness.assert_one_error_line(self, self.it("bundle", self.image, link), "bundle", "symlink")
        self.assertEqual(os.listdir(empty), [])
        # "DIR/" names the symlink's target: still the symlink, refused; the target keeps its mode.
        os.chmod(empty, 0o1777)
        harness.assert_one_error_line(self, self.it("bundle", self.image, link + "/"), "bundle", "symlink")
        harness.assert_one_error_line(self, self.it("bundle", "--rm", link + "/"), "bundle", "symbolic link")
        self.assertEqual((os.listdir(empty), os.stat(empty).st_mode & 0o7777), ([], 0o1777))
        file_ = self.new_dir("file")
        open(file_, "w").close()
        harness.assert_one_error_line(self, self.it("bundle", self.image, file_), "bundle", "not a directory")
        # Bad options are refused before DIR is made.
        bad = self.new_dir("bad-options")
        harness.assert_one_error_line(self, self.it("bundle", "-w", "relative", self.image, bad), "bundle",
                                      "absolute")
        self.assertFalse(os.path.lexists(bad))
        # A failure after the rootfs is mounted (a user the image does not have) undoes everything.
        late = self.new_dir("late-failure")
        harness.assert_one_error_line(self, self.it("bundle", "-u", "nosuchuser", self.image, late), "bundle",
                                      "nosuchuser")
        self.assertFalse(os.path.lexists(late))
        self.assertEqual(self.it("mounts").out.count("\n"), 1)  # the header only
        kept = self.new_dir("late-failure-existing")
        os.makedirs(kept)
        os.chmod(kept, 0o751)
        harness.assert_one_error_line(self, self.it("bundle", "-u", "nosuchuser", self.image, kept), "bundle",
                                      "nosuchuser")
        self.assertEqual(os.listdir(kept), [])
        self.assertEqual(os.stat(kept).st_mode & 0o777, 0o751)  # its mode given back

    def test_an_empty_existing_dir_is_used_and_kept(self):
        dir_ = self.new_dir("existing")
        os.makedirs(dir_)
        self.make(dir_)
        res = self.it("bundle", "--rm", dir_)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(os.listdir(dir_), [])  # bundle did not make it: it stays, empty

    def test_rm_removes_only_what_bundle_made(self):
        dir_ = self.make(self.new_dir("rm"))
        outside = os.path.join(self.top, "outside-file")
        with open(outside, "w") as fh:
            fh.write("precious\n")
        with open(os.path.join(dir_, "mine"), "w") as fh:
            fh.write("not bundle's\n")
        os.unlink(os.path.join(dir_, "hosts"))
        os.symlink(outside, os.path.join(dir_, "hosts"))  # a symlink in place of bundle's file
        res = self.it("bundle", "--rm", dir_)
        self.assertEqual(res.rc, 1, str(res))
        self.assertIn("hosts: not a regular file", res.err)
        with open(outside) as fh:
            self.assertEqual(fh.read(), "precious\n")
        self.assertFalse(self.mounted(os.path.join(dir_, "rootfs")))
        self.assertEqual(sorted(os.listdir(dir_)), [".imgtool-bundle", "hosts", "mine"])
        os.unlink(os.path.join(dir_, "hosts"))
        res = self.it("bundle", "--rm", dir_)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(os.listdir(dir_), ["mine"])  # not empty: DIR stays
        self.assertEqual(self.it("mounts").out.count("\n"), 1)  # the header only

    def test_rm_refuses_what_is_not_a_bundle(self):
        dir_ = self.new_dir("not-a-bundle")
        os.makedirs(os.path.join(dir_, "rootfs"))
        with open(os.path.join(dir_, "config.json"), "w") as fh:
            fh.write("{}\n")
        harness.assert_one_error_line(self, self.it("bundle", "--rm", dir_), "bundle", "not a bundle")
        self.assertEqual(sorted(os.listdir(dir_)), ["config.json", "rootfs"])
        real = self.make(self.new_dir("real"))
        link = self.new_dir("link-to-bundle")
        os.symlink(real, link)
        harness.assert_one_error_line(self, self.it("bundle", "--rm", link), "bundle", "symbolic link")
        self.assertTrue(self.mounted(os.path.join(real, "rootfs")))

    def test_umount_of_the_rootfs_then_rm(self):
        dir_ = self.make(self.new_dir("umount"))
        rootfs = os.path.join(dir_, "rootfs")
        self.assertIn(os.path.realpath(rootfs), self.it("mounts").out)
        res = self.it("umount", rootfs)
        self.assertEqual(res.rc, 0, str(res))
        self.assertFalse(self.mounted(rootfs))
        self.assertEqual(os.listdir(rootfs), [])
        res = self.it("bundle", "--rm", dir_)
        self.assertEqual(res.rc, 0, str(res))
        self.assertFalse(os.path.lexists(dir_))  # bundle made it, and it is empty now

    def test_rm_with_another_store_touches_nothing(self):
        dir_ = self.make(self.new_dir("other-store"))
        before = sorted(os.listdir(dir_))
        other = os.path.join(self.top, "other-store-root")
        res = harness.run(other, "bundle", "--rm", dir_)
        self.assertEqual(res.rc, 1, str(res))
        self.assertIn("mounted by another store, " + os.path.realpath(self.root), res.err)
        self.assertEqual(sorted(os.listdir(dir_)), before)  # config.json and the init files stay
        self.assertTrue(self.mounted(os.path.join(dir_, "rootfs")))
        res = self.it("bundle", "--rm", dir_)  # the right store still undoes it all
        self.assertEqual(res.rc, 0, str(res))
        self.assertFalse(os.path.lexists(dir_))

    def test_copy_driver(self):
        dir_ = self.make(self.new_dir("copy"), "--driver", "copy")
        self.assertTrue(os.path.exists(os.path.join(dir_, "rootfs", "bin", "busybox")))
        self.assertIn("copy", self.it("mounts").out)
        res = self.it("bundle", "--rm", dir_)
        self.assertEqual(res.rc, 0, str(res))
        self.assertFalse(os.path.lexists(dir_))

    # ---- rootless: refused, clearly, before anything is made --------------------------------

    def test_an_ordinary_user_is_refused(self):
        try:
            user = pwd.getpwnam("imgtool-rl")  # test_rootless.py's user (tools/deps.sh makes it)
        except KeyError:
            self.skipTest("no user imgtool-rl (test_rootless.py creates it)")
        if shutil.which("setpriv") is None:
            self.skipTest("setpriv is not installed (util-linux)")
        scratch = tempfile.mkdtemp(prefix="imgtool-bundle-rl-", dir="/tmp")
        self.addCleanup(shutil.rmtree, scratch, True)
        os.chmod(scratch, 0o755)
        binary = os.path.join(scratch, "imgtool")
        shutil.copy2(harness.imgtool_binary(), binary)
        os.chmod(binary, 0o755)
        home = os.path.join(scratch, "home")
        os.makedirs(home)
        os.chown(home, user.pw_uid, user.pw_gid)
        dir_ = os.path.join(home, "b")
        argv = ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid), "--init-groups", "--",
                "env", "-i", f"HOME={home}", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                f"IMGTOOL_ROOT={home}/store", binary, "bundle", "busybox", dir_]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd="/")
        res = harness.Result(argv, proc.returncode, proc.stdout, proc.stderr)
        harness.assert_one_error_line(self, res, "bundle", "ordinary user", "not supported")
        self.assertFalse(os.path.lexists(dir_))


if __name__ == "__main__":
    unittest.main()
