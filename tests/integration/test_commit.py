"""Integration tests for `imgtool commit`: a container's writable layer (or an overlay upper
directory) becomes a new image through the import pipeline, as root and as an ordinary user.

What the tests hold imgtool to (docs/commit.md): the committed image shows exactly the container's
changes (deleted files, a replaced (opaque) directory, modes, owners, mtimes, hardlinks, file
capabilities, FIFOs); the runtime's own files (/etc/hosts, /etc/hostname, /etc/resolv.conf and the
/dev, /proc, /sys mount points) are not in the layer; --change values show in inspect; the config's
history and diff_ids say what happened. A hostile upper (device nodes, overlay redirect or metacopy
xattrs, names that read as whiteouts) gets one error line and leaves the store and the host as they
were.
"""

from __future__ import annotations

import json
import re
import signal
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import unittest

import harness
import treecmp
import test_rootless as rl
from test_peers import rootless_lock

FMT = "oci-archive"
IMAGE = "imgtool-test/busybox"
# A v2 file capability: cap_net_bind_service (bit 10) permitted, effective flag set.
CAP_NET_BIND = bytes.fromhex("01000002" "00040000" "00000000" "00000000" "00000000")

# What the container does to the busybox image; every kind of change a writable layer holds.
CHANGES = (
    "rm /etc/group; "                                      # a lower file deleted: whiteout
    "rm -r /srv; mkdir /srv; echo new > /srv/only.txt; "   # a lower directory replaced: opaque
    "chmod 0600 /etc/passwd; "                              # a lower file's mode: copy-up
    "mkdir -p /data/sub; echo linked > /data/a; ln /data/a /data/b; "  # a hardlink pair
    "echo cap > /data/cap; chown 1000:1000 /data/cap; chmod 4755 /data/cap; "
    "touch -d '2001-02-03 04:05:06' /data/a; mkfifo /data/fifo; "
    "echo resolver > /etc/resolv.conf"                     # the runtime's file: not committed
)
# What the committed image shows, from inside a container of it.
PROBE = ("ls /srv; ls /etc; stat -c '%a %u:%g' /etc/passwd /data/cap; "
         "stat -c '%i %h %Y' /data/a /data/b; stat -c '%F' /data/fifo; cat /data/b")


def setUpModule():
    harness.require_root()
    harness.imgtool_binary()
    harness.images()


def layer_dir(root: str, diff_id: str) -> str:
    return os.path.join(root, "layers", diff_id.split(":")[1], "diff")


def config_of(root: str, image_id: str) -> dict:
    with open(os.path.join(root, "blobs", "sha256", image_id.split(":")[1])) as fh:
        return json.load(fh)


class CommitTest(unittest.TestCase):
    """commit as root: from a detached container, and from an --upper directory."""

    def setUp(self):
        self.root = harness.new_store(self)
        self.base = harness.pull(self, self.root, harness.image_path("busybox", FMT))
        self.addCleanup(self.remove_containers)

    def remove_containers(self):
        ids = self.imgtool("ps", "-aq").out.split()
        if ids:
            self.imgtool("rm", "-f", *ids)

    def imgtool(self, *args, **kw) -> harness.Result:
        return harness.run(self.root, *args, **kw)

    def ok(self, *args) -> str:
        res = self.imgtool(*args)
        self.assertEqual(res.rc, 0, str(res))
        return res.out

    def container_upper(self, cid: str) -> str:
        for area in os.listdir(os.path.join(self.root, "tmp")):
            record = os.path.join(self.root, "tmp", area, "container.json")
            if os.path.exists(record):
                with open(record) as fh:
                    if json.load(fh).get("Id") == cid:
                        return os.path.join(self.root, "tmp", area, "diff")
        self.fail(f"no area for {cid}")

    def detached(self, script: str) -> str:
        cid = self.ok("run", "-d", IMAGE, "sh", "-c", script).strip()
        self.assertTrue(harness.wait_for(lambda: "Exited (0)" in self.imgtool("ps", "-a").out, timeout=20),
                        self.imgtool("logs", cid).out)
        return cid

    def test_round_trip_of_a_detached_container(self):
        cid = self.detached(CHANGES)
        # No tool in the image sets capabilities: the host writes the xattr into the stopped
        # container's upper, where setcap inside it would have put it.
        os.setxattr(os.path.join(self.container_upper(cid), "data", "cap"), "security.capability", CAP_NET_BIND)
        out = self.ok("commit", "-m", "my changes", "--author", "A <a@example.com>",
                      "--change", 'CMD ["cat", "/srv/only.txt"]', "--change", "ENV GREETING=bye NEW=1",
                      "--change", "WORKDIR data", "--change", "LABEL a=b", "--change", "EXPOSE 8080/udp 80",
                      "--change", "USER 1000", cid, "committed:v1")
        self.assertRegex(out, r"^sha256:[0-9a-f]{64}\n$")
        new_id = out.strip()
        # The container ran as root; the image says USER 1000 now: probe as root.
        res = self.imgtool("run", "--rm", "-u", "0", "-w", "/", "committed:v1", "sh", "-c", PROBE)
        self.assertEqual(res.rc, 0, str(res))
        lines = res.out.splitlines()
        self.assertEqual(lines[0], "only.txt")  # opaque: the lower hello.txt is gone
        etc = lines[1:lines.index("600 0:0")]
        self.assertEqual(etc, ["hostname", "hosts", "passwd", "resolv.conf"])  # no group
        rest = lines[lines.index("600 0:0"):]
        self.assertEqual(rest[1], "4755 1000:1000")
        (ino_a, links_a, mtime_a), (ino_b, links_b, _) = (rest[2].split(), rest[3].split())
        self.assertEqual((ino_a, links_a, links_b), (ino_b, "2", "2"))  # still one inode
        self.assertEqual(int(mtime_a), 981173106)  # 2001-02-03T04:05:06Z
        self.assertEqual(rest[4:], ["fifo", "linked"])
        self.assertEqual(self.ok("run", "--rm", "committed:v1"), "new\n")  # CMD

        doc = harness.inspect(self, self.root, "committed:v1")[0]
        cfg = doc["Config"]
        self.assertEqual(cfg["Cmd"], ["cat", "/srv/only.txt"])
        self.assertIn("GREETING=bye", cfg["Env"])
        self.assertIn("NEW=1", cfg["Env"])
        self.assertNotIn("GREETING=hello", cfg["Env"])
        self.assertEqual((cfg["WorkingDir"], cfg["User"]), ("/srv/data", "1000"))
        self.assertEqual(cfg["Labels"]["a"], "b")
        self.assertEqual(sorted(cfg["ExposedPorts"]), ["80/tcp", "8080/udp"])
        base_layers = harness.inspect(self, self.root, self.base)[0]["RootFS"]["Layers"]
        layers = doc["RootFS"]["Layers"]
        self.assertEqual(layers[:-1], base_layers)

        config = config_of(self.root, new_id)
        self.assertEqual(config["rootfs"]["diff_ids"], layers)
        last = config["history"][-1]
        self.assertEqual((last["comment"], last["author"]), ("my changes", "A <a@example.com>"))
        self.assertTrue(last["created_by"].startswith("sh -c rm /etc/group"), last)
        self.assertEqual(config["created"], last["created"])

        # The layer: exactly the changes; none of the runtime's files or mount points.
        top = layer_dir(self.root, layers[-1])
        self.assertFalse(os.path.lexists(os.path.join(top, "etc", "resolv.conf")))
        for name in ("hosts", "hostname"):
            self.assertFalse(os.path.lexists(os.path.join(top, "etc", name)), name)
        for name in ("dev", "proc", "sys"):
            self.assertFalse(os.path.lexists(os.path.join(top, name)), name)
        self.assertTrue(harness.is_whiteout(os.lstat(os.path.join(top, "etc", "group"))))
        self.assertEqual(os.getxattr(os.path.join(top, "srv"), "trusted.overlay.opaque"), b"y")
        self.assertEqual(os.getxattr(os.path.join(top, "data", "cap"), "security.capability"), CAP_NET_BIND)
        self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(top, "data", "fifo")).st_mode))
        # The committed image, seen through overlayfs, is the container's own view (its upper over the
        # base's layers), but for the runtime's files and times, which a layer keeps in whole seconds.
        upper = self.container_upper(cid)
        base_lowers = harness.inspect(self, self.root, self.base)[0]["GraphDriver"]["Data"]["LowerDir"]
        with harness.overlay_view(upper + ":" + base_lowers) as container_view, \
                harness.overlay_view(doc["GraphDriver"]["Data"]["LowerDir"]) as image_view:
            diffs = treecmp.compare(container_view, image_view)
        def same_second(diff: str) -> bool:
            m = re.fullmatch(r"\S+: mtime (\d+) != (\d+)", diff)
            return bool(m) and int(m[1]) // 10**9 == int(m[2]) // 10**9
        runtime = ("only in A: /etc/hosts", "only in A: /etc/hostname", "only in A: /etc/resolv.conf")
        self.assertEqual([d for d in diffs if d not in runtime and not same_second(d)], [], "\n".join(diffs))
        # Nothing staged is left: only the container's own area.
        self.assertEqual(len(harness.tmp_entries(self.root)), 1, harness.tmp_entries(self.root))

    def test_saved_commit_in_podman_equals_imgtool_mount(self):
        # The committed image handed on: save, podman load, podman's own mount of it shows the tree
        # imgtool mount shows (same image ID in both).
        cid = self.detached(CHANGES)
        os.setxattr(os.path.join(self.container_upper(cid), "data", "cap"), "security.capability", CAP_NET_BIND)
        new_id = self.ok("commit", cid, "handed:v1").strip()
        scratch = tempfile.mkdtemp(prefix="cm-", dir="/tmp")  # podman: runroot under 50 characters
        self.addCleanup(shutil.rmtree, scratch, True)
        archive = os.path.join(scratch, "handed.tar")
        self.ok("save", "-o", archive, "handed:v1")
        podman = [harness.require_tool("podman"), "--root", os.path.join(scratch, "root"), "--runroot",
                  os.path.join(scratch, "run"), "--storage-driver", "vfs"]
        def pm(*args):
            res = subprocess.run(podman + list(args), capture_output=True, text=True, timeout=300)
            self.assertEqual(res.returncode, 0, res.stderr)
            return res.stdout.strip()
        pm("load", "-q", "-i", archive)
        self.addCleanup(subprocess.run, podman + ["rmi", "-a", "-f"], capture_output=True)
        self.assertEqual("sha256:" + pm("image", "inspect", "--format", "{{.Id}}", "handed:v1"), new_id)
        theirs = pm("image", "mount", "handed:v1")
        self.addCleanup(subprocess.run, podman + ["image", "umount", "-a"], capture_output=True)
        ours = os.path.join(scratch, "ours")
        os.mkdir(ours)
        self.ok("mount", "handed:v1", ours)
        self.addCleanup(self.imgtool, "umount", ours)
        diffs = treecmp.compare(theirs, ours)
        # podman's image mount shows its root 0555 for every image (busybox's own too).
        self.assertEqual([d for d in diffs if not d.startswith("/: mode")], [], "\n".join(diffs))

    def test_commit_is_deterministic_and_the_store_shares_the_layer(self):
        cid = self.detached("echo same > /f; touch -d '2020-01-01 00:00:00' /f")
        first = self.ok("commit", cid, "a").strip()
        second = self.ok("commit", cid, "b").strip()
        # created differs (now), the layer does not.
        la = harness.inspect(self, self.root, first)[0]["RootFS"]["Layers"]
        lb = harness.inspect(self, self.root, second)[0]["RootFS"]["Layers"]
        self.assertEqual(la, lb)
        # No name: the image is there, untagged, as docker's.
        third = self.ok("commit", cid).strip()
        self.assertIn(third.split(":")[1][:12], self.ok("images"))

    def test_running_container_is_frozen_while_read(self):
        # As root every container has a cgroup of its own (its device policy), which commit freezes.
        # A writer that never stops: without the freeze its file grows under the reader, which then
        # refuses ("grew while being committed"); frozen, every commit is a consistent snapshot.
        # 30 MB first, so that reading the file takes long enough for the writer to append meanwhile.
        writer = "head -c 30000000 /dev/zero > /count; i=0; while true; do i=$((i+1)); echo $i >> /count; done"
        res = self.imgtool("run", "-d", IMAGE, "sh", "-c", writer)
        self.assertEqual(res.rc, 0, str(res))
        cid = res.out.strip()
        size = lambda: os.stat(os.path.join(self.container_upper(cid), "count")).st_size
        self.assertTrue(harness.wait_for(lambda: os.path.exists(os.path.join(self.container_upper(cid), "count"))
                                         and size() > 30000000, timeout=10))
        for n in range(3):
            res = self.imgtool("commit", cid, f"frozen:{n}")
            self.assertEqual((res.rc, res.err), (0, ""), str(res))
            # The snapshot: /count holds the lines 1..N, whole.
            res = self.imgtool("run", "--rm", f"frozen:{n}", "sh", "-c", "tail -n 1 /count; wc -l < /count")
            last, lines = res.out.split()
            self.assertEqual(last, lines, str(res))
        # Not frozen (--no-pause), the file grows while it is read: refused, not cut at some size.
        # (The writer may stall for a whole read on a busy machine: a few tries.)
        for _ in range(5):
            res = self.imgtool("commit", "--no-pause", cid, "unfrozen:1")
            if res.rc != 0:
                break
        harness.assert_one_error_line(self, res, "commit", "upper count: grew while being committed")
        # Thawed afterwards: it goes on writing.
        seen = size()
        self.assertTrue(harness.wait_for(lambda: size() != seen, timeout=5))

    def test_interrupted_commit_thaws_the_container(self):
        # ^C or kill while the container is frozen: commit thaws it before it dies (attacker pass 4:
        # it stayed frozen, and exec into it hung).
        writer = "head -c 300000000 /dev/zero > /big; i=0; while true; do i=$((i+1)); echo $i >> /count; done"
        res = self.imgtool("run", "-d", IMAGE, "sh", "-c", writer)
        self.assertEqual(res.rc, 0, str(res))
        cid = res.out.strip()
        count = lambda: os.path.join(self.container_upper(cid), "count")
        self.assertTrue(harness.wait_for(lambda: os.path.exists(count()), timeout=20))
        [ctr] = [c for c in json.loads(self.imgtool("ps", "--format", "json").out) if c["Id"] == cid]
        with open(f"/proc/{ctr['Pid']}/task/{ctr['Pid']}/children") as fh:
            pid1 = int(fh.read().split()[0])
        with open(f"/proc/{pid1}/cgroup") as fh:
            path = [l.split(":", 2)[2].strip() for l in fh if l.startswith("0::")][0]
        with open("/proc/self/mounts") as fh:
            unified = [l.split()[1] for l in fh if l.split()[2] == "cgroup2"][0]
        events = os.path.join(unified + path, "cgroup.events")
        def frozen() -> bool:
            with open(events) as fh:
                return "frozen 1" in fh.read()
        proc = harness.popen(self.root, "commit", cid, "interrupted:1", stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.assertTrue(harness.wait_for(frozen, timeout=20), "commit never froze the container")
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        self.assertEqual(proc.returncode, -signal.SIGTERM)
        self.assertTrue(harness.wait_for(lambda: not frozen(), timeout=5), "left frozen")
        seen = os.stat(count()).st_size
        self.assertTrue(harness.wait_for(lambda: os.stat(count()).st_size != seen, timeout=5))

    def test_copy_driver_container_is_refused(self):
        cid = self.ok("run", "-d", "--driver", "copy", IMAGE, "sh", "-c", "echo x > /x").strip()
        self.assertTrue(harness.wait_for(lambda: "Exited (0)" in self.imgtool("ps", "-a").out, timeout=20))
        before = harness.store_listing(self.root)
        harness.assert_one_error_line(self, self.imgtool("commit", cid, "copied:1"), "commit", "copy driver")
        self.assertEqual(harness.listing_diff(before, harness.store_listing(self.root)), "")

    def test_container_run_with_upper_is_committed_from_its_upper(self):
        private = harness.scratch_dir(self, "private-")
        os.chmod(private, 0o700)
        upper = os.path.join(private, "up")
        os.mkdir(upper)
        cid = self.ok("run", "-d", "--upper", upper, IMAGE, "sh", "-c", "echo kept > /x").strip()
        self.assertTrue(harness.wait_for(lambda: "Exited (0)" in self.imgtool("ps", "-a").out, timeout=20))
        res = self.imgtool("commit", cid)
        self.assertEqual(res.rc, 0, str(res))
        self.assertIn("writable layer is empty", res.err)
        res = self.imgtool("commit", "--upper", upper, "--base", IMAGE, "fromupper:1")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(self.ok("run", "--rm", "fromupper:1", "cat", "/x"), "kept\n")

    def test_upper_directory_with_whiteouts_and_opaque_dirs(self):
        upper = harness.scratch_dir(self, "upper-")
        os.mkdir(os.path.join(upper, "bin"))
        os.mknod(os.path.join(upper, "bin", "ls"), stat.S_IFCHR | 0, os.makedev(0, 0))
        os.mkdir(os.path.join(upper, "srv"))
        os.setxattr(os.path.join(upper, "srv"), "trusted.overlay.opaque", b"y")
        with open(os.path.join(upper, "srv", "x"), "w") as fh:
            fh.write("x\n")
        # A user.overlay.* xattr in a root store is not overlayfs's: neither opaque nor kept.
        os.mkdir(os.path.join(upper, "home"))
        os.setxattr(os.path.join(upper, "home"), "user.overlay.opaque", b"y")
        os.setxattr(os.path.join(upper, "home"), "user.kept", b"1")
        # run's mount points, when empty, are not the image's; with contents they are.
        os.mkdir(os.path.join(upper, "sys"))
        os.makedirs(os.path.join(upper, "dev", "keep"))
        # Names that need PAX or the ustar prefix, and a newline.
        deep = os.path.join(upper, "d" * 120, "e" * 120)
        os.makedirs(deep)
        with open(os.path.join(deep, "f" * 200), "w") as fh:
            fh.write("long\n")
        with open(os.path.join(upper, "new\nline"), "w") as fh:
            fh.write("nl\n")
        os.symlink("/etc/shadow", os.path.join(upper, "shadow-link"))
        socket_path = os.path.join(upper, "sock")
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(socket_path)
        self.addCleanup(sock.close)
        res = self.imgtool("commit", "--upper", upper, "--base", IMAGE, "up:1")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(res.err, "imgtool: commit: note: 1 sockets left out (a layer tar cannot hold them)\n")
        res = self.imgtool("run", "--rm", "up:1", "sh", "-c",
                           "ls /bin/ls; ls /srv; ls /home; readlink /shadow-link; cat /new*line; cat /d*/e*/f*")
        self.assertEqual(res.out, "x\nuser\n/etc/shadow\nnl\nlong\n", str(res))
        self.assertIn("/bin/ls", res.err)
        top = layer_dir(self.root, harness.inspect(self, self.root, "up:1")[0]["RootFS"]["Layers"][-1])
        self.assertEqual(os.listxattr(os.path.join(top, "home")), ["user.kept"])
        self.assertFalse(os.path.lexists(os.path.join(top, "sock")))
        self.assertFalse(os.path.lexists(os.path.join(top, "sys")))
        self.assertTrue(os.path.isdir(os.path.join(top, "dev", "keep")))


class HostileUpperTest(unittest.TestCase):
    """An upper the container's root wrote: whatever it holds, one error line (or a stated outcome),
    the store and the host untouched."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="commit-hostile-", dir=harness.images_dir() + "/..")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        res = harness.run(cls.root, "pull-local", harness.image_path("busybox", FMT))
        assert res.rc == 0, str(res)

    def setUp(self):
        self.upper = harness.scratch_dir(self, "hostile-")
        os.mkdir(os.path.join(self.upper, "etc"))
        with open(os.path.join(self.upper, "etc", "ok"), "w") as fh:
            fh.write("fine\n")
        self.sentinel = harness.Sentinel(self)

    def refused(self, *needles):
        before = harness.store_listing(self.root)
        res = harness.run(self.root, "commit", "--upper", self.upper, "--base", IMAGE, "hostile:x", timeout=30)
        harness.assert_one_error_line(self, res, "commit", *needles)
        self.assertEqual(harness.listing_diff(before, harness.store_listing(self.root)), "")
        self.assertTrue(self.sentinel.unchanged())

    def test_block_device(self):
        os.mknod(os.path.join(self.upper, "etc", "disk"), stat.S_IFBLK | 0o600, os.makedev(8, 0))
        self.refused("upper etc/disk", "block device (8:0)")

    def test_character_device(self):
        os.mknod(os.path.join(self.upper, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        self.refused("upper null", "character device (1:3)")

    def test_overlay_redirect(self):
        os.mkdir(os.path.join(self.upper, "moved"))
        os.setxattr(os.path.join(self.upper, "moved"), "trusted.overlay.redirect", b"/srv")
        self.refused("upper moved", "trusted.overlay.redirect", "renamed")

    def test_overlay_metacopy(self):
        os.setxattr(os.path.join(self.upper, "etc", "ok"), "trusted.overlay.metacopy", b"")
        self.refused("upper etc/ok", "metacopy")

    def test_name_that_reads_as_a_whiteout(self):
        with open(os.path.join(self.upper, "etc", ".wh.passwd"), "w") as fh:
            fh.write("not a whiteout\n")
        self.refused("upper etc/.wh.passwd", ".wh.")

    def test_mount_inside_the_upper(self):
        target = os.path.join(self.upper, "mnt")
        os.mkdir(target)
        with harness.host_mount_lock():
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", target], check=True)
            try:
                with open(os.path.join(target, "other-fs"), "w") as fh:
                    fh.write("x\n")
                self.refused("upper mnt", "another filesystem")
            finally:
                subprocess.run(["umount", target], check=True)

    def test_fifo_is_kept_without_blocking(self):
        os.mkfifo(os.path.join(self.upper, "etc", "fifo"))
        res = harness.run(self.root, "commit", "--upper", self.upper, "--base", IMAGE, timeout=30)
        self.assertEqual(res.rc, 0, str(res))
        self.assertTrue(self.sentinel.unchanged())

    def test_symlinked_upper_entries_are_not_followed(self):
        # A directory symlink to the sentinel and a file symlink: committed as links, never read through.
        os.symlink(self.sentinel.path, os.path.join(self.upper, "escape"))
        os.symlink(os.path.join(self.sentinel.path, "file.txt"), os.path.join(self.upper, "etc", "f"))
        res = harness.run(self.root, "commit", "--upper", self.upper, "--base", IMAGE, "links:1", timeout=30)
        self.assertEqual(res.rc, 0, str(res))
        top = layer_dir(self.root, harness.inspect(self, self.root, "links:1")[0]["RootFS"]["Layers"][-1])
        self.assertEqual(os.readlink(os.path.join(top, "escape")), self.sentinel.path)
        self.assertTrue(os.path.islink(os.path.join(top, "etc", "f")))
        self.assertTrue(self.sentinel.unchanged())

    def test_bad_arguments_leave_the_store_alone(self):
        before = harness.store_listing(self.root)
        for args, needle in ((["--change", "RUN rm -rf /", "--upper", self.upper, "--base", IMAGE], "unsupported instruction RUN"),
                             (["--upper", self.upper, "--base", IMAGE, "Bad:Name:x"], "Bad:Name:x"),
                             (["--upper", self.upper, "--base", "nosuchimage"], "nosuchimage"),
                             (["--upper", self.upper], "--base"),
                             (["nosuchcontainer"], "no such container")):
            with self.subTest(args=args):
                res = harness.run(self.root, "commit", *args)
                harness.assert_one_error_line(self, res, "commit", needle)
        self.assertEqual(harness.listing_diff(before, harness.store_listing(self.root)), "")


class RootlessCommitTest(unittest.TestCase):
    """The round trip as an ordinary user: whiteouts and user.overlay.opaque in the upper."""

    @classmethod
    def setUpClass(cls):
        cls.enterClassContext(rootless_lock())
        rl.ensure_users()
        cls.user = rl.USERS[rl.USER]
        probe = subprocess.run(rl.as_user(cls.user, ["unshare", "--user", "--map-root-user", "true"], home="/"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        if probe.returncode != 0:
            raise unittest.SkipTest(f"the kernel refuses unprivileged user namespaces: {probe.stderr.strip()}")
        cls.scratch = tempfile.mkdtemp(prefix="imgtool-commit-rl-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.scratch, True)
        os.chmod(cls.scratch, 0o755)
        cls.binary = os.path.join(cls.scratch, "imgtool")
        image = os.path.join(cls.scratch, "busybox.tar")
        for src, dst, mode in ((harness.imgtool_binary(), cls.binary, 0o755),
                               (harness.image_path("busybox", FMT), image, 0o644)):
            shutil.copy(src, dst)
            os.chmod(dst, mode)
        cls.home = os.path.join(cls.scratch, "home")
        os.mkdir(cls.home, 0o700)
        os.chown(cls.home, cls.user.uid, cls.user.gid)
        cls.env = {"IMGTOOL_ROOT": os.path.join(cls.home, "store")}
        res = cls.imgtool("pull-local", image)
        if res.rc != 0:
            raise AssertionError(f"rootless pull failed\n{res}")

    @classmethod
    def imgtool(cls, *args) -> harness.Result:
        return rl.run_as(cls.user, [cls.binary, *args], home=cls.home, env=cls.env, timeout=60)

    def test_round_trip(self):
        res = self.imgtool("run", "-d", "--name", "c1", IMAGE, "sh", "-c",
                           "rm /etc/group; rm -r /srv; mkdir /srv; echo new > /srv/only.txt; chmod 0600 /etc/passwd; "
                           "mkdir /data; echo l > /data/a; ln /data/a /data/b; chown 1000:1000 /data/a")
        self.assertEqual(res.rc, 0, str(res))
        self.assertTrue(harness.wait_for(lambda: "Exited (0)" in self.imgtool("ps", "-a").out, timeout=20))
        res = self.imgtool("commit", "--change", "CMD ls /srv", "c1", "rl:1")
        self.assertEqual((res.rc, res.err), (0, ""), str(res))
        res = self.imgtool("run", "--rm", "rl:1", "sh", "-c",
                           "ls /srv /etc; stat -c '%a' /etc/passwd; stat -c '%i %h %u' /data/a /data/b")
        self.assertEqual(res.rc, 0, str(res))
        lines = res.out.splitlines()
        self.assertEqual(lines[:2], ["/etc:", "hostname"])
        self.assertIn("only.txt", lines)
        self.assertNotIn("hello.txt", lines)
        self.assertNotIn("group", lines)
        self.assertIn("600", lines)
        a, b = lines[-2].split(), lines[-1].split()
        self.assertEqual((a, a[1:]), (b, ["2", "1000"]))
        self.assertEqual(self.imgtool("run", "--rm", "rl:1").out, "only.txt\n")
        self.assertEqual(self.imgtool("rm", "c1").rc, 0)

    def test_running_container(self):
        # Rootless, a container without a limit shares imgtool's cgroup: read live, and commit says so
        # (a delegated cgroup v2 with --memory is frozen as root's are).
        res = self.imgtool("run", "-d", "--name", "c2", IMAGE, "sh", "-c", "echo x > /x; exec sleep 60")
        self.assertEqual(res.rc, 0, str(res))
        self.addCleanup(self.imgtool, "rm", "-f", "c2")
        res = self.imgtool("commit", "c2", "rl:2")
        self.assertEqual(res.rc, 0, str(res))
        self.assertIn(res.err, ("", "imgtool: commit: note: the container ran on while its changes were read (it "
                                    "has no cgroup of its own to freeze)\n"))
        self.assertEqual(self.imgtool("run", "--rm", "rl:2", "cat", "/x").out, "x\n")


if __name__ == "__main__":
    unittest.main()
