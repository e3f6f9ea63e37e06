"""The benchmark image set: generated once, cached under WORK/images/<IMAGE_SET_VERSION>/.

Big image, 4 layers (every tar written by Python's tarfile, PAX format, numeric owners):
  1. a Debian bookworm minbase root from debootstrap (its /dev nodes left out, as image
     builders do); owners, modes, times and hardlinks as in the source tree
  2. 25,000 small files (1-8 KiB, text-like, ~3:1 with gzip) in 500 directories
  3. ~150 MiB of large files (random, text-like, half-zero pages), hardlinks and symlinks
  4. deletions: 2,000 whiteouts of layer-2 files, an opaque directory, a whiteout of a
     layer-1 directory and of a large file, a few rewritten files
Emitted as an OCI archive with gzip layers (pigz -n -6), an OCI archive with zstd layers
(zstd -3) and a docker-archive (docker save layout, uncompressed layer.tar files).

Small image, 5 layers: a static busybox with /bin/sh and /bin/true symlinks, for the mount
and run latency cases (OCI archive, gzip layers).

Content comes from random.Random with fixed seeds, so a rebuild gives the same files; bump
IMAGE_SET_VERSION whenever the generator changes so caches are rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import random
import shutil
import subprocess
import tarfile

from .system import log, run

IMAGE_SET_VERSION = "v2"
FIXED_MTIME = 1700000000
CREATED = "2023-11-14T22:13:20Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "tar": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SHARED_ROOTFS = "/tmp/bench/rootfs"
SHARED_ROOTFS_LOG = "/tmp/bench/debootstrap.log"

L2_GROUPS, L2_DIRS_PER_GROUP, L2_FILES = 20, 25, 25_000
L2_ROOT = "srv/bench/data"
L3_ROOT = "opt/bigdata"
MiB = 1 << 20


# --- content --------------------------------------------------------------------------------

class TextGen:
    """Word salad with a Zipf-like word distribution: compresses about 3:1 with gzip -6,
    like source code, logs and docs do."""

    SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "xi", "za", "pe", "qu", "do",
                 "fa", "gi", "hu", "ji", "be", "co", "wy"]

    def __init__(self, rng: random.Random):
        self.rng = rng
        words = sorted({"".join(rng.choice(self.SYLLABLES) for _ in range(rng.randint(1, 4)))
                        for _ in range(3000)})
        rng.shuffle(words)
        self.words = words
        self.cum = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(words))))

    def text(self, n: int) -> bytes:
        rng, out, size = self.rng, [], 0
        while size < n:
            ws = rng.choices(self.words, cum_weights=self.cum, k=rng.randint(3, 12))
            line = " ".join(ws) + "\n"
            out.append(line)
            size += len(line)
        return "".join(out).encode()[:n]

    def big_text(self, n: int) -> bytes:
        """Same distribution, generated in large batches (fast enough for tens of MiB)."""
        rng, chunks, size = self.rng, [], 0
        while size < n:
            ws = rng.choices(self.words, cum_weights=self.cum, k=8192)
            for i in range(0, len(ws), 8):
                ws[i] = "\n" + ws[i]
            c = " ".join(ws).encode()
            chunks.append(c)
            size += len(c)
        return b"".join(chunks)[:n]


# --- tar writing ----------------------------------------------------------------------------

class LayerWriter:
    """A layer tar being written: PAX format, numeric owners (empty uname/gname), integer
    mtimes (a float mtime would cost a PAX header per entry)."""

    def __init__(self, path: str):
        self.path = path
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
        self.entries = 0

    def _info(self, name: str, typ: bytes, mode: int, uid=0, gid=0, mtime=FIXED_MTIME):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = typ, mode, uid, gid, int(mtime)
        ti.uname = ti.gname = ""
        return ti

    def dir(self, name, mode=0o755, uid=0, gid=0):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid))
        self.entries += 1

    def file(self, name, data: bytes, mode=0o644, uid=0, gid=0):
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))
        self.entries += 1

    def symlink(self, name, target, uid=0, gid=0):
        ti = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid)
        ti.linkname = target
        self.tar.addfile(ti)
        self.entries += 1

    def hardlink(self, name, target, mode=0o644, uid=0, gid=0):
        ti = self._info(name, tarfile.LNKTYPE, mode, uid, gid)
        ti.linkname = target
        self.tar.addfile(ti)
        self.entries += 1

    def from_tree(self, root: str, skip_contents_of=("dev", "proc", "sys")):
        """Add a host tree in sorted order; tarfile turns repeated inodes into hardlinks."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            names = sorted(dirnames + filenames)
            if rel_dir in skip_contents_of:
                dirnames[:] = []
                continue
            for n in names:
                full = os.path.join(dirpath, n)
                arc = n if rel_dir == "." else f"{rel_dir}/{n}"
                ti = self.tar.gettarinfo(full, arcname=arc)
                if ti is None:  # sockets
                    continue
                ti.uname = ti.gname = ""
                ti.mtime = int(ti.mtime)
                if ti.isreg():
                    with open(full, "rb") as f:
                        self.tar.addfile(ti, f)
                else:
                    self.tar.addfile(ti)
                self.entries += 1
            # os.walk does not descend into symlinked dirs (followlinks=False): good.

    def close(self):
        self.tar.close()


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- the four big layers --------------------------------------------------------------------

def ensure_rootfs(images_dir: str) -> str:
    """A complete debootstrap minbase root: the shared copy if its log ends with rc=0."""
    try:
        with open(SHARED_ROOTFS_LOG) as f:
            last = f.read().strip().splitlines()[-1:]
        if last == ["rc=0"] and os.path.isdir(os.path.join(SHARED_ROOTFS, "usr/bin")):
            log(f"layer 1: reusing the debootstrap root at {SHARED_ROOTFS}")
            return SHARED_ROOTFS
    except OSError:
        pass
    root = os.path.join(images_dir, "rootfs")
    done = os.path.join(images_dir, "rootfs.complete")
    if os.path.exists(done):
        return root
    shutil.rmtree(root, ignore_errors=True)
    log(f"layer 1: debootstrap --variant=minbase bookworm {root} (a few minutes)")
    run(["debootstrap", "--variant=minbase", "bookworm", root, DEBIAN_MIRROR])
    open(done, "w").close()
    return root


def write_layer1(path: str, rootfs: str) -> int:
    w = LayerWriter(path)
    w.from_tree(rootfs)
    w.close()
    return w.entries


def layer2_dirs() -> list[str]:
    return [f"{L2_ROOT}/g{g:02d}/d{d:02d}" for g in range(L2_GROUPS)
            for d in range(L2_DIRS_PER_GROUP)]


def write_layer2(path: str, rng: random.Random, text: TextGen) -> tuple[int, list[str]]:
    w = LayerWriter(path)
    exts = ["txt", "py", "json", "c", "h", "md", "cfg", "log"]
    parts = L2_ROOT.split("/")
    for i in range(1, len(parts) + 1):
        w.dir("/".join(parts[:i]))
    dirs = layer2_dirs()
    per_dir = L2_FILES // len(dirs)
    files = []
    for gi in range(L2_GROUPS):
        w.dir(f"{L2_ROOT}/g{gi:02d}")
        for di in range(L2_DIRS_PER_GROUP):
            d = f"{L2_ROOT}/g{gi:02d}/d{di:02d}"
            uid = gid = 1000 if gi >= 15 else 0
            w.dir(d, uid=uid, gid=gid)
            for k in range(per_dir):
                name = f"{d}/{rng.choice(text.words)}_{k:03d}.{exts[k % len(exts)]}"
                mode = 0o755 if k % 10 == 0 else 0o644
                w.file(name, text.text(rng.randint(1024, 8192)), mode=mode, uid=uid, gid=gid)
                files.append(name)
    w.close()
    return w.entries, files


def write_layer3(path: str, rng: random.Random, text: TextGen, l2_files: list[str]) -> int:
    w = LayerWriter(path)
    for d in ["opt", L3_ROOT, f"{L3_ROOT}/links", f"{L3_ROOT}/small", f"{L3_ROOT}/symlinks"]:
        w.dir(d)
    big = []
    for name, mib in [("blob-random-0.bin", 25), ("blob-random-1.bin", 20),
                      ("blob-random-2.bin", 15)]:
        w.file(f"{L3_ROOT}/{name}", rng.randbytes(mib * MiB))
        big.append(name)
    for name, mib in [("text-0.log", 30), ("text-1.log", 25)]:
        w.file(f"{L3_ROOT}/{name}", text.big_text(mib * MiB))
        big.append(name)
    zero, pages = bytes(4096), []
    for _ in range(35 * MiB // 4096):  # a database-like file: half zero pages, half random
        pages.append(zero if rng.random() < 0.5 else rng.randbytes(4096))
    w.file(f"{L3_ROOT}/pages.db", b"".join(pages), mode=0o600, uid=999, gid=999)
    del pages
    for name in big:
        w.hardlink(f"{L3_ROOT}/links/{name}", f"{L3_ROOT}/{name}")
    small = []
    for i in range(200):
        n = f"{L3_ROOT}/small/s{i:03d}.txt"
        w.file(n, text.text(rng.randint(256, 4096)))
        small.append(n)
    for i in range(100):
        w.hardlink(f"{L3_ROOT}/small/h{i:03d}.txt", small[rng.randrange(len(small))])
    for i in range(300):
        target = l2_files[rng.randrange(len(l2_files))]
        if i % 3 == 0:
            t = "/" + target                     # absolute
        elif i % 3 == 1:
            t = "../../../" + target             # relative, from opt/bigdata/symlinks
        else:
            t = "/" + os.path.dirname(target)    # to a directory
        w.symlink(f"{L3_ROOT}/symlinks/l{i:03d}", t)
    w.symlink(f"{L3_ROOT}/symlinks/dangling", "/nonexistent/path")
    w.close()
    return w.entries


def write_layer4(path: str, rng: random.Random, text: TextGen, l2_files: list[str],
                 rootfs: str) -> int:
    w = LayerWriter(path)
    opaque_dir = f"{L2_ROOT}/g03/d07"
    candidates = [f for f in l2_files if not f.startswith(opaque_dir + "/")]
    picked = rng.sample(candidates, 2000 + 20)
    deleted, modified = sorted(picked[:2000]), sorted(picked[2000:])
    touched_dirs = sorted({os.path.dirname(f) for f in deleted + modified} | {opaque_dir})
    dirs_done = set()

    def parents(d):
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in dirs_done:
                dirs_done.add(p)
                uid = 1000 if p.startswith(f"{L2_ROOT}/g") and int(p.split("/")[3][1:]) >= 15 \
                    else 0
                w.dir(p, uid=uid, gid=uid)

    for d in touched_dirs:
        parents(d)
        if d == opaque_dir:
            w.file(f"{d}/.wh..wh..opq", b"")
            for i in range(10):
                w.file(f"{d}/new_{i}.txt", text.text(2000))
        for f in deleted:
            if os.path.dirname(f) == d:
                w.file(f"{d}/.wh.{os.path.basename(f)}", b"")
        for f in modified:
            if os.path.dirname(f) == d:
                w.file(f, text.text(rng.randint(1024, 8192)))
    # a whole layer-1 directory, a large layer-3 file, and two rewritten layer-1 files
    for d in ["etc", "opt", L3_ROOT, "usr", "usr/share"]:
        parents(d)
    if os.path.isdir(os.path.join(rootfs, "usr/share/doc")):
        w.file("usr/share/.wh.doc", b"")
    w.file(f"{L3_ROOT}/.wh.blob-random-2.bin", b"")
    w.file("etc/motd", b"imgtool benchmark image\n")
    w.file("etc/hostname", b"bench\n")
    w.close()
    return w.entries


# --- the small busybox image ----------------------------------------------------------------

def write_small_layers(out_dir: str) -> list[tuple[str, int]]:
    busybox = "/bin/busybox"
    with open(busybox, "rb") as f:
        bb = f.read()
    paths = []

    def layer(i, fill):
        p = os.path.join(out_dir, f"small-{i}.tar")
        w = LayerWriter(p)
        fill(w)
        w.close()
        paths.append((p, w.entries))

    def l1(w):
        for d, m in [("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("proc", 0o555),
                     ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777), ("var", 0o755)]:
            w.dir(d, mode=m)
        w.file("bin/busybox", bb, mode=0o755)

    def l2(w):
        w.dir("bin")
        for n in ["sh", "true", "ls", "cat"]:
            w.symlink(f"bin/{n}", "busybox")

    def l3(w):
        w.dir("etc")
        w.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
        w.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")

    def l4(w):
        w.dir("etc")
        w.file("etc/hostname", b"small\n")
        w.file("etc/motd", b"hello\n")

    def l5(w):
        w.dir("etc")
        w.file("etc/.wh.motd", b"")
        w.dir("root", mode=0o700)
        w.file("root/.profile", b"export PS1='# '\n")

    for i, fill in enumerate([l1, l2, l3, l4, l5]):
        layer(i + 1, fill)
    return paths


# --- archive writers ------------------------------------------------------------------------

def config_json(diff_ids: list[str], cmd: list[str]) -> bytes:
    cfg = {
        "architecture": "amd64", "os": "linux", "created": CREATED,
        "config": {"Env": [PATH_ENV], "Cmd": cmd, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"bench layer {i + 1}"}
                    for i in range(len(diff_ids))],
    }
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()


class OuterTar:
    """The outer (archive) tar: fixed times and owners, members streamed from files."""

    def __init__(self, path):
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)

    def _ti(self, name, typ, size=0, mode=0o644):
        ti = tarfile.TarInfo(name)
        ti.type, ti.size, ti.mode, ti.mtime = typ, size, mode, FIXED_MTIME
        ti.uname = ti.gname = ""
        return ti

    def dir(self, name):
        self.tar.addfile(self._ti(name, tarfile.DIRTYPE, mode=0o755))

    def bytes(self, name, data: bytes):
        self.tar.addfile(self._ti(name, tarfile.REGTYPE, len(data)), io.BytesIO(data))

    def file(self, name, path):
        with open(path, "rb") as f:
            self.tar.addfile(self._ti(name, tarfile.REGTYPE, os.fstat(f.fileno()).st_size), f)

    def close(self):
        self.tar.close()


def oci_metadata(layers: list[dict], comp: str, cfg: bytes, ref: str) -> dict[str, bytes]:
    """oci-layout, index.json, manifest and config blobs: {relative path: bytes}."""
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    manifest = {
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": f"sha256:{cfg_hex}", "size": len(cfg)},
        "layers": [{"mediaType": MT_LAYER[comp], "digest": f"sha256:{l[comp + '_sha256']}",
                    "size": l[comp + "_size"]} for l in layers],
    }
    mb = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    m_hex = hashlib.sha256(mb).hexdigest()
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [{
        "mediaType": MT_MANIFEST, "digest": f"sha256:{m_hex}", "size": len(mb),
        "annotations": {"org.opencontainers.image.ref.name": ref}}]}
    return {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": json.dumps(index, sort_keys=True, separators=(",", ":")).encode(),
        f"blobs/sha256/{m_hex}": mb,
        f"blobs/sha256/{cfg_hex}": cfg,
    }


def write_oci_archive(path: str, layers: list[dict], comp: str, cfg: bytes, ref: str) -> None:
    """layers: dicts with the blob path under key comp ('gzip'/'zstd'/'tar') and its digest."""
    meta = oci_metadata(layers, comp, cfg, ref)
    tmp = path + ".tmp"
    t = OuterTar(tmp)
    t.bytes("oci-layout", meta.pop("oci-layout"))
    t.bytes("index.json", meta.pop("index.json"))
    t.dir("blobs")
    t.dir("blobs/sha256")
    for name, data in meta.items():
        t.bytes(name, data)
    for l in layers:
        t.file(f"blobs/sha256/{l[comp + '_sha256']}", l[comp])
    t.close()
    os.rename(tmp, path)


def write_oci_layout(path: str, layers: list[dict], comp: str, cfg: bytes, ref: str) -> None:
    """The same image as write_oci_archive, as an OCI layout directory (blobs hardlinked from
    the layer cache when possible)."""
    shutil.rmtree(path, ignore_errors=True)
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    blobs = os.path.join(tmp, "blobs", "sha256")
    os.makedirs(blobs)
    files = oci_metadata(layers, comp, cfg, ref)
    for name, data in files.items():
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(data)
    for l in layers:
        dst = os.path.join(blobs, l[comp + "_sha256"])
        try:
            os.link(l[comp], dst)
        except OSError:
            shutil.copyfile(l[comp], dst)
    os.rename(tmp, path)


def write_docker_archive(path: str, layers: list[dict], cfg: bytes, tag: str) -> None:
    """docker save (classic) layout: manifest.json, <id>.json config, <id>/layer.tar."""
    cfg_hex = hashlib.sha256(cfg).hexdigest()
    ids = [l["tar_sha256"] for l in layers]
    manifest = [{"Config": f"{cfg_hex}.json", "RepoTags": [tag],
                 "Layers": [f"{i}/layer.tar" for i in ids]}]
    name, _, version = tag.rpartition(":")
    tmp = path + ".tmp"
    t = OuterTar(tmp)
    t.bytes(f"{cfg_hex}.json", cfg)
    for i, l in zip(ids, layers):
        t.dir(i)
        t.bytes(f"{i}/VERSION", b"1.0")
        t.file(f"{i}/layer.tar", l["tar"])
    t.bytes("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    t.bytes("repositories", json.dumps({name: {version: ids[-1]}}).encode())
    t.close()
    os.rename(tmp, path)


def compress_layer(l: dict, nproc: int) -> None:
    tar = l["tar"]
    l["gzip"], l["zstd"] = tar + ".gz", tar + ".zst"
    with open(l["gzip"], "wb") as out:
        subprocess.run(["pigz", "-n", "-6", "-p", str(nproc), "-c", tar], stdout=out, check=True)
    run(["zstd", "-3", "-T0", "-q", "-f", tar, "-o", l["zstd"]])
    for comp in ("tar", "gzip", "zstd"):
        l[comp + "_sha256"] = sha256_file(l[comp])
        l[comp + "_size"] = os.path.getsize(l[comp])


# --- the whole set --------------------------------------------------------------------------

def build(work: str, nproc: int) -> dict:
    """Build (or load from cache) the image set; returns its description."""
    d = os.path.join(work, "images", IMAGE_SET_VERSION)
    desc_path = os.path.join(d, "imageset.json")
    if os.path.exists(desc_path):
        with open(desc_path) as f:
            desc = json.load(f)
        if all(os.path.exists(p) for p in desc["files"]):
            log(f"image set {IMAGE_SET_VERSION}: cached in {d}")
            return desc
    images_root = os.path.join(work, "images")
    os.makedirs(images_root, exist_ok=True)
    for old in os.listdir(images_root):  # image sets of earlier generator versions
        if old.startswith("v") and old != IMAGE_SET_VERSION and old[1:].isdigit():
            log(f"removing the stale image set {old}")
            shutil.rmtree(os.path.join(images_root, old))
    os.makedirs(d, exist_ok=True)
    rootfs = ensure_rootfs(os.path.join(work, "images"))
    layers_dir = os.path.join(d, "layers")
    os.makedirs(layers_dir, exist_ok=True)
    rng = random.Random(20240601)
    text = TextGen(random.Random(7))
    big = []
    for i, (what, fn) in enumerate([
            ("debootstrap root", lambda p: write_layer1(p, rootfs)),
            ("25,000 small files", lambda p: write_layer2(p, rng, text)),
            ("large files, links", lambda p: write_layer3(p, rng, text, l2_files)),
            ("deletions", lambda p: write_layer4(p, rng, text, l2_files, rootfs))]):
        p = os.path.join(layers_dir, f"big-{i + 1}.tar")
        log(f"layer {i + 1}: {what}")
        r = fn(p)
        if i == 1:
            entries, l2_files = r
        else:
            entries = r
        l = {"tar": p, "entries": entries, "what": what}
        compress_layer(l, nproc)
        big.append(l)
    small = []
    for p, entries in write_small_layers(layers_dir):
        l = {"tar": p, "entries": entries}
        compress_layer(l, nproc)
        small.append(l)

    big_cfg = config_json([f"sha256:{l['tar_sha256']}" for l in big], ["/bin/bash"])
    small_cfg = config_json([f"sha256:{l['tar_sha256']}" for l in small], ["/bin/sh"])
    arch = {
        "gzip": os.path.join(d, "big.gzip.oci.tar"),
        "zstd": os.path.join(d, "big.zstd.oci.tar"),
        "docker": os.path.join(d, "big.docker.tar"),
        "small": os.path.join(d, "small.oci.tar"),
    }
    log("writing archives")
    write_oci_archive(arch["gzip"], big, "gzip", big_cfg, "bench")
    write_oci_archive(arch["zstd"], big, "zstd", big_cfg, "bench")
    write_docker_archive(arch["docker"], big, big_cfg, "bench:latest")
    write_oci_archive(arch["small"], small, "gzip", small_cfg, "bench")

    # OCI layouts for umoci (it reads layouts only). gzip and small: `skopeo copy` as a user
    # would. skopeo gzips uncompressed layers when it writes a layout, so the layout for the
    # uncompressed case is written here, with the docker-archive's layer tars as blobs.
    layouts = {
        "gzip": os.path.join(d, "layout-gzip"),
        "docker": os.path.join(d, "layout-uncompressed"),
        "small": os.path.join(d, "layout-small"),
    }
    for key, src in [("gzip", f"oci-archive:{arch['gzip']}"),
                     ("small", f"oci-archive:{arch['small']}")]:
        shutil.rmtree(layouts[key], ignore_errors=True)
        log(f"skopeo copy {src} oci:{layouts[key]}:bench")
        run(["skopeo", "copy", "--quiet", src, f"oci:{layouts[key]}:bench"])
    write_oci_layout(layouts["docker"], big, "tar", big_cfg, "bench")
    layout_media = {k: layout_layer_media_types(v) for k, v in layouts.items()}

    desc = {
        "version": IMAGE_SET_VERSION, "dir": d, "rootfs_source": rootfs,
        "gzip_tool": "pigz -n -6", "zstd_tool": "zstd -3 -T0",
        "big_layers": big, "small_layers": small, "archives": arch, "layouts": layouts,
        "layout_media_types": layout_media,
        "big_config_sha256": hashlib.sha256(big_cfg).hexdigest(),
        "files": [*arch.values(), *layouts.values(),
                  *(l[c] for l in big + small for c in ("tar", "gzip", "zstd"))],
    }
    with open(desc_path + ".tmp", "w") as f:
        json.dump(desc, f, indent=1)
    os.rename(desc_path + ".tmp", desc_path)
    return desc


def layout_layer_media_types(layout: str) -> list[str]:
    with open(os.path.join(layout, "index.json")) as f:
        idx = json.load(f)
    m = idx["manifests"][0]["digest"].split(":", 1)[1]
    with open(os.path.join(layout, "blobs", "sha256", m)) as f:
        man = json.load(f)
    return [l["mediaType"] for l in man["layers"]]


def summary_rows(desc: dict) -> list[list[str]]:
    """Rows: form, archive size, layers uncompressed, entries."""
    big = desc["big_layers"]
    entries = sum(l["entries"] for l in big)
    tar_total = sum(l["tar_size"] for l in big)
    rows = []
    for key, label in [("gzip", "OCI archive, gzip layers"), ("zstd", "OCI archive, zstd layers"),
                       ("docker", "docker-archive, uncompressed layers")]:
        rows.append([label, f"{os.path.getsize(desc['archives'][key]) / MiB:.1f} MiB",
                     f"{tar_total / MiB:.1f} MiB", f"{entries:,}", "4"])
    small = desc["small_layers"]
    rows.append(["small busybox image (OCI, gzip)",
                 f"{os.path.getsize(desc['archives']['small']) / MiB:.2f} MiB",
                 f"{sum(l['tar_size'] for l in small) / MiB:.2f} MiB",
                 f"{sum(l['entries'] for l in small):,}", "5"])
    return rows


def layer_rows(desc: dict) -> list[list[str]]:
    rows = []
    for i, l in enumerate(desc["big_layers"]):
        rows.append([str(i + 1), l["what"], f"{l['entries']:,}", f"{l['tar_size'] / MiB:.1f}",
                     f"{l['gzip_size'] / MiB:.1f}", f"{l['zstd_size'] / MiB:.1f}"])
    return rows
