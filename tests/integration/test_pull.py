"""imgtool pull against real registries (Debian's docker-registry, the CNCF distribution registry)
on 127.0.0.1: plain HTTP, TLS with a CA the test makes, htpasswd basic auth and token auth, with a
fault-injecting proxy in front (registry.py). Images are pushed with skopeo from the generated test
images; what pull stores is compared with what pull-local stores from the same source."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import unittest

import harness
import registry
import treecmp

BUSYBOX = ("busybox", "oci-archive")
BASIC_OCI = ("basic", "oci-archive")      # gzip and zstd layers
BASIC_DOCKER = ("basic", "docker-archive")
FAST = ["--retry-delay", "50ms"]           # retries in tests wait 50 ms, 100 ms...


def layers_snapshot(root: str) -> tuple:
    """(every layer's tree, what each layer.json says of it). The blob a layer came from (its digest
    and compression) may differ between a registry and an archive of the same image: skopeo
    compresses an uncompressed docker-archive layer on push."""
    snap = treecmp.snapshot(os.path.join(root, "layers"), mtimes=False)
    infos = {}
    for path in [p for p in snap if p.endswith("/layer.json")]:
        with open(os.path.join(root, "layers", path.lstrip("/"))) as fh:
            info = json.load(fh)
        infos[path] = {k: v for k, v in info.items() if k not in ("blob", "compression")}
        del snap[path]
    return snap, infos


def assert_same_layers(tc, root_a: str, root_b: str) -> None:
    snap_a, info_a = layers_snapshot(root_a)
    snap_b, info_b = layers_snapshot(root_b)
    tc.assertEqual(treecmp.compare(snap_a, snap_b), [])
    tc.assertEqual(info_a, info_b)


def biggest_layer(reg, repo: str, tag: str) -> tuple:
    """(blob path regex, size) of the image's largest layer."""
    manifest = json.loads(reg.get_manifest(repo, tag).body)
    layer = max(manifest["layers"], key=lambda d: d["size"])
    return re.escape(f"/v2/{repo}/blobs/{layer['digest']}") + "$", layer["size"]


def partial_path(root: str, digest: str, origin: str) -> str:
    """STORE/partial/<hex>-<16 hex of sha256(origin)>: a kept download of `digest` from origin
    (registry/repository)."""
    tag = hashlib.sha256(origin.encode()).hexdigest()[:16]
    return os.path.join(root, "partial", digest.split(":")[1] + "-" + tag)


# Runs in a private mount namespace (unshare -m): a 1 MiB tmpfs holds the store; a pull that cannot
# fit fails at the free-space reserve, and must leave no kept bytes that would fail the next pull.
SMALL_FS_CHILD = r"""
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
import harness
mnt, big, small = sys.argv[2], sys.argv[3], sys.argv[4]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], check=True)
root = os.path.join(mnt, "store")
free = os.statvfs(mnt).f_bfree
res = harness.run(root, "pull", "--tls-verify=false", "--retry", "0", big)
kept = sum(os.path.getsize(os.path.join(root, "partial", n)) for n in os.listdir(os.path.join(root, "partial")))
after = harness.run(root, "pull", "--tls-verify=false", small)
print(json.dumps({"rc": res.rc, "err": res.err, "kept": kept, "after_rc": after.rc, "after_err": after.err}))
"""


def local_id(tc, image) -> tuple:
    """(ID, store root) of pull-local of the same source."""
    root = harness.new_store(tc)
    return harness.pull(tc, root, harness.image_path(*image)), root


class Plain(unittest.TestCase):
    """No auth, plain HTTP (--tls-verify=false, as podman needs for it)."""

    @classmethod
    def setUpClass(cls):
        cls.reg = registry.Registry()
        cls.digests = {
            "busybox": cls.reg.push("oci-archive:" + harness.image_path(*BUSYBOX), "t/busybox:v1"),
            "basic": cls.reg.push("oci-archive:" + harness.image_path(*BASIC_OCI), "t/basic:v1"),
            "basicd": cls.reg.push("docker-archive:" + harness.image_path(*BASIC_DOCKER), "t/basicd:v1",
                                   fmt="v2s2"),
            "multi": cls.reg.push("oci:" + harness.image_path("multiarch", "oci-layout"), "t/multi:v1",
                                  all_platforms=True),
        }

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()

    def setUp(self):
        self.proxy = registry.FaultProxy(self.reg)
        self.addCleanup(self.proxy.close)
        self.root = harness.new_store(self)

    def pull(self, ref, *args, root=None):
        return harness.run(root or self.root, "pull", "--tls-verify=false", *FAST, *args, ref)

    def pull_ok(self, ref, *args, root=None) -> str:
        res = self.pull(ref, *args, root=root)
        self.assertEqual(res.rc, 0, str(res))
        lines = res.out.splitlines()
        self.assertEqual(len(lines), 1, str(res))
        return lines[0]

    def unchanged_after_failure(self, ref, *needles, args=()):
        """pull fails with one line naming the reference and each needle; the store is exactly as before."""
        harness.pull(self, self.root, harness.image_path("rootopq", "docker-archive"))  # shares no layer
        before = harness.store_listing(self.root)
        res = self.pull(ref, *args)
        line = harness.assert_one_error_line(self, res, "pull", ref.split("@")[0].split(":")[-1], *needles)
        # Unchanged but for partial/: what was downloaded is kept for the next pull to resume.
        after = {p: e for p, e in harness.store_listing(self.root).items() if not p.startswith("/partial/")}
        self.assertEqual(harness.listing_diff(before, after), "")
        return line

    # --- the happy path

    def test_same_image_and_tree_as_pull_local(self):
        for name, image in (("busybox", BUSYBOX), ("basic", BASIC_OCI), ("basicd", BASIC_DOCKER)):
            with self.subTest(name):
                root = harness.new_store(self)
                got = self.pull_ok(f"{self.reg.host}/t/{name}:v1", root=root)
                want, local_root = local_id(self, image)
                self.assertEqual(got, want)
                assert_same_layers(self, local_root, root)
                self.assertEqual(os.listdir(os.path.join(root, "tmp")), [])

    def test_names_digests_and_lookups(self):
        ref = f"{self.proxy.host}/t/busybox:v1"
        image_id = self.pull_ok(ref)
        info = harness.inspect(self, self.root, ref)[0]
        self.assertEqual(info["Id"], image_id)
        self.assertEqual(info["RepoTags"], [ref])
        pinned = f"{self.proxy.host}/t/busybox@{self.digests['busybox']}"
        self.assertEqual(info["RepoDigests"], [pinned])
        self.assertEqual(harness.inspect(self, self.root, pinned)[0]["Id"], image_id)

    def test_pinned_digest_is_verified_and_records_no_tag(self):
        pinned = f"{self.proxy.host}/t/busybox@{self.digests['busybox']}"
        image_id = self.pull_ok(pinned)
        self.assertEqual(harness.tag_map(self, self.root), {})
        self.assertEqual(harness.inspect(self, self.root, pinned)[0]["Id"], image_id)
        # The registry answers another manifest than the digest asked for: refused.
        other = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "config": {}, "layers": []}).encode()
        self.proxy.status(r"/manifests/sha256:", 200, body=other,
                          headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        self.unchanged_after_failure(pinned, "digest mismatch")

    def test_unknown_tag_and_repository(self):
        self.unchanged_after_failure(f"{self.proxy.host}/t/busybox:nope", "manifest nope", "not found")
        self.unchanged_after_failure(f"{self.proxy.host}/t/none:v1", "not found")

    def test_repull_fetches_no_layer(self):
        ref = f"{self.proxy.host}/t/basic:v1"
        first = self.pull_ok(ref)
        self.proxy.clear_log()
        self.assertEqual(self.pull_ok(ref), first)
        # The ping and the manifest: the config and every layer are in the store already.
        paths = [r.path for r in self.proxy.requests]
        self.assertEqual(paths, ["/v2/", "/v2/t/basic/manifests/v1"])

    def test_repull_never_records_an_unverified_manifest(self):
        # A second tag whose manifest names the same layers by a blob digest the registry does not
        # have: the layers are in the store (by diff_id), so nothing is fetched, and nothing may
        # vouch for that manifest (RepoDigests names it as the image's).
        self.pull_ok(f"{self.proxy.host}/t/busybox:v1")
        manifest = json.loads(self.reg.get_manifest("t/busybox", "v1").body)
        manifest["layers"][0]["digest"] = "sha256:" + "ab" * 32
        body = json.dumps(manifest).encode()
        self.proxy.status(r"/manifests/fake$", 200, body=body, headers={"Content-Type": manifest["mediaType"]})
        self.pull_ok(f"{self.proxy.host}/t/busybox:fake")
        fake = "sha256:" + __import__("hashlib").sha256(body).hexdigest()
        info = harness.inspect(self, self.root, f"{self.proxy.host}/t/busybox:fake")[0]
        self.assertNotIn(f"{self.proxy.host}/t/busybox@{fake}", info["RepoDigests"])

    def test_platform_from_an_index(self):
        ref = f"{self.proxy.host}/t/multi:v1"
        layout = harness.image_path("multiarch", "oci-layout")
        for platform in ("linux/amd64", "linux/arm64"):
            with self.subTest(platform):
                root = harness.new_store(self)
                got = self.pull_ok(ref, "--platform", platform, root=root)
                want = harness.pull(self, harness.new_store(self), layout, "--platform", platform)
                self.assertEqual(got, want)
        line = self.unchanged_after_failure(ref, "no image for platform linux/s390x", "linux/amd64",
                                            args=("--platform", "linux/s390x"))
        self.assertIn("available", line)

    def test_index_that_mislabels_a_platform_is_refused(self):
        # The index lists the arm64 image as amd64 (and the reverse): the config says what it is.
        resp = self.reg.get_manifest("t/multi", "v1")
        index = json.loads(resp.body)
        platforms = [m["platform"] for m in index["manifests"]]
        for m, p in zip(index["manifests"], platforms[1:] + platforms[:1]):
            m["platform"] = p
        body = json.dumps(index).encode()
        self.proxy.status(r"/manifests/v1$", 200, body=body, times=None,
                          headers={"Content-Type": index.get("mediaType", "application/vnd.oci.image.index.v1+json")})
        # The default platform (this host's) as well as an explicit one.
        self.unchanged_after_failure(f"{self.proxy.host}/t/multi:v1", "is for linux/", "as the index says")
        self.unchanged_after_failure(f"{self.proxy.host}/t/multi:v1", "is for linux/", "as the index says",
                                     args=("--platform", "linux/arm64"))

    def test_https_to_a_plain_http_registry_is_one_line(self):
        harness.pull(self, self.root, harness.image_path(*BUSYBOX))
        before = harness.store_listing(self.root)
        # Not retried (a TLS handshake with a plain-HTTP server fails the same way every time), and
        # the line says what to do.
        res = harness.run(self.root, "pull", f"{self.reg.host}/t/busybox:v1")
        line = harness.assert_one_error_line(self, res, "pull", self.reg.host, "ping", "--tls-verify=false")
        self.assertNotIn("attempts", line)
        self.assertEqual(harness.listing_diff(before, harness.store_listing(self.root)), "")

    def test_progress_on_a_terminal_only(self):
        from test_pull_local import OutputTest
        ref = f"{self.reg.host}/t/basic:v1"
        rc, out, err = OutputTest.run_with_pty_stderr(self, "pull", "--tls-verify=false", ref)
        want = local_id(self, BASIC_OCI)[0]
        self.assertEqual((rc, out), (0, want + "\n"), err)
        manifest = json.loads(self.reg.get_manifest("t/basic", "v1").body)
        for layer in manifest["layers"]:
            short = layer["digest"].split(":")[1][:12]
            self.assertRegex(err, rf"\r\x1b\[K{short} done +\[={{30}}\] +([0-9.]+[kMG]?B)/\1 100% +\S+/s\r\n")
        self.assertIn(f"imgtool: loaded {want}", err)
        rc, out, err = OutputTest.run_with_pty_stderr(self, "pull", "-q", "--tls-verify=false", ref)
        self.assertEqual((rc, out, err), (0, want + "\n", ""), "-q: nothing but the ID")
        res = self.pull(ref)  # stderr a pipe: nothing on it
        self.assertEqual((res.rc, res.err), (0, ""), str(res))

    def mirror_conf(self, mirror_host: str) -> str:
        path = os.path.join(harness.scratch_dir(self), "registries.conf")
        with open(path, "w") as fh:
            fh.write(f'''
[[registry]]
prefix = "mirrored.example"
location = "{self.reg.host}"
insecure = true
[[registry.mirror]]
location = "{mirror_host}"
insecure = true
''')
        return path

    def test_mirror_serves_the_pull(self):
        conf = self.mirror_conf(self.proxy.host)
        res = harness.run(self.root, "pull", "mirrored.example/t/busybox:v1",
                          env=harness.base_env(CONTAINERS_REGISTRIES_CONF=conf))
        self.assertEqual(res.rc, 0, str(res))
        self.assertTrue(self.proxy.matching(r"/blobs/sha256:"), "the mirror served no blob")
        self.assertEqual(harness.tag_map(self, self.root), {"mirrored.example/t/busybox:v1": res.out.strip()})

    def test_failing_mirror_falls_back_to_the_registry(self):
        self.proxy.status(r"/manifests/", 500, times=None)
        conf = self.mirror_conf(self.proxy.host)
        res = harness.run(self.root, "pull", "--retry", "1", *FAST, "mirrored.example/t/busybox:v1",
                          env=harness.base_env(CONTAINERS_REGISTRIES_CONF=conf))
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(res.out.strip(), local_id(self, BUSYBOX)[0])
        self.assertTrue(self.proxy.matching(r"/manifests/"), "the mirror was not tried first")
        # A mirror nobody listens on: the same.
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"127.0.0.1:{s.getsockname()[1]}"
        res = harness.run(harness.new_store(self), "pull", "--retry", "0", "mirrored.example/t/busybox:v1",
                          env=harness.base_env(CONTAINERS_REGISTRIES_CONF=self.mirror_conf(dead)))
        self.assertEqual(res.rc, 0, str(res))

    def test_credentials_leave_the_command_line(self):
        self.proxy.stall(r"/v2/", 30, method=None, times=None)
        proc = harness.popen(self.root, "pull", "--tls-verify=false", "--creds", "alice:ARGVSECRET",
                             f"{self.proxy.host}/t/busybox:v1")
        harness.reap_at_cleanup(self, proc)
        def cmdline():
            with open(f"/proc/{proc.pid}/cmdline", "rb") as fh:
                return fh.read()
        # Gone once the options are parsed (milliseconds); the pull itself hangs on the stalled proxy.
        self.assertTrue(harness.wait_for(lambda: b"--creds" in cmdline() and b"ARGVSECRET" not in cmdline(), 10),
                        cmdline())
        self.assertIsNone(proc.poll(), "the pull ended: the check above proved nothing")
        proc.kill()

    def test_references_docker_refuses(self):
        for bad in ("x/UPPER", f"{self.reg.host}/t/x:", "a" * 64, "x@sha256:12"):
            with self.subTest(bad):
                res = self.pull(bad)
                harness.assert_one_error_line(self, res, "pull", "invalid reference")

    # --- faults: recovered

    def test_cut_transfer_resumes_with_a_range_request(self):
        ref = f"{self.proxy.host}/t/basic:v1"
        path, _ = biggest_layer(self.reg, "t/basic", "v1")
        rule = self.proxy.drop_after(path, 5000)
        got = self.pull_ok(ref)
        self.assertEqual(rule.hits, 1)
        want, _ = local_id(self, BASIC_OCI)
        self.assertEqual(got, want)
        resumed = [r for r in self.proxy.requests if r.range]
        self.assertEqual(len(resumed), 1, self.proxy.requests)
        self.assertEqual(resumed[0].range, "bytes=5000-")
        # Only the missing part was sent again.
        served = [r.bytes_sent for r in self.proxy.matching(path, "GET")]
        self.assertEqual(served[0], 5000, served)
        self.assertEqual(sum(served) - 5000, served[1], served)

    def test_reset_connection_resumes(self):
        path, _ = biggest_layer(self.reg, "t/busybox", "v1")
        rule = self.proxy.drop_after(path, 3000, reset=True)
        self.pull_ok(f"{self.proxy.host}/t/busybox:v1")
        self.assertEqual(rule.hits, 1)

    def test_server_errors_and_rate_limits_are_retried(self):
        self.proxy.status(r"/manifests/", 503)
        self.proxy.status(r"/blobs/", 500)
        rate = self.proxy.status(r"/blobs/", 429, retry_after=1)
        start = time.monotonic()
        self.pull_ok(f"{self.proxy.host}/t/busybox:v1")
        self.assertEqual(rate.hits, 1)
        self.assertGreaterEqual(time.monotonic() - start, 1.0)  # Retry-After was honoured

    def test_stalled_transfer_is_abandoned_and_resumed(self):
        path, _ = biggest_layer(self.reg, "t/basic", "v1")
        stall = self.proxy.stall(path, 30, after_bytes=2000)
        start = time.monotonic()
        self.pull_ok(f"{self.proxy.host}/t/basic:v1", "--stall-timeout", "2")
        self.assertEqual(stall.hits, 1)
        self.assertLess(time.monotonic() - start, 20)
        self.assertIn("bytes=2000-", [r.range for r in self.proxy.requests])

    def test_redirect_to_storage_is_followed(self):
        rule = self.proxy.redirect(r"^/v2/.*/blobs/sha256:", to="cdn", times=None)
        got = self.pull_ok(f"{self.proxy.host}/t/basic:v1")
        self.assertGreaterEqual(rule.hits, 3)
        self.assertEqual(got, local_id(self, BASIC_OCI)[0])

    # --- faults: refused, store unchanged

    def test_corrupt_byte_is_a_digest_mismatch(self):
        path, _ = biggest_layer(self.reg, "t/basic", "v1")
        self.proxy.corrupt(path, 100, times=None)
        self.unchanged_after_failure(f"{self.proxy.host}/t/basic:v1", "digest mismatch")

    def test_persistent_server_error_gives_up(self):
        self.proxy.status(r"/blobs/", 500, times=None)
        self.unchanged_after_failure(f"{self.proxy.host}/t/busybox:v1", "HTTP 500", "attempts",
                                     args=("--retry", "2"))

    def test_missing_blob(self):
        self.proxy.status(r"/blobs/sha256:", 404, times=None)
        self.unchanged_after_failure(f"{self.proxy.host}/t/busybox:v1", "not found")

    def test_schema1_is_refused_by_name(self):
        body = json.dumps({"schemaVersion": 1, "name": "t/busybox", "tag": "v1", "fsLayers": []}).encode()
        self.proxy.status(r"/manifests/", 200, body=body,
                          headers={"Content-Type": registry.MT_SCHEMA1_SIGNED})
        self.unchanged_after_failure(f"{self.proxy.host}/t/busybox:v1", "schema 1")

    def test_size_lie_is_refused(self):
        manifest = json.loads(self.reg.get_manifest("t/busybox", "v1").body)
        manifest["layers"][0]["size"] += 1
        body = json.dumps(manifest).encode()
        self.proxy.status(r"/manifests/", 200, body=body, headers={"Content-Type": manifest["mediaType"]})
        self.unchanged_after_failure(f"{self.proxy.host}/t/busybox:v1", "size mismatch")

    def test_kill_mid_pull_then_pull_again_resumes(self):
        ref = f"{self.proxy.host}/t/basic:v1"
        path, size = biggest_layer(self.reg, "t/basic", "v1")
        digest = path.split("blobs/")[1].rstrip("$").replace("\\", "")
        self.proxy.stall(path, 60, after_bytes=100000)
        proc = harness.popen(self.root, "pull", "--tls-verify=false", ref)
        harness.reap_at_cleanup(self, proc)
        partial = partial_path(self.root, digest, f"{self.proxy.host}/t/basic")
        kept = harness.wait_for(lambda: os.path.exists(partial) and os.path.getsize(partial) >= 100000, 30)
        self.assertTrue(kept, "the download was not kept in partial/")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.proxy.clear_rules()
        self.proxy.clear_log()
        got = self.pull_ok(ref)
        self.assertEqual(got, local_id(self, BASIC_OCI)[0])
        # The second run asked only for what the first did not keep.
        self.assertEqual(self.proxy.ranges(path), ["bytes=100000-"])
        self.assertEqual(self.proxy.bytes_served(path), size - 100000)
        self.assertEqual(os.listdir(os.path.join(self.root, "partial")), [])
        self.assertEqual(os.listdir(os.path.join(self.root, "tmp")), [])
        clean = harness.new_store(self)
        self.pull_ok(ref, root=clean)
        assert_same_layers(self, clean, self.root)

    def test_bad_kept_data_never_blocks_a_later_pull(self):
        ref = f"{self.proxy.host}/t/basic:v1"
        path, size = biggest_layer(self.reg, "t/basic", "v1")
        digest = path.split("blobs/")[1].rstrip("$").replace("\\", "")
        blob = self.reg.get_blob("t/basic", digest)
        self.pull_ok(f"{self.proxy.host}/t/busybox:v1")  # makes the store
        partial = partial_path(self.root, digest, f"{self.proxy.host}/t/basic")
        # A whole blob with a flipped byte: checked before use, thrown away, downloaded again.
        with open(partial, "wb") as fh:
            fh.write(blob[:500] + bytes([blob[500] ^ 1]) + blob[501:])
        self.assertEqual(self.pull_ok(ref), local_id(self, BASIC_OCI)[0])
        self.assertFalse(os.path.exists(partial))
        harness.run(self.root, "rm", ref)
        # A prefix with a flipped byte: found only at the end (a mismatch), then forgotten.
        with open(partial, "wb") as fh:
            fh.write(blob[:500] + bytes([blob[500] ^ 1]) + blob[501:4000])
        res = self.pull(ref)
        harness.assert_one_error_line(self, res, "pull", "digest mismatch")
        self.assertEqual(os.path.getsize(partial), 0)
        self.assertEqual(self.pull_ok(ref), local_id(self, BASIC_OCI)[0])

    def test_kept_data_of_another_registry_is_never_used(self):
        # A hostile registry (here a proxy that corrupts the honest image's biggest layer and cuts it)
        # leaves kept bytes; the honest registry's pull never resumes from them.
        path, _ = biggest_layer(self.reg, "t/basic", "v1")
        digest = path.split("blobs/")[1].rstrip("$").replace("\\", "")
        self.proxy.drop_after(path, 20000, flip=15000, times=None)
        res = self.pull(f"{self.proxy.host}/t/basic:v1", "--retry", "0")
        self.assertNotEqual(res.rc, 0, str(res))
        kept = partial_path(self.root, digest, f"{self.proxy.host}/t/basic")
        self.assertGreater(os.path.getsize(kept), 0, "the hostile download was not kept")
        honest = registry.FaultProxy(self.reg)
        self.addCleanup(honest.close)
        self.assertEqual(self.pull_ok(f"{honest.host}/t/basic:v1"), local_id(self, BASIC_OCI)[0])
        self.assertEqual(honest.ranges(path), [None])  # fetched from its start
        self.assertEqual(os.listdir(os.path.join(self.root, "partial")), [],
                         "the blob's other kept copies go once it is stored")

    def test_kept_file_that_is_not_a_plain_file_is_replaced(self):
        # A hard link to a file outside the store, a symlink, a directory where a partial file goes:
        # never written through, replaced, and the pull works.
        ref = f"{self.proxy.host}/t/basic:v1"
        path, _ = biggest_layer(self.reg, "t/basic", "v1")
        digest = path.split("blobs/")[1].rstrip("$").replace("\\", "")
        partial = partial_path(self.root, digest, f"{self.proxy.host}/t/basic")
        outside = os.path.join(harness.scratch_dir(self), "victim")
        for make in (lambda: os.link(outside, partial), lambda: os.symlink(outside, partial),
                     lambda: os.mkdir(partial)):
            root = self.root = harness.new_store(self)
            partial = partial_path(root, digest, f"{self.proxy.host}/t/basic")
            self.pull_ok(f"{self.proxy.host}/t/busybox:v1")  # makes the store
            with open(outside, "wb") as fh:
                fh.write(b"precious")
            make()
            self.assertEqual(self.pull_ok(ref), local_id(self, BASIC_OCI)[0])
            with open(outside, "rb") as fh:
                self.assertEqual(fh.read(), b"precious")
            self.assertFalse(os.path.lexists(partial))

    def test_kept_bytes_count_against_the_free_space_reserve(self):
        harness.require_root()
        self.reg.push("oci-archive:" + harness.image_path("rootopq", "oci-archive"), "t/small:v1")
        mnt = harness.scratch_dir(self, "small-fs-")
        proc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", sys.executable, "-c", SMALL_FS_CHILD,
             os.path.dirname(os.path.abspath(harness.__file__)), mnt, f"{self.reg.host}/t/basic:v1",
             f"{self.reg.host}/t/small:v1"],
            capture_output=True, text=True, timeout=120, env=harness.base_env())
        self.assertEqual(proc.returncode, 0, proc.stderr)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual(got["rc"], 1, got)
        self.assertEqual(len(got["err"].strip().splitlines()), 1, got["err"])
        # Whole small blobs may stay for the next pull; nothing that holds the filesystem down.
        self.assertLess(got["kept"], 64 << 10, "kept bytes left the filesystem at its reserve")
        self.assertEqual(got["after_rc"], 0, got["after_err"])

    def test_rm_removes_kept_downloads(self):
        self.pull_ok(f"{self.proxy.host}/t/busybox:v1")
        partial = os.path.join(self.root, "partial", "ab" * 32)
        with open(partial, "wb") as fh:
            fh.write(b"x" * 100)
        res = harness.run(self.root, "rm", f"{self.proxy.host}/t/busybox:v1")
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(os.listdir(os.path.join(self.root, "partial")), [])


class RegistryCase(unittest.TestCase):
    """One registry per class (Registry(**registry_args)) holding `image` as `tag`; self.ref names it."""
    registry_args: dict = {}
    image, tag = BUSYBOX, "t/busybox:v1"

    @classmethod
    def setUpClass(cls):
        cls.reg = registry.Registry(**cls.registry_args)
        cls.reg.push("oci-archive:" + harness.image_path(*cls.image), cls.tag)
        cls.ref = f"{cls.reg.host}/{cls.tag}"

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()


class BasicAuth(RegistryCase):
    registry_args = {"auth": "basic"}

    def setUp(self):
        self.root = harness.new_store(self)
        self.authfile = os.path.join(harness.scratch_dir(self), "auth.json")

    def pull(self, *args):
        return harness.run(self.root, "pull", "--tls-verify=false", *FAST, "--authfile", self.authfile, *args, self.ref)

    def test_credentials(self):
        res = self.pull("--creds", "alice:wonderland")
        self.assertEqual(res.rc, 0, str(res))

    def test_wrong_and_missing_credentials_are_one_line_without_the_password(self):
        res = self.pull("--creds", "alice:s3cr3t-guess", "--retry", "0")
        line = harness.assert_one_error_line(self, res, "pull", "credentials refused")
        self.assertNotIn("s3cr3t-guess", line)
        res = harness.run(self.root, "--debug", "pull", "--tls-verify=false", "--creds", "alice:s3cr3t-guess", self.ref)
        self.assertNotIn("s3cr3t-guess", res.out + res.err)
        res = self.pull()
        harness.assert_one_error_line(self, res, "pull", "authentication required")

    def test_login_pull_logout(self):
        res = harness.run(self.root, "login", "--tls-verify=false", "--authfile", self.authfile, "-u", "alice",
                          "-p", "nope", self.reg.host)
        harness.assert_one_error_line(self, res, "login", "credentials refused")
        self.assertFalse(os.path.exists(self.authfile))
        proc = subprocess.run(harness.imgtool_argv(self.root, "login", "--tls-verify=false", "--authfile",
                                                   self.authfile, "-u", "alice", "--password-stdin", self.reg.host),
                              input=b"wonderland\n", capture_output=True, env=harness.base_env())
        self.assertEqual(proc.returncode, 0, proc)
        self.assertEqual(stat.S_IMODE(os.stat(self.authfile).st_mode), 0o600)
        with open(self.authfile) as fh:
            self.assertIn(self.reg.host, json.load(fh)["auths"])
        res = self.pull()
        self.assertEqual(res.rc, 0, str(res))
        # The store never holds the password.
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                with open(os.path.join(dirpath, name), "rb") as fh:
                    self.assertNotIn(b"wonderland", fh.read(), os.path.join(dirpath, name))
        res = harness.run(self.root, "logout", "--authfile", self.authfile, self.reg.host)
        self.assertEqual(res.rc, 0, str(res))
        with open(self.authfile) as fh:
            self.assertEqual(json.load(fh)["auths"], {})
        res = harness.run(self.root, "logout", "--authfile", self.authfile, self.reg.host)
        harness.assert_one_error_line(self, res, "logout", "not logged in")
        res = self.pull("--retry", "0")
        harness.assert_one_error_line(self, res, "pull", "authentication required")

    def test_auth_file_from_the_environment(self):
        with open(self.authfile, "w") as fh:
            json.dump({"auths": {self.reg.host: {"auth": "YWxpY2U6d29uZGVybGFuZA=="}}}, fh)
        res = harness.run(self.root, "pull", "--tls-verify=false", self.ref,
                          env=harness.base_env(REGISTRY_AUTH_FILE=self.authfile))
        self.assertEqual(res.rc, 0, str(res))


class TokenAuth(RegistryCase):
    registry_args = {"auth": "token"}
    image, tag = BASIC_OCI, "t/basic:v1"

    def test_one_token_for_the_whole_pull(self):
        self.reg.reset_counters()
        res = harness.run(harness.new_store(self), "pull", "--tls-verify=false", "--creds", "alice:wonderland", self.ref)
        self.assertEqual(res.rc, 0, str(res))
        self.assertEqual(self.reg.token_requests, 1, self.reg.token_log)
        self.assertEqual(self.reg.token_scopes, [["repository:t/basic:pull"]])

    def test_without_credentials(self):
        res = harness.run(harness.new_store(self), "pull", "--tls-verify=false", "--retry", "0", self.ref)
        harness.assert_one_error_line(self, res, "pull", "token server wants credentials")

    def test_token_refreshed_when_refused_mid_pull(self):
        # A token that expires mid-pull: the registry answers a layer request with 401 and a fresh
        # challenge; the pull fetches one new token and goes on.
        proxy = registry.FaultProxy(self.reg)
        self.addCleanup(proxy.close)
        layer, _ = biggest_layer(self.reg, *self.tag.split(":"))
        challenge = (f'Bearer realm="{self.reg.token_realm}",service="{registry.TOKEN_SERVICE}",'
                     f'scope="repository:t/basic:pull",error="invalid_token"')
        refused = proxy.status(layer, 401, times=1, headers={"WWW-Authenticate": challenge},
                               body=b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        self.reg.reset_counters()
        res = harness.run(harness.new_store(self), "pull", "--tls-verify=false", *FAST, "--creds", "alice:wonderland",
                          f"{proxy.host}/{self.tag}")
        self.assertEqual((res.rc, res.out.strip()), (0, local_id(self, self.image)[0]), str(res))
        self.assertEqual(refused.hits, 1)
        self.assertEqual(self.reg.token_requests, 2, self.reg.token_log)


class Thief:
    """A plain-HTTP server on 127.0.0.1 that records the Authorization header of every request and
    answers with a token of its own (a realm an attacker picked)."""

    def __init__(self, body: bytes = b'{"token": "STOLEN"}'):
        import http.server
        import threading
        seen = self.authorizations = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                seen.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/steal"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class RedirectTarget(RegistryCase):
    """A registry with token auth that hands blobs to a CDN (FaultProxy's second listener)."""
    registry_args = {"auth": "token"}

    def test_a_redirect_target_cannot_choose_where_credentials_go(self):
        # The CDN answers 401 naming a realm of its own: the user's password must not go there, nor
        # the CDN's token to the registry. One line, the store unchanged.
        thief = Thief()
        self.addCleanup(thief.close)
        proxy = registry.FaultProxy(self.reg)
        self.addCleanup(proxy.close)
        proxy.redirect(r"^/v2/.*/blobs/sha256:", to="cdn", times=None)
        proxy.status(r"^/_cdn/", 401, times=None, method=None,
                     headers={"WWW-Authenticate": f'Bearer realm="{thief.realm}",service="x",scope="y"'})
        root = harness.new_store(self)
        res = harness.run(root, "pull", "--tls-verify=false", "--retry", "0", "--creds", "alice:wonderland",
                          f"{proxy.host}/{self.tag}")
        harness.assert_one_error_line(self, res, "pull", "asks for authentication", "only for the registry")
        self.assertEqual(thief.authorizations, [])
        self.assertEqual(harness.run(root, "images", "-q").out, "")


class HostileTokenServer(RegistryCase):
    def answer(self, body: bytes):
        thief = Thief(body)
        self.addCleanup(thief.close)
        proxy = registry.FaultProxy(self.reg)
        self.addCleanup(proxy.close)
        proxy.status(r"^/v2/", 401, times=None, method=None,
                     headers={"WWW-Authenticate": f'Bearer realm="{thief.realm}",service="x"'})
        return harness.run(harness.new_store(self), "pull", "--tls-verify=false", "--retry", "0",
                           f"{proxy.host}/{self.tag}")

    def test_broken_answer_is_not_quoted(self):
        res = self.answer(b'{"token": "SECRETTOKEN_abcdef" x')
        line = harness.assert_one_error_line(self, res, "pull", "token server", "not valid JSON")
        self.assertNotIn("SECRETTOKEN", line)

    def test_token_with_control_characters_is_refused(self):
        for token in ("ab\\u0000cd", "ab\\u001bcd", "two words"):
            res = self.answer(b'{"token": "' + token.encode() + b'"}')
            harness.assert_one_error_line(self, res, "pull", "token cannot have")


class EndlessBlobRegistry:
    """A hostile registry on 127.0.0.1: t/x:v1 is a one-layer image whose layer descriptor states
    2^40 bytes; the blob is a valid gzip of a small tar followed by zeros, sent until the client
    hangs up. .served counts the layer bytes sent."""

    def __init__(self):
        import gzip
        import http.server
        import io
        import tarfile
        import threading
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("hello.txt")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"hello\n"))
        layer_tar = buf.getvalue()
        self.layer = gzip.compress(layer_tar)
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]}}).encode()
        layer_digest = "sha256:" + hashlib.sha256(self.layer + b"bogus").hexdigest()  # never matches anyway
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                           "digest": layer_digest, "size": 1 << 40}]}).encode()
        self.served = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, body, content_type="application/json"):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v2/":
                    return self.reply(b"{}")
                if self.path.endswith("/manifests/v1"):
                    return self.reply(manifest, "application/vnd.oci.image.manifest.v1+json")
                if self.path.endswith(hashlib.sha256(config).hexdigest()):
                    return self.reply(config)
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 40))
                self.end_headers()
                try:
                    self.wfile.write(outer.layer)
                    zeros = bytes(1 << 16)
                    while True:
                        self.wfile.write(zeros)
                        outer.served += len(zeros)
                except OSError:
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class HostileBlob(unittest.TestCase):
    def test_a_failed_layer_does_not_read_a_huge_blob_to_its_end(self):
        # After the gzip stream, garbage: the layer fails there. Reading the stated 1 TiB to name a
        # digest mismatch would take hours; at most 16 MiB more are read.
        reg = EndlessBlobRegistry()
        self.addCleanup(reg.close)
        root = harness.new_store(self)
        res = harness.run(root, "pull", "--tls-verify=false", "--retry", "0", f"{reg.host}/t/x:v1", timeout=60)
        harness.assert_one_error_line(self, res, "pull", "trailing garbage")
        self.assertLess(reg.served, 64 << 20, "read far past the failure")


class InsecureMirror(unittest.TestCase):
    def test_credentials_never_cross_plain_http_unless_the_user_says_so(self):
        # The registry is TLS; registries.conf marks a plain-HTTP mirror insecure. --creds typed for
        # the registry must not go to the mirror in clear text: the mirror fails, the registry serves.
        with registry.Registry(tls=True, auth="basic") as reg, registry.Registry(auth="basic") as mirror_reg:
            reg.push("oci-archive:" + harness.image_path(*BUSYBOX), "t/busybox:v1")
            mirror_reg.push("oci-archive:" + harness.image_path(*BUSYBOX), "t/busybox:v1")
            mirror = registry.FaultProxy(mirror_reg)
            self.addCleanup(mirror.close)
            conf = os.path.join(harness.scratch_dir(self), "registries.conf")
            with open(conf, "w") as fh:
                fh.write(f'[[registry]]\nlocation = "{reg.host}"\n'
                         f'[[registry.mirror]]\nlocation = "{mirror.host}"\ninsecure = true\n')
            res = harness.run(harness.new_store(self), "pull", "--retry", "0", "--cert-dir", reg.cert_dir(),
                              "--creds", "alice:wonderland", f"{reg.host}/t/busybox:v1",
                              env=harness.base_env(CONTAINERS_REGISTRIES_CONF=conf))
            self.assertEqual((res.rc, res.out.strip()), (0, local_id(self, BUSYBOX)[0]), str(res))
            self.assertTrue(mirror.requests, "the mirror was not tried")
            sent = [h.get("Authorization", "") for h in mirror.request_headers]
            self.assertEqual([a for a in sent if a.lower().startswith("basic")], [])


class AnonymousToken(unittest.TestCase):
    def test_anonymous_pull(self):
        with registry.Registry(auth="token", anonymous_pull=True) as reg:
            reg.push("oci-archive:" + harness.image_path(*BUSYBOX), "t/busybox:v1")
            reg.reset_counters()
            res = harness.run(harness.new_store(self), "pull", "--tls-verify=false", f"{reg.host}/t/busybox:v1")
            self.assertEqual(res.rc, 0, str(res))
            self.assertEqual(reg.token_requests, 1)


class Tls(RegistryCase):
    registry_args = {"tls": True, "auth": "basic"}

    def test_ca_from_cert_dir(self):
        res = harness.run(harness.new_store(self), "pull", "--cert-dir", self.reg.cert_dir(), "--creds",
                          "alice:wonderland", self.ref)
        self.assertEqual(res.rc, 0, str(res))

    def test_unknown_ca_is_one_line(self):
        res = harness.run(harness.new_store(self), "pull", "--retry", "0", "--creds", "alice:wonderland", self.ref)
        harness.assert_one_error_line(self, res, "pull", "certificate")

    def test_credentials_never_go_to_a_plain_http_token_realm(self):
        # The registry speaks TLS, its token realm plain HTTP: the password would cross the network
        # in clear text (base64 in a Basic header).
        with registry.Registry(tls=True, auth="token") as reg:
            reg.push("oci-archive:" + harness.image_path(*BUSYBOX), "t/busybox:v1")
            reg.reset_counters()
            res = harness.run(harness.new_store(self), "pull", "--cert-dir", reg.cert_dir(), "--creds",
                              "alice:wonderland", f"{reg.host}/t/busybox:v1")
            harness.assert_one_error_line(self, res, "pull", "plain HTTP", "refusing to send credentials")
            self.assertEqual(reg.token_requests + reg.token_denied, 0, reg.token_log)

    def test_token_auth_over_tls(self):
        # Registry and token server both on TLS with the test CA: the CA from --cert-dir serves both.
        with registry.Registry(tls=True, auth="token", token_tls=True) as reg:
            reg.push("oci-archive:" + harness.image_path(*BUSYBOX), "t/busybox:v1")
            reg.reset_counters()
            res = harness.run(harness.new_store(self), "pull", "--cert-dir", reg.cert_dir(), "--creds",
                              "alice:wonderland", f"{reg.host}/t/busybox:v1")
            self.assertEqual((res.rc, res.out.strip()), (0, local_id(self, BUSYBOX)[0]), str(res))
            self.assertEqual(reg.token_requests, 1, reg.token_log)

    def test_client_certificate_from_cert_dir(self):
        # The registry demands a client certificate signed by the test CA: the *.cert/*.key pair of
        # the cert directory is it; without the pair the refusal is one line that says what is missing.
        with registry.Registry(tls=True, client_certs=True) as reg:
            reg.push("oci-archive:" + harness.image_path(*BUSYBOX), "t/busybox:v1")
            ref = f"{reg.host}/t/busybox:v1"
            res = harness.run(harness.new_store(self), "pull", "--cert-dir", reg.cert_dir(), ref)
            self.assertEqual((res.rc, res.out.strip()), (0, local_id(self, BUSYBOX)[0]), str(res))
            root = harness.new_store(self)
            res = harness.run(root, "pull", "--retry", "0", "--cert-dir", reg.cert_dir(client_pair=False), ref)
            harness.assert_one_error_line(self, res, "pull", "ping", "client certificate")
            self.assertEqual(harness.run(root, "images", "-q").out, "")

    def test_tls_verify_false_accepts_any_certificate(self):
        res = harness.run(harness.new_store(self), "pull", "--tls-verify=false", "--creds", "alice:wonderland", self.ref)
        self.assertEqual(res.rc, 0, str(res))


if __name__ == "__main__":
    unittest.main()
