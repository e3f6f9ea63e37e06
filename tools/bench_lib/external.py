"""Images given with `tools/bench --image PATH`: built elsewhere by real tools (buildah, podman,
skopeo; see tools/real_image.sh) and benchmarked like the generated set: imgtool pull-local of the
file as given, umoci unpack of an OCI layout of it (made with skopeo, layers kept as they are),
podman load of it, a tar loop over its layer blobs and the decompression floor of those blobs.

What is derived from an image (the layout, the layer list, entry counts) is cached under
WORK/images/external/<key>/, keyed by the image's path, size and mtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile

from .system import log, run

MiB = 1 << 20
REF = "bench"


def detect_form(path: str) -> str:
    """docker-archive, oci-archive or oci-layout; raises ValueError for anything else."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "oci-layout")):
            return "oci-layout"
        raise ValueError(f"{path}: a directory without an oci-layout file")
    try:
        with tarfile.open(path, "r:") as t:
            names = {n.lstrip("./") for n in t.getnames()}
    except tarfile.TarError as e:
        raise ValueError(f"{path}: not a tar archive ({e})") from e
    if "oci-layout" in names:
        return "oci-archive"
    if "manifest.json" in names:
        return "docker-archive"
    raise ValueError(f"{path}: neither an OCI archive (oci-layout) nor a docker-archive (manifest.json)")


def compression_of(blob: str) -> str:
    with open(blob, "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return "tar"


def _layout_manifest(layout: str) -> dict:
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    desc = index["manifests"][0]
    blob = lambda d: os.path.join(layout, "blobs", *d.split(":", 1))  # noqa: E731
    with open(blob(desc["digest"])) as f:
        manifest = json.load(f)
    if "manifests" in manifest:  # a nested index: its first image
        with open(blob(manifest["manifests"][0]["digest"])) as f:
            manifest = json.load(f)
    ref = (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
    return {"manifest": manifest, "ref": ref, "blob": blob}


def _fix_uncompressed_media_types(layout: str) -> None:
    """A docker-archive's manifest calls every layer gzip (docker's v2s2 media type), even the
    uncompressed ones, and skopeo carries that into the OCI manifest; umoci then fails with "gzip:
    invalid header". Give uncompressed blobs the plain tar media type (manifest and index rewritten)."""
    m = _layout_manifest(layout)
    manifest, changed = m["manifest"], False
    for l in manifest["layers"]:
        if compression_of(m["blob"](l["digest"])) == "tar" and l["mediaType"].endswith("+gzip"):
            l["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
            changed = True
    if not changed:
        return
    data = json.dumps(manifest, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with open(m["blob"](digest), "wb") as f:
        f.write(data)
    index_path = os.path.join(layout, "index.json")
    with open(index_path) as f:
        index = json.load(f)
    index["manifests"][0].update(digest=digest, size=len(data))
    with open(index_path + ".tmp", "w") as f:
        json.dump(index, f)
    os.rename(index_path + ".tmp", index_path)


def _count_entries(blob: str, comp: str) -> tuple[int, int]:
    """(entries, uncompressed bytes) of one layer blob."""
    dec = {"gzip": ["igzip", "-dc", blob], "zstd": ["zstd", "-dcq", blob], "tar": ["cat", blob]}[comp]
    p = subprocess.Popen(dec, stdout=subprocess.PIPE)
    counter = _CountingReader(p.stdout)
    n = 0
    with tarfile.open(fileobj=counter, mode="r|") as t:
        for _ in t:
            n += 1
    while counter.read(1 << 20):
        pass
    p.wait()
    return n, counter.bytes


class _CountingReader:
    def __init__(self, raw):
        self.raw, self.bytes = raw, 0

    def read(self, n=-1):
        b = self.raw.read(n)
        self.bytes += len(b)
        return b


def prepare(work: str, path: str) -> dict:
    """The description of one external image (cached)."""
    path = os.path.abspath(path)
    st = os.stat(path)
    key = hashlib.sha256(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    d = os.path.join(work, "images", "external", key)
    desc_path = os.path.join(d, "image.json")
    if os.path.exists(desc_path):
        with open(desc_path) as f:
            desc = json.load(f)
        if os.path.exists(desc["layout"]):
            log(f"--image {path}: cached in {d}")
            return desc
    form = detect_form(path)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if form == "oci-layout":
        layout = path
    else:
        # umoci reads layouts only. Made as a umoci user would, with skopeo, keeping the layers as
        # they are (skopeo would otherwise gzip uncompressed ones).
        layout = os.path.join(d, "layout")
        src = f"{form}:{path}"
        log(f"--image: skopeo copy {src} oci:{layout}:{REF}")
        run(["skopeo", "copy", "--quiet", "--dest-oci-accept-uncompressed-layers", src,
             f"oci:{layout}:{REF}"])
        _fix_uncompressed_media_types(layout)
    m = _layout_manifest(layout)
    layers = []
    for l in m["manifest"]["layers"]:
        blob = m["blob"](l["digest"])
        comp = compression_of(blob)
        log(f"--image: counting the entries of {l['digest'][:19]} ({comp})")
        entries, tar_size = _count_entries(blob, comp)
        layers.append({"blob": blob, "compression": comp, "size": os.path.getsize(blob),
                       "entries": entries, "tar_size": tar_size})
    name = os.path.basename(path.rstrip("/"))
    desc = {"name": name, "path": path, "form": form, "layout": layout,
            "ref": m["ref"] or REF, "layers": layers, "dir": d}
    with open(desc_path + ".tmp", "w") as f:
        json.dump(desc, f, indent=1)
    os.rename(desc_path + ".tmp", desc_path)
    return desc


def rows(ext: dict) -> tuple[list[str], list[list[str]]]:
    """A row for the images table and rows for the layer table."""
    ls = ext["layers"]
    comps = "/".join(sorted({l["compression"] for l in ls}))
    size = (sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ext["path"]) for f in fs)
            if os.path.isdir(ext["path"]) else os.path.getsize(ext["path"]))
    image_row = [f"--image {ext['name']} ({ext['form']}, {comps} layers)", f"{size / MiB:.1f} MiB",
                 f"{sum(l['tar_size'] for l in ls) / MiB:.1f} MiB",
                 f"{sum(l['entries'] for l in ls):,}", str(len(ls))]
    layer_rows = [[f"{ext['name']} {i + 1}", l["compression"], f"{l['entries']:,}",
                   f"{l['tar_size'] / MiB:.1f}", f"{l['size'] / MiB:.1f}"] for i, l in enumerate(ls)]
    return image_row, layer_rows
