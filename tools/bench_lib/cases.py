"""The contenders: one small class per (case, tool), each with an untimed set-up, per-sample
preparation and clean-up, and the command(s) that are timed.

A sample is the commands of cmds() run back to back (mount then umount counts as one
sample). Everything a contender writes lives under Ctx.fsdir, on the filesystem being measured.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
import os
import re

from .system import clean, run

UMOCI_NO_ZSTD = "umoci 0.4.7 cannot read zstd layers (no tar+zstd media type support)"


class Unavailable(Exception):
    """The contender cannot run on this machine; the message says why."""


class Ctx:
    """What the contenders of one filesystem share."""

    def __init__(self, fs: str, fsdir: str, imgtool: str, images: dict, logdir: str):
        self.fs, self.fsdir, self.imgtool = fs, fsdir, imgtool
        self.images, self.logdir = images, logdir
        self.external: dict[str, dict] = {}  # form "image NAME" -> external.prepare()'s description
        self.podman_driver: str | None = None
        self.podman_error: str | None = None
        self._small_store: tuple[str, str] | None = None
        self._bundle: str | None = None
        self._registry: subprocess.Popen | None = None
        self._registry_host: str | None = None

    def path(self, *parts) -> str:
        return os.path.join(self.fsdir, *parts)

    def archive(self, form: str) -> str:
        if form in self.external:
            return self.external[form]["path"]
        return self.images["archives"][form]

    def layer_files(self, form: str) -> list[str]:
        if form in self.external:
            return [l["blob"] for l in self.external[form]["layers"]]
        key = {"gzip": "gzip", "zstd": "zstd", "docker": "tar"}[form]
        return [l[key] for l in self.images["big_layers"]]

    def layer_compressions(self, form: str) -> list[str]:
        if form in self.external:
            return [l["compression"] for l in self.external[form]["layers"]]
        return [{"gzip": "gzip", "zstd": "zstd", "docker": "tar"}[form]] * len(self.images["big_layers"])

    # --- shared, untimed fixtures ---

    def podman_argv(self, root: str, driver: str | None = None) -> list[str]:
        return ["podman", "--root", f"{root}/graph", "--runroot", f"{root}/run",
                "--tmpdir", f"{root}/libpod", "--storage-driver", driver or self.podman_driver,
                "--events-backend", "file", "--cgroup-manager", "cgroupfs"]

    def podman_env(self, root: str) -> dict:
        # podman load unpacks an oci-archive into $TMPDIR first (image_copy_tmp_dir); keep that
        # on the filesystem being measured rather than /var/tmp.
        os.makedirs(f"{root}/tmp", exist_ok=True)
        return dict(os.environ, TMPDIR=f"{root}/tmp")

    def probe_podman(self) -> str:
        """Pick the storage driver: overlay, else vfs, else Unavailable with both reasons."""
        if self.podman_driver:
            return self.podman_driver
        if self.podman_error:
            raise Unavailable(self.podman_error)
        errors = []
        for drv in ("overlay", "vfs"):
            root = self.path("podman-probe")
            clean(root)
            try:
                run([*self.podman_argv(root, drv), "load", "-q", "-i", self.archive("small")],
                    env=self.podman_env(root))
                self.podman_driver = drv
                return drv
            except RuntimeError as e:
                errors.append(f"{drv}: {e}")
            finally:
                clean(root)
        self.podman_error = "podman load fails: " + "; ".join(errors)
        raise Unavailable(self.podman_error)

    def small_store(self) -> tuple[str, str]:
        """An imgtool store holding the small busybox image: (root, image id)."""
        if not self._small_store:
            root = self.path("lat", "imgtool-store")
            clean(root)
            r = run([self.imgtool, "--root", root, "pull-local", "-q", self.archive("small")],
                    capture=True)
            self._small_store = (root, r.stdout.strip().splitlines()[-1])
        return self._small_store

    def bundle(self) -> str:
        """An OCI runtime bundle of the small image from `umoci unpack`, its config.json edited
        to run /bin/true the way `imgtool run` does by default: no terminal, no cgroup settings
        (cgroupsPath, resources, the cgroup mount), host network (imgtool's default, so no
        network namespace); pid, ipc, uts and mount namespaces stay."""
        if not self._bundle:
            b = self.path("lat", "bundle")
            clean(b)
            run(["umoci", "unpack", "--image", f"{self.images['layouts']['small']}:bench", b])
            cfg_path = os.path.join(b, "config.json")
            with open(cfg_path) as f:
                cfg = json.load(f)
            cfg["process"]["terminal"] = False
            cfg["process"]["args"] = ["/bin/true"]
            cfg["linux"].pop("resources", None)
            cfg["linux"].pop("cgroupsPath", None)
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                          if n["type"] != "network"]
            cfg["mounts"] = [m for m in cfg["mounts"] if m.get("type") != "cgroup"]
            with open(cfg_path, "w") as f:
                json.dump(cfg, f, indent=1)
            self._bundle = b
        return self._bundle

    def bundle_with_seccomp(self) -> str:
        """The same bundle (same rootfs) with moby's default seccomp profile in its config.json, as
        tools/run_vs_crun.py writes it: crun then loads a filter as `imgtool run` does."""
        if not getattr(self, "_bundle_seccomp", None):
            import importlib.util
            spec = importlib.util.spec_from_file_location(
                "run_vs_crun", os.path.join(os.path.dirname(os.path.dirname(__file__)), "run_vs_crun.py"))
            rvc = importlib.util.module_from_spec(spec)
            import sys
            sys.modules[spec.name] = rvc  # its dataclasses look their module up there
            spec.loader.exec_module(rvc)
            profile = rvc.docker_seccomp()
            if profile is None:
                raise RuntimeError("moby's seccomp profile could not be converted for crun")
            plain = self.bundle()
            b = self.path("lat", "bundle-seccomp")
            clean(b)
            os.makedirs(b)
            with open(os.path.join(plain, "config.json")) as f:
                cfg = json.load(f)
            cfg["root"]["path"] = os.path.join(plain, cfg["root"].get("path", "rootfs"))
            cfg["linux"]["seccomp"] = profile
            with open(os.path.join(b, "config.json"), "w") as f:
                json.dump(cfg, f, indent=1)
            self._bundle_seccomp = b
        return self._bundle_seccomp

    def registry(self) -> str:
        """Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1, serving the big
        gzip image as bench/big:gzip (pushed once with skopeo, blobs as they are in the archive);
        its storage is outside the measured filesystem. Returns HOST:PORT."""
        if self._registry_host:
            return self._registry_host
        if not shutil.which("docker-registry"):
            raise Unavailable("docker-registry is not installed (Debian package docker-registry)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        store = os.path.join(os.path.dirname(self.images["dir"]), "registry")
        os.makedirs(store, exist_ok=True)
        config = os.path.join(store, "config.yml")
        with open(config, "w") as fh:
            json.dump({"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                       "storage": {"filesystem": {"rootdirectory": os.path.join(store, "data")}},
                       "http": {"addr": f"127.0.0.1:{port}"}}, fh)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        log = open(os.path.join(self.logdir, "registry.log"), "ab")
        self._registry = subprocess.Popen(["docker-registry", "serve", config], stdout=log,
                                          stderr=log, env=env, start_new_session=True)
        host = f"127.0.0.1:{port}"
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise Unavailable("docker-registry did not answer on " + host)
        run(["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false",
             f"oci-archive:{self.archive('gzip')}", f"docker://{host}/bench/big:gzip"])
        self._registry_host = host
        return host

    def teardown(self):
        clean(self.path("lat"))
        self._small_store = None
        self._bundle = None
        if self._registry:
            self._registry.terminate()
            self._registry.wait(timeout=10)
            self._registry, self._registry_host = None, None


class Contender:
    group = ""        # case name, e.g. "pull gzip"
    tool = ""         # short key: imgtool umoci podman tar floor crun runc spawn
    label = ""        # what the table shows
    latency = False   # reported in ms
    measure_rss = False  # run under /usr/bin/time for the peak RSS (pull cases; not floors)
    env: dict | None = None

    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.status = "ok"   # ok | n/a | failed
        self.note = ""
        self.samples = []
        self.extra: dict = {}  # facts worth keeping in results.json

    def setup(self):
        pass

    def before(self):
        pass

    def cmds(self) -> list[list[str]]:
        raise NotImplementedError

    def output(self) -> str | None:
        return None

    def after(self):
        pass

    def teardown(self):
        pass

    def display(self) -> str:
        """The timed command for the docs, with paths shortened."""
        try:
            text = " ; ".join(" ".join(a) for a in self.cmds())
        except Exception:  # noqa: BLE001 - display only
            return ""
        text = text.replace(self.ctx.fsdir, "$FS").replace(self.ctx.images["dir"], "$IMG")
        return text.replace(self.ctx.imgtool, "imgtool")


# --- pull-local and the tools it is compared with -------------------------------------------

class _FreshOutput(Contender):
    """Writes one output tree, self.out: removed before and after every sample."""
    out = ""

    def before(self):
        clean(self.out)

    def output(self):
        return self.out

    def after(self):
        clean(self.out)


class ImgtoolPull(_FreshOutput):
    tool = "imgtool"
    measure_rss = True

    def __init__(self, ctx, form):
        super().__init__(ctx)
        self.form, self.group, self.label = form, f"pull {form}", "imgtool pull-local"
        self.out = ctx.path("imgtool-store")

    def cmds(self):
        return [[self.ctx.imgtool, "--root", self.out, "pull-local", "-q",
                 self.ctx.archive(self.form)]]


class _PopulatedStore:
    """A re-pull: self.out is filled once in setup() and kept between samples (nothing to clean,
    no output tree to measure)."""

    def before(self):
        pass

    def output(self):
        return None

    def after(self):
        pass

    def teardown(self):
        clean(self.out)


class ImgtoolRepull(_PopulatedStore, ImgtoolPull):
    def __init__(self, ctx, form):
        super().__init__(ctx, form)
        self.group, self.label = f"re-pull {form}", "imgtool pull-local (image already stored)"
        self.measure_rss = False  # a few ms of /usr/bin/time would matter here
        self.out = ctx.path(f"imgtool-populated-{form}")

    def setup(self):
        clean(self.out)
        run(self.cmds()[0])
        # Sanity check that the pull did the work being timed: the layer trees in the store
        # hold about as many entries as the layer tars.
        n = 0
        layers = os.path.join(self.out, "layers")
        for l in os.listdir(layers):
            for _, dirs, files in os.walk(os.path.join(layers, l, "diff")):
                n += len(dirs) + len(files)
        expected = sum(l["entries"] for l in self.ctx.images["big_layers"])
        self.extra = {"store_entries": n, "tar_entries": expected}
        if n < 0.95 * expected:
            raise Unavailable(f"the store holds {n} entries after pull-local, the layers have "
                              f"{expected}: not timing a pull that does not unpack")



class UmociUnpack(_FreshOutput):
    tool = "umoci"
    measure_rss = True
    label = "umoci unpack"

    def __init__(self, ctx, form):
        super().__init__(ctx)
        self.form, self.group = form, f"pull {form}"
        self.out = ctx.path("umoci-bundle")

    def setup(self):
        if "zstd" in self.ctx.layer_compressions(self.form):
            raise Unavailable(UMOCI_NO_ZSTD)

    def cmds(self):
        if self.form in self.ctx.external:
            ext = self.ctx.external[self.form]
            return [["umoci", "unpack", "--image", f"{ext['layout']}:{ext['ref']}", self.out]]
        layout = self.ctx.images["layouts"]["docker" if self.form == "docker" else self.form]
        return [["umoci", "unpack", "--image", f"{layout}:bench", self.out]]


class PodmanLoad(Contender):
    tool = "podman"
    measure_rss = True
    label = "podman load"

    def __init__(self, ctx, form):
        super().__init__(ctx)
        self.form, self.group = form, f"pull {form}"
        self.root = ctx.path("podman-load")

    def setup(self):
        if self.form in self.ctx.external and self.ctx.external[self.form]["form"] == "oci-layout":
            raise Unavailable("podman load reads archives, not OCI layout directories")
        drv = self.ctx.probe_podman()
        self.label = f"podman load ({drv})"

    def before(self):
        clean(self.root)
        self.env = self.ctx.podman_env(self.root)

    def cmds(self):
        return [[*self.ctx.podman_argv(self.root, self.ctx.podman_driver or "overlay"),
                 "load", "-q", "-i", self.ctx.archive(self.form)]]

    def output(self):
        return self.root

    def after(self):
        clean(self.root)


TAR_FLAGS = {"gzip": "-xzf", "zstd": "--zstd -xf", "tar": "-xf"}
FLOOR_PROGS = {"gzip": "igzip -dc", "zstd": "zstd -dcq", "tar": "cat"}


def _per_layer(kinds: list[str], table: dict) -> str:
    """The one program (or flags) for every layer, or each distinct one joined with '/'."""
    return "/".join(dict.fromkeys(table[k] for k in kinds))


class TarLoop(_FreshOutput):
    tool = "tar"
    measure_rss = True

    def __init__(self, ctx, form):
        super().__init__(ctx)
        self.form, self.group = form, f"pull {form}"
        self.label = f"tar {_per_layer(ctx.layer_compressions(form), TAR_FLAGS)} loop"
        self.out = ctx.path("tar-out")

    def before(self):
        super().before()
        os.makedirs(self.out)

    def cmds(self):
        # Pairs of (flags, layer): each layer with the flags for its own compression.
        script = ('set -e; out=$1; shift; '
                  'while [ $# -gt 0 ]; do tar --numeric-owner -C "$out" $1 "$2"; shift 2; done')
        pairs = [x for c, f in zip(self.ctx.layer_compressions(self.form), self.ctx.layer_files(self.form))
                 for x in (TAR_FLAGS[c], f)]
        return [["/bin/sh", "-c", script, "sh", self.out, *pairs]]


class Floor(Contender):
    tool = "floor"

    def __init__(self, ctx, form):
        super().__init__(ctx)
        self.form, self.group = form, f"pull {form}"
        self.label = f"{_per_layer(ctx.layer_compressions(form), FLOOR_PROGS)} layers > /dev/null (floor)"

    def cmds(self):
        script = 'while [ $# -gt 0 ]; do $1 "$2"; shift 2; done > /dev/null'
        pairs = [x for c, f in zip(self.ctx.layer_compressions(self.form), self.ctx.layer_files(self.form))
                 for x in (FLOOR_PROGS[c], f)]
        return [["/bin/sh", "-c", script, "sh", *pairs]]


# --- rootless: the same gzip pull as an ordinary user ----------------------------------------

BENCH_USER = "imgtool-bench"


def ensure_bench_user() -> None:
    """An unprivileged user with subordinate ids (Debian's useradd adds a range when
    /etc/subuid exists; add one if it did not)."""
    if run(["id", "-u", BENCH_USER], check=False, quiet=True).returncode != 0:
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", BENCH_USER])
    for f, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        text = open(f).read() if os.path.exists(f) else ""
        if not any(line.startswith(BENCH_USER + ":") for line in text.splitlines()):
            run(["usermod", flag, "600000-665535", BENCH_USER])


class _Rootless(_FreshOutput):
    """Runs as BENCH_USER, writing under a directory it owns on the measured filesystem."""
    measure_rss = True

    def __init__(self, ctx, name):
        super().__init__(ctx)
        self.group = "pull gzip rootless"
        self.home = ctx.path("rootless-home")
        self.out = os.path.join(self.home, name)

    def setup(self):
        for tool in ("runuser", "newuidmap"):
            if run(["sh", "-c", f"command -v {tool}"], check=False, quiet=True).returncode != 0:
                raise Unavailable(f"{tool} missing (packages util-linux, uidmap)")
        ensure_bench_user()
        os.makedirs(self.home, exist_ok=True)
        os.chown(self.home, *_ids(BENCH_USER))
        os.chmod(self.home, 0o755)

    def as_user(self, argv):
        return ["runuser", "-u", BENCH_USER, "--", "env", f"HOME={self.home}", *argv]


def _ids(user: str) -> tuple[int, int]:
    import pwd
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


class ImgtoolRootlessPull(_Rootless):
    tool, label = "imgtool", "imgtool pull-local, as an ordinary user"

    def __init__(self, ctx):
        super().__init__(ctx, "imgtool-store")

    def cmds(self):
        return [self.as_user([self.ctx.imgtool, "--root", self.out, "pull-local", "-q",
                              self.ctx.archive("gzip")])]


class UmociRootlessUnpack(_Rootless):
    tool, label = "umoci", "umoci unpack --rootless"

    def __init__(self, ctx):
        super().__init__(ctx, "umoci-bundle")

    def cmds(self):
        layout = self.ctx.images["layouts"]["gzip"]
        return [self.as_user(["umoci", "unpack", "--rootless", "--image", f"{layout}:bench",
                              self.out])]


# --- pull from a registry on loopback ---------------------------------------------------------

REGISTRY_REF = "bench/big:gzip"


class ImgtoolRegistryPull(_FreshOutput):
    group, tool, label, measure_rss = "pull registry", "imgtool", "imgtool pull (fresh store)", True

    def __init__(self, ctx):
        super().__init__(ctx)
        self.out = ctx.path("imgtool-registry-store")

    def setup(self):
        self.host = self.ctx.registry()

    def cmds(self):
        return [[self.ctx.imgtool, "--root", self.out, "pull", "-q", "--tls-verify=false",
                 f"{getattr(self, 'host', 'HOST')}/{REGISTRY_REF}"]]


class ImgtoolLocalSame(ImgtoolPull):
    """pull-local of the OCI archive that was pushed: what streaming from the registry costs."""

    def __init__(self, ctx):
        super().__init__(ctx, "gzip")
        self.group, self.tool, self.label = "pull registry", "local", "imgtool pull-local (same image, OCI archive)"


class PodmanPull(Contender):
    group, tool, measure_rss = "pull registry", "podman", True
    label = "podman pull (fresh storage root)"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.root = ctx.path("podman-pull")

    def setup(self):
        self.host = self.ctx.registry()
        drv = self.ctx.probe_podman()
        self.label = f"podman pull ({drv}, fresh storage root)"

    def before(self):
        clean(self.root)
        self.env = self.ctx.podman_env(self.root)

    def cmds(self):
        return [[*self.ctx.podman_argv(self.root, self.ctx.podman_driver or "overlay"), "pull", "-q",
                 "--tls-verify=false", f"{getattr(self, 'host', 'HOST')}/{REGISTRY_REF}"]]

    def output(self):
        return self.root

    def after(self):
        clean(self.root)


class SkopeoUmoci(_FreshOutput):
    group, tool, measure_rss = "pull registry", "skopeo+umoci", True
    label = "skopeo copy docker:// oci: + umoci unpack"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.out = ctx.path("skopeo-umoci")

    def setup(self):
        self.host = self.ctx.registry()

    def before(self):
        super().before()
        os.makedirs(self.out)

    def cmds(self):
        host = getattr(self, "host", "HOST")
        return [["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                 f"docker://{host}/{REGISTRY_REF}", f"oci:{self.out}/layout:bench"],
                ["umoci", "unpack", "--image", f"{self.out}/layout:bench", f"{self.out}/bundle"]]


class ImgtoolRegistryRepull(_PopulatedStore, ImgtoolRegistryPull):
    group, label, latency, measure_rss = "re-pull registry", "imgtool pull (image already stored)", True, False

    def __init__(self, ctx):
        super().__init__(ctx)
        self.out = ctx.path("imgtool-registry-populated")

    def setup(self):
        super().setup()
        clean(self.out)
        run(self.cmds()[0])



# --- latency: mount + umount, run /bin/true -------------------------------------------------

class ImgtoolMount(Contender):
    group, tool, label, latency = "mount+umount", "imgtool", "imgtool mount + umount", True

    def setup(self):
        self.store, self.id = self.ctx.small_store()
        self.target = self.ctx.path("lat", "imgtool-mnt")
        os.makedirs(self.target, exist_ok=True)

    def cmds(self):
        return [[self.ctx.imgtool, "--root", self.store, "mount", self.id, self.target],
                [self.ctx.imgtool, "--root", self.store, "umount", self.target]]


class PodmanMount(Contender):
    group, tool, label, latency = "mount+umount", "podman", "podman image mount + umount", True

    def setup(self):
        drv = self.ctx.probe_podman()
        self.label = f"podman image mount + umount ({drv})"
        self.root = self.ctx.path("lat", "podman")
        clean(self.root)
        self.env = self.ctx.podman_env(self.root)
        p = self.ctx.podman_argv(self.root)
        run([*p, "load", "-q", "-i", self.ctx.archive("small")], env=self.env)
        r = run([*p, "images", "-q", "--no-trunc"], env=self.env, capture=True)
        self.id = r.stdout.split()[0]
        try:
            run(self.cmds()[0], env=self.env)
            run(self.cmds()[1], env=self.env)
        except RuntimeError as e:
            raise Unavailable(f"podman image mount fails here: {e}") from None

    def cmds(self):
        p = self.ctx.podman_argv(getattr(self, "root", self.ctx.path("lat", "podman")))
        return [[*p, "image", "mount", getattr(self, "id", "IMAGE")],
                [*p, "image", "umount", getattr(self, "id", "IMAGE")]]


class ImgtoolRun(Contender):
    group, tool, label, latency = "run /bin/true", "imgtool", "imgtool run IMAGE /bin/true", True

    def setup(self):
        self.store, self.id = self.ctx.small_store()

    def cmds(self):
        return [[self.ctx.imgtool, "--root", self.store, "run", self.id, "/bin/true"]]


class _OciRuntimeRun(Contender):
    group, latency = "run /bin/true", True
    runtime_flags: list[str] = []

    def setup(self):
        self.bundle = self.ctx.bundle()
        self.state = self.ctx.path("lat", f"{self.tool}-state")
        os.makedirs(self.state, exist_ok=True)
        self.n = 0

    def argv(self, cid):
        raise NotImplementedError

    def cmds(self):
        self.n = getattr(self, "n", 0) + 1
        return [self.argv(f"bench-{os.getpid()}-{self.n}")]


class CrunRun(_OciRuntimeRun):
    tool, label = "crun", "crun --cgroup-manager=disabled run (umoci bundle)"

    def argv(self, cid):
        return ["crun", "--root", getattr(self, "state", "$STATE"), "--cgroup-manager=disabled",
                "run", "-b", getattr(self, "bundle", "$BUNDLE"), cid]


class CrunSeccompRun(CrunRun):
    """crun as above with moby's default seccomp profile: the filter `imgtool run` also loads."""
    tool, label = "crun-seccomp", "crun --cgroup-manager=disabled run (umoci bundle + docker's seccomp profile)"

    def setup(self):
        super().setup()
        self.bundle = self.ctx.bundle_with_seccomp()


class RuncRun(_OciRuntimeRun):
    tool, label = "runc", "runc run (umoci bundle)"

    def argv(self, cid):
        return ["runc", "--root", getattr(self, "state", "$STATE"), "run", *self.runtime_flags,
                "-b", getattr(self, "bundle", "$BUNDLE"), cid]


class SpawnTrue(Contender):
    group, tool, latency = "run /bin/true", "spawn", True
    label = "host /bin/true (process spawn floor)"

    def cmds(self):
        return [["/bin/true"]]


# --- commit: a container's 100 MiB writable layer as a new image ----------------------------

COMMIT_FILES = 100  # x 1 MiB of random bytes


def commit_data(ctx: Ctx) -> str:
    """The files both contenders' containers hold in their writable layer (made once)."""
    data = ctx.path("commit-data")
    if not os.path.isdir(data) or len(os.listdir(data)) != COMMIT_FILES:
        clean(data)
        os.makedirs(data)
        for i in range(COMMIT_FILES):
            with open(os.path.join(data, f"f{i:03d}"), "wb") as fh:
                fh.write(os.urandom(1 << 20))
    return data


class ImgtoolCommit(Contender):
    """A stopped `run -d` container that copied the data into /big; each sample's image (and with
    it the new layer) is removed afterwards, so every sample unpacks the layer anew."""
    group, tool, label = "commit 100 MiB", "imgtool", "imgtool commit CONTAINER"

    def setup(self):
        data = commit_data(self.ctx)
        self.store = self.ctx.path("commit", "imgtool-store")
        clean(self.store)
        image = run([self.ctx.imgtool, "--root", self.store, "pull-local", "-q", self.ctx.archive("small")],
                    capture=True).stdout.strip().splitlines()[-1]
        self.cid = run([self.ctx.imgtool, "--root", self.store, "run", "-d", "-v", f"{data}:/src:ro", image,
                        "sh", "-c", "mkdir /big && cp -a /src/. /big/"], capture=True).stdout.strip()
        deadline = time.monotonic() + 120
        while "Exited (0)" not in run([self.ctx.imgtool, "--root", self.store, "ps", "-a"], capture=True).stdout:
            if time.monotonic() > deadline:
                raise Unavailable("the container that writes the data did not finish")
            time.sleep(0.2)

    def cmds(self):
        return [[self.ctx.imgtool, "--root", getattr(self, "store", "$STORE"), "commit",
                 getattr(self, "cid", "CONTAINER"), "bench-commit:1"]]

    def after(self):
        run([self.ctx.imgtool, "--root", self.store, "rmi", "bench-commit:1"], quiet=True, check=False)

    def teardown(self):
        run([self.ctx.imgtool, "--root", self.store, "rm", "-f", self.cid], quiet=True, check=False)
        clean(self.store)


class PodmanCommit(Contender):
    """podman commit (containers/storage: what buildah commit does) of a created container whose
    layer got the same files through `podman mount`."""
    group, tool, label = "commit 100 MiB", "podman", "podman commit CONTAINER"

    def setup(self):
        self.ctx.probe_podman()
        data = commit_data(self.ctx)
        self.root = self.ctx.path("commit", "podman")
        clean(self.root)
        self.env = self.ctx.podman_env(self.root)
        p = self.ctx.podman_argv(self.root)
        image = run([*p, "load", "-q", "-i", self.ctx.archive("small")], env=self.env,
                    capture=True).stdout.strip().split()[-1]
        run([*p, "create", "--name", "bench-c1", image, "true"], env=self.env)
        merged = run([*p, "mount", "bench-c1"], env=self.env, capture=True).stdout.strip()
        shutil.copytree(data, os.path.join(merged, "big"))
        run([*p, "umount", "bench-c1"], env=self.env)

    def cmds(self):
        p = self.ctx.podman_argv(getattr(self, "root", "$ROOT"))
        return [[*p, "commit", "-q", "bench-c1", "bench-commit:1"]]

    def after(self):
        run([*self.ctx.podman_argv(self.root), "rmi", "bench-commit:1"], env=self.env, quiet=True, check=False)

    def teardown(self):
        clean(self.root)


CRUN_HYBRID = re.compile(r"hybrid mode not supported")


# --- save: the big image back to a docker archive, against podman save ------------------------

class _SaveFile(Contender):
    """Writes one archive, self.out (a file), from a store filled once in setup()."""
    measure_rss = True

    def before(self):
        clean(self.out)

    def output(self):
        return self.out

    def after(self):
        clean(self.out)


class ImgtoolSave(_SaveFile):
    tool = "imgtool"
    label = "imgtool save"
    group = "save docker"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.store = ctx.path("imgtool-save-store")
        self.out = ctx.path("imgtool-saved.tar")

    def setup(self):
        clean(self.store)
        run([self.ctx.imgtool, "--root", self.store, "pull-local", "-q", self.ctx.archive("docker")])

    def cmds(self):
        return [[self.ctx.imgtool, "--root", self.store, "save", "-o", self.out, "bench:latest"]]

    def teardown(self):
        clean(self.store)


class PodmanSave(_SaveFile):
    tool = "podman"
    label = "podman save"
    group = "save docker"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.root = ctx.path("podman-save-store")
        self.out = ctx.path("podman-saved.tar")

    def setup(self):
        drv = self.ctx.probe_podman()
        self.label = f"podman save ({drv})"
        clean(self.root)
        self.env = self.ctx.podman_env(self.root)
        run([*self.ctx.podman_argv(self.root, drv), "load", "-q", "-i", self.ctx.archive("docker")], env=self.env)

    def cmds(self):
        return [[*self.ctx.podman_argv(self.root, self.ctx.podman_driver or "overlay"), "save", "-q",
                 "--format", "docker-archive", "-o", self.out, "bench:latest"]]

    def teardown(self):
        clean(self.root)


def pull_contenders(ctx: Ctx, with_podman: bool, builtin: bool = True) -> list[list[Contender]]:
    groups = []
    for form in [*(("gzip", "zstd", "docker") if builtin else ()), *ctx.external]:
        g = [ImgtoolPull(ctx, form), UmociUnpack(ctx, form)]
        if with_podman:
            g.append(PodmanLoad(ctx, form))
        g += [TarLoop(ctx, form), Floor(ctx, form)]
        groups.append(g)
    if builtin:
        groups.append([ImgtoolRootlessPull(ctx), UmociRootlessUnpack(ctx)])
        groups += [[ImgtoolRepull(ctx, f)] for f in ("gzip", "zstd", "docker")]
        registry = [ImgtoolRegistryPull(ctx), ImgtoolLocalSame(ctx)]
        if with_podman:
            registry.append(PodmanPull(ctx))
        groups += [registry + [SkopeoUmoci(ctx)], [ImgtoolRegistryRepull(ctx)]]
        groups.append([ImgtoolSave(ctx)] + ([PodmanSave(ctx)] if with_podman else []))
        groups.append([ImgtoolCommit(ctx), *([PodmanCommit(ctx)] if with_podman else [])])
    return groups
