#!/usr/bin/env python3
"""Deterministic generator of container test images for imgtool.

Usage: python3 tools/gen_images.py OUTDIR [--only NAME ...] [--busybox PATH]

Every image is described once by a tiny in-memory model (Layer, Image, Job)
and then emitted in up to four on-disk formats:

  NAME.docker.tar      classic `docker save` (layer dirs + manifest.json)
  NAME.docker-new.tar  Docker >= 25 hybrid (OCI layout + manifest.json)
  NAME.oci.tar         OCI image archive (OCI layout packed in a tar)
  NAME.oci/            OCI image layout directory

OUTDIR/images.json describes everything that was written.  Output is
byte-for-byte reproducible: fixed timestamps and owners in all tar headers,
gzip headers without mtime/filename, sorted members and canonical JSON.
Only the Python standard library and the `zstd` CLI are used.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

FIXED_MTIME = 1700000000
CREATED = "2023-11-14T22:13:20Z"  # == FIXED_MTIME, used wherever a timestamp is required
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
ANN_REF_NAME = "org.opencontainers.image.ref.name"
ANN_CONTAINERD_NAME = "io.containerd.image.name"

# Go architecture names as used in OCI configs and platform descriptors.
GO_ARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le",
    "s390x": "s390x", "riscv64": "riscv64",
}
ELF_MACHINE_ARCH = {3: "386", 40: "arm", 62: "amd64", 183: "arm64", 243: "riscv64"}


def host_arch() -> str:
    machine = platform.machine()
    return GO_ARCH.get(machine.lower(), machine.lower())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canon(obj) -> bytes:
    """Canonical JSON: the same object always yields the same bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def split_tag(ref: str) -> tuple[str, str]:
    """'repo/name:tag' -> ('repo/name', 'tag'); a ':' before the last '/' is a port."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


# --------------------------------------------------------------------------
# Layer contents
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One tar member of a layer. `kind` selects the tar type flag."""
    name: str
    kind: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    target: str = ""  # symlink / hardlink target
    dev: tuple[int, int] = (0, 0)
    mtime: int = FIXED_MTIME
    xattrs: tuple[tuple[str, bytes], ...] = ()


TAR_TYPES = {
    "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def d(name, mode=0o755, uid=0, gid=0, mtime=FIXED_MTIME) -> Entry:
    return Entry(name, "dir", mode, uid, gid, mtime=mtime)


def f(name, data: bytes | str = b"", mode=0o644, uid=0, gid=0, mtime=FIXED_MTIME,
      xattrs=()) -> Entry:
    if isinstance(data, str):
        data = data.encode()
    return Entry(name, "file", mode, uid, gid, data=data, mtime=mtime, xattrs=tuple(xattrs))


def sym(name, target) -> Entry:
    return Entry(name, "symlink", 0o777, target=target)


def hard(name, target) -> Entry:
    return Entry(name, "hardlink", 0o644, target=target)


def chardev(name, major, minor, mode=0o666, gid=0) -> Entry:
    return Entry(name, "char", mode, gid=gid, dev=(major, minor))


def blockdev(name, major, minor, mode=0o660, gid=0) -> Entry:
    return Entry(name, "block", mode, gid=gid, dev=(major, minor))


def fifo(name, mode=0o644) -> Entry:
    return Entry(name, "fifo", mode)


def whiteout(path) -> Entry:
    """AUFS-style whiteout hiding `path` from the layers below."""
    parent, _, base = path.rpartition("/")
    return f(f"{parent}/.wh.{base}" if parent else f".wh.{base}")


def opaque(dirpath, prefix="") -> Entry:
    """Opaque marker: hides everything below `dirpath` from lower layers."""
    return f(f"{prefix}{dirpath}/.wh..wh..opq" if dirpath else f"{prefix}.wh..wh..opq")


def build_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8") as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = TAR_TYPES[e.kind]
            ti.mode = e.mode
            ti.uid, ti.gid = e.uid, e.gid
            # Empty names: extractors must not remap ids through the host's passwd.
            ti.uname = ti.gname = ""
            ti.mtime = e.mtime
            ti.linkname = e.target
            ti.devmajor, ti.devminor = e.dev
            if e.xattrs:
                # surrogateescape lets tarfile write arbitrary binary values verbatim.
                ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                  for k, v in e.xattrs}
            if e.kind == "file":
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "none":
        return data
    if how == "gzip":
        # mtime=0 and no filename keep the gzip header reproducible.
        return gzip.compress(data, compresslevel=6, mtime=0)
    if how == "zstd":
        # Pin the threading mode: zstd output differs between MT and ST modes.
        return subprocess.run(["zstd", "-q", "-c", "-3", "--single-thread"], input=data,
                              stdout=subprocess.PIPE, check=True).stdout
    raise ValueError(f"unknown compression {how!r}")


class Layer:
    def __init__(self, entries: list[Entry], compression: str = "gzip", comment: str = ""):
        self.entries = entries
        self.compression = compression
        self.comment = comment
        self._blobs: dict[str, bytes] = {}

    @cached_property
    def tar(self) -> bytes:
        return build_tar(self.entries)

    @cached_property
    def diff_id(self) -> str:
        return "sha256:" + sha256_hex(self.tar)

    def blob(self, compression: str | None = None) -> tuple[str, bytes]:
        """(media type, blob bytes) using the layer's own or a forced compression."""
        how = compression or self.compression
        if how not in self._blobs:
            self._blobs[how] = compress(self.tar, how)
        return MT_LAYER[how], self._blobs[how]


class TruncatedLayer:
    """A layer whose blob is cut in half; its diff_id stays that of the full tar."""

    def __init__(self, base: Layer):
        self.base = base

    def __getattr__(self, name):
        return getattr(self.base, name)

    def blob(self, compression: str | None = None) -> tuple[str, bytes]:
        media_type, data = self.base.blob(compression)
        return media_type, data[: len(data) // 2]


# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------

def runtime(cmd, env=(DEFAULT_PATH,), workdir="/", user="", labels=None, entrypoint=None):
    cfg = {"Env": list(env), "Cmd": list(cmd), "WorkingDir": workdir, "User": user,
           "Labels": dict(labels or {})}
    if entrypoint is not None:
        cfg["Entrypoint"] = list(entrypoint)
    return cfg


@dataclass
class Image:
    layers: list
    runtime: dict
    arch: str = field(default_factory=host_arch)
    variant: str | None = None
    diff_ids_override: list[str] | None = None  # only for deliberately broken configs

    @property
    def config_diff_ids(self) -> list[str]:
        if self.diff_ids_override is not None:
            return list(self.diff_ids_override)
        return [layer.diff_id for layer in self.layers]

    @property
    def platform(self) -> dict:
        p = {"architecture": self.arch, "os": "linux"}
        if self.variant:
            p["variant"] = self.variant
        return p

    @property
    def platform_name(self) -> str:
        return "/".join(filter(None, ["linux", self.arch, self.variant]))

    @cached_property
    def config_bytes(self) -> bytes:
        # Identical bytes in every format, hence one image ID everywhere.
        cfg = dict(self.platform)
        cfg.update({
            "created": CREATED,
            "config": self.runtime,
            "rootfs": {"type": "layers", "diff_ids": self.config_diff_ids},
            "history": [{"created": CREATED, "created_by": f"gen_images.py: {layer.comment}"}
                        for layer in self.layers],
        })
        return canon(cfg)

    @property
    def id(self) -> str:
        return "sha256:" + sha256_hex(self.config_bytes)


@dataclass
class Job:
    """One named image (or platform set) plus how to emit and optionally break it."""
    name: str
    tags: list[str]
    images: list[Image]  # exactly one unless `multiplatform`
    formats: tuple[str, ...]
    multiplatform: bool = False
    broken: str | None = None
    manifest_hook: Callable[[bytes], bytes] | None = None  # rewrites OCI manifest bytes
    files_hook: Callable[[dict, "Built", str], None] | None = None  # edits emitted members

    @property
    def primary(self) -> Image:
        """Image whose ID images.json reports: the host platform's, else the first."""
        for img in self.images:
            if img.arch == host_arch():
                return img
        return self.images[0]


# --------------------------------------------------------------------------
# Format emitters: each builds {member path: bytes}
# --------------------------------------------------------------------------

@dataclass
class Built:
    files: dict[str, bytes]
    layer_paths: list[str]  # member path of each layer blob, in image order
    manifest_digest: str | None = None


class BlobStore:
    def __init__(self):
        self.blobs: dict[str, bytes] = {}

    def add(self, media_type: str, data: bytes, **extra) -> dict:
        digest = sha256_hex(data)
        self.blobs[digest] = data
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data), **extra}


def blob_path(desc: dict) -> str:
    return "blobs/sha256/" + desc["digest"].split(":", 1)[1]


def add_image(store: BlobStore, img: Image, uncompressed=False, manifest_hook=None,
              platform_desc=False) -> tuple[dict, dict, list[dict]]:
    """Store config, layers and manifest; return (manifest, config, layer descriptors)."""
    config_desc = store.add(MT_CONFIG, img.config_bytes)
    layer_descs = [store.add(*layer.blob("none" if uncompressed else None))
                   for layer in img.layers]
    manifest = canon({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                      "config": config_desc, "layers": layer_descs})
    if manifest_hook:
        manifest = manifest_hook(manifest)
    extra = {"platform": img.platform} if platform_desc else {}
    return store.add(MT_MANIFEST, manifest, **extra), config_desc, layer_descs


def layout_files(store: BlobStore, top: dict, tags: list[str]) -> dict[str, bytes]:
    """oci-layout + index.json (one entry per tag) + all blobs."""
    manifests = []
    for tag in tags:
        manifests.append({**top, "annotations": {ANN_CONTAINERD_NAME: tag,
                                                 ANN_REF_NAME: split_tag(tag)[1]}})
    files = {"oci-layout": canon({"imageLayoutVersion": "1.0.0"}),
             "index.json": canon({"schemaVersion": 2, "mediaType": MT_INDEX,
                                  "manifests": manifests})}
    for digest, data in store.blobs.items():
        files["blobs/sha256/" + digest] = data
    return files


def repositories(tags: list[str], top_id: str) -> bytes:
    repos: dict[str, dict[str, str]] = {}
    for tag in tags:
        repo, t = split_tag(tag)
        repos.setdefault(repo, {})[t] = top_id
    return canon(repos)


def build_oci(job: Job) -> Built:
    store = BlobStore()
    if job.multiplatform:
        # Top index -> nested image index -> one manifest per platform.
        descs = [add_image(store, img, platform_desc=True)[0] for img in job.images]
        top = store.add(MT_INDEX, canon({"schemaVersion": 2, "mediaType": MT_INDEX,
                                         "manifests": descs}))
        layer_paths = []
    else:
        top, _, layer_descs = add_image(store, job.images[0], manifest_hook=job.manifest_hook)
        layer_paths = [blob_path(ld) for ld in layer_descs]
    return Built(layout_files(store, top, job.tags), layer_paths, top["digest"])


def build_docker_new(job: Job) -> Built:
    # Docker >= 25 writes an OCI layout with uncompressed layers, plus manifest.json.
    store = BlobStore()
    top, config_desc, layer_descs = add_image(store, job.images[0], uncompressed=True)
    files = layout_files(store, top, job.tags)
    layer_paths = [blob_path(ld) for ld in layer_descs]
    files["manifest.json"] = canon([{"Config": blob_path(config_desc),
                                     "RepoTags": job.tags, "Layers": layer_paths}])
    files["repositories"] = repositories(job.tags, layer_descs[-1]["digest"].split(":")[1])
    return Built(files, layer_paths, top["digest"])


def build_docker_classic(job: Job) -> Built:
    img = job.images[0]
    files: dict[str, bytes] = {}
    layer_paths = []
    parent = ""
    for layer in img.layers:
        # v1 layer IDs only need to be unique per (parent chain, content).
        layer_id = sha256_hex(f"{parent}\n{layer.diff_id}".encode())
        meta = {"id": layer_id, "created": CREATED, "os": "linux"}
        if parent:
            meta["parent"] = parent
        files[f"{layer_id}/VERSION"] = b"1.0"
        files[f"{layer_id}/json"] = canon(meta)
        files[f"{layer_id}/layer.tar"] = layer.tar
        layer_paths.append(f"{layer_id}/layer.tar")
        parent = layer_id
    config_name = sha256_hex(img.config_bytes) + ".json"
    files[config_name] = img.config_bytes
    files["manifest.json"] = canon([{"Config": config_name, "RepoTags": job.tags,
                                     "Layers": layer_paths}])
    files["repositories"] = repositories(job.tags, parent)
    return Built(files, layer_paths, None)


# --------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------

def write_tar(path: str, files: dict[str, bytes]) -> None:
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
        for name in sorted(files):
            ti = tarfile.TarInfo(name)
            ti.size = len(files[name])
            ti.mode = 0o644
            ti.mtime = FIXED_MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            tf.addfile(ti, io.BytesIO(files[name]))
    os.replace(tmp, path)


def write_dir(path: str, files: dict[str, bytes]) -> None:
    # Start from scratch so blobs from an earlier run cannot linger.
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)
    os.makedirs(path)
    for name in sorted(files):
        full = os.path.join(path, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(files[name])
        os.chmod(full, 0o644)
        os.utime(full, (FIXED_MTIME, FIXED_MTIME))
    for root, _, _ in os.walk(path, topdown=False):
        os.utime(root, (FIXED_MTIME, FIXED_MTIME))


# format name -> (file suffix, builder, writer)
FORMATS = {
    "docker-archive": (".docker.tar", build_docker_classic, write_tar),
    "docker-archive-new": (".docker-new.tar", build_docker_new, write_tar),
    "oci-archive": (".oci.tar", build_oci, write_tar),
    "oci-layout": (".oci", build_oci, write_dir),
}
ALL_FORMATS = tuple(FORMATS)
OCI_FORMATS = ("oci-archive", "oci-layout")


# --------------------------------------------------------------------------
# Image definitions
# --------------------------------------------------------------------------

def vfs_cap_v2(cap: int) -> bytes:
    """security.capability value (struct vfs_cap_data, revision 2) granting `cap`
    as permitted + effective."""
    VFS_CAP_REVISION_2 = 0x02000000
    VFS_CAP_FLAGS_EFFECTIVE = 0x000001
    # magic_etc, then {permitted, inheritable} for the low and high 32 cap bits.
    return struct.pack("<5I", VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
                       1 << cap, 0, 0, 0)


CAP_NET_BIND_SERVICE = 10


def basic_layers() -> list[Layer]:
    big = hashlib.shake_256(b"imgtool-test/basic srv/big.bin").digest(1 << 20)
    layer1 = Layer([
        d("bin"),
        f("bin/tool.sh", "#!/bin/sh\necho tool\n", 0o755),
        d("etc"),
        f("etc/hostname", "basic\n"),
        f("etc/motd", "original motd\n"),
        f("etc/remove-me", "deleted by a whiteout in layer 2\n"),
        d("tmp", 0o1777),
        d("root", 0o700),
        f("root/.profile", "export FOO=bar\n", 0o600),
        d("srv"),
        f("srv/empty", b""),
        f("srv/big.bin", big),
        f("srv/replace-me", "replaced by a symlink in layer 3\n"),
        d("home"),
        d("home/user", 0o750, 1000, 1000),
        f("home/user/notes.txt", "owned by 1000:1000\n", 0o640, 1000, 1000),
        d("var"),
        d("var/www", 0o755, 33, 33),
        f("var/www/index.html", "<h1>owned by 33:33</h1>\n", 0o644, 33, 33),
        d("usr"),
        d("usr/bin"),
        f("usr/bin/suid-tool", "#!/bin/sh\necho suid\n", 0o4755),
        f("usr/bin/sgid-tool", "#!/bin/sh\necho sgid\n", 0o2755),
        # Owned by someone else: chown clears setuid/setgid, so these must be set after it.
        f("usr/bin/suid-user", "#!/bin/sh\necho suid user\n", 0o4755, 1000, 1000),
        f("usr/bin/sgid-user", "#!/bin/sh\necho sgid user\n", 0o2755, 1000, 1000),
        f("usr/bin/capable", "#!/bin/sh\necho capable\n", 0o755,
          xattrs=[("user.foo", b"bar"),
                  ("security.capability", vfs_cap_v2(CAP_NET_BIND_SERVICE))]),
        d("links"),
        sym("links/rel", "../etc/hostname"),
        sym("links/abs", "/etc/hostname"),
        sym("links/dangling", "/nonexistent/target"),
        d("hard"),
        f("hard/a", "hardlinked content\n"),
        hard("hard/b", "hard/a"),
        hard("hard/c", "hard/a"),
        d("dev"),
        chardev("dev/null", 1, 3),
        chardev("dev/zero", 1, 5),
        blockdev("dev/loop0", 7, 0, gid=6),
        d("run"),
        fifo("run/pipe"),
        # Children carry their own mtime; the dir's mtime must survive their creation.
        d("dated", mtime=1500000000),
        f("dated/inner.txt", "dated\n", mtime=1600000000),
        d("gone"),
        f("gone/a", "whole dir removed in layer 2\n"),
        d("gone/sub"),
        f("gone/sub/b", "whole dir removed in layer 2\n"),
        d("opq"),
        f("opq/old1", "hidden by the opaque marker in layer 2\n"),
        d("opq/sub"),
        f("opq/sub/old2", "hidden by the opaque marker in layer 2\n"),
        d("a_dir"),
        f("a_dir/child1", "a_dir becomes a file in layer 2\n"),
        f("a_dir/child2", "a_dir becomes a file in layer 2\n"),
        f("a_file", "a_file becomes a directory in layer 2\n"),
    ], "gzip", "layer 1: base tree")

    # Type changes use whiteout + new entry (whiteout first), as docker/buildah emit.
    layer2 = Layer([
        d("etc"),
        whiteout("etc/remove-me"),
        f("etc/motd", "modified in layer 2\n"),
        whiteout("gone"),
        d("opq"),
        opaque("opq"),
        f("opq/new1", "added in layer 2\n"),
        whiteout("a_dir"),
        f("a_dir", "a_dir is now a regular file\n"),
        whiteout("a_file"),
        d("a_file"),
        f("a_file/inside", "a_file is now a directory\n"),
    ], "zstd", "layer 2: whiteouts, opaque dir, type changes")

    layer3 = Layer([
        sym("srv/replace-me", "/etc/motd"),  # file -> symlink, no whiteout needed
        f("deep/a/b/c/d/e.txt", "parents are not in the tar\n"),
        whiteout("hard/a"),  # the first name of the group; b and c must survive
    ], "none", "layer 3: symlink over file, implicit parents, hardlink whiteout")
    return [layer1, layer2, layer3]


BASIC_RUNTIME = runtime(["/bin/sh"], env=(DEFAULT_PATH, "FOO=bar"), workdir="/srv",
                        labels={"org.example.test": "basic"})


def basic_jobs(base: list[Layer]) -> list[Job]:
    shared_layer = Layer([d("shared"), f("shared/only-here.txt", "only in shared\n")],
                         "gzip", "layer 3: shared's own")
    return [
        Job("basic", ["imgtool-test/basic:latest"], [Image(base, BASIC_RUNTIME)], ALL_FORMATS),
        Job("shared", ["imgtool-test/shared:latest"],
            [Image(base[:2] + [shared_layer],
                   runtime(["/bin/sh"], labels={"org.example.test": "shared"}))],
            ALL_FORMATS),
    ]


def rootopq_job() -> Job:
    layer1 = Layer([
        d("etc"), f("etc/old.conf", "old\n"),
        d("data"), f("data/a.txt", "old\n"),
        f("old-root-file", "old\n"),
    ], "gzip", "layer 1: content hidden by layer 2")
    # "./"-prefixed names including a "./" root entry, as `tar -C dir -c .` writes them.
    layer2 = Layer([
        d("./"),
        opaque("", prefix="./"),
        d("./new"),
        f("./new/one.txt", "one\n"),
        f("./two.txt", "two\n"),
    ], "gzip", "layer 2: opaque root")
    img = Image([layer1, layer2], runtime(["/bin/sh"], labels={"org.example.test": "rootopq"}))
    return Job("rootopq", ["imgtool-test/rootopq:latest"], [img], ALL_FORMATS)


def multiarch_job() -> Job:
    images = []
    for arch, variant in (("amd64", None), ("arm64", None), ("arm", "v7")):
        name = "/".join(filter(None, ["linux", arch, variant]))
        layer = Layer([f("platform", name + "\n")], "gzip", f"{name} marker")
        images.append(Image([layer], runtime(["/bin/cat", "/platform"],
                                             labels={"org.example.test": "multiarch"}),
                            arch=arch, variant=variant))
    return Job("multiarch", ["imgtool-test/multiarch:latest"], images, OCI_FORMATS,
               multiplatform=True)


def layers200_job() -> Job:
    layers = [Layer([d("layers"), f("layers/top", f"layer {i}\n"), d("l"), f(f"l/{i}", f"{i}\n")],
                    "gzip", f"layer {i}")
              for i in range(1, 201)]
    img = Image(layers, runtime(["/bin/sh"], labels={"org.example.test": "layers200"}))
    return Job("layers200", ["imgtool-test/layers200:latest"], [img], OCI_FORMATS)


BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "id", "ps", "env", "pwd", "hostname", "true",
                   "false", "sleep", "mount", "touch", "rm", "mkdir", "stat", "readlink")


def static_elf_arch(data: bytes) -> str | None:
    """Go arch of a statically linked ELF (no PT_INTERP), else None."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    is64, endian = data[4] == 2, "<" if data[5] == 1 else ">"
    machine = struct.unpack_from(endian + "H", data, 18)[0]
    if is64:
        phoff = struct.unpack_from(endian + "Q", data, 32)[0]
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 54)
    else:
        phoff = struct.unpack_from(endian + "I", data, 28)[0]
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 42)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 > len(data):
            return None
        if struct.unpack_from(endian + "I", data, off)[0] == 3:  # PT_INTERP: dynamic
            return None
    return ELF_MACHINE_ARCH.get(machine, host_arch())


def busybox_layers(binary: bytes) -> list[Layer]:
    passwd = ("root:x:0:0:root:/root:/bin/sh\n"
              "user:x:1000:1000:,,,:/home/user:/bin/sh\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    group = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"
    layer1 = Layer([
        d("bin"),
        f("bin/busybox", binary, 0o755),
        *[sym(f"bin/{applet}", "busybox") for applet in BUSYBOX_APPLETS],
        d("dev"),
        d("etc"),
        f("etc/group", group),
        f("etc/hostname", "busybox\n"),
        f("etc/passwd", passwd),
        d("home"),
        d("home/user", 0o755, 1000, 1000),
        d("proc", 0o555),
        d("root", 0o700),
        d("srv"),
        d("sys", 0o555),
        d("tmp", 0o1777),
    ], "gzip", "layer 1: busybox rootfs")
    layer2 = Layer([d("srv"), f("srv/hello.txt", "hello from the second layer\n")],
                   "gzip", "layer 2: /srv/hello.txt")
    return [layer1, layer2]


def busybox_runtime(label: str) -> dict:
    return runtime(["/bin/sh", "-c", "echo $GREETING from $(pwd)"],
                   env=(DEFAULT_PATH, "GREETING=hello"), workdir="/srv",
                   labels={"org.example.test": label})


def busybox_jobs(path: str) -> tuple[list[Job], list[dict]]:
    """busybox + demo jobs; demo falls back to plain files without busybox."""
    jobs, skipped = [], []
    binary, arch, reason = None, None, None
    if not os.path.isfile(path):
        reason = f"{path} does not exist"
    else:
        with open(path, "rb") as fh:
            binary = fh.read()
        arch = static_elf_arch(binary)
        if arch is None:
            reason = f"{path} is not a statically linked ELF binary"
    if reason is None:
        layers = busybox_layers(binary)
        jobs.append(Job("busybox", ["imgtool-test/busybox:latest"],
                        [Image(layers, busybox_runtime("busybox"), arch=arch)], ALL_FORMATS))
        demo = Image(layers, busybox_runtime("demo"), arch=arch)
    else:
        skipped.append({"name": "busybox", "reason": reason})
        demo = Image([
            Layer([d("etc"), f("etc/hostname", "demo\n"), d("srv"),
                   f("srv/readme.txt", "imgtool demo image (no busybox available)\n")],
                  "gzip", "layer 1: plain files"),
            Layer([d("srv"), f("srv/hello.txt", "hello from the second layer\n")],
                  "gzip", "layer 2: /srv/hello.txt"),
        ], runtime(["/bin/sh"], env=(DEFAULT_PATH, "GREETING=hello"), workdir="/srv",
                   labels={"org.example.test": "demo"}))
    jobs.append(Job("demo", ["imgtool-demo:latest"], [demo], ALL_FORMATS))
    return jobs, skipped


# --- deliberately broken variants of `basic` ------------------------------

def flip_layer2(files: dict, built: Built, fmt: str) -> None:
    path = built.layer_paths[1]
    data = bytearray(files[path])
    data[len(data) // 2] ^= 0xFF
    files[path] = bytes(data)


def drop_layer2(files: dict, built: Built, fmt: str) -> None:
    del files[built.layer_paths[1]]


def truncate_docker_manifest(files: dict, built: Built, fmt: str) -> None:
    if fmt.startswith("docker"):
        files["manifest.json"] = files["manifest.json"][: len(files["manifest.json"]) // 2]


def truncate_json(data: bytes) -> bytes:
    # The index then points at the truncated bytes, so only JSON parsing fails.
    return data[: len(data) // 2]


def bump_layer1_size(data: bytes) -> bytes:
    manifest = json.loads(data)
    manifest["layers"][0]["size"] += 1
    return canon(manifest)


def broken_jobs(base: list[Layer]) -> list[Job]:
    real = [layer.diff_id for layer in base]
    wrong = list(real)
    wrong[1] = "sha256:" + sha256_hex(b"imgtool-test: not the real diff_id")
    both = ("oci-archive", "docker-archive")
    oci = ("oci-archive",)

    def job(name, kind, formats, image=None, **hooks):
        return Job(name, [f"imgtool-test/{name}:latest"], [image or Image(base, BASIC_RUNTIME)],
                   formats, broken=kind, **hooks)

    return [
        job("broken-flip", "digest", both, files_hook=flip_layer2),
        job("broken-diffid", "diff_id", both,
            Image(base, BASIC_RUNTIME, diff_ids_override=wrong)),
        job("broken-missing", "missing", both, files_hook=drop_layer2),
        job("broken-json", "json", both, manifest_hook=truncate_json,
            files_hook=truncate_docker_manifest),
        job("broken-size", "size", oci, manifest_hook=bump_layer1_size),
        job("broken-count", "count", both,
            Image(base, BASIC_RUNTIME, diff_ids_override=real[:-1])),
        job("broken-truncated-layer", "corrupt", oci,
            Image([TruncatedLayer(base[0])] + base[1:], BASIC_RUNTIME)),
    ]


def all_jobs(busybox: str) -> tuple[list[Job], list[dict]]:
    base = basic_layers()
    bb_jobs, skipped = busybox_jobs(busybox)
    jobs = (basic_jobs(base) + [rootopq_job(), multiarch_job(), layers200_job()]
            + bb_jobs + broken_jobs(base))
    return jobs, skipped


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def emit(job: Job, outdir: str) -> list[dict]:
    records = []
    cache: dict = {}  # oci-archive and oci-layout share one build
    for fmt in job.formats:
        suffix, builder, writer = FORMATS[fmt]
        if builder not in cache:
            cache[builder] = builder(job)
        built = cache[builder]
        files = dict(built.files)
        if job.files_hook:
            job.files_hook(files, built, fmt)
        rel = job.name + suffix
        writer(os.path.join(outdir, rel), files)
        img = job.primary
        rec = {"name": job.name, "format": fmt, "path": rel, "tags": job.tags,
               "id": img.id, "diff_ids": img.config_diff_ids, "layers": len(img.layers),
               "broken": job.broken, "manifest_digest": built.manifest_digest}
        if job.multiplatform:
            rec["platforms"] = {i.platform_name: i.id for i in job.images}
        records.append(rec)
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", help="output directory (give it before --only)")
    ap.add_argument("--only", nargs="+", action="extend", metavar="NAME",
                    help="generate only these images (repeatable)")
    ap.add_argument("--busybox", default="/bin/busybox", metavar="PATH",
                    help="static busybox binary (default: /bin/busybox if present)")
    args = ap.parse_args(argv)

    jobs, skipped = all_jobs(args.busybox)
    known = {j.name for j in jobs} | {s["name"] for s in skipped}
    if args.only:
        unknown = sorted(set(args.only) - known)
        if unknown:
            ap.error(f"unknown image(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        jobs = [j for j in jobs if j.name in args.only]
        skipped = [s for s in skipped if s["name"] in args.only]
    for s in skipped:
        print(f"gen_images: skipping {s['name']}: {s['reason']}", file=sys.stderr)

    os.makedirs(args.outdir, exist_ok=True)
    records = []
    for job in jobs:
        records += emit(job, args.outdir)
    records.sort(key=lambda r: (r["name"], r["format"]))

    index = {"images": records, "skipped": skipped}
    tmp = os.path.join(args.outdir, "images.json.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(index, sort_keys=True, indent=2, separators=(",", ": ")) + "\n")
    os.replace(tmp, os.path.join(args.outdir, "images.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
