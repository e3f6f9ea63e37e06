#!/usr/bin/env python3
"""Deterministic generator of hostile container images for imgtool's tests.

Usage: python3 tools/gen_hostile.py OUTDIR --sentinel-base DIR [--busybox PATH] [--only NAME ...]

Each case is one image that attacks one thing: a layer tar that tries to write outside its
directory or to change a host file's metadata through a link, a decompression or header bomb,
JSON that tries to exhaust or confuse the parser, a digest that tries to become a path, a
launcher setting that tries to reach the host.  The advisories behind the cases are listed in
shared/REFERENCES.md ("Unpack safety", "Image-level", "Launcher").

Links point AT a sentinel tree, SENTINEL_BASE/sentinel-<case> (absolute, or relative with
enough "../" to reach it from anywhere), so that an escape changes something the test can see.
The test creates the sentinel (file.txt, sub/x, sub/link -> ../file.txt, as harness.Sentinel)
before the case runs and fingerprints it before and after.  Every name a case wants to plant
outside starts with MARKER, so the test can also search for strays by name.

Layer tars are written by the small raw tar writer below (ustar, PAX, GNU long names and
sparse headers, base-256 numbers, lying size fields): tarfile refuses most hostile headers.
Output is byte-for-byte reproducible (fixed times and owners, gzip without mtime, canonical
JSON); only the Python standard library is used.

OUTDIR/hostile.json: {"base": {...}, "cases": [...]}.  "base" is a small valid OCI layout the
test pulls into every store first, so that "the store is unchanged" means something.  Each case:

  name, category, doc      identity and what it attacks
  verb                     "pull-local"; "run" (the image itself then pulls cleanly); or
                           "pull-kill": pull-local killed once kill_marker exists in tmp/,
                           then any imgtool command must clear tmp/ without following links
  format, path             "oci-layout" | "oci-archive" | "docker-archive" | "file" | "dir" |
                           "fifo"; path relative to OUTDIR
  sentinel                 absolute path of the case's sentinel tree
  diff_ids                 the image's layers, bottom first (for inside checks; may be empty)
  command                  run cases: the argv after "imgtool --root R", "{image}" standing for
                           the pulled image's ID
  limits                   optional: max_rss_mb (peak RSS of imgtool), max_seconds, timeout
  big_tree, deep           the layer leaves tens of thousands of directories (put the store
                           where removing them is cheap) / nests them 10,000 deep (no
                           recursive walks)
  expect.outcome           "error": exit 1 (pull-local) / 125 (run), exactly one stderr line
                             "imgtool: VERB: ..." containing every string of expect.error (a
                             list: the file or setting it concerns and the reason);
                           "contained": success, nothing on stderr, and expect.inside holds;
                           "run": the command ran: exit expect.rc, stdout == expect.stdout
                             (if given), containing each of expect.stdout_contains and none of
                             expect.stdout_not_contains;
                           "killed": pull-kill cases (the outcome is the kill).
                           imgtool is deterministic: every case has exactly one outcome.
  expect.inside            list of checks on a layer directory (ROOT/layers/<diff_id>/diff):
                           path (relative; "" is the layer root), layer (index into diff_ids,
                           default the top), type (file/dir/symlink/chr/blk/fifo/absent),
                           content, target, rdev "M:m", mode "0644", uid, gid, size, nlink,
                           max_allocated (bytes on disk), same_inode_as, xattrs {name: text},
                           absent_xattrs [names], follow (resolve symlinks on the way; default:
                           an intermediate symlink fails the check).
  expect.outside           MARKER names that must exist nowhere outside the layer directories
  expect.rootless          optional, for a pull by an ordinary user (tests/integration/
                           test_rootless.py) where docs/rootless.md makes it differ: outcome,
                           error, inside of its own, and stderr, the exact note lines a success
                           prints (default none).  Without it the rootless pull must behave as
                           root's, with owners mapped to the user's ids, device nodes other than
                           0:0 whiteouts absent and trusted.overlay.opaque read as
                           user.overlay.opaque.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import stat
import struct
import sys
import zlib
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_images  # noqa: E402  (shared model: media types, busybox layer, canonical JSON)
from gen_images import (ANN_CONTAINERD_NAME, ANN_REF_NAME, CREATED, DEFAULT_PATH,  # noqa: E402
                        FIXED_MTIME, MT_CONFIG, MT_INDEX, MT_LAYER, MT_MANIFEST, canon, sha256_hex)

MARKER = "imgtool-hostile"
BLOCK = 512
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
INJECTED = "\nimgtool: pull-local: injected second line"


# --------------------------------------------------------------------------
# Raw tar writer
# --------------------------------------------------------------------------

def _b(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


def b256(value: int, width: int) -> bytes:
    """GNU/star base-256 number: top bit set; negative values in two's complement (0xff...)."""
    if value < 0:
        return (value % (1 << (8 * width))).to_bytes(width, "big")
    return bytes([0x80]) + value.to_bytes(width - 1, "big")


def _num(value, width: int) -> bytes:
    """Octal with a NUL when it fits, else base-256; bytes are placed verbatim."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)[:width].ljust(width, b"\0")
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, value)
    return b256(value, width)


def _text(value, width: int) -> bytes:
    return _b(value)[:width].ljust(width, b"\0")


def header(name, typeflag: bytes = b"0", *, size=0, mode=0o644, uid=0, gid=0, mtime=FIXED_MTIME,
           linkname=b"", devmajor=0, devminor=0, gnu=False, prefix=b"", extra=None) -> bytes:
    """One 512-byte header with a correct checksum.  gnu=True writes the old GNU magic
    ("ustar  \\0", no prefix field); extra maps offsets to raw bytes placed last."""
    h = bytearray(BLOCK)
    h[0:100] = _text(name, 100)
    h[100:108] = _num(mode, 8)
    h[108:116] = _num(uid, 8)
    h[116:124] = _num(gid, 8)
    h[124:136] = _num(size, 12)
    h[136:148] = _num(mtime, 12)
    h[156:157] = typeflag
    h[157:257] = _text(linkname, 100)
    h[257:265] = b"ustar  \0" if gnu else b"ustar\x0000"
    h[329:337] = _num(devmajor, 8)
    h[337:345] = _num(devminor, 8)
    if not gnu:
        h[345:500] = _text(prefix, 155)
    for off, raw in (extra or {}).items():
        h[off:off + len(raw)] = raw
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def pax_record(key, value) -> bytes:
    """'<len> key=value\\n' where len counts itself."""
    body = b" " + _b(key) + b"=" + _b(value) + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return b"%d" % length + body


TYPEFLAGS = {"file": b"0", "hardlink": b"1", "symlink": b"2", "char": b"3", "block": b"4",
             "dir": b"5", "fifo": b"6"}
EOF_BLOCKS = b"\0" * (2 * BLOCK)


class Tar:
    """A layer (or outer archive) tar built entry by entry; bytes() appends the end blocks."""

    def __init__(self):
        self.parts: list[bytes] = []

    def raw(self, data: bytes) -> "Tar":
        self.parts.append(data)
        return self

    def pax(self, records, typeflag=b"x", name=b"PaxHeader") -> "Tar":
        data = b"".join(pax_record(k, v) for k, v in records)
        self.parts.append(header(name, typeflag, size=len(data)) + pad(data))
        return self

    def add(self, name, kind="file", data=b"", *, mode=None, uid=0, gid=0, mtime=FIXED_MTIME,
            target="", dev=(0, 0), pax=(), size=None, typeflag=None, gnu_names=False,
            extra=None) -> "Tar":
        """One entry.  Names or targets over 100 bytes go in a PAX record (or GNU 'L'/'K'
        headers with gnu_names); size overrides the header's size field (data is still
        written as given)."""
        name_b, target_b = _b(name), _b(target)
        records = list(pax)
        keys = {k for k, _ in records}
        if len(name_b) > 100:
            if gnu_names:
                self.parts.append(header(b"././@LongLink", b"L", size=len(name_b) + 1, gnu=True)
                                  + pad(name_b + b"\0"))
            elif "path" not in keys:
                records.insert(0, ("path", name_b))
        if len(target_b) > 100:
            if gnu_names:
                self.parts.append(header(b"././@LongLink", b"K", size=len(target_b) + 1, gnu=True)
                                  + pad(target_b + b"\0"))
            elif "linkpath" not in keys:
                records.insert(0, ("linkpath", target_b))
        if records:
            self.pax(records)
        if mode is None:
            mode = {"dir": 0o755, "symlink": 0o777}.get(kind, 0o644)
        data = _b(data)
        self.parts.append(header(name_b[:100], typeflag or TYPEFLAGS[kind],
                                 size=len(data) if size is None else size, mode=mode, uid=uid,
                                 gid=gid, mtime=mtime, linkname=target_b[:100], devmajor=dev[0],
                                 devminor=dev[1], gnu=gnu_names, extra=extra))
        self.parts.append(pad(data))
        return self

    def file(self, name, data=b"", **kw) -> "Tar":
        return self.add(name, "file", data, **kw)

    def dir(self, name, **kw) -> "Tar":
        return self.add(name, "dir", **kw)

    def symlink(self, name, target, **kw) -> "Tar":
        return self.add(name, "symlink", target=target, **kw)

    def hardlink(self, name, target, **kw) -> "Tar":
        return self.add(name, "hardlink", target=target, **kw)

    def bytes(self, end=True) -> bytes:
        return b"".join(self.parts) + (EOF_BLOCKS if end else b"")


def gnu_sparse_old(name, realsize: int, chunks: list[tuple[int, bytes]]) -> bytes:
    """Old GNU sparse entry (type 'S'): up to four (offset, numbytes) pairs in the header,
    realsize and offsets base-256 when they do not fit in octal."""
    assert len(chunks) <= 4
    extra = {}
    for i, (off, data) in enumerate(chunks):
        extra[386 + 24 * i] = _num(off, 12)
        extra[386 + 24 * i + 12] = _num(len(data), 12)
    extra[482] = b"\0"  # isextended: no extension headers
    extra[483] = _num(realsize, 12)
    data = b"".join(d for _, d in chunks)
    return header(name, b"S", size=len(data), gnu=True, extra=extra) + pad(data)


def pax_sparse_10(name, realsize: int, chunks: list[tuple[int, bytes]], *, count=None) -> bytes:
    """PAX sparse format 1.0: the map is text at the start of the data."""
    records = [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", name),
               ("GNU.sparse.realsize", str(realsize))]
    sparse_map = f"{len(chunks) if count is None else count}\n"
    sparse_map += "".join(f"{off}\n{len(d)}\n" for off, d in chunks)
    body = pad(sparse_map.encode()) + b"".join(d for _, d in chunks)
    t = Tar().pax(records)
    t.raw(header(("GNUSparseFile.0/" + name)[:100], b"0", size=len(body)) + pad(body))
    return t.bytes(end=False)


# --------------------------------------------------------------------------
# Compression, including bombs built without ever holding the plain stream in memory
# --------------------------------------------------------------------------

def gz(data: bytes, level=6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


_STREAM_DIGESTS: dict = {}


def stream_digest(prefix: bytes, fill: int, count: int, suffix: bytes) -> str:
    """sha256 of prefix + count x bytes([fill]) + suffix, hashed a MiB at a time (memoized:
    several bombs share their plain stream)."""
    key = (hashlib.sha256(prefix).digest(), fill, count, hashlib.sha256(suffix).digest())
    if key not in _STREAM_DIGESTS:
        sha = hashlib.sha256(prefix)
        chunk = bytes([fill]) * MiB
        for _ in range(count // MiB):
            sha.update(chunk)
        sha.update(chunk[:count % MiB])
        sha.update(suffix)
        _STREAM_DIGESTS[key] = "sha256:" + sha.hexdigest()
    return _STREAM_DIGESTS[key]


def gzip_repeat(prefix: bytes, unit: bytes, count: int, suffix: bytes) -> tuple[bytes, str]:
    """gzip of prefix + count x unit + suffix and the sha256 of that plain stream, without ever holding
    the plain stream: the same compressed run is emitted for every unit after a full flush."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    h = hashlib.sha256()
    out = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"]
    crc, size = 0, 0

    def feed(data: bytes) -> bytes:
        nonlocal crc, size
        h.update(data)
        crc = zlib.crc32(data, crc)
        size += len(data)
        return co.compress(data) + co.flush(zlib.Z_FULL_FLUSH)

    out.append(feed(prefix))
    for _ in range(count):
        out.append(feed(unit))
    out.append(feed(suffix))
    out.append(co.flush(zlib.Z_FINISH))
    out.append(struct.pack("<II", crc & 0xffffffff, size & 0xffffffff))
    return b"".join(out), "sha256:" + h.hexdigest()


def gzip_fill(prefix: bytes, fill: int, count: int, suffix: bytes) -> tuple[bytes, str]:
    """gzip of prefix + count x bytes([fill]) + suffix, and the sha256 of that plain stream.

    After a full flush deflate starts afresh, so every MiB of the fill compresses to the same
    ~1 kB: the stream is assembled from one compressed chunk (about 1000:1) without ever
    holding the plain stream in memory."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    out = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"]  # no name, no mtime, OS unknown

    def feed(data: bytes) -> bytes:
        return co.compress(data) + co.flush(zlib.Z_FULL_FLUSH)

    out.append(feed(prefix))
    crc = zlib.crc32(prefix)
    chunk = bytes([fill]) * MiB
    if count >= MiB:
        once, twice = feed(chunk), feed(chunk)
        assert once == twice, "deflate is not stateless after a full flush"
        out.extend([once] * (count // MiB))
        for _ in range(count // MiB):
            crc = zlib.crc32(chunk, crc)
    tail = chunk[:count % MiB] + suffix
    out.append(feed(tail) + co.flush())
    crc = zlib.crc32(tail, crc)
    total = len(prefix) + count + len(suffix)
    out.append(struct.pack("<II", crc, total & 0xFFFFFFFF))
    return b"".join(out), stream_digest(prefix, fill, count, suffix)


def zstd_rle(prefix: bytes, fill: int, count: int, suffix: bytes, *, window_log: int,
             single_segment_size: int | None = None) -> tuple[bytes, str]:
    """A zstd frame of raw blocks and RLE blocks (4 bytes per 128 KiB of fill) whose header
    claims the given window; or a single-segment frame declaring its content size (the
    decoder's window is then that size)."""
    block_max = 128 * 1024
    out = [b"\x28\xb5\x2f\xfd"]
    if single_segment_size is not None:
        out.append(bytes([0xE0]))  # 8-byte content size, single segment
        out.append(struct.pack("<Q", single_segment_size))
    else:
        out.append(b"\x00")
        out.append(bytes([(window_log - 10) << 3]))
    blocks: list[tuple[int, bytes, int]] = []  # (type, content, regenerated size)
    for i in range(0, len(prefix), block_max):
        blocks.append((0, prefix[i:i + block_max], 0))
    left = count
    while left:
        n = min(left, block_max)
        blocks.append((1, bytes([fill]), n))
        left -= n
    for i in range(0, len(suffix), block_max):
        blocks.append((0, suffix[i:i + block_max], 0))
    for i, (kind, data, n) in enumerate(blocks):
        last = 1 if i == len(blocks) - 1 else 0
        size = len(data) if kind == 0 else n
        out.append(((size << 3) | (kind << 1) | last).to_bytes(3, "little") + data)
    return b"".join(out), stream_digest(prefix, fill, count, suffix)



# --------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------

class Blob(NamedTuple):
    media_type: str
    data: bytes
    diff_id: str


def layer(tar, compression="gzip", level=6) -> Blob:
    data = tar.bytes() if isinstance(tar, Tar) else tar
    blob = gz(data, level) if compression == "gzip" else data
    return Blob(MT_LAYER[compression], blob, "sha256:" + sha256_hex(data))


def digest_of(data: bytes) -> str:
    return "sha256:" + sha256_hex(data)


def desc(media_type: str, data: bytes, **extra) -> dict:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def _apply(hook, obj):
    """A hook edits obj in place (returns None) or returns a replacement (object or bytes)."""
    if hook is not None:
        out = hook(obj)
        if out is not None:
            obj = out
    return obj if isinstance(obj, bytes) else canon(obj)


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.partition(":")[2]


def config_doc(diff_ids, runtime=None, arch=None) -> dict:
    return {"architecture": arch or gen_images.host_arch(), "os": "linux", "created": CREATED,
            "config": runtime or {"Cmd": ["/bin/sh"], "Env": [DEFAULT_PATH]},
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}}


@dataclass
class OciImage:
    files: dict            # member path -> bytes (or a Special)
    diff_ids: list
    manifest_desc: dict
    layer_members: list    # blob path of each layer


def oci_image(layers: list[Blob], tag: str, *, runtime=None, arch=None, config_hook=None,
              manifest_hook=None, index_hook=None, manifest_desc_hook=None) -> OciImage:
    files: dict = {"oci-layout": canon({"imageLayoutVersion": "1.0.0"})}
    diff_ids = [b.diff_id for b in layers]
    config = _apply(config_hook, config_doc(diff_ids, runtime, arch))
    files[blob_name(digest_of(config))] = config
    layer_descs = []
    for b in layers:
        d = desc(b.media_type, b.data)
        files[blob_name(d["digest"])] = b.data
        layer_descs.append(d)
    manifest = _apply(manifest_hook, {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                                      "config": desc(MT_CONFIG, config), "layers": layer_descs})
    files[blob_name(digest_of(manifest))] = manifest
    mdesc = desc(MT_MANIFEST, manifest,
                 annotations={ANN_CONTAINERD_NAME: tag, ANN_REF_NAME: tag.rpartition(":")[2]})
    mdesc = json.loads(_apply(manifest_desc_hook, mdesc))
    files["index.json"] = _apply(index_hook, {"schemaVersion": 2, "mediaType": MT_INDEX,
                                              "manifests": [mdesc]})
    return OciImage(files, diff_ids, mdesc, [blob_name(d["digest"]) for d in layer_descs])


def docker_image(layer_tars: list[bytes], tags: list[str], *, runtime=None, config_hook=None,
                 manifest_hook=None) -> tuple[dict, list[str]]:
    """Classic `docker save` members; manifest_hook edits the manifest.json list."""
    files: dict = {}
    diff_ids = ["sha256:" + sha256_hex(t) for t in layer_tars]
    config = _apply(config_hook, config_doc(diff_ids, runtime))
    parent, names = "", []
    for t, diff_id in zip(layer_tars, diff_ids):
        layer_id = sha256_hex(f"{parent}\n{diff_id}".encode())
        files[f"{layer_id}/VERSION"] = b"1.0"
        files[f"{layer_id}/json"] = canon({"id": layer_id, "created": CREATED, "os": "linux",
                                           **({"parent": parent} if parent else {})})
        files[f"{layer_id}/layer.tar"] = t
        names.append(f"{layer_id}/layer.tar")
        parent = layer_id
    config_name = sha256_hex(config) + ".json"
    files[config_name] = config
    files["manifest.json"] = _apply(manifest_hook, [{"Config": config_name, "RepoTags": tags,
                                                     "Layers": names}])
    return files, diff_ids


# Members that are not plain files.
class Symlink(NamedTuple):
    target: str


class Hardlink(NamedTuple):
    target: str


class Fifo(NamedTuple):
    pass


class CharDev(NamedTuple):
    major: int
    minor: int


class Directory(NamedTuple):
    pass


class Fill(NamedTuple):
    """count copies of one byte, written a MiB at a time (never held in memory)."""
    byte: int
    count: int


class Pieces(NamedTuple):
    """File content made of bytes and Fill parts."""
    parts: tuple


class RawTar(NamedTuple):
    """Bytes (or Pieces) placed verbatim in an outer archive (hostile headers)."""
    data: object


def _parts(value) -> list:
    return list(value.parts) if isinstance(value, Pieces) else [value]


def write_parts(fh, parts, limit: int | None = None) -> None:
    """Write bytes and Fill parts, stopping after limit bytes."""
    left = float("inf") if limit is None else limit
    for part in parts:
        if isinstance(part, Fill):
            chunk = bytes([part.byte]) * MiB
            n = part.count
            while n and left > 0:
                k = int(min(n, MiB, left))
                fh.write(chunk[:k])
                n -= k
                left -= k
        else:
            k = int(min(len(part), left))
            fh.write(part[:k])
            left -= k


def parts_size(parts) -> int:
    return sum(p.count if isinstance(p, Fill) else len(p) for p in parts)


def outer_tar(files: dict, order=None) -> list:
    """The parts (bytes and Fill) of an outer archive holding files."""
    t = Tar()
    for name in (order or sorted(files)):
        value = files[name]
        if isinstance(value, RawTar):
            t.parts.extend(_parts(value.data))
        elif isinstance(value, Symlink):
            t.symlink(name, value.target)
        elif isinstance(value, Hardlink):
            t.hardlink(name, value.target)
        elif isinstance(value, Directory):
            t.dir(name)
        elif isinstance(value, Fifo):
            t.add(name, "fifo")
        elif isinstance(value, CharDev):
            t.add(name, "char", dev=(value.major, value.minor))
        else:
            t.file(name, value)
    return t.parts + [EOF_BLOCKS]


def write_layout(path: str, files: dict) -> None:
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    os.makedirs(path)
    for name in sorted(files):
        full = os.path.join(path, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        value = files[name]
        if isinstance(value, Symlink):
            os.symlink(value.target, full)
            continue
        if isinstance(value, Fifo):
            os.mkfifo(full, 0o644)
        elif isinstance(value, CharDev):
            os.mknod(full, 0o644 | stat.S_IFCHR, os.makedev(value.major, value.minor))
        elif isinstance(value, Directory):
            os.makedirs(full, exist_ok=True)
        else:
            with open(full, "wb") as fh:
                write_parts(fh, _parts(value))
            os.chmod(full, 0o644)
        os.utime(full, (FIXED_MTIME, FIXED_MTIME))
    for root, _, _ in os.walk(path, topdown=False):
        os.utime(root, (FIXED_MTIME, FIXED_MTIME))


def write_file(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------

def error(*needles: str) -> dict:
    """The command fails with one line holding every needle (the file it concerns and why)."""
    assert needles and all(needles), "an error expectation names what the message must say"
    return {"outcome": "error", "error": list(needles)}


def error_needles(value) -> list:
    """expect.error as a list of substrings (older records hold one string or null)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def contained(*inside, outside=()) -> dict:
    return {"outcome": "contained", "inside": list(inside), "outside": list(outside)}


def rootless(expect: dict, *, outcome=None, error=(), inside=None, stderr=()) -> dict:
    """expect, with what differs for a rootless pull (docs/rootless.md): an outcome, error
    needles or inside checks of its own, and the exact stderr lines (notes) of a success."""
    over = {"stderr": list(stderr)}
    if outcome is not None:
        over["outcome"] = outcome
    if error:
        over["error"] = list(error)
    if inside is not None:
        over["inside"] = list(inside)
    return dict(expect, rootless=over)


def ran(rc=0, stdout=None, contains=(), not_contains=()) -> dict:
    return {"outcome": "run", "rc": rc, "stdout": stdout,
            "stdout_contains": list(contains), "stdout_not_contains": list(not_contains)}


SKIPPED_XATTRS_NOTE = ("imgtool: pull-local: note: {} extended attributes skipped (rootless: "
                       "trusted.* and the like need real root)")


def F(path, content=None, **kw) -> dict:
    out = {"path": path, "type": "file", **kw}
    if content is not None:
        out["content"] = content
    return out


def D(path, **kw) -> dict:
    return {"path": path, "type": "dir", **kw}


def L(path, target, **kw) -> dict:
    return {"path": path, "type": "symlink", "target": target, **kw}


def C(path, rdev, **kw) -> dict:
    return {"path": path, "type": "chr", "rdev": rdev, **kw}


def ABSENT(path, **kw) -> dict:
    return {"path": path, "type": "absent", **kw}


def up(path: str) -> str:
    """A relative symlink target that reaches the absolute `path` from any directory on the
    host (surplus '..' stop at '/'), and stays inside a root when resolved in one."""
    return "../" * 40 + path.lstrip("/")


OVERLAY_XATTRS = ("trusted.overlay.opaque", "trusted.overlay.redirect", "trusted.overlay.origin",
                  "trusted.overlay.metacopy", "user.overlay.opaque", "user.overlay.redirect")


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

@dataclass
class Ctx:
    outdir: str
    sentinel_base: str
    busybox: bytes
    name: str = ""
    _cache: dict = field(default_factory=dict)

    @property
    def S(self) -> str:
        """This case's sentinel directory."""
        return os.path.join(self.sentinel_base, "sentinel-" + self.name)

    @property
    def SF(self) -> str:
        return self.S + "/file.txt"

    @property
    def tag(self) -> str:
        return f"hostile/{self.name}:latest"

    def base_blob(self) -> Blob:
        """The busybox rootfs of gen_images (layer 1), shared by the run cases."""
        if "bb" not in self._cache:
            bb = gen_images.busybox_layers(self.busybox)[0]
            media_type, data = bb.blob()
            self._cache["bb"] = Blob(media_type, data, bb.diff_id)
        return self._cache["bb"]


@dataclass
class Case:
    name: str
    category: str
    build: Callable[[Ctx], dict]
    doc: str


CASES: list[Case] = []


def case(category: str, name: str):
    def register(fn):
        assert not any(c.name == name for c in CASES), name
        CASES.append(Case(name, category, fn, (fn.__doc__ or "").strip()))
        return fn
    return register


def case_names() -> list[tuple[str, str]]:
    """(category, name) of every case, in order, without building anything."""
    return [(c.category, c.name) for c in CASES]


def one_layer(ctx: Ctx, tar, expect: dict, compression="gzip", level=6, **extra) -> dict:
    img = oci_image([layer(tar, compression, level)], ctx.tag)
    return {"format": "oci-layout", "files": img.files, "diff_ids": img.diff_ids,
            "expect": expect, **extra}


def blob_case(ctx: Ctx, blob: Blob, expect: dict, **extra) -> dict:
    img = oci_image([blob], ctx.tag)
    return {"format": "oci-layout", "files": img.files, "diff_ids": img.diff_ids,
            "expect": expect, **extra}


def small_layer(marker="small") -> Blob:
    return layer(Tar().dir("etc").file("etc/" + marker, marker + "\n"))


def image_case(ctx: Ctx, expect: dict, *, layers=None, fmt="oci-layout", files_hook=None,
               **hooks) -> dict:
    img = oci_image(layers or [small_layer()], ctx.tag, **hooks)
    files = img.files
    if files_hook:
        files = files_hook(files, img) or files
    return {"format": fmt, "files": files, "diff_ids": img.diff_ids, "expect": expect}


# ---- layer extraction: names -------------------------------------------------

@case("extract", "dotdot-name")
def _(ctx):
    """A member named ../x (moby TestUntarInvalidFilenames)."""
    return one_layer(ctx, Tar().file(f"../{MARKER}-dotdot", "escaped\n"),
                     error("escapes"), )


@case("extract", "dotdot-inner")
def _(ctx):
    """a/../../x: .. that climbs above the root only after a real component."""
    return one_layer(ctx, Tar().dir("a").file(f"a/../../{MARKER}-dotdot-inner", "escaped\n"),
                     error("escapes"))


@case("extract", "dotdot-deep")
def _(ctx):
    """Enough .. to reach / from any store location."""
    return one_layer(ctx, Tar().file("../" * 30 + f"{MARKER}-dotdot-deep", "escaped\n"),
                     error("escapes"))


@case("extract", "dotdot-dir-and-symlink")
def _(ctx):
    """A directory and a symlink named with a climbing .. (not only regular files)."""
    return one_layer(ctx, Tar().dir(f"../{MARKER}-dotdot-dir/").symlink(
        f"x/../../{MARKER}-dotdot-sym", ctx.S), error("escapes"))


@case("extract", "absolute-name")
def _(ctx):
    """/abs and /etc/x: contained as abs and etc/x."""
    t = Tar().file(f"/{MARKER}-abs", "abs\n").file(f"/etc/{MARKER}-abs-etc", "etc\n")
    t.file(ctx.S + f"/{MARKER}-abs-sentinel", "sentinel\n")
    return one_layer(ctx, t, contained(
        F(f"{MARKER}-abs", "abs\n"), F(f"etc/{MARKER}-abs-etc", "etc\n"),
        F(ctx.S.lstrip("/") + f"/{MARKER}-abs-sentinel", "sentinel\n"),
        outside=[f"{MARKER}-abs", f"{MARKER}-abs-etc", f"{MARKER}-abs-sentinel"]))


@case("extract", "absolute-dotdot")
def _(ctx):
    """/../x: the .. above / (refused, as any .. above the root)."""
    return one_layer(ctx, Tar().file(f"/../{MARKER}-absdotdot", "x\n"), error("escapes"))


@case("extract", "symlink-named-dotdot")
def _(ctx):
    """A symlink entry named .. pointing at the sentinel, then a write through it."""
    t = Tar().symlink("..", ctx.S).file(f"../{MARKER}-via-dotdot-link", "x\n")
    return one_layer(ctx, t, error("escapes"))


@case("extract", "symlink-named-a-dotdot")
def _(ctx):
    """A symlink named a/.. (cleans to the root itself): the root must stay a directory."""
    t = Tar().dir("a").symlink("a/..", ctx.S).file(f"{MARKER}-after", "x\n")
    return one_layer(ctx, t, error("root"))


@case("extract", "symlink-empty-name")
def _(ctx):
    """A symlink entry with an empty name."""
    t = Tar().symlink("", ctx.S).file(f"{MARKER}-after-empty", "x\n")
    return one_layer(ctx, t, error("the layer root entry is not a directory"))


@case("extract", "symlink-relative-escape")
def _(ctx):
    """l -> ../../.. then l/x: resolved in the root, x lands at the layer root."""
    t = Tar().symlink("l", "../../..").file(f"l/{MARKER}-via-rel", "rel\n")
    return one_layer(ctx, t, contained(L("l", "../../.."), F(f"{MARKER}-via-rel", "rel\n"),
                                       outside=[f"{MARKER}-via-rel"]))


@case("extract", "symlink-relative-to-sentinel")
def _(ctx):
    """l -> ../../(...)/sentinel (reaches the sentinel if followed on the host), then writes."""
    t = Tar().symlink("l", up(ctx.S)).file("l/file.txt", "overwritten\n")
    t.file(f"l/{MARKER}-via-rel-sentinel", "x\n").file("l/sub/x", "overwritten\n")
    # Resolved in the layer root the link leads nowhere: no directory is made through it.
    return one_layer(ctx, t, error("l/file.txt: parent `l` is a symlink that leads to no directory inside the layer"))


@case("extract", "symlink-absolute-to-sentinel")
def _(ctx):
    """l -> /sentinel then l/file.txt and l/new (TestUntarSymlinkBreakout)."""
    t = Tar().symlink("l", ctx.S).file("l/file.txt", "overwritten\n")
    t.file(f"l/{MARKER}-via-abs", "x\n")
    return one_layer(ctx, t, error("l/file.txt: parent `l` is a symlink that leads to no directory inside the layer"))


@case("extract", "symlink-chain-to-sentinel")
def _(ctx):
    """a -> b -> /sentinel, then a/file.txt."""
    t = Tar().symlink("a", "b").symlink("b", ctx.S).file("a/file.txt", "overwritten\n")
    t.file(f"a/{MARKER}-via-chain", "x\n")
    return one_layer(ctx, t, error("a/file.txt: parent `a` is a symlink that leads to no directory inside the layer"))


@case("extract", "symlink-chain-relative-etc")
def _(ctx):
    """c -> d -> ../../../etc, then c/x: lands in the layer's own etc/."""
    t = Tar().dir("etc").symlink("c", "d").symlink("d", "../../../../../../../etc")
    t.file(f"c/{MARKER}-chain-etc", "x\n")
    return one_layer(ctx, t, contained(F(f"etc/{MARKER}-chain-etc", "x\n"),
                                       outside=[f"{MARKER}-chain-etc"]))


@case("extract", "symlink-to-root-then-etc")
def _(ctx):
    """r -> / then r/etc/x: lands in the layer's etc/."""
    t = Tar().symlink("r", "/").file(f"r/etc/{MARKER}-rootlink", "x\n")
    return one_layer(ctx, t, contained(F(f"etc/{MARKER}-rootlink", "x\n"), L("r", "/"),
                                       outside=[f"{MARKER}-rootlink"]))


@case("extract", "symlink-loop")
def _(ctx):
    """a -> b -> a, then a/x (ELOOP, not a hang)."""
    t = Tar().symlink("a", "b").symlink("b", "a").file(f"a/{MARKER}-loop", "x\n")
    return one_layer(ctx, t, error(f"open parent of `a/{MARKER}-loop`: Too many levels of "
                                   "symbolic links"), limits={"timeout": 30})


@case("extract", "symlink-proc-self-root")
def _(ctx):
    """p -> /proc/self/root (a magic link if followed on the host), then p/etc/x."""
    t = Tar().symlink("p", "/proc/self/root").file(f"p/etc/{MARKER}-procroot", "x\n")
    t.symlink("q", "/proc/self/cwd").file(f"q/{MARKER}-proccwd", "x\n")
    return one_layer(ctx, t, error(f"p/etc/{MARKER}-procroot: parent `p` is a symlink that leads to no directory inside the layer"))


@case("extract", "symlink-then-file-same-name")
def _(ctx):
    """s -> sentinel/file.txt, then a regular file s: must replace the link, not write through."""
    t = Tar().symlink("s", ctx.SF).file("s", "replaced\n", mode=0o600)
    t.symlink("r", up(ctx.SF)).file("r", "replaced too\n")
    return one_layer(ctx, t, contained(F("s", "replaced\n", mode="0600"),
                                       F("r", "replaced too\n")))


@case("extract", "symlink-then-dir-same-name")
def _(ctx):
    """s -> sentinel, then a directory s (mode 0700) and s/x."""
    t = Tar().symlink("s", ctx.S).dir("s", mode=0o700).file(f"s/{MARKER}-in-s", "x\n")
    return one_layer(ctx, t, contained(D("s", mode="0700"), F(f"s/{MARKER}-in-s", "x\n"),
                                       outside=[f"{MARKER}-in-s"]))


@case("extract", "parent-is-a-file")
def _(ctx):
    """nondir then nondir/x."""
    t = Tar().file("nondir", "plain\n").file(f"nondir/{MARKER}-under-file", "x\n")
    return one_layer(ctx, t, error(f"nondir/{MARKER}-under-file: parent `nondir` is not a directory "
                                   "in this layer"))


@case("extract", "root-entry-symlink")
def _(ctx):
    """An entry '.' of type symlink to the sentinel (umoci CVE-2021-29136)."""
    t = Tar().symlink(".", ctx.S).file(f"{MARKER}-after-root", "x\n")
    return one_layer(ctx, t, error("root"))


@case("extract", "root-entry-dotslash-symlink")
def _(ctx):
    """An entry './' of type symlink."""
    t = Tar().symlink("./", ctx.S).file(f"{MARKER}-after-root", "x\n")
    return one_layer(ctx, t, error("root"))


@case("extract", "root-entry-slash-symlink")
def _(ctx):
    """An entry '/' of type symlink, relative target reaching the sentinel."""
    t = Tar().symlink("/", up(ctx.S)).file(f"{MARKER}-after-root", "x\n")
    return one_layer(ctx, t, error("root"))


@case("extract", "root-entry-file")
def _(ctx):
    """An entry '.' of type regular file."""
    t = Tar().file(".", "not a directory\n").file(f"{MARKER}-after-root", "x\n")
    return one_layer(ctx, t, error("root"))


@case("extract", "root-entry-hardlink")
def _(ctx):
    """An entry '.' of type hardlink."""
    t = Tar().file("t", "t\n").hardlink(".", "t")
    return one_layer(ctx, t, error("root"))


@case("extract", "root-entry-dir-metadata")
def _(ctx):
    """A legitimate './' directory entry carrying a smuggled overlay opaque xattr."""
    t = Tar().dir("./", mode=0o755, pax=[("SCHILY.xattr.trusted.overlay.opaque", "y"),
                                         ("SCHILY.xattr.user.overlay.opaque", "y")])
    t.file("kept", "kept\n")
    return one_layer(ctx, t, contained(D("", absent_xattrs=list(OVERLAY_XATTRS)),
                                       F("kept", "kept\n")))


# ---- layer extraction: hardlinks ---------------------------------------------

@case("extract", "hardlink-outside-relative")
def _(ctx):
    """h -> ../../etc/passwd (go-archive TestUntarInvalidHardlink)."""
    return one_layer(ctx, Tar().hardlink(f"{MARKER}-h", "../../etc/passwd"), error("escapes"))


@case("extract", "hardlink-outside-deep")
def _(ctx):
    """h -> ../(x30)/sentinel/file.txt."""
    return one_layer(ctx, Tar().hardlink(f"{MARKER}-h", up(ctx.SF)), error("escapes"))


@case("extract", "hardlink-absolute-sentinel")
def _(ctx):
    """h -> /sentinel/file.txt (absolute): resolved in the layer, where it does not exist."""
    return one_layer(ctx, Tar().hardlink(f"{MARKER}-h", ctx.SF), error("hardlink target"))


@case("extract", "hardlink-absolute-mirrored")
def _(ctx):
    """The sentinel's path recreated inside the layer, then h -> /sentinel/file.txt: links the
    copy inside, never the host file (whose link count must not change)."""
    inner = ctx.SF.lstrip("/")
    t = Tar().file(inner, "inside copy\n").hardlink(f"{MARKER}-h", ctx.SF)
    return one_layer(ctx, t, contained(F(f"{MARKER}-h", "inside copy\n", same_inode_as=inner),
                                       F(inner, "inside copy\n")))


@case("extract", "hardlink-through-symlink")
def _(ctx):
    """sym -> /sentinel, then h -> sym/file.txt (CVE-2016-5418 shape)."""
    t = Tar().symlink("sym", ctx.S).hardlink(f"{MARKER}-h", "sym/file.txt")
    return one_layer(ctx, t, error("hardlink target"))


@case("extract", "hardlink-through-relative-symlink")
def _(ctx):
    """sym -> ../(x40)/etc, then h -> sym/passwd."""
    t = Tar().symlink("sym", up("/etc")).hardlink(f"{MARKER}-h", "sym/passwd")
    return one_layer(ctx, t, error(f"{MARKER}-h: hardlink target `sym/passwd`: No such file or "
                                   "directory"))


@case("extract", "hardlink-to-directory")
def _(ctx):
    """h -> d where d is a directory."""
    t = Tar().dir("d").hardlink(f"{MARKER}-h", "d")
    return one_layer(ctx, t, error("directory"))


@case("extract", "hardlink-to-root")
def _(ctx):
    """h -> ./ (the layer root itself)."""
    return one_layer(ctx, Tar().hardlink(f"{MARKER}-h", "./"), error("escapes"))


@case("extract", "hardlink-with-data")
def _(ctx):
    """A hardlink entry whose size is non-zero, followed by data blocks, then a normal file:
    the stream must stay in step."""
    t = Tar().file("t", "original\n").hardlink("h", "t", data=b"HARDDATA" * 64)
    t.file("after", "after\n")
    # A ustar hardlink's size is ignored (POSIX 1988, libarchive): its data blocks are read as
    # the next header, which fails its checksum.
    return one_layer(ctx, t, error("corrupt layer tar: Damaged tar archive"))


@case("extract", "hardlink-with-data-outside")
def _(ctx):
    """A hardlink with data whose target is the sentinel file (absolute)."""
    t = Tar().hardlink(f"{MARKER}-h", ctx.SF, data=b"PWNED\n")
    return one_layer(ctx, t, error(f"{MARKER}-h: hardlink target `{ctx.SF}`: No such file or "
                                   "directory"))


@case("extract", "hardlink-then-overwrite")
def _(ctx):
    """t, h -> t, then a regular file h: t must keep its content (no write through the link)."""
    t = Tar().file("t", "orig\n").hardlink("h", "t").file("h", "new\n")
    return one_layer(ctx, t, contained(F("t", "orig\n"), F("h", "new\n")))


@case("extract", "hardlink-to-symlink")
def _(ctx):
    """h -> s where s -> /sentinel/file.txt: links the symlink itself."""
    t = Tar().symlink("s", ctx.SF).hardlink("h", "s")
    return one_layer(ctx, t, contained(L("s", ctx.SF), L("h", ctx.SF, same_inode_as="s")))


@case("extract", "hardlinked-symlink-chmod")
def _(ctx):
    """containerd CVE-2021-32760: s -> sentinel file, h -> s, then entries for h with mode
    0777 / another owner; the same for a symlink to the sentinel directory."""
    t = Tar().symlink("s", ctx.SF).hardlink("h", "s", mode=0o777)
    t.hardlink("h", "s", mode=0o777, uid=4242, gid=4242)
    t.symlink("s2", ctx.S).hardlink("h2", "s2", mode=0o777)
    t.symlink("h2", ctx.S, mode=0o700, uid=4242, gid=4242, mtime=1)
    return one_layer(ctx, t, contained(L("h", ctx.SF), L("s", ctx.SF), L("h2", ctx.S)))


# ---- layer extraction: metadata through links ---------------------------------

@case("extract", "metadata-through-symlink")
def _(ctx):
    """A symlink to the sentinel file, then the same name again as a symlink with another
    mode, owner, mtime and a trusted xattr: only the link may change."""
    t = Tar().symlink("s", ctx.SF)
    t.symlink("s", ctx.SF, mode=0o600, uid=4242, gid=4343, mtime=12345,
              pax=[("SCHILY.xattr.trusted.imgtool-hostile", "1")])
    t.symlink("d", ctx.S)
    t.symlink("d", ctx.S, mode=0o700, uid=4242, gid=4343, mtime=1,
              pax=[("SCHILY.xattr.trusted.imgtool-hostile", "1")])
    # Rootless, the two trusted.* xattrs cannot be set (docs/rootless.md): skipped, counted.
    return one_layer(ctx, t, rootless(contained(L("s", ctx.SF, uid=4242, gid=4343),
                                                L("d", ctx.S, uid=4242)),
                                      stderr=[SKIPPED_XATTRS_NOTE.format(2)]))


@case("extract", "metadata-acl-through-symlink")
def _(ctx):
    """POSIX ACL and capability xattrs on a symlink to the sentinel (libarchive
    CVE-2021-23177)."""
    acl = "user::rwx,user:4242:rwx,group::r-x,mask::rwx,other::r-x"
    t = Tar().symlink("s", ctx.S, pax=[("SCHILY.acl.access", acl),
                                       ("SCHILY.xattr.system.posix_acl_access",
                                        b"\x02\x00\x00\x00" + b"\x01\x00\x07\x00\xff\xff\xff\xff")])
    t.symlink("f", ctx.SF, pax=[("SCHILY.xattr.security.capability", gen_images.vfs_cap_v2(21))])
    # The ACL cannot be set on a symlink (EOPNOTSUPP, skipped); the capability stays on the
    # link itself, never on the sentinel file (which the test fingerprints).
    return one_layer(ctx, t, contained(L("s", ctx.S, absent_xattrs=["system.posix_acl_access"]),
                                       L("f", ctx.SF)))


@case("extract", "dir-replaced-by-symlink")
def _(ctx):
    """libarchive CVE-2021-31566: d (0700, mtime 1) then d -> sentinel: the deferred chmod and
    utimes must not follow the later symlink.  Same with a relative link."""
    t = Tar().dir("d", mode=0o700, mtime=1).symlink("d", ctx.S)
    t.dir("e", mode=0o700, mtime=1).file("e/x", "x\n").symlink("e", up(ctx.S))
    t.dir("f/g", mode=0o700, mtime=1).symlink("f", ctx.S)
    return one_layer(ctx, t, contained(L("d", ctx.S), L("e", up(ctx.S)), L("f", ctx.S)))


@case("extract", "dir-replaced-by-symlink-xattr")
def _(ctx):
    """A directory with a trusted xattr replaced by a symlink to the sentinel."""
    t = Tar().dir("d", mode=0o777, pax=[("SCHILY.xattr.trusted.imgtool-hostile", "1")])
    t.symlink("d", ctx.S)
    return one_layer(ctx, t, rootless(contained(L("d", ctx.S)),
                                      stderr=[SKIPPED_XATTRS_NOTE.format(1)]))


@case("extract", "dir-replaced-by-hardlink")
def _(ctx):
    """A directory with a child, then a hardlink of the same name to a file."""
    t = Tar().dir("d", mode=0o700).file("d/x", "x\n").file("t", "t\n").hardlink("d", "t")
    return one_layer(ctx, t, contained(F("d", "t\n", same_inode_as="t")))


@case("extract", "owner-out-of-range")
def _(ctx):
    """uid 2^40 in a base-256 field."""
    return one_layer(ctx, Tar().file(f"{MARKER}-uid", "x\n", uid=b256(1 << 40, 8)),
                     error("out of range"))


@case("extract", "owner-negative")
def _(ctx):
    """uid -1 in a base-256 field (two's complement)."""
    return one_layer(ctx, Tar().file(f"{MARKER}-uid", "x\n", uid=b256(-1, 8)),
                     error(f"{MARKER}-uid: owner id out of range"))


# ---- layer extraction: names and duplicates -----------------------------------

@case("extract", "name-with-newline")
def _(ctx):
    """An entry name with a newline and a fake error line, made to fail: the error must still
    be one line."""
    t = Tar().hardlink("a" + INJECTED, "nowhere" + INJECTED)
    return one_layer(ctx, t, error("does not exist"))


@case("extract", "name-with-escapes")
def _(ctx):
    """Terminal escapes and a carriage return in a refused name."""
    return one_layer(ctx, Tar().file("../\x1b[2J\r\x1b]0;pwned\x07" + MARKER, "x\n"),
                     error("escapes"))


@case("extract", "nul-in-pax-path")
def _(ctx):
    """A PAX path with a NUL byte: the name after the NUL must never be used."""
    t = Tar().file(f"{MARKER}-nul", "x\n",
                   pax=[("path", f"{MARKER}-nul\0/../../../{MARKER}-after-nul".encode())])
    return one_layer(ctx, t, contained(F(f"{MARKER}-nul", "x\n"),
                                       outside=[f"{MARKER}-after-nul"]))


@case("extract", "name-max-component")
def _(ctx):
    """A 300-character component (> NAME_MAX)."""
    return one_layer(ctx, Tar().file(MARKER + "x" * 300, "x\n"),
                     error(f"create `{MARKER}xxx", "`: File name too long"))


@case("extract", "name-path-max")
def _(ctx):
    """A 5000-character path (> PATH_MAX) of 200-character components."""
    name = "/".join(["d" * 200] * 25) + f"/{MARKER}-long"
    # Refused up front (docs/security.md), before any directory of it is made.
    return one_layer(ctx, Tar().file(name, "x\n"),
                     error(": " + "d" * 40, ": path longer than PATH_MAX"))


@case("extract", "duplicate-last-wins")
def _(ctx):
    """The same file three times: the last one wins."""
    t = Tar().file("f", "first\n").file("f", "second\n", mode=0o600).file("g", "g\n")
    t.file("f", "third\n", mode=0o640)
    return one_layer(ctx, t, contained(F("f", "third\n", mode="0640"), F("g", "g\n")))


@case("extract", "file-dir-symlink-same-name")
def _(ctx):
    """x as a file, then a directory with a child, then a symlink, in one layer."""
    t = Tar().file("x", "file\n").dir("x").file("x/y", "y\n").symlink("x", "target")
    return one_layer(ctx, t, contained(L("x", "target")))


@case("extract", "symlink-dir-file-same-name")
def _(ctx):
    """y -> sentinel, then y/ as a directory, then y as a file."""
    t = Tar().symlink("y", ctx.S).dir("y").file("y", "file\n")
    return one_layer(ctx, t, contained(F("y", "file\n")))


@case("extract", "pax-global-path")
def _(ctx):
    """A PAX global header ('g') with path=../x and linkpath=/sentinel: never applies to
    the entries that follow as an escape. GNU tar and Python would apply it to every later
    entry (libarchive and Go ignore it), so the layer is refused (category "ambiguous")."""
    t = Tar().pax([("path", f"../{MARKER}-global"), ("linkpath", ctx.S)], typeflag=b"g")
    t.file("f", "f\n").symlink("s", "target")
    return one_layer(ctx, t, dict(error("entry 1 (f): a PAX global header that sets path"),
                                  outside=[f"{MARKER}-global"]))


@case("extract", "unknown-typeflag")
def _(ctx):
    """Entries with type flags 'Z' (unknown, with data) and '7' (contiguous file)."""
    t = Tar().add(f"{MARKER}-z", "file", "zzz\n", typeflag=b"Z")
    t.add("contiguous", "file", "seven\n", typeflag=b"7").file("after", "after\n")
    # POSIX: an unknown type flag is read as a regular file.
    return one_layer(ctx, t, contained(F(f"{MARKER}-z", "zzz\n"), F("contiguous", "seven\n"),
                                       F("after", "after\n")))


@case("extract", "cleanup-through-symlinks")
def _(ctx):
    """Symlinks to the sentinel (absolute, relative, to its files and its sub directory,
    inside directories), then an entry that fails: removing the staging directory must never
    follow them (buildkit CVE-2024-23652)."""
    t = Tar().symlink("abs", ctx.S).symlink("rel", up(ctx.S)).symlink("file", ctx.SF)
    t.dir("d").symlink("d/sub", ctx.S + "/sub").symlink("d/up", up(ctx.S + "/sub"))
    t.dir("e").symlink("e/f", "../abs").hardlink("e/h", "abs")
    t.file(f"../{MARKER}-fail", "x\n")
    return one_layer(ctx, t, error("escapes"))


@case("extract", "hardlink-link-limit")
def _(ctx):
    """70,000 hardlinks to one file (ext4 allows 65,000): a clean error or success."""
    t = Tar().file("t", "target\n")
    for i in range(70000):
        t.hardlink(f"h{i:05d}", "t")
    # ext4 (where the tests' stores live) stops at 65,000 links: link 65,000 fails.
    return one_layer(ctx, t, error("link `h64999`: Too many links"), level=1,
                     limits={"max_rss_mb": 100, "max_seconds": 30, "timeout": 120})


@case("extract", "setuid-file")
def _(ctx):
    """A setuid-root, setgid file and a world-writable directory: kept as they are, and the
    store must not be reachable by other users (containerd CVE-2021-41103, moby CVE-2021-41091)."""
    t = Tar().file("suid", b"#!/bin/sh\nid\n", mode=0o6755).dir("open", mode=0o1777)
    return one_layer(ctx, t, contained(F("suid", mode="6755"), D("open", mode="1777")))


# ---- whiteouts ------------------------------------------------------------------

@case("whiteout", "wh-dot")
def _(ctx):
    """.wh.. (would whiteout the directory itself)."""
    return one_layer(ctx, Tar().file(".wh..", ""), error("whiteout"))


@case("whiteout", "wh-dotdot")
def _(ctx):
    """.wh... (would whiteout the parent)."""
    return one_layer(ctx, Tar().dir("a").file("a/.wh...", ""), error("whiteout"))


@case("whiteout", "wh-empty")
def _(ctx):
    """.wh. (empty target)."""
    return one_layer(ctx, Tar().file(".wh.", ""), error("whiteout"))


@case("whiteout", "wh-dir-dot")
def _(ctx):
    """dir/.wh.. (containerd TestBreakouts)."""
    return one_layer(ctx, Tar().dir("dir").file("dir/.wh..", ""), error("whiteout"))


@case("whiteout", "wh-under-symlink")
def _(ctx):
    """l -> /sentinel, then l/.wh.file.txt: must not delete the sentinel's file. The whiteout's parent
    leads to no directory inside the layer, so it hides nothing and is dropped (containerd: a no-op)."""
    t = Tar().symlink("l", ctx.S).file("l/.wh.file.txt", "").file("l/.wh.sub", "")
    return one_layer(ctx, t, contained(L("l", ctx.S)))


@case("whiteout", "wh-under-relative-symlink")
def _(ctx):
    """l -> ../(x40)/sentinel, then l/.wh.file.txt: dropped, as under an absolute link."""
    t = Tar().symlink("l", up(ctx.S)).file("l/.wh.file.txt", "").file("l/.wh.sub", "")
    return one_layer(ctx, t, contained(L("l", up(ctx.S))))


@case("whiteout", "wh-of-symlink-in-layer")
def _(ctx):
    """s -> sentinel, then .wh.s: a whiteout hides lower layers only (image-spec; umoci, containerd):
    the layer's own link stays, and nothing is done through it."""
    t = Tar().symlink("s", ctx.S).file(".wh.s", "")
    return one_layer(ctx, t, contained(L("s", ctx.S)))


@case("whiteout", "wh-typed-symlink")
def _(ctx):
    """.wh.foo as a symlink to the sentinel: whiteouts are names, not types."""
    t = Tar().symlink(".wh.foo", ctx.S)
    return one_layer(ctx, t, contained(C("foo", "0:0"), ABSENT(".wh.foo")))


@case("whiteout", "opaque-under-symlink")
def _(ctx):
    """l -> /sentinel, then l/.wh..wh..opq: no overlay xattr on the sentinel."""
    t = Tar().symlink("l", ctx.S).file("l/.wh..wh..opq", "")
    t.symlink("m", up(ctx.S)).file("m/.wh..wh..opq", "")
    return one_layer(ctx, t, contained(L("l", ctx.S), L("m", up(ctx.S))))


@case("whiteout", "opaque-under-symlink-inside")
def _(ctx):
    """l -> ../../../../etc, then l/.wh..wh..opq: the layer's own etc/ becomes opaque."""
    t = Tar().dir("etc").symlink("l", "../../../../etc").file("l/.wh..wh..opq", "")
    return one_layer(ctx, t, contained(D("etc", xattrs={"trusted.overlay.opaque": "y"}),
                                       L("l", "../../../../etc")))


@case("whiteout", "pax-overlay-xattrs")
def _(ctx):
    """SCHILY.xattr.trusted.overlay.{opaque,redirect,origin,metacopy} and user.overlay.* in
    PAX headers: never set on the layer (containerd refuses them)."""
    xs = [("SCHILY.xattr.trusted.overlay.opaque", "y"),
          ("SCHILY.xattr.trusted.overlay.redirect", "/etc"),
          ("SCHILY.xattr.trusted.overlay.origin", b"\x00\xfb"),
          ("SCHILY.xattr.trusted.overlay.metacopy", ""),
          ("SCHILY.xattr.user.overlay.opaque", "y"),
          ("SCHILY.xattr.user.overlay.redirect", "/etc")]
    t = Tar().dir("d", pax=xs).file("d/x", "x\n", pax=xs).dir("e/", pax=xs)
    return one_layer(ctx, t, contained(
        D("d", absent_xattrs=list(OVERLAY_XATTRS)),
        F("d/x", "x\n", absent_xattrs=list(OVERLAY_XATTRS)),
        D("e", absent_xattrs=list(OVERLAY_XATTRS))))


@case("whiteout", "raw-chardev-0-0")
def _(ctx):
    """A raw character device 0:0 that is not named .wh.*."""
    return one_layer(ctx, Tar().add("x", "char", dev=(0, 0)), error("0:0"))


@case("whiteout", "meta-whiteouts")
def _(ctx):
    """.wh..wh.plnk and other .wh..wh.* metadata names are ignored, not created."""
    t = Tar().file(".wh..wh.plnk", "").file(".wh..wh.aufs", "").file("kept", "kept\n")
    return one_layer(ctx, t, contained(F("kept", "kept\n"), ABSENT(".wh..wh.plnk"),
                                       ABSENT(".wh..wh.aufs")))


# ---- device nodes -----------------------------------------------------------------

@case("device", "dev-major-5000-ustar")
def _(ctx):
    """Character device 5000:1 (major above 4095) in ustar octal fields."""
    return one_layer(ctx, Tar().add("dev5000", "char", dev=(5000, 1)), error("out of range"))


@case("device", "dev-major-pax")
def _(ctx):
    """Block device with SCHILY.devmajor=5000 in a PAX header."""
    t = Tar().add("blk5000", "block", dev=(8, 0),
                  pax=[("SCHILY.devmajor", "5000"), ("SCHILY.devminor", "0")])
    return one_layer(ctx, t, error("out of range"))


@case("device", "dev-major-base256")
def _(ctx):
    """Device major 2^40 in a base-256 field (would be truncated by makedev)."""
    t = Tar().add("devhuge", "char", dev=(b256((1 << 40) + 1, 8), 3))
    return one_layer(ctx, t, error("devhuge: device number 1099511627777:3 out of range"))


@case("device", "dev-minor-huge")
def _(ctx):
    """Device minor 2^20 (one above the kernel's range)."""
    t = Tar().add("devminor", "char", dev=(1, 1 << 20))
    return one_layer(ctx, t, error("out of range"))


@case("device", "dev-negative")
def _(ctx):
    """Device major -1 in a base-256 field."""
    t = Tar().add("devneg", "block", dev=(b256(-1, 8), 0))
    return one_layer(ctx, t, error("devneg: device number", "out of range"))


# ---- resource abuse ------------------------------------------------------------------

BOMB_FILE = 512 * MiB      # one file of zeros: written to disk if accepted
BOMB_TRAILING = 1 * GiB    # zeros after the tar's end blocks: decompressed and hashed only
BOMB_HEAD = header(f"{MARKER}-bomb", size=BOMB_FILE)  # shared by the gzip and zstd bombs
SMALL_TAR = Tar().file("small", "small\n").bytes()     # shared by the trailing bombs


@case("resource", "gzip-bomb-file")
def _(ctx):
    """One file of 512 MiB of zeros in 0.5 MB of gzip (~1000:1): peak RSS stays small."""
    blob, diff_id = gzip_fill(BOMB_HEAD, 0, BOMB_FILE, EOF_BLOCKS)
    return blob_case(ctx, Blob(MT_LAYER["gzip"], blob, diff_id),
                     contained(F(f"{MARKER}-bomb", size=BOMB_FILE)),
                     limits={"max_rss_mb": 100, "max_seconds": 20, "timeout": 120})


@case("resource", "gzip-bomb-trailing")
def _(ctx):
    """1 GiB of zeros after the tar's end blocks (part of the diff_id, never written)."""
    blob, diff_id = gzip_fill(SMALL_TAR, 0, BOMB_TRAILING, b"")
    return blob_case(ctx, Blob(MT_LAYER["gzip"], blob, diff_id),
                     contained(F("small", "small\n")),
                     limits={"max_rss_mb": 100, "max_seconds": 20, "timeout": 120})


@case("resource", "zstd-bomb-rle")
def _(ctx):
    """zstd RLE blocks: the same 512 MiB file from 16 kB, 1 MiB window."""
    blob, diff_id = zstd_rle(BOMB_HEAD, 0, BOMB_FILE, EOF_BLOCKS, window_log=20)
    return blob_case(ctx, Blob(MT_LAYER["zstd"], blob, diff_id),
                     contained(F(f"{MARKER}-bomb", size=BOMB_FILE)),
                     limits={"max_rss_mb": 100, "max_seconds": 20, "timeout": 120})


@case("resource", "zstd-window-2g")
def _(ctx):
    """A zstd frame claiming a 2 GiB window (windowLog 31): refused or bounded."""
    blob, diff_id = zstd_rle(SMALL_TAR, 0, BOMB_TRAILING, b"", window_log=31)
    return blob_case(ctx, Blob(MT_LAYER["zstd"], blob, diff_id),
                     error("corrupt zstd stream: Frame requires too much memory for decoding"),
                     limits={"max_rss_mb": 200, "max_seconds": 20, "timeout": 120})


@case("resource", "zstd-window-128m")
def _(ctx):
    """A zstd frame with a 128 MiB window (windowLog 27, zstd's default decoder maximum) and
    1 GiB of zeros after the tar: the decoder's window is the only large allocation."""
    blob, diff_id = zstd_rle(SMALL_TAR, 0, BOMB_TRAILING, b"", window_log=27)
    return blob_case(ctx, Blob(MT_LAYER["zstd"], blob, diff_id),
                     contained(F("small", "small\n")),
                     limits={"max_rss_mb": 200, "max_seconds": 20, "timeout": 120})


@case("resource", "zstd-single-segment-1t")
def _(ctx):
    """A single-segment zstd frame declaring 1 TiB of content (window = content size)."""
    blob, diff_id = zstd_rle(SMALL_TAR, 0, 0, b"", window_log=0, single_segment_size=TiB)
    return blob_case(ctx, Blob(MT_LAYER["zstd"], blob, diff_id),
                     error("corrupt zstd stream: Frame requires too much memory for decoding"),
                     limits={"max_rss_mb": 100, "timeout": 60})


@case("resource", "sparse-gnu-old-1t")
def _(ctx):
    """Old GNU sparse entry ('S') with a real size of 1 TiB and two 512-byte chunks: the file
    must be sparse on disk (moby #5419) or refused."""
    chunks = [(0, b"H" * 512), (TiB - 512, b"T" * 512)]
    t = Tar().raw(gnu_sparse_old(f"{MARKER}-sparse", TiB, chunks)).file("after", "after\n")
    return one_layer(ctx, t, contained(F(f"{MARKER}-sparse", size=TiB, max_allocated=4 * MiB),
                                       F("after", "after\n")),
                     limits={"max_rss_mb": 100, "max_seconds": 20})


@case("resource", "sparse-pax-1t")
def _(ctx):
    """PAX sparse 1.0 (GNU.sparse.major=1) claiming 1 TiB."""
    chunks = [(0, b"H" * 512), (TiB // 2, b"M" * 512), (TiB - 512, b"T" * 512)]
    t = Tar().raw(pax_sparse_10(f"{MARKER}-psparse", TiB, chunks)).file("after", "after\n")
    return one_layer(ctx, t, contained(F(f"{MARKER}-psparse", size=TiB,
                                         max_allocated=4 * MiB), F("after", "after\n")),
                     limits={"max_rss_mb": 100, "max_seconds": 20})


@case("resource", "sparse-map-bomb")
def _(ctx):
    """A PAX sparse map that claims 10^9 entries and supplies two."""
    t = Tar().raw(pax_sparse_10(f"{MARKER}-mapbomb", TiB, [(0, b"x" * 512)], count=10 ** 9))
    return one_layer(ctx, t, error("corrupt layer tar: Line too long"),
                     limits={"max_rss_mb": 100, "max_seconds": 20})


def _many_entries_tar(dirs: int, per_dir: int) -> bytes:
    """dirs x per_dir empty files, headers from a template (200k headers in a second)."""
    parts = []
    template = bytearray(header(b"", b"0", size=0))
    template[148:156] = b" " * 8
    base_sum = sum(template)
    for d in range(dirs):
        parts.append(header(f"m{d:03d}/", b"5", mode=0o755))
        for i in range(per_dir):
            name = f"m{d:03d}/f{i:04d}".encode()
            h = bytearray(template)
            h[0:len(name)] = name
            h[148:156] = b"%06o\0 " % (base_sum + sum(name))
            parts.append(bytes(h))
    parts.append(EOF_BLOCKS)
    return b"".join(parts)


@case("resource", "many-entries")
def _(ctx):
    """200,000 empty files in 200 directories."""
    return one_layer(ctx, _many_entries_tar(200, 1000),
                     contained(F("m000/f0000", ""), F("m199/f0999", "")), level=1,
                     limits={"max_rss_mb": 100, "max_seconds": 30, "timeout": 120},
                     big_tree=True)


@case("resource", "many-opaque-dirs")
def _(ctx):
    """20,000 directories each with an opaque marker (containerd GHSA-rp3h-jf77-q9p4: quadratic
    unpack)."""
    t = Tar()
    for i in range(20000):
        t.dir(f"o{i:05d}").file(f"o{i:05d}/.wh..wh..opq", "")
    return one_layer(ctx, t, contained(D("o19999", xattrs={"trusted.overlay.opaque": "y"})),
                     level=1, limits={"max_rss_mb": 100, "max_seconds": 20, "timeout": 120},
                     big_tree=True)


@case("resource", "deep-directories")
def _(ctx):
    """10,000 nested directories, reachable with short names through 8 relative symlinks
    (each name under 2.6 kB): clean error or success, no crash, tmp/ empty."""
    t, chunk = Tar(), 1250
    for k in range(8):
        base = f"s{k}/" if k else ""
        for j in range(1, chunk + 1):
            t.dir(base + "a/" * j)
        t.symlink(f"s{k + 1}", base + "/".join(["a"] * chunk))
    t.file(f"s8/{MARKER}-deep", "bottom\n")
    return one_layer(ctx, t, contained(F(f"s8/{MARKER}-deep", "bottom\n", follow=True)),
                     level=1, limits={"max_rss_mb": 100, "max_seconds": 60, "timeout": 180},
                     big_tree=True, deep=True)


@case("resource", "pax-record-100mib")
def _(ctx):
    """A PAX extended header of 100 MiB (one path record): refused, memory bounded (Go
    CVE-2022-2879, libarchive "Special header too large")."""
    n = 100 * MiB  # a multiple of 512: no padding
    start = b"%d path=" % n
    head = header(b"PaxHeader", b"x", size=n) + start
    tail = b"\n" + Tar().file(f"{MARKER}-after-pax", "x\n").bytes()
    blob, diff_id = gzip_fill(head, ord("a"), n - len(start) - 1, tail)
    return blob_case(ctx, Blob(MT_LAYER["gzip"], blob, diff_id),
                     error("corrupt layer tar: Special header too large"),
                     limits={"max_rss_mb": 100, "max_seconds": 20, "timeout": 120})


@case("resource", "gnu-longname-100mib")
def _(ctx):
    """A GNU long-name ('L') header of 100 MiB."""
    n = 100 * MiB
    head = header(b"././@LongLink", b"L", size=n, gnu=True)
    tail = b"\0" + Tar().file(f"{MARKER}-after-longname", "x\n", gnu_names=True).bytes()
    blob, diff_id = gzip_fill(head, ord("b"), n - 1, tail)
    return blob_case(ctx, Blob(MT_LAYER["gzip"], blob, diff_id),
                     error("corrupt layer tar: Special header too large"),
                     limits={"max_rss_mb": 100, "max_seconds": 20, "timeout": 120})


@case("resource", "pax-many-xattrs")
def _(ctx):
    """One file with 20,000 xattr records (840 kB of PAX header, under libarchive's 1 MiB)."""
    recs = [(f"SCHILY.xattr.trusted.h{i:05d}", "v" * 8) for i in range(20000)]
    t = Tar().file(f"{MARKER}-xattrs", "x\n", pax=recs)
    # ext4 keeps an inode's xattrs in one block: root fails on the first that does not fit
    # (libarchive hands them over last first).  Rootless, trusted.* is skipped and counted.
    expect = rootless(error(f"setxattr `{MARKER}-xattrs (trusted.h", "No space left on device"),
                      outcome="contained",
                      inside=[F(f"{MARKER}-xattrs", "x\n",
                                absent_xattrs=["trusted.h00000", "trusted.h19999"])],
                      stderr=[SKIPPED_XATTRS_NOTE.format(20000)])
    return one_layer(ctx, t, expect, limits={"max_rss_mb": 100, "max_seconds": 20})


@case("resource", "huge-size-field")
def _(ctx):
    """A regular file whose base-256 size field says 2^62 bytes, then end of stream."""
    t = Tar().raw(header(f"{MARKER}-huge", size=b256(1 << 62, 12)) + b"x" * BLOCK)
    return one_layer(ctx, t.bytes(end=False),
                     error(f"{MARKER}-huge: corrupt layer tar: Truncated tar archive"),
                     limits={"max_rss_mb": 100, "max_seconds": 20})


@case("resource", "truncated-tar")
def _(ctx):
    """An uncompressed layer cut in the middle of a file's data (blob digest matches)."""
    full = Tar().file("a", "a\n").file("big", b"z" * 10000).bytes()
    return one_layer(ctx, full[:BLOCK * 4], error("big: corrupt layer tar: Truncated tar archive"),
                     compression="none")


@case("resource", "truncated-gzip")
def _(ctx):
    """A gzip layer cut in half (blob digest matches the cut bytes)."""
    data = Tar().file("a", "a\n").file("big", bytes(range(256)) * 200).bytes()
    blob = gz(data)
    return blob_case(ctx, Blob(MT_LAYER["gzip"], blob[:len(blob) // 2],
                               "sha256:" + sha256_hex(data)),
                     error("corrupt gzip stream: truncated"))


@case("resource", "garbage-after-gzip-magic")
def _(ctx):
    """gzip magic followed by garbage."""
    junk = b"\x1f\x8b\x08\x00" + hashlib.sha512(b"imgtool hostile").digest() * 8
    return blob_case(ctx, Blob(MT_LAYER["gzip"], junk, "sha256:" + sha256_hex(b"")),
                     error("corrupt gzip stream"))


@case("resource", "gzip-trailing-garbage")
def _(ctx):
    """A valid gzip member followed by non-gzip bytes."""
    data = Tar().file("a", "a\n").bytes()
    blob = gz(data) + b"GARBAGE!" * 8
    return blob_case(ctx, Blob(MT_LAYER["gzip"], blob, "sha256:" + sha256_hex(data)),
                     error("corrupt gzip stream: trailing garbage after the last member"))


@case("resource", "empty-layer-blob")
def _(ctx):
    """A layer blob of 0 bytes (diff_id of the empty stream): an empty layer, as Go's tar
    reader (podman, umoci) reads it."""
    return blob_case(ctx, Blob(MT_LAYER["none"], b"", "sha256:" + sha256_hex(b"")), contained())


@case("resource", "tar-without-end-blocks")
def _(ctx):
    """A layer that stops right after its last file's data: no block padding, no end-of-archive
    blocks (what umoci 0.4.7's insert writes). Go's reader takes it whole; so must we."""
    full = Tar().dir("etc").file("etc/first", "first\n").file("etc/last", "last\n").bytes(end=False)
    return one_layer(ctx, full[:-(BLOCK - len("last\n"))],
                     contained(F("etc/first", "first\n"), F("etc/last", "last\n")))


@case("resource", "tar-cut-inside-last-data")
def _(ctx):
    """A layer cut a few bytes into its last file's data, no end blocks; its diff_id is the cut
    stream's, so only where the stream ended says it is truncated (zeros must not complete it)."""
    full = Tar().file("a", "a\n").file("last", "0123456789\n").bytes(end=False)
    return one_layer(ctx, full[:-(BLOCK - 4)], error("truncated"))


@case("resource", "killed-during-unpack")
def _(ctx):
    """imgtool is SIGKILLed while unpacking a layer that starts with symlinks to the sentinel
    and continues with a slow 512 MiB file; the next imgtool command clears tmp/ and must not
    follow the links (buildkit CVE-2024-23652).  The test kills once kill_marker exists in
    tmp/."""
    head = Tar().symlink(f"{MARKER}-kill-link", ctx.S).symlink("rel", up(ctx.S))
    head.dir("d").symlink("d/sub", ctx.S + "/sub").symlink("d/file", ctx.SF)
    prefix = head.bytes(end=False) + header("zeros", size=BOMB_FILE)
    blob, diff_id = gzip_fill(prefix, 0, BOMB_FILE, EOF_BLOCKS)
    out = blob_case(ctx, Blob(MT_LAYER["gzip"], blob, diff_id), {"outcome": "killed"},
                    limits={"timeout": 120})
    out["verb"] = "pull-kill"
    out["kill_marker"] = f"{MARKER}-kill-link"
    return out


@case("resource", "zero-blocks-layer")
def _(ctx):
    """A layer that is only the two end-of-archive blocks."""
    return one_layer(ctx, EOF_BLOCKS, contained(D("")), compression="none")


# ---- image level ------------------------------------------------------------------------

@case("image", "bytes-after-tar-end")
def _(ctx):
    """Data hidden after the tar's end blocks, left out of the config's diff_id: the diff_id
    covers the whole uncompressed stream (containerd core/unpack)."""
    tar = Tar().dir("etc").file("etc/visible", "visible\n").bytes()
    hidden = layer(tar + b"hidden payload after the end of the archive\n" * 20)

    def config(c):
        c["rootfs"]["diff_ids"][0] = "sha256:" + sha256_hex(tar)
    return image_case(ctx, error("diff_id mismatch"), layers=[hidden], config_hook=config)


@case("image", "cross-layer-hardlink")
def _(ctx):
    """Layer 2 hardlinks to a file of layer 1 (undefined, image-spec #1204): layer 1's file
    must not gain a link from another layer's directory."""
    lower = layer(Tar().dir("etc").file("etc/lower", "lower\n"))
    upper = layer(Tar().dir("etc").hardlink(f"etc/{MARKER}-xlink", "etc/lower"))
    # Layer 2 is unpacked on its own: its hardlink's target is not in it.
    return image_case(ctx, error(f"etc/{MARKER}-xlink: hardlink target etc/lower does not exist"),
                      layers=[lower, upper])



def _flip(files, img):
    name = img.layer_members[0]
    data = bytearray(files[name])
    data[len(data) // 2] ^= 0x01
    files[name] = bytes(data)


@case("image", "blob-byte-flipped")
def _(ctx):
    """One bit flipped in the middle of the layer blob."""
    return image_case(ctx, error("digest mismatch"), files_hook=_flip)


def _size_delta(delta):
    def hook(m):
        m["layers"][0]["size"] += delta
    return hook


@case("image", "descriptor-size-larger")
def _(ctx):
    """The layer descriptor claims one byte more than the blob has."""
    return image_case(ctx, error("size mismatch"), manifest_hook=_size_delta(+1))


@case("image", "descriptor-size-smaller")
def _(ctx):
    """The layer descriptor claims one byte less (never read past it)."""
    return image_case(ctx, error("size mismatch"), manifest_hook=_size_delta(-1))


@case("image", "descriptor-size-max")
def _(ctx):
    """The layer descriptor claims 2^64-1 bytes."""
    def hook(m):
        m["layers"][0]["size"] = 2 ** 64 - 1
    return image_case(ctx, error("size"), manifest_hook=hook)


@case("image", "config-size-smaller")
def _(ctx):
    """The config descriptor claims fewer bytes than the config has."""
    def hook(m):
        m["config"]["size"] -= 10
    return image_case(ctx, error("size mismatch"), manifest_hook=hook)


@case("image", "diff-id-mismatch")
def _(ctx):
    """The config's diff_id is not the uncompressed layer's digest."""
    def hook(c):
        c["rootfs"]["diff_ids"][0] = "sha256:" + sha256_hex(b"not the layer")
    return image_case(ctx, error("diff_id mismatch"), config_hook=hook)


@case("image", "diff-id-count")
def _(ctx):
    """Two layers in the manifest, one diff_id in the config."""
    def hook(c):
        del c["rootfs"]["diff_ids"][1]
    return image_case(ctx, error("diff_ids"), layers=[small_layer("a"), small_layer("b")],
                      config_hook=hook)


@case("image", "missing-config")
def _(ctx):
    """The config blob is absent."""
    def hook(files, img):
        cfg = json.loads(files[blob_name(img.manifest_desc["digest"])])["config"]["digest"]
        del files[blob_name(cfg)]
    return image_case(ctx, error("missing"), files_hook=hook)


@case("image", "missing-layer")
def _(ctx):
    """The layer blob is absent."""
    def hook(files, img):
        del files[img.layer_members[0]]
    return image_case(ctx, error("missing"), files_hook=hook)


@case("image", "recompressed-layer")
def _(ctx):
    """The layer recompressed (same diff_id, valid gzip) under the original digest: unpacks
    fine, but the blob digest is wrong and nothing may be committed."""
    tar = Tar().dir("etc").file("etc/recompressed", "x\n" * 500).bytes()
    orig = layer(tar)

    def manifest(m):
        m["layers"][0]["size"] = len(gz(tar, 1))

    def files_hook(files, img):
        files[img.layer_members[0]] = gz(tar, 1)
    assert gz(tar, 1) != orig.data
    return image_case(ctx, error("digest mismatch"), layers=[orig], manifest_hook=manifest,
                      files_hook=files_hook)


@case("image", "foreign-layer-urls")
def _(ctx):
    """A non-distributable layer with urls and no blob: must not be fetched (CVE-2020-15157)."""
    blob = small_layer("foreign")

    def manifest(m):
        m["layers"][0]["mediaType"] = MT_NONDIST
        m["layers"][0]["urls"] = ["http://127.0.0.1:9/" + MARKER, "file:///etc/passwd"]

    def files_hook(files, img):
        del files[img.layer_members[0]]
    return image_case(ctx, error("never fetched"), layers=[blob], manifest_hook=manifest,
                      files_hook=files_hook)


@case("image", "unknown-layer-media-type")
def _(ctx):
    """A layer media type nobody knows."""
    def manifest(m):
        m["layers"][0]["mediaType"] = "application/vnd.example.hostile.layer+exe"
    return image_case(ctx, error("unsupported media type"), manifest_hook=manifest)


@case("image", "layer-media-type-newline")
def _(ctx):
    """A layer media type with a newline and a fake second error line: one line on stderr."""
    def manifest(m):
        m["layers"][0]["mediaType"] = "application/x" + INJECTED
    return image_case(ctx, error("unsupported media type"), manifest_hook=manifest)


@case("image", "index-media-type-newline")
def _(ctx):
    """An index entry whose media type carries a newline."""
    def index(i):
        i["manifests"][0]["mediaType"] = "application/x" + INJECTED
    return image_case(ctx, error("unsupported media type"), index_hook=index)


@case("image", "index-platform-newline")
def _(ctx):
    """The only index entry is for a platform whose name carries a newline (it is listed in
    the 'no image for platform' error)."""
    def index(i):
        i["manifests"][0]["platform"] = {"os": "linux" + INJECTED, "architecture": "hostile"}
    return image_case(ctx, error("platform"), index_hook=index)


# ---- ref names: org.opencontainers.image.ref.name is the image author's text (docs/store.md) ----

def _ref_name_case(ctx, ref: str, expect: dict) -> dict:
    """The layout's only entry carries ref.name `ref` and no containerd name."""
    def index(i):
        i["manifests"][0]["annotations"] = {ANN_REF_NAME: ref}
    return image_case(ctx, expect, index_hook=index)


@case("image", "refname-dotdot")
def _(ctx):
    """ref.name "a/../b": a path, not a name (podman load refuses it too)."""
    return _ref_name_case(ctx, "a/../b", error("ref name", "a/../b", "not a valid image name"))


@case("image", "refname-injected-line")
def _(ctx):
    """ref.name with a newline, a fake second error line and a terminal escape: one escaped line."""
    return _ref_name_case(ctx, "v1\x1b[2J" + INJECTED, error("ref name", "not a valid image name"))


@case("image", "refname-long-tag")
def _(ctx):
    """ref.name "app:" + 200 characters: longer than a tag may be (128)."""
    return _ref_name_case(ctx, "app:" + "t" * 200, error("ref name", "not a valid image name", "bad tag"))


@case("image", "refname-upper-case")
def _(ctx):
    """A bare ref "V2" would become the repository localhost/V2: repository names are lower-case."""
    return _ref_name_case(ctx, "V2", error("ref name", "V2", "lower-case"))


@case("image", "refname-duplicate")
def _(ctx):
    """Two different images with the same ref.name "v1": which one would it name?"""
    other = oci_image([small_layer("other")], ctx.tag)

    def files_hook(files, img):
        files.update({k: v for k, v in other.files.items() if k.startswith("blobs/")})
        first = dict(img.manifest_desc, annotations={ANN_REF_NAME: "v1"})
        second = dict(other.manifest_desc, annotations={ANN_REF_NAME: "v1"})
        files["index.json"] = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [first, second]})
    return image_case(ctx, error("index.json", "localhost/v1:latest", "given to two images"),
                      files_hook=files_hook)


@case("image", "manifest-is-an-index")
def _(ctx):
    """index.json says manifest, the blob is an index (CVE-2021-41190 confusion)."""
    inner = oci_image([small_layer()], ctx.tag)

    def files_hook(files, img):
        fake = canon({"schemaVersion": 2, "manifests": [inner.manifest_desc]})
        files.update(inner.files)
        files[blob_name(digest_of(fake))] = fake
        files["index.json"] = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
            desc(MT_MANIFEST, fake, annotations={ANN_CONTAINERD_NAME: ctx.tag})]})
    # The document has "manifests" only: the message must say what it is, not that it has both.
    return image_case(ctx, error("manifest sha256:",
                                 'is an image index ("manifests"), not a manifest'),
                      files_hook=files_hook)


@case("image", "index-is-a-manifest")
def _(ctx):
    """index.json says index, the blob is a manifest without mediaType."""
    def files_hook(files, img):
        name = blob_name(img.manifest_desc["digest"])
        m = json.loads(files[name])
        del m["mediaType"]
        raw = canon(m)
        files[blob_name(digest_of(raw))] = raw
        files["index.json"] = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
            desc(MT_INDEX, raw, annotations={ANN_CONTAINERD_NAME: ctx.tag})]})
    # The document has "layers"/"config" only: the message must say what it is.
    return image_case(ctx, error("index sha256:",
                                 'is a manifest ("layers"/"config"), not an index'),
                      files_hook=files_hook)


@case("image", "both-index-and-manifest")
def _(ctx):
    """A manifest that also has "manifests"."""
    def manifest(m):
        m["manifests"] = [dict(m["config"], mediaType=MT_MANIFEST)]
    return image_case(ctx, error("ambiguous"), manifest_hook=manifest)


@case("image", "media-type-disagrees")
def _(ctx):
    """The manifest's own mediaType is Docker's, its descriptor says OCI."""
    def manifest(m):
        m["mediaType"] = MT_DOCKER_MANIFEST
    return image_case(ctx, error("disagrees"), manifest_hook=manifest)


@case("image", "schema1-manifest")
def _(ctx):
    """A Docker schema1 manifest."""
    def manifest(m):
        return {"schemaVersion": 1, "name": "hostile", "tag": "latest", "architecture": "amd64",
                "fsLayers": [{"blobSum": m["layers"][0]["digest"]}],
                "history": [{"v1Compatibility": "{}"}]}

    def mdesc(d):
        d["mediaType"] = MT_MANIFEST
    return image_case(ctx, error("schema1"), manifest_hook=manifest, manifest_desc_hook=mdesc)


@case("image", "index-nested-too-deep")
def _(ctx):
    """Ten nested indexes."""
    def files_hook(files, img):
        d = img.manifest_desc
        for _ in range(10):
            raw = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [d]})
            files[blob_name(digest_of(raw))] = raw
            d = desc(MT_INDEX, raw, annotations={ANN_CONTAINERD_NAME: ctx.tag})
        files["index.json"] = canon({"schemaVersion": 2, "mediaType": MT_INDEX,
                                     "manifests": [d]})
    return image_case(ctx, error("image indexes nested more than 4 deep", "index sha256:"),
                      files_hook=files_hook)


def _fanout_hook(ctx, fanout: int):
    """index.json -> 4 levels of indexes, each listing the next level `fanout` times, the last
    listing the manifest `fanout` times: a few kB of JSON, fanout^4 paths if walked naively."""
    def files_hook(files, img):
        d = dict(img.manifest_desc, platform={"os": "linux", "architecture": gen_images.host_arch()})
        for _ in range(4):
            raw = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [d] * fanout})
            files[blob_name(digest_of(raw))] = raw
            d = desc(MT_INDEX, raw, annotations={ANN_CONTAINERD_NAME: ctx.tag})
        files["index.json"] = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [d] * fanout})
    return files_hook


@case("image", "index-fanout-60")
def _(ctx):
    """Nested indexes with fan-out 60 (issue 12: 27 s and 830 MB at 55cfe6d): each index is read
    once however often it is named, so this is one small image, at once."""
    return image_case(ctx, contained(F("etc/small", "small\n")), files_hook=_fanout_hook(ctx, 60)) | {
        "limits": {"max_seconds": 3, "timeout": 60, "max_rss_mb": 30}}


@case("image", "index-fanout-100")
def _(ctx):
    """Fan-out 100 (issue 12: `internal error: std::bad_alloc` at 55cfe6d)."""
    return image_case(ctx, contained(F("etc/small", "small\n")), files_hook=_fanout_hook(ctx, 100)) | {
        "limits": {"max_seconds": 3, "timeout": 60, "max_rss_mb": 30}}


@case("image", "index-too-many-descriptors")
def _(ctx):
    """index.json names 10,001 distinct manifests (3 MB): refused by count before any is read."""
    def index(i):
        base = i["manifests"][0]
        i["manifests"] = [dict(base, digest="sha256:%064x" % n) for n in range(10001)]
    return image_case(ctx, error("index.json", "more than 10000 descriptors"), index_hook=index) | {
        "limits": {"max_seconds": 5, "timeout": 60, "max_rss_mb": 60}}


@case("image", "config-created-5mib")
def _(ctx):
    """created is 5 MiB (issue 12: accepted at 55cfe6d, then every command failed on the 4 MiB record
    limit): created must be an RFC 3339 timestamp."""
    def hook(c):
        c["created"] = "2024-01-01T00:00:00Z" + "0" * (5 * MiB)
    return image_case(ctx, error("config sha256:", "\"created\" is not an RFC 3339 timestamp"), config_hook=hook)


@case("image", "config-created-not-a-timestamp")
def _(ctx):
    """created is prose."""
    def hook(c):
        c["created"] = "last tuesday"
    return image_case(ctx, error("config sha256:", "\"created\" is not an RFC 3339 timestamp (last tuesday)"),
                      config_hook=hook)


@case("image", "config-platform-field-huge")
def _(ctx):
    """architecture is 1 MiB long: bounded like every field the store records."""
    def hook(c):
        c["variant"] = "v" * MiB
    return image_case(ctx, error("config sha256:", "platform field longer than 128 bytes"), config_hook=hook)


@case("image", "docker-repotags-120k")
def _(ctx):
    """manifest.json with 120,000 RepoTags (issue 12: a 10.9 MB tags.json bricked the store)."""
    def hook(m):
        m[0]["RepoTags"] = [f"hostile/t{n}:latest" for n in range(120000)]
    return docker_case(ctx, error("more than 1024 tags"), manifest_hook=hook) | {
        "limits": {"max_seconds": 10, "timeout": 60, "max_rss_mb": 100}}


@case("image", "tags-across-images-5000")
def _(ctx):
    """Five images with 1,000 tags each in one docker archive (the outside attack on issue 12 wrote a
    67 MB tags.json from 1,000 x 1,024 and bricked the store): at most 4,096 tags per source."""
    files, manifest = {}, []
    for i in range(5):
        tars = [Tar().file(f"image{i}", f"{i}\n").bytes()]
        f, _ = docker_image(tars, [f"hostile/i{i}-{n}:latest" for n in range(1000)])
        manifest += json.loads(f.pop("manifest.json"))
        files.update(f)
    files["manifest.json"] = canon(manifest)
    return {"format": "docker-archive", "files": files, "diff_ids": [], "expect": error("5000 tags in one source"),
            "limits": {"max_seconds": 10, "timeout": 60}}


@case("image", "repotag-is-an-image-id")
def _(ctx):
    """RepoTags names a 64-hex repository (another image's ID): `run <ID>` would run this one."""
    def hook(m):
        m[0]["RepoTags"] = ["ab" * 32]
    return docker_case(ctx, error("cannot specify 64-byte hexadecimal strings"), manifest_hook=hook)


@case("image", "error-names-with-invalid-utf8")
def _(ctx):
    """An escaping entry whose name holds bytes that are not UTF-8 and a C1 control (0x9b is CSI on
    some terminals): the one error line escapes them (\\xff), never prints them raw."""
    t = Tar().file(b"\xff\xfe\xc2\x9b/../../../" + MARKER.encode() + b"-utf8", "x")
    return one_layer(ctx, t, error("\\xff\\xfe\\xc2\\x9b", "escapes the layer root"))


@case("resource", "same-directory-100k-times")
def _(ctx):
    """One deep directory (19 components of 200 bytes), then its entry 100,000 more times: 3.8 KB of
    memory per entry at the outside attack on issue 12 (2.3 GB for 600k from a few MB of zstd); the
    deferred directory metadata keeps one node per path."""
    parts = ["d" * 200 for _ in range(19)]
    t = Tar()
    for i in range(19):
        t.dir("/".join(parts[:i + 1]))
    deep = "/".join(parts)
    unit = Tar().dir(deep, mode=0o750)
    blob, diff_id = gzip_repeat(b"".join(t.parts), b"".join(unit.parts), 100000, EOF_BLOCKS)
    return blob_case(ctx, Blob(MT_LAYER["gzip"], blob, diff_id), contained(D(deep, mode="0750")),
                     limits={"max_rss_mb": 40, "max_seconds": 60, "timeout": 300})


@case("image", "index-many-duplicate-entries")
def _(ctx):
    """index.json lists the same manifest 400 times: pulled once, not 400 times over."""
    def index(i):
        i["manifests"] = i["manifests"] * 400
    return image_case(ctx, contained(F("etc/small", "small\n")), index_hook=index) | {
        "limits": {"max_seconds": 3, "timeout": 60, "max_rss_mb": 100}}


@case("image", "second-image-broken")
def _(ctx):
    """Two images in one index; the second one's layer is corrupt.  Nothing may be left."""
    a = oci_image([small_layer("first")], "hostile/first:latest")
    b = oci_image([small_layer("second")], "hostile/second:latest")
    files = dict(a.files)
    files.update(b.files)
    _flip(files, b)
    files["index.json"] = canon({"schemaVersion": 2, "mediaType": MT_INDEX,
                                 "manifests": [a.manifest_desc, b.manifest_desc]})
    return {"format": "oci-layout", "files": files, "diff_ids": a.diff_ids + b.diff_ids,
            "expect": error("digest mismatch")}


def _outside_copy(ctx, name, data) -> str:
    """A file outside the image (next to it in OUTDIR) for layouts that link out."""
    path = os.path.join(ctx.outdir, "outside", ctx.name, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_file(path, data)
    return path


@case("source", "layout-blob-symlink")
def _(ctx):
    """The layer blob is a symlink to a correct copy outside the layout: if followed the pull
    would succeed, so it must not be."""
    def files_hook(files, img):
        name = img.layer_members[0]
        files[name] = Symlink(_outside_copy(ctx, "layer", files[name]))
    member = blob_name(digest_of(small_layer().data))
    return image_case(ctx, error(f"open `{member}`: Too many levels of symbolic links"),
                      files_hook=files_hook)


@case("source", "layout-index-symlink")
def _(ctx):
    """index.json is a symlink to a correct copy outside the layout."""
    def files_hook(files, img):
        files["index.json"] = Symlink(_outside_copy(ctx, "index.json", files["index.json"]))
    return image_case(ctx, error("open `index.json`: Too many levels of symbolic links"),
                      files_hook=files_hook)


@case("source", "layout-blobs-dir-symlink")
def _(ctx):
    """blobs/ is a symlink to a directory outside with all the right blobs."""
    def files_hook(files, img):
        out = {}
        outdir = os.path.join(ctx.outdir, "outside", ctx.name, "blobs")
        for name, data in files.items():
            if name.startswith("blobs/"):
                path = os.path.join(outdir, name[len("blobs/"):])
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_file(path, data)
            else:
                out[name] = data
        out["blobs"] = Symlink(outdir)
        return out
    return image_case(ctx, error("open `blobs/sha256/", "`: Too many levels of symbolic links"),
                      files_hook=files_hook)


def _not_a_regular_blob() -> dict:
    """A layout member that is not a regular file is not a member (as in archives): the layer
    blob is missing."""
    return error(f"layer {digest_of(small_layer().data)}: blob missing from the image")


@case("source", "layout-blob-fifo")
def _(ctx):
    """The layer blob is a FIFO (opening it for reading would block forever)."""
    def files_hook(files, img):
        files[img.layer_members[0]] = Fifo()
    return image_case(ctx, _not_a_regular_blob(), files_hook=files_hook) | {
        "limits": {"timeout": 30}}


@case("source", "layout-index-fifo")
def _(ctx):
    """index.json is a FIFO."""
    def files_hook(files, img):
        files["index.json"] = Fifo()
    return image_case(ctx, error("layout-index-fifo.oci: no index.json"), files_hook=files_hook) | {
        "limits": {"timeout": 30}}


@case("source", "layout-blob-chardev")
def _(ctx):
    """The layer blob is /dev/zero's device node (endless)."""
    def files_hook(files, img):
        files[img.layer_members[0]] = CharDev(1, 5)
    return image_case(ctx, _not_a_regular_blob(), files_hook=files_hook) | {
        "limits": {"timeout": 30}}


@case("source", "layout-blob-directory")
def _(ctx):
    """The layer blob is a directory."""
    def files_hook(files, img):
        files[img.layer_members[0] + "/x"] = b"x"
        del files[img.layer_members[0]]
    return image_case(ctx, _not_a_regular_blob(), files_hook=files_hook)


@case("source", "archive-blob-symlink-member")
def _(ctx):
    """OCI archive whose layer member is a symlink to /etc/passwd."""
    def files_hook(files, img):
        files[img.layer_members[0]] = Symlink("/etc/passwd")
    return image_case(ctx, error("missing"), fmt="oci-archive", files_hook=files_hook)


@case("source", "archive-blob-symlink-to-copy")
def _(ctx):
    """OCI archive whose layer member is a symlink to a correct copy outside the archive."""
    def files_hook(files, img):
        name = img.layer_members[0]
        files[name] = Symlink(_outside_copy(ctx, "layer", files[name]))
    return image_case(ctx, error("missing"), fmt="oci-archive", files_hook=files_hook)


@case("source", "archive-blob-hardlink-member")
def _(ctx):
    """OCI archive whose layer member is a hardlink to ../../etc/passwd."""
    def files_hook(files, img):
        files[img.layer_members[0]] = Hardlink("../../etc/passwd")
    return image_case(ctx, error("missing"), fmt="oci-archive", files_hook=files_hook)


@case("source", "archive-dotdot-member")
def _(ctx):
    """OCI archive with extra members ../x and /x: ignored, never written anywhere."""
    def files_hook(files, img):
        files[f"../{MARKER}-outer-dotdot"] = b"x"
        files[f"/{MARKER}-outer-abs"] = b"x"
    return image_case(ctx, contained(F("etc/small", "small\n"),
                                     outside=[f"{MARKER}-outer-dotdot", f"{MARKER}-outer-abs"]),
                      fmt="oci-archive", files_hook=files_hook)


@case("source", "archive-pax-100mib")
def _(ctx):
    """OCI archive with a 100 MiB PAX header in front of index.json."""
    def files_hook(files, img):
        n = 100 * MiB
        start = b"%d comment=" % n
        files["0-pax"] = RawTar(Pieces((header(b"PaxHeader", b"x", size=n) + start,
                                        Fill(ord("c"), n - len(start) - 1), b"\n")))
    return image_case(ctx, error("too large"), fmt="oci-archive",
                      files_hook=files_hook) | {"limits": {"max_rss_mb": 100, "timeout": 60}}


@case("source", "archive-truncated")
def _(ctx):
    """OCI archive cut in the middle of its last member."""
    return image_case(ctx, error("truncated"), fmt="oci-archive") | {"truncate": 0.75}


@case("source", "archive-truncated-member-newline")
def _(ctx):
    """OCI archive whose last member (name with a newline) runs past the end of the file."""
    def files_hook(files, img):
        files["zz" + INJECTED] = RawTar(header("zz" + INJECTED, size=1 << 20) + b"z" * BLOCK)
    return image_case(ctx, error("truncated"), fmt="oci-archive",
                      files_hook=files_hook) | {"no_eof": True}


@case("source", "archive-duplicate-index")
def _(ctx):
    """Two index.json members: whichever wins, the result is consistent."""
    def files_hook(files, img):
        files["index.json/../index.json"] = files["index.json"]
        files["./index.json"] = b'{"schemaVersion": 2, "manifests": []}'
    # "./index.json" (no manifests) comes first in the archive; a later index.json wins.
    return image_case(ctx, contained(F("etc/small", "small\n")), fmt="oci-archive",
                      files_hook=files_hook)


@case("source", "not-a-tar")
def _(ctx):
    """4 kB of pseudo-random bytes."""
    data = b"".join(hashlib.sha512(b"%d" % i).digest() for i in range(64))
    return {"format": "file", "files": data, "expect": error("not a tar")}


@case("source", "empty-file")
def _(ctx):
    """An empty file."""
    return {"format": "file", "files": b"", "expect": error("empty")}


@case("source", "directory-without-oci-layout")
def _(ctx):
    """A directory with index.json and blobs but no oci-layout file."""
    img = oci_image([small_layer()], ctx.tag)
    files = dict(img.files)
    del files["oci-layout"]
    return {"format": "oci-layout", "files": files, "expect": error("oci-layout")}


@case("source", "gzipped-archive")
def _(ctx):
    """A whole OCI archive gzip-compressed."""
    img = oci_image([small_layer()], ctx.tag)
    return {"format": "file", "files": gz(b"".join(outer_tar(img.files))),
            "expect": error("gzipped-archive.bin: compressed archives are not supported "
                            "(decompress it first)")}


@case("source", "tar-without-metadata")
def _(ctx):
    """A valid tar with neither manifest.json nor index.json."""
    return {"format": "file", "files": b"".join(outer_tar({"hello": b"hi\n"})),
            "expect": error("tar-without-metadata.bin: neither a docker archive (no manifest.json) "
                            "nor an OCI archive (no index.json)")}


@case("source", "source-is-fifo")
def _(ctx):
    """The source path is a FIFO with no writer (must not block forever)."""
    return {"format": "fifo", "files": None,
            "expect": error("source-is-fifo.fifo: not a regular file or directory"),
            "limits": {"timeout": 10}}


# A source file without read permission is not a case: the tests run as root, which reads it.


# ---- JSON -------------------------------------------------------------------------------

@case("json", "index-truncated")
def _(ctx):
    """index.json cut in half."""
    return image_case(ctx, error("invalid JSON"),
                      index_hook=lambda i: canon(i)[:len(canon(i)) // 2])


@case("json", "index-trailing-garbage")
def _(ctx):
    """index.json followed by garbage."""
    return image_case(ctx, error("invalid JSON"), index_hook=lambda i: canon(i) + b" garbage")


@case("json", "index-empty")
def _(ctx):
    """index.json of 0 bytes."""
    return image_case(ctx, error("invalid JSON"), index_hook=lambda i: b"")


@case("json", "index-control-characters")
def _(ctx):
    """index.json with a raw newline and terminal escapes inside a string (the parser's error
    quotes what it read)."""
    return image_case(ctx, error("invalid JSON"),
                      index_hook=lambda i: (b'{"schemaVersion":2,"manifests":"\n\x1b[31mred'
                                            + INJECTED.encode()))


@case("json", "index-invalid-utf8")
def _(ctx):
    """index.json with invalid UTF-8 in a string."""
    return image_case(ctx, error("invalid JSON"),
                      index_hook=lambda i: canon(i).replace(b'"schemaVersion"', b'"\xff\xfe"', 1))


@case("json", "index-not-object")
def _(ctx):
    """index.json is an array."""
    return image_case(ctx, error("not a JSON object"), index_hook=lambda i: canon([i]))


@case("json", "index-deep-nesting")
def _(ctx):
    """1,000,000 nested arrays (2 MB) in index.json."""
    depth = 1000000
    return image_case(ctx, error("nesting"),
                      index_hook=lambda i: b'{"schemaVersion":2,"manifests":' + b"[" * depth
                      + b"]" * depth + b"}") | {"limits": {"max_rss_mb": 100}}


@case("json", "index-100mb")
def _(ctx):
    """A valid 100 MB index.json (padding whitespace): refused by size, not parsed."""
    def files_hook(files, img):
        files["index.json"] = Pieces((files["index.json"][:-1], Fill(ord(" "), 100 * 1000 * 1000),
                                      b"}"))
    # Refused by its size before it is read: imgtool's own ~6 MiB and nothing of the document
    # (read in full and refused by the parser's cap instead, it takes 100 MiB).
    return image_case(ctx, error("index.json: too large for a metadata document"),
                      files_hook=files_hook) | {"limits": {"max_rss_mb": 16}}


@case("json", "config-21mib")
def _(ctx):
    """A config blob of 21 MiB (containerd caps JSON at 20 MiB after CVE-2023-25153)."""
    def hook(c):
        c["config"]["Labels"] = {"pad": "p" * (21 * MiB)}
    # As index-100mb: refused by its size, never read (reading it would take 21 MiB).
    return image_case(ctx, error("too large for a metadata document"),
                      config_hook=hook) | {"limits": {"max_rss_mb": 16}}


@case("json", "manifest-duplicate-keys")
def _(ctx):
    """A manifest with "layers" twice (which one a parser keeps differs)."""
    def hook(m):
        body = canon(m)
        other = canon([desc(MT_LAYER["gzip"], b"other")])
        return body[:-1] + b',"layers":' + other + b"}"
    return image_case(ctx, error("duplicate key"), manifest_hook=hook)


@case("json", "size-as-string")
def _(ctx):
    """A layer descriptor's size is a string."""
    def hook(m):
        m["layers"][0]["size"] = str(m["layers"][0]["size"])
    return image_case(ctx, error("size"), manifest_hook=hook)


@case("json", "size-negative")
def _(ctx):
    """A layer descriptor's size is -1."""
    return image_case(ctx, error("size"), manifest_hook=_set_layer("size", -1))


def _set_layer(key, value):
    def hook(m):
        m["layers"][0][key] = value
    return hook


@case("json", "size-2-pow-64")
def _(ctx):
    """A layer size of 2^64 (not representable)."""
    def hook(m):
        return canon(m).replace(b'"size":%d}' % m["layers"][0]["size"],
                                b'"size":18446744073709551616}', 1)
    return image_case(ctx, error("size"), manifest_hook=hook)


@case("json", "size-float")
def _(ctx):
    """A layer size of 1e3."""
    def hook(m):
        return canon(m).replace(b'"size":%d}' % m["layers"][0]["size"], b'"size":1e3}', 1)
    return image_case(ctx, error("size"), manifest_hook=hook)


@case("json", "layers-as-object")
def _(ctx):
    """"layers" is an object, not an array."""
    def hook(m):
        m["layers"] = {"0": m["layers"][0]}
    return image_case(ctx, error("layers"), manifest_hook=hook)


@case("json", "config-descriptor-not-object")
def _(ctx):
    """"config" is a string."""
    def hook(m):
        m["config"] = m["config"]["digest"]
    return image_case(ctx, error("config"), manifest_hook=hook)


@case("json", "diff-ids-as-string")
def _(ctx):
    """rootfs.diff_ids is a string."""
    def hook(c):
        c["rootfs"]["diff_ids"] = c["rootfs"]["diff_ids"][0]
    return image_case(ctx, error("diff_ids"), config_hook=hook)


@case("json", "rootfs-type-wrong")
def _(ctx):
    """rootfs.type is not "layers"."""
    def hook(c):
        c["rootfs"]["type"] = "hostile"
    return image_case(ctx, error("rootfs"), config_hook=hook)


@case("json", "config-not-object")
def _(ctx):
    """The config is a JSON string."""
    return image_case(ctx, error("not a JSON object"), config_hook=lambda c: b'"hostile"')


@case("json", "annotation-not-string")
def _(ctx):
    """An index annotation value that is an object."""
    def index(i):
        i["manifests"][0]["annotations"]["x"] = {"nested": True}
    return image_case(ctx, error("annotation"), index_hook=index)


@case("json", "tag-with-control-chars")
def _(ctx):
    """The image name annotation holds a newline and escapes."""
    def index(i):
        i["manifests"][0]["annotations"][ANN_CONTAINERD_NAME] = "hostile/x" + INJECTED + "\x1b[2J"
    return image_case(ctx, error("invalid image name"), index_hook=index)


# ---- digests ------------------------------------------------------------------------------

def _layer_digest(value):
    def hook(m):
        m["layers"][0]["digest"] = value
    return hook


@case("digest", "digest-path-traversal")
def _(ctx):
    """A layer digest sha256:../../x (CVE-2024-3727)."""
    return image_case(ctx, error("digest"), manifest_hook=_layer_digest(
        "sha256:../../../../../../etc/passwd"))


@case("digest", "digest-wrong-length")
def _(ctx):
    """A 63-hex-digit digest."""
    return image_case(ctx, error("digest"), manifest_hook=_layer_digest("sha256:" + "a" * 63))


@case("digest", "digest-upper-case")
def _(ctx):
    """An upper-case hex digest (of the right blob)."""
    def hook(m):
        m["layers"][0]["digest"] = m["layers"][0]["digest"].upper().replace("SHA256:", "sha256:")
    return image_case(ctx, error("digest"), manifest_hook=hook)


@case("digest", "digest-md5")
def _(ctx):
    """An md5 digest."""
    return image_case(ctx, error("digest"), manifest_hook=_layer_digest(
        "md5:" + hashlib.md5(b"x").hexdigest()))


@case("digest", "digest-sha512")
def _(ctx):
    """A sha512 digest with a path-like tail."""
    return image_case(ctx, error("digest"), manifest_hook=_layer_digest(
        "sha512:" + "0" * 64 + "/../../x"))


@case("digest", "digest-empty")
def _(ctx):
    """An empty digest string."""
    return image_case(ctx, error("digest"), manifest_hook=_layer_digest(""))


@case("digest", "digest-newline")
def _(ctx):
    """A digest with a newline."""
    return image_case(ctx, error("digest"), manifest_hook=_layer_digest(
        "sha256:" + "a" * 32 + INJECTED))


@case("digest", "index-digest-traversal")
def _(ctx):
    """index.json points at sha256:../../../etc/passwd."""
    def index(i):
        i["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    return image_case(ctx, error("digest"), index_hook=index)


@case("digest", "config-digest-traversal")
def _(ctx):
    """The manifest's config digest is sha256:../config."""
    def hook(m):
        m["config"]["digest"] = "sha256:../../" + m["config"]["digest"][7:]
    return image_case(ctx, error("digest"), manifest_hook=hook)


@case("digest", "diff-id-traversal")
def _(ctx):
    """A diff_id sha256:../../x (diff_ids become layer directory names)."""
    def hook(c):
        c["rootfs"]["diff_ids"][0] = "sha256:../../../../" + MARKER
    return image_case(ctx, error("digest"), config_hook=hook)


# ---- docker archives ----------------------------------------------------------------------------

def docker_case(ctx, expect, *, manifest_hook=None, files_hook=None, layer_tars=None,
                config_hook=None) -> dict:
    tars = layer_tars or [Tar().dir("etc").file("etc/docker", "docker\n").bytes()]
    files, diff_ids = docker_image(tars, [ctx.tag], manifest_hook=manifest_hook,
                                   config_hook=config_hook)
    if files_hook:
        files = files_hook(files) or files
    return {"format": "docker-archive", "files": files, "diff_ids": diff_ids, "expect": expect}


def _docker_set(key, value):
    def hook(m):
        m[0][key] = value
    return hook


def _layer_name(files) -> str:
    return next(n for n in files if n.endswith("/layer.tar"))


@case("docker", "docker-config-dotdot")
def _(ctx):
    """manifest.json Config ../x."""
    return docker_case(ctx, error("unsafe"), manifest_hook=_docker_set("Config", "../x.json"))


@case("docker", "docker-config-absolute")
def _(ctx):
    """manifest.json Config /etc/passwd."""
    return docker_case(ctx, error("unsafe"), manifest_hook=_docker_set("Config", "/etc/passwd"))


@case("docker", "docker-layer-absolute")
def _(ctx):
    """manifest.json Layers [/etc/passwd]."""
    return docker_case(ctx, error("unsafe"), manifest_hook=_docker_set("Layers", ["/etc/passwd"]))


@case("docker", "docker-layer-dotdot")
def _(ctx):
    """manifest.json Layers [../x/layer.tar]."""
    return docker_case(ctx, error("unsafe"),
                       manifest_hook=_docker_set("Layers", ["../x/layer.tar"]))


@case("docker", "docker-layer-symlink-member")
def _(ctx):
    """The layer.tar member is a symlink to /etc/passwd."""
    def files_hook(files):
        files[_layer_name(files)] = Symlink("/etc/passwd")
    return docker_case(ctx, error("missing"), files_hook=files_hook)


@case("docker", "docker-layer-symlink-to-copy")
def _(ctx):
    """The layer.tar member is a symlink to a correct copy outside the archive."""
    def files_hook(files):
        name = _layer_name(files)
        files[name] = Symlink(_outside_copy(ctx, "layer.tar", files[name]))
    return docker_case(ctx, error("missing"), files_hook=files_hook)


@case("docker", "docker-layer-hardlink-member")
def _(ctx):
    """The layer.tar member is a hardlink to ../../../etc/passwd."""
    def files_hook(files):
        files[_layer_name(files)] = Hardlink("../../../etc/passwd")
    return docker_case(ctx, error("missing"), files_hook=files_hook)


@case("docker", "docker-layer-directory-member")
def _(ctx):
    """The layer.tar member is a directory."""
    def files_hook(files):
        files[_layer_name(files)] = Directory()
    return docker_case(ctx, error("missing"), files_hook=files_hook)


@case("docker", "docker-config-symlink-member")
def _(ctx):
    """The config member is a symlink to a correct copy outside the archive."""
    def files_hook(files):
        name = next(n for n in files if n.endswith(".json") and "/" not in n
                    and n != "manifest.json")
        files[name] = Symlink(_outside_copy(ctx, "config.json", files[name]))
    return docker_case(ctx, error("missing"), files_hook=files_hook)


@case("docker", "docker-config-newline")
def _(ctx):
    """A Config name with a newline (missing from the archive)."""
    return docker_case(ctx, error("missing"), manifest_hook=_docker_set("Config", "x" + INJECTED))


@case("docker", "docker-layer-newline")
def _(ctx):
    """A Layers name with a newline (missing from the archive)."""
    return docker_case(ctx, error("missing"),
                       manifest_hook=_docker_set("Layers", ["x" + INJECTED + "/layer.tar"]))


@case("docker", "docker-layer-unsafe-newline")
def _(ctx):
    """An unsafe Layers name that also carries a newline."""
    return docker_case(ctx, error("unsafe"),
                       manifest_hook=_docker_set("Layers", ["../x" + INJECTED]))


@case("docker", "docker-blob-name-claim")
def _(ctx):
    """A layer member named blobs/sha256/<hex> whose content has another digest."""
    def files_hook(files):
        name = _layer_name(files)
        fake = "blobs/sha256/" + sha256_hex(b"not this layer")
        files[fake] = files.pop(name)
        m = json.loads(files["manifest.json"])
        m[0]["Layers"] = [fake]
        files["manifest.json"] = canon(m)
    return docker_case(ctx, error("digest mismatch"), files_hook=files_hook)


@case("docker", "docker-diff-id-mismatch")
def _(ctx):
    """The config's diff_id is not the layer's."""
    def hook(c):
        c["rootfs"]["diff_ids"][0] = "sha256:" + sha256_hex(b"other")
    return docker_case(ctx, error("diff_id mismatch"), config_hook=hook)


@case("docker", "docker-layer-bitrot")
def _(ctx):
    """A layer.tar damaged after the config was written: its first header no longer checks out. Docker
    archives state no blob digest, so the error must come from hashing the whole damaged stream: the
    layer is larger than the unpacker's pipe (2 MiB), so the stream must be read on after the failure."""
    t = Tar().dir("etc").file("etc/big", b"\x5a" * (3 << 20)).bytes()

    def files_hook(files):
        name = _layer_name(files)
        data = bytearray(files[name])
        data[0] ^= 0x20  # the first entry's name: the header checksum fails
        files[name] = bytes(data)
    return docker_case(ctx, error("diff_id mismatch"), files_hook=files_hook, layer_tars=[t])


@case("docker", "docker-manifest-not-array")
def _(ctx):
    """manifest.json is an object."""
    return docker_case(ctx, error("manifest.json"), manifest_hook=lambda m: m[0])


@case("docker", "docker-layer-escape-in-layer")
def _(ctx):
    """A docker archive whose layer writes through a symlink to the sentinel."""
    t = Tar().symlink("l", ctx.S).file("l/file.txt", "overwritten\n").bytes()
    return docker_case(ctx, error("l/file.txt: parent `l` is a symlink that leads to no directory inside the layer"),
                       layer_tars=[t])


# ---- launcher (run) ----------------------------------------------------------------------------

def run_case(ctx, extra: Tar | None, *, cmd, workdir="/", user="", run_args=(), expect,
             entrypoint=None, limits=None) -> dict:
    layers = [ctx.base_blob()]
    if extra is not None:
        layers.append(layer(extra))
    runtime = gen_images.runtime(list(cmd), env=(DEFAULT_PATH,), workdir=workdir, user=user,
                                 labels={"org.example.test": "hostile-" + ctx.name},
                                 entrypoint=entrypoint)
    arch = gen_images.static_elf_arch(ctx.busybox)
    img = oci_image(layers, ctx.tag, runtime=runtime, arch=arch)
    return {"format": "oci-layout", "files": img.files, "diff_ids": img.diff_ids,
            "verb": "run", "command": ["run", *run_args, "{image}"], "expect": expect,
            "limits": limits or {"timeout": 60}}


def _image_passwd(ctx) -> bytes:
    entries = gen_images.busybox_layers(ctx.busybox)[0].entries
    return next(e.data for e in entries if e.name == "etc/passwd")


@case("run", "run-workdir-proc-self-fd")
def _(ctx):
    """WorkingDir /proc/self/fd/7 (runc CVE-2024-21626: a leaked host fd as cwd)."""
    return run_case(ctx, None, workdir="/proc/self/fd/7", cmd=["/bin/sh", "-c", "pwd -P; ls -a"],
                    expect=error("open `/proc/self/fd/7`: Too many levels of symbolic links"))


@case("run", "run-workdir-proc-self-cwd")
def _(ctx):
    """WorkingDir /proc/self/cwd/../../.. and /proc/1/root/.. style magic links."""
    return run_case(ctx, None, workdir="/proc/1/cwd/../../..",
                    cmd=["/bin/sh", "-c", "pwd -P; ls -a"],
                    expect=error("open `/proc/1/cwd/../../..`: Too many levels of symbolic links"))


@case("run", "run-proc-symlink-core-pattern")
def _(ctx):
    """/proc in the image is a symlink to /proc/sys/kernel/core_pattern (CVE-2019-19921)."""
    return run_case(ctx, Tar().symlink("proc", "/proc/sys/kernel/core_pattern"),
                    cmd=["/bin/sh", "-c", "echo ran"], expect=error("/proc"))


@case("run", "run-proc-symlink-etc")
def _(ctx):
    """/proc -> /etc."""
    return run_case(ctx, Tar().symlink("proc", "/etc"), cmd=["/bin/sh", "-c", "echo ran"],
                    expect=error("/proc"))


@case("run", "run-sys-symlink-etc")
def _(ctx):
    """/sys -> /etc."""
    return run_case(ctx, Tar().symlink("sys", "/etc"), cmd=["/bin/sh", "-c", "echo ran"],
                    expect=error("/sys"))


@case("run", "run-dev-symlink-etc")
def _(ctx):
    """/dev -> /etc."""
    return run_case(ctx, Tar().symlink("dev", "/etc"), cmd=["/bin/sh", "-c", "echo ran"],
                    expect=error("/dev"))


@case("run", "run-dev-symlink-sentinel")
def _(ctx):
    """/dev -> ../(x40)/sentinel (reaches the sentinel if resolved on the host)."""
    return run_case(ctx, Tar().symlink("dev", up(ctx.S)), cmd=["/bin/sh", "-c", "echo ran"],
                    expect=error("/dev"))


@case("run", "run-dev-null-symlink")
def _(ctx):
    """/dev/null -> /etc/passwd and /dev/shm, /dev/pts -> sentinel in the image
    (CVE-2025-31133): run works with a real /dev/null 1:3, the image's passwd untouched."""
    t = Tar().dir("dev").symlink("dev/null", "/etc/passwd").symlink("dev/shm", ctx.S)
    t.symlink("dev/pts", up(ctx.S)).symlink("dev/ptmx", "/etc/passwd")
    md5 = hashlib.md5(_image_passwd(ctx)).hexdigest()
    script = ("stat -c '%F %t:%T' /dev/null; echo junk > /dev/null; "
              "busybox md5sum /etc/passwd; busybox wc -c < /dev/null")
    return run_case(ctx, t, cmd=["/bin/sh", "-c", script], expect=ran(
        0, stdout=f"character special file 1:3\n{md5}  /etc/passwd\n0\n"))


@case("run", "run-workdir-through-symlink-etc")
def _(ctx):
    """/w -> /etc, WorkingDir /w/sub: sub must not appear in the host's /etc."""
    return run_case(ctx, Tar().symlink("w", "/etc"), workdir="/w/sub",
                    cmd=["/bin/sh", "-c", "pwd -P"], expect=ran(0, stdout="/etc/sub\n"))


@case("run", "run-workdir-through-symlink-sentinel")
def _(ctx):
    """/w -> /sentinel, WorkingDir /w/imgtool-hostile-wd."""
    return run_case(ctx, Tar().symlink("w", ctx.S), workdir=f"/w/{MARKER}-wd",
                    cmd=["/bin/sh", "-c", "pwd -P"],
                    expect=error("open `/w`: No such file or directory"))


@case("run", "run-workdir-through-relative-symlink")
def _(ctx):
    """/w -> ../(x40)/sentinel, WorkingDir /w/imgtool-hostile-wd2."""
    return run_case(ctx, Tar().symlink("w", up(ctx.S)), workdir=f"/w/{MARKER}-wd2",
                    cmd=["/bin/sh", "-c", "pwd -P"],
                    expect=error("open `/w`: No such file or directory"))


@case("run", "run-proc-exe-overwrite")
def _(ctx):
    """The command writes to /proc/self/exe, /proc/1/exe, /proc/1/root/../../etc/passwd and
    /proc/1/cwd/../../bin/busybox (runc CVE-2019-5736): the host's imgtool and busybox and
    the store's layers stay as they are; the writes land in the container's own layer."""
    script = ("for p in /proc/self/exe /proc/1/exe /proc/1/root/bin/busybox "
              "/proc/1/cwd/../../bin/busybox /proc/1/root/../../etc/passwd; do "
              "(echo pwned >> \"$p\") 2>/dev/null; done; "
              "echo passwd=$(busybox head -n 1 /proc/1/root/../../etc/passwd | busybox cut -d: -f1); true")
    return run_case(ctx, None, cmd=["/bin/sh", "-c", script],
                    expect=ran(0, contains=["passwd=root"]))


@case("run", "run-nsswitch-ignored")
def _(ctx):
    """An image /etc/nsswitch.conf naming a module, and the module file: -u NAME is resolved
    from the image's /etc/passwd only (docker cp CVE-2019-14271)."""
    passwd = _image_passwd(ctx) + f"{MARKER}:x:4242:4343::/:/bin/sh\n".encode()
    t = Tar().dir("etc").file("etc/passwd", passwd)
    t.file("etc/nsswitch.conf", "passwd: hostile\ngroup: hostile\nhosts: hostile\n")
    for d in ("lib", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"):
        t.dir(d).file(f"{d}/libnss_hostile.so.2", b"\x7fELF" + b"\0" * 60, mode=0o755)
    return run_case(ctx, t, run_args=["-u", MARKER], cmd=["/bin/sh", "-c", "id -u; id -g"],
                    expect=ran(0, stdout="4242\n4343\n"))


@case("run", "run-host-only-user")
def _(ctx):
    """-u daemon: a user of the host (Debian) that the image's passwd does not have."""
    return run_case(ctx, None, run_args=["-u", "daemon"], cmd=["/bin/sh", "-c", "id -u"],
                    expect=error("daemon"))


@case("run", "run-passwd-magic-link")
def _(ctx):
    """The image's /etc/passwd -> /proc/self/root/etc/passwd (the host's, before pivot_root);
    -u daemon must not resolve through it."""
    t = Tar().dir("etc").symlink("etc/passwd", "/proc/self/root/etc/passwd")
    t.symlink("etc/group", "/proc/1/root/etc/group")
    return run_case(ctx, t, run_args=["-u", "daemon"], cmd=["/bin/sh", "-c", "id -u"],
                    expect=error("unable to find user daemon: no matching entries in passwd file"))


@case("run", "run-passwd-fifo")
def _(ctx):
    """The image's /etc/passwd is a FIFO: reading it must not block forever."""
    t = Tar().dir("etc").add("etc/passwd", "fifo")
    return run_case(ctx, t, cmd=["/bin/sh", "-c", "echo ran"],
                    expect=error("/etc/passwd: not a regular file"), limits={"timeout": 10})


@case("run", "run-group-fifo")
def _(ctx):
    """The image's /etc/group is a FIFO."""
    t = Tar().dir("etc").add("etc/group", "fifo")
    return run_case(ctx, t, run_args=["-u", "user"], cmd=["/bin/sh", "-c", "echo ran"],
                    expect=error("/etc/group: not a regular file"), limits={"timeout": 10})


@case("run", "run-passwd-dev-zero")
def _(ctx):
    """The image's /etc/passwd -> /dev/zero (endless): bounded."""
    t = Tar().dir("etc").symlink("etc/passwd", "/dev/zero")
    return run_case(ctx, t, cmd=["/bin/sh", "-c", "echo ran"],
                    expect=error("/etc/passwd: not a regular file"),
                    limits={"timeout": 30, "max_rss_mb": 100})


@case("run", "run-uid-out-of-range")
def _(ctx):
    """A passwd entry with uid 2^32 (would truncate to 0, root)."""
    passwd = _image_passwd(ctx) + b"evil:x:4294967296:4294967296::/:/bin/sh\n"
    t = Tar().dir("etc").file("etc/passwd", passwd)
    # The malformed entry is skipped, as glibc and busybox skip it.
    return run_case(ctx, t, run_args=["-u", "evil"], cmd=["/bin/sh", "-c", "id -u"],
                    expect=error("unable to find user evil: no matching entries in passwd file"))


@case("run", "run-volume-target-symlink")
def _(ctx):
    """-v SENTINEL:/vol:ro where /vol -> ../(x40)/sentinel/imgtool-hostile-vol (CVE-2021-30465:
    mount targets resolved in the root)."""
    t = Tar().symlink("vol", up(ctx.S) + f"/{MARKER}-vol")
    return run_case(ctx, t, run_args=["-v", f"{ctx.S}/sub:/vol:ro"],
                    cmd=["/bin/sh", "-c", "ls /vol; echo ran"],
                    expect=error("open `/vol`: No such file or directory"))


@case("run", "run-tmpfs-target-symlink")
def _(ctx):
    """--tmpfs /t where /t -> /sentinel/imgtool-hostile-tmpfs."""
    t = Tar().symlink("t", ctx.S + f"/{MARKER}-tmpfs")
    return run_case(ctx, t, run_args=["--tmpfs", "/t"],
                    cmd=["/bin/sh", "-c", "touch /t/x; echo ran"],
                    expect=error("open `/t`: No such file or directory"))


@case("run", "run-volume-target-etc")
def _(ctx):
    """-v SENTINEL/sub:/etc/x where /etc in the image -> /etc (absolute; must resolve in the
    root, so the host's /etc never gets x)."""
    t = Tar().symlink("etc2", "/etc")
    return run_case(ctx, t, run_args=["-v", f"{ctx.S}/sub:/etc2/{MARKER}-mnt:ro"],
                    cmd=["/bin/sh", "-c", f"ls /etc/{MARKER}-mnt; echo ran"],
                    expect=ran(0, stdout="link\nx\nran\n"))


# ---- names tar readers disagree on ----------------------------------------------------
# One layer tar whose entries Go's archive/tar (scanners, containerd, umoci), GNU tar, Python's
# tarfile or Rust's tar crate read differently from libarchive: a reviewer sees a harmless name
# while imgtool would write bin/sh (or the reverse). Each is refused with one line naming the layer
# and the entry, before anything is committed (layer::TarCheck, docs/layers.md "Known reader
# differences").

def gnu_long(value, typeflag=b"L") -> bytes:
    """A GNU long name ('L') or long link name ('K') header and its NUL-terminated data."""
    data = _b(value) + b"\0"
    return header(b"././@LongLink", typeflag, size=len(data), gnu=True) + pad(data)


def _ambiguous(ctx, tar: Tar, *needles, compression="gzip") -> dict:
    """The layer is refused; the error names it (blob digest), then the entry and the reason."""
    blob = layer(tar, compression)
    return blob_case(ctx, blob, error(f"layer {digest_of(blob.data)}: ", *needles))


_ON_NAME = "tar readers disagree on its name"
_ON_WALK = "tar readers disagree on where the next entry starts"


@case("ambiguous", "pax-path-then-gnu-long-name")
def _(ctx):
    """PAX path=bin/sh, then GNU 'L' harmless, then the ustar header: libarchive and GNU tar
    read bin/sh, Go's archive/tar reads harmless."""
    t = Tar().pax([("path", "bin/sh")]).raw(gnu_long(f"{MARKER}-harmless"))
    t.raw(header("ustar-name", size=3) + pad(b"sh\n"))
    return _ambiguous(ctx, t, "entry 1 (bin/sh): both a PAX path (bin/sh) and a GNU long name "
                              f"({MARKER}-harmless)", _ON_NAME)


@case("ambiguous", "gnu-long-name-then-pax-path")
def _(ctx):
    """GNU 'L' bin/sh, then PAX path=harmless: libarchive and Go read bin/sh, GNU tar harmless.
    The layer is uncompressed (the tar is checked on the producer thread)."""
    t = Tar().raw(gnu_long("bin/sh")).pax([("path", f"{MARKER}-harmless")])
    t.raw(header("ustar-name", size=3) + pad(b"sh\n"))
    return _ambiguous(ctx, t, f"entry 1 (bin/sh): both a PAX path ({MARKER}-harmless) and a GNU "
                              "long name (bin/sh)", _ON_NAME, compression="none")


@case("ambiguous", "gnu-header-prefix-in-times")
def _(ctx):
    """A GNU-magic header named bin/sh whose atime/ctime bytes hold opt/harmless: libarchive and
    GNU tar read bin/sh, Go's archive/tar guesses a pre-Go-1.8 prefix (opt/harmless/bin/sh)."""
    t = Tar().raw(header("bin/sh", size=3, gnu=True, extra={345: b"opt/harmless"}) + pad(b"sh\n"))
    return _ambiguous(ctx, t, "entry 1 (bin/sh): an old GNU header whose time fields hold text",
                      "(opt/harmless/bin/sh)", _ON_NAME)


@case("ambiguous", "pax-linkpath-and-gnu-long-link")
def _(ctx):
    """A symlink with PAX linkpath=busybox and GNU 'K' true: libarchive reads the first of them,
    GNU tar always the PAX one, Go always the GNU one."""
    t = Tar().file("busybox", "bb\n").file("true", "t\n").pax([("linkpath", "busybox")])
    t.raw(gnu_long("true", b"K") + header("sh", b"2", linkname="x", mode=0o777))
    return _ambiguous(ctx, t, "entry 3 (sh): both a PAX linkpath (busybox) and a GNU long link "
                              "name (true)", "tar readers disagree on its link target")


@case("ambiguous", "pax-path-twice")
def _(ctx):
    """One PAX header with path=harmless then path=bin/sh: libarchive, Go, GNU tar and Python
    take the last, Rust's tar crate the first."""
    t = Tar().pax([("path", f"{MARKER}-harmless"), ("path", "bin/sh")])
    t.raw(header("ustar-name", size=3) + pad(b"sh\n"))
    return _ambiguous(ctx, t, "entry 1 (bin/sh): several PAX path records", _ON_NAME)


@case("ambiguous", "pax-global-header-sets-path")
def _(ctx):
    """A PAX global header ('g') with path=bin/sh before a file harmless: GNU tar and Python apply
    it to every later entry, libarchive and Go ignore it."""
    t = Tar().pax([("path", "bin/sh")], typeflag=b"g").file(f"{MARKER}-harmless", "sh\n")
    return _ambiguous(ctx, t, f"entry 1 ({MARKER}-harmless): a PAX global header that sets path",
                      "tar readers disagree on the names of the entries after it")


@case("ambiguous", "pax-global-header-inside-chain")
def _(ctx):
    """PAX path=bin/sh, then a global header, then the ustar header harmless: libarchive, GNU tar
    and Python read bin/sh; Go returns the global header as an entry and forgets the path."""
    t = Tar().pax([("path", "bin/sh")]).pax([("comment", "c")], typeflag=b"g")
    t.raw(header(f"{MARKER}-harmless", size=3) + pad(b"sh\n"))
    return _ambiguous(ctx, t, "entry 1 (bin/sh): a PAX global header between the entry and its "
                              "extension headers", _ON_NAME)


@case("ambiguous", "gnu-long-name-twice")
def _(ctx):
    """GNU 'L' harmless, then 'L' bin/sh: libarchive, Go and GNU tar read bin/sh, Python the
    first."""
    t = Tar().raw(gnu_long(f"{MARKER}-harmless") + gnu_long("bin/sh"))
    t.raw(header("ustar-name", size=3) + pad(b"sh\n"))
    return _ambiguous(ctx, t, "entry 1 (bin/sh): two GNU long names", _ON_NAME)


@case("ambiguous", "pax-header-twice")
def _(ctx):
    """Two PAX headers, path=harmless then path=bin/sh: libarchive applies the second (and warns),
    Python the first."""
    t = Tar().pax([("path", f"{MARKER}-harmless")]).pax([("path", "bin/sh")])
    t.raw(header("ustar-name", size=3) + pad(b"sh\n"))
    return _ambiguous(ctx, t, "entry 1 (bin/sh): two PAX extended headers", _ON_NAME)


@case("ambiguous", "ustar-prefix-odd-magic")
def _(ctx):
    """Magic "ustar\x01": libarchive reads the prefix field (bin/sh), Go and GNU tar do not (sh)."""
    t = Tar().raw(header("sh", size=3, prefix=b"bin", extra={257: b"ustar\x01"}) + pad(b"sh\n"))
    return _ambiguous(ctx, t, "entry 1 (bin/sh): a ustar name prefix that Go's archive/tar reads "
                              "differently (sh", _ON_NAME)


# The walk cases hide an empty bin/sh header (512 bytes) where one reader sees data and another a
# header; either way the archive then ends cleanly for both.
_HIDDEN = header("bin/sh", size=0)


@case("ambiguous", "file-named-dir-with-data")
def _(ctx):
    """A regular file x/ whose 512 bytes of data are a header for bin/sh: libarchive makes x a
    directory, skips nothing and writes bin/sh; Go reads the header as x/'s data."""
    t = Tar().raw(header(f"{MARKER}-dir/", size=BLOCK) + _HIDDEN)
    return _ambiguous(ctx, t, f"entry 1 ({MARKER}-dir/): a name ending in / with 512 bytes of data",
                      _ON_WALK)


@case("ambiguous", "size-field-leading-nuls")
def _(ctx):
    """A size field of NULs then 1000 (octal 512): libarchive reads 0 and writes the bin/sh
    behind it; Go trims the NULs, reads 512 and skips that header as data."""
    t = Tar().raw(header(f"{MARKER}-f", size=b"\0" * 6 + b"1000\0") + _HIDDEN)
    return _ambiguous(ctx, t, f"entry 1 ({MARKER}-f): a file whose data libarchive reads as 0 bytes "
                              "and Go's archive/tar as 512", _ON_WALK)


@case("ambiguous", "hard-link-with-data")
def _(ctx):
    """In a pax archive, a hard link with a 512-byte size whose data is a header for bin/sh:
    libarchive skips it as data, Go, GNU tar and Python read bin/sh."""
    t = Tar().file("t", "t\n", pax=[("mtime", "1")])
    t.raw(header("h", b"1", linkname="t", size=BLOCK) + _HIDDEN)
    return _ambiguous(ctx, t, "entry 2 (h): a hard link whose data libarchive reads as 512 bytes "
                              "and Go's archive/tar as 0", _ON_WALK)


@case("ambiguous", "sparse-map-short")
def _(ctx):
    """An old GNU sparse file with 1024 bytes of data whose map covers 512: libarchive resumes
    reading headers inside the data (at bin/sh), Go and GNU tar skip all 1024 bytes."""
    t = Tar().raw(header(f"{MARKER}-sparse", b"S", size=1024, gnu=True,
                         extra={386: _num(0, 12), 398: _num(512, 12), 483: _num(4096, 12)}))
    t.raw(b"S" * BLOCK + _HIDDEN)
    return _ambiguous(ctx, t, f"entry 1 ({MARKER}-sparse): a sparse map covering 512 of its 1024 "
                              "bytes of data", _ON_WALK)


@case("ambiguous", "symlink-with-size")
def _(ctx):
    """A symlink whose size field says 512, followed by a bin/sh header: libarchive, Go and Python
    read bin/sh next, GNU tar skips it as the symlink's data."""
    t = Tar().raw(header("link", b"2", linkname="target", size=BLOCK, mode=0o777) + _HIDDEN)
    return _ambiguous(ctx, t, "entry 1 (link): a symlink with a size of 512 (GNU tar skips", _ON_WALK)


@case("ambiguous", "ordinary-long-names")
def _(ctx):
    """Long names and targets as writers make them, each read one way by every reader: PAX path
    and linkpath, GNU 'L' and 'K', a ustar prefix, a PAX path over a prefix, a GNU sparse file,
    a global header with a comment (git archive): accepted as before."""
    long_dir = "d" * 60 + "/" + "e" * 60
    t = Tar().dir("d" * 60).dir(long_dir)
    t.file(long_dir + "/pax", "p\n")                      # PAX path (> 100 bytes)
    t.file(long_dir + "/gnu", "g\n", gnu_names=True)      # GNU 'L'
    t.symlink("to-long", long_dir + "/pax")               # PAX linkpath
    t.symlink("to-long-gnu", long_dir + "/gnu", gnu_names=True)  # GNU 'K'
    t.raw(header("prefixed", size=2, prefix="d" * 60) + pad(b"x\n"))
    t.raw(Tar().pax([("path", "d" * 60 + "/pax-over-prefix")]).bytes(end=False))
    t.raw(header("ignored", size=2, prefix="ignored-prefix") + pad(b"y\n"))
    t.raw(Tar().pax([("comment", "0123abcd")], typeflag=b"g").bytes(end=False))
    t.raw(gnu_sparse_old("sparse", 1 << 20, [(0, b"H" * 512), ((1 << 20) - 512, b"T" * 512)]))
    return one_layer(ctx, t, contained(
        F(long_dir + "/pax", "p\n"), F(long_dir + "/gnu", "g\n"),
        L("to-long", long_dir + "/pax"), L("to-long-gnu", long_dir + "/gnu"),
        F("d" * 60 + "/prefixed", "x\n"), F("d" * 60 + "/pax-over-prefix", "y\n"),
        F("sparse", size=1 << 20)))


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def base_image(outdir: str) -> dict:
    img = oci_image([layer(Tar().dir("base").file("base/hello.txt", "hello from base\n"))],
                    "hostile/base:latest")
    write_layout(os.path.join(outdir, "base.oci"), img.files)
    return {"path": "base.oci", "format": "oci-layout", "diff_ids": img.diff_ids}


SUFFIX = {"oci-layout": ".oci", "oci-archive": ".oci.tar", "docker-archive": ".docker.tar",
          "file": ".bin", "fifo": ".fifo"}


def emit(ctx: Ctx, c: Case) -> dict:
    ctx.name = c.name
    shutil.rmtree(os.path.join(ctx.outdir, "outside", c.name), ignore_errors=True)
    out = c.build(ctx)
    fmt = out["format"]
    rel = c.name + SUFFIX[fmt]
    path = os.path.join(ctx.outdir, rel)
    files = out["files"]
    if fmt == "oci-layout":
        write_layout(path, files)
    elif fmt in ("oci-archive", "docker-archive"):
        parts = outer_tar(files)
        if out.get("no_eof"):
            parts = parts[:-1]
        limit = None
        if "truncate" in out:
            limit = int(parts_size(parts) * out["truncate"]) // BLOCK * BLOCK + 100
        with open(path + ".tmp", "wb") as fh:
            write_parts(fh, parts, limit)
        os.replace(path + ".tmp", path)
    elif fmt == "file":
        write_file(path, files)
    elif fmt == "fifo":
        if os.path.lexists(path):
            os.remove(path)
        os.mkfifo(path, 0o644)
    else:
        raise ValueError(fmt)
    expect = out["expect"]
    expect.setdefault("outside", [])
    rec = {"name": c.name, "category": c.category, "doc": c.doc,
           "verb": out.get("verb", "pull-local"),
           "format": fmt, "path": rel, "sentinel": ctx.S, "diff_ids": out.get("diff_ids", []),
           "expect": expect, "limits": out.get("limits", {}), "deep": out.get("deep", False),
           "big_tree": out.get("big_tree", False)}
    if rec["verb"] == "run":
        rec["command"] = out["command"]
    if "kill_marker" in out:
        rec["kill_marker"] = out["kill_marker"]
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--sentinel-base", required=True, metavar="DIR",
                    help="directory that will hold each case's sentinel-<case> tree")
    ap.add_argument("--busybox", default="/bin/busybox", metavar="PATH",
                    help="static busybox binary for the run cases")
    ap.add_argument("--only", nargs="+", action="extend", metavar="NAME")
    args = ap.parse_args(argv)

    with open(args.busybox, "rb") as fh:
        busybox = fh.read()
    if gen_images.static_elf_arch(busybox) is None:
        ap.error(f"{args.busybox} is not a statically linked ELF binary")
    known = {c.name for c in CASES}
    if args.only and set(args.only) - known:
        ap.error(f"unknown case(s): {', '.join(sorted(set(args.only) - known))}")
    os.makedirs(args.outdir, exist_ok=True)
    ctx = Ctx(os.path.abspath(args.outdir), os.path.abspath(args.sentinel_base), busybox)
    records = [emit(ctx, c) for c in CASES if not args.only or c.name in args.only]
    index = {"base": base_image(args.outdir), "cases": records}
    tmp = os.path.join(args.outdir, "hostile.json.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(index, sort_keys=True, indent=1, ensure_ascii=True) + "\n")
    os.replace(tmp, os.path.join(args.outdir, "hostile.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
