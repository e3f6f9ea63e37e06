#!/usr/bin/env python3
"""The peers' own layer-extraction tests, ported as imgtool test images.

Usage: python3 tools/gen_peer_cases.py OUTDIR --sentinel-base DIR [--only NAME ...]

imgtool's hostile corpus (gen_hostile.py) only tried imgtool's own ideas. This generator ports the
facts and expected results (never the code) of the extraction tests of containerd
(pkg/archive/tar_test.go), moby's archive package (github.com/moby/go-archive), umoci
(oci/layer) and containers/storage (pkg/archive, pkg/chrootarchive, drivers/overlay via
graphtest). Each case is one OCI layout whose layers (bottom first) hold the tar entries the
peer's test applies: where the peer starts from a directory it prepared on disk, that state is the
lower layer; where the peer applies several layers one after another, so does the image. Names
that could land outside the root are prefixed with MARKER (moby's "victim" is MARKER-victim), and
host paths the peer made for its test are the sentinel's; nothing else is changed. A case marked
`variant` is the port's own addition to the peer's subtest (a lower layer for a whiteout to hide, a
control), and says why.

OUTDIR/peers.json: {"sentinel": DIR/sentinel, "marker": MARKER, "rules": {number: text}, "base":
{path, diff_ids} (a small image the test pulls into every store first, so that "a refused pull
leaves the store unchanged" means something), "cases": [...]}, each case:

  name                 family.Test.Subtest[+variant], unique; path: NAME.oci (relative to OUTDIR)
  family               containerd | moby | umoci | containers-storage
  source               repo, file, test; also (the same facts in other tests or repos); variant
                       (set when the port adds something the peer's test does not have, and why)
  layers               the tar entries of each layer, bottom first (name, type, mode, owner, data,
                       target, dev, typeflag, pax), as written
  diff_ids, layer_digests, tag
  peer                 outcome ("ok", "error", "error-or-contained": their test accepts either a
                       refusal or an extraction with nothing written outside) and states (what
                       their test asserts, in words)
  expect               imgtool's expected result under its layer rules (RULES below):
                         {"outcome": "ok", "tree": {path: entry}}: the merged tree, every entry
                           but the root (implicit parents included): type (dir, file, symlink,
                           chr, blk, fifo), mode "0644", uid, gid, content_hex (files), target
                           (symlinks), rdev "M:m", same_as (hard-linked to that path), xattrs
                           {name: hex};
                         {"outcome": "error", "error": [substrings of the one error line],
                           "names_layer": index of the layer the line must name, or null}
  expect_rootless      the same for the rootless run, where it differs in more than the device
                       nodes (which a rootless pull skips)
  why                  where imgtool's expectation differs from the peer's: why (null if it does
                       not)
  rules                the numbers of imgtool's layer rules (RULES) the case exercises
  umoci                what `umoci unpack` (0.4.7, Debian 12) gives where it differs from imgtool's
                       expected tree: {"outcome": "error", "why": ...} or {"outcome": "differs",
                       "paths": [the paths that differ], "why": ...}; null when it gives the same
                       tree (only cases imgtool accepts are unpacked with umoci)

Absolute paths that would reach the host if followed there point into DIR/sentinel (the test makes
it: file.txt, sub/x 0600, sub/link -> ../file.txt); names a case plants outside if it escapes start
with MARKER. Output is byte-for-byte reproducible; only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import shutil
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_hostile  # noqa: E402  (raw tar writer and OCI image helpers)
from gen_hostile import Tar, b256, header, layer, oci_image, pad, write_layout  # noqa: E402
from gen_images import FIXED_MTIME  # noqa: E402

MARKER = "imgtool-peers"
V = f"{MARKER}-victim"  # moby's testBreakout "victim" directory, beside the extraction root

REPOS = {"containerd": "containerd/containerd", "moby": "moby/go-archive",
         "umoci": "opencontainers/umoci", "containers-storage": "containers/storage",
         # Not a peer: what attacking imgtool 55cfe6d from outside found (issue 12, items 11-15),
         # kept beside the peers' cases so it goes through the same merged-view checks.
         "findings": "imgtool issue 12"}
FAMILIES = tuple(REPOS)


# --------------------------------------------------------------------------
# Layer entries
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Ent:
    """One tar entry of a layer."""
    name: str
    kind: str = "file"          # file dir symlink hardlink char block fifo
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    target: str = ""
    dev: tuple = (0, 0)
    typeflag: bytes | None = None
    pax: tuple = ()
    mtime: int = FIXED_MTIME
    raw: bytes | None = None    # a hand-made header (+ data) written verbatim instead

    def record(self) -> dict:
        out = {"name": self.name, "type": self.kind, "mode": format(self.mode, "04o")}
        if self.kind == "file":
            out["data"] = self.data.decode("utf-8", "backslashreplace")
        if self.kind in ("symlink", "hardlink"):
            out["target"] = self.target
        if self.kind in ("char", "block"):
            out["dev"] = f"{self.dev[0]}:{self.dev[1]}"
        if (self.uid, self.gid) != (0, 0):
            out["owner"] = f"{self.uid}:{self.gid}"
        if self.typeflag is not None:
            out["typeflag"] = self.typeflag.decode("latin-1")
        if self.pax:
            out["pax"] = {k: (v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v)
                          for k, v in self.pax}
        if self.raw is not None:
            out["raw_header"] = True
        return out


def _bytes(data) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def d(name, mode=0o755, **kw) -> Ent:
    return Ent(name, "dir", mode=mode, **kw)


def f(name, data=b"", mode=0o644, **kw) -> Ent:
    return Ent(name, "file", _bytes(data), mode=mode, **kw)


def s(name, target, mode=0o777, **kw) -> Ent:
    return Ent(name, "symlink", mode=mode, target=target, **kw)


def h(name, target, mode=0o644, **kw) -> Ent:
    return Ent(name, "hardlink", mode=mode, target=target, **kw)


def c(name, major, minor, mode=0o600, **kw) -> Ent:
    return Ent(name, "char", mode=mode, dev=(major, minor), **kw)


def bdev(name, major, minor, mode=0o600, **kw) -> Ent:
    return Ent(name, "block", mode=mode, dev=(major, minor), **kw)


def fifo(name, mode=0o644, **kw) -> Ent:
    return Ent(name, "fifo", mode=mode, **kw)


def tar_bytes(entries: list) -> bytes:
    t = Tar()
    for e in entries:
        if e.raw is not None:
            t.raw(e.raw)
            continue
        t.add(e.name, e.kind, e.data, mode=e.mode, uid=e.uid, gid=e.gid, mtime=e.mtime,
              target=e.target, dev=e.dev, pax=e.pax, typeflag=e.typeflag)
    return t.bytes()


# --------------------------------------------------------------------------
# Expected trees
# --------------------------------------------------------------------------

def _x(path, kind, mode, uid=0, gid=0, **extra) -> dict:
    out = {"path": path.strip("/"), "type": kind, "mode": format(mode, "04o"), "uid": uid,
           "gid": gid}
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def xd(path, mode=0o755, uid=0, gid=0, xattrs=None) -> dict:
    return _x(path, "dir", mode, uid, gid, xattrs=xattrs)


def xf(path, content=b"", mode=0o644, uid=0, gid=0, xattrs=None) -> dict:
    return _x(path, "file", mode, uid, gid, content_hex=_bytes(content).hex(), xattrs=xattrs)


def xl(path, target, uid=0, gid=0) -> dict:
    return _x(path, "symlink", 0o777, uid, gid, target=target)


def xh(path, same_as) -> dict:
    """Hard-linked to same_as (takes its type and metadata)."""
    return {"path": path.strip("/"), "same_as": same_as.strip("/")}


def xc(path, major, minor, mode=0o600) -> dict:
    return _x(path, "chr", mode, rdev=f"{major}:{minor}")


def xb(path, major, minor, mode=0o600) -> dict:
    return _x(path, "blk", mode, rdev=f"{major}:{minor}")


def xp(path, mode=0o644) -> dict:
    return _x(path, "fifo", mode)


def tree(*entries) -> dict:
    """path -> entry; parents not listed are implicit directories (0755 root:root, rule 6)."""
    out: dict = {}
    for e in entries:
        path = e["path"]
        assert path and path not in out, path
        out[path] = {k: v for k, v in e.items() if k != "path"}
    for path in list(out):
        parent = posixpath.dirname(path)
        while parent and parent not in out:
            out[parent] = {"type": "dir", "mode": "0755", "uid": 0, "gid": 0}
            parent = posixpath.dirname(parent)
    for path, e in out.items():
        if "same_as" in e:
            target = out[e["same_as"]]
            assert "same_as" not in target and target["type"] not in ("dir",), path
            out[path] = dict(target, same_as=e["same_as"])
    return dict(sorted(out.items()))


def ok(*entries) -> dict:
    return {"outcome": "ok", "tree": tree(*entries)}


def err(*needles, layer=None) -> dict:
    return {"outcome": "error", "error": list(needles), "names_layer": layer}


def peer(outcome: str, states: str) -> dict:
    assert outcome in ("ok", "error", "error-or-contained"), outcome
    return {"outcome": outcome, "states": states}


# imgtool's layer rules: what every case's `expect` follows (and `rules` refers to).
RULES = {
    1: "Entry names: a leading / is dropped, `.` and empty components vanish, `..` above the root "
       "is refused (an error, nothing written).",
    2: "`.wh.X` deletes X from lower layers only; an entry X of the same layer (before or after "
       "the whiteout) is kept, and if it is a directory it becomes opaque.",
    3: "`.wh..wh..opq` makes its directory opaque whatever its position in the tar; whiteouts "
       "inside an opaque directory of the same layer are redundant and dropped.",
    4: "A whiteout of something no lower layer has is a no-op: no entry in either view.",
    5: "A whiteout (or opaque marker) whose parent is a non-directory of the same layer is a "
       "no-op.",
    6: "Missing parent directories are created implicitly (0755 root:root); where the lower "
       "layers' merged tree has a non-directory at such a path the pull is refused with one line "
       "naming the layer and the path.",
    7: "A symlink or file replaces a lower directory; an explicit directory replaces a lower "
       "symlink or file (only this layer's contents then show).",
    8: "A hardlink's target must be an earlier entry of the same layer, not a whiteout; hardlinks "
       "to directories and targets outside the root are refused.",
    9: "Duplicate entries: the later wins.",
    10: "trusted.overlay.* / user.overlay.* xattrs in the tar are dropped; invalid whiteout names "
        "(.wh., .wh.., .wh...) are refused.",
    11: "Device nodes are kept for root (the views are mounted nodev) and skipped rootless.",
}

# Shared `why` sentences.
WHY_RULE6 = ("imgtool stores each layer by diff_id on its own, so it cannot follow a symlink of "
             "the layers below; an implicit directory there would silently hide the lower tree, "
             "so the pull is refused naming the layer and the path (rule 6)")
WHY_DOTDOT = ("imgtool refuses a `..` that climbs above the layer root (rule 1) where the peer "
              "clamps it at the root")
WHY_CROSS_LAYER = ("the link's target is in a lower layer: imgtool keeps each layer apart, so a "
                   "hardlink can only join entries of its own layer (rule 8; the image spec leaves "
                   "cross-layer hardlinks undefined)")
WHY_SAME_LAYER_WH = ("a whiteout only deletes from the layers below (rule 2), so what this layer "
                     "wrote before it stays; umoci's overlayfs writer applies it to this layer too "
                     "(its directory writer does not: see TestUnpackOpaqueWhiteout/UpperWhiteout)")
WHY_DANGLING_PARENT = ("the entry's parent is a symlink whose target does not exist in the layer: "
                       "imgtool creates missing directories only below existing directories, never "
                       "at a symlink's target, and refuses")


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

@dataclass
class Case:
    family: str
    file: str
    test: str
    layers: list
    peer: dict
    expect: dict
    why: str | None = None
    rules: tuple = ()
    also: tuple = ()
    variant: str | None = None
    expect_rootless: dict | None = None
    name: str = field(default="", init=False)

    def __post_init__(self):
        slug = self.test.replace("/", ".").replace(" ", "_")
        suffix = f"+{self.variant.split(':')[0]}" if self.variant else ""
        self.name = f"{self.family}.{slug}{suffix}"


def containerd_cases(S: str) -> list:
    F = "pkg/archive/tar_test.go"

    def br(sub, layers, peer_, expect, **kw):
        return Case("containerd", F, f"TestBreakouts/{sub}", layers, peer_, expect, **kw)

    out = []
    unbroken = "etc/unbroken reads `unbroken`: the write through localetc resolved inside the root"
    out.append(br("SymlinkAbsolute", [[d("etc"), s("localetc", "/etc"),
                                       f("/localetc/unbroken", "unbroken")]],
                  peer("ok", unbroken),
                  ok(xd("etc"), xf("etc/unbroken", "unbroken"), xl("localetc", "/etc")),
                  rules=(1,)))
    out.append(br("SymlinkUpAndOut", [[d("etc"), d("dummy"), s("localetc", "/dummy/../etc"),
                                       f("/localetc/unbroken", "unbroken")]],
                  peer("ok", unbroken),
                  ok(xd("etc"), xf("etc/unbroken", "unbroken"), xd("dummy"),
                     xl("localetc", "/dummy/../etc"))))
    out.append(br("SymlinkMultipleAbsolute", [[d("etc"), d("dummy"), s("/dummy/etc", "/etc"),
                                               s("localetc", "/dummy/etc"),
                                               f("/dummy/etc/unbroken", "unbroken")]],
                  peer("ok", unbroken),
                  ok(xd("etc"), xf("etc/unbroken", "unbroken"), xd("dummy"),
                     xl("dummy/etc", "/etc"), xl("localetc", "/dummy/etc"))))
    out.append(br("SymlinkMultipleRelative", [[d("etc"), d("dummy"), s("/dummy/etc", "/etc"),
                                               s("localetc", "./dummy/etc"),
                                               f("/dummy/etc/unbroken", "unbroken")]],
                  peer("ok", unbroken),
                  ok(xd("etc"), xf("etc/unbroken", "unbroken"), xd("dummy"),
                     xl("dummy/etc", "/etc"), xl("localetc", "./dummy/etc"))))
    out.append(br("SymlinkEmptyFile", [[d("etc"), f("etc/emptied", "notempty"),
                                        s("localetc", "/etc"), f("/localetc/emptied", "")]],
                  peer("ok", "etc/emptied is empty: the write through localetc -> /etc stayed "
                             "inside"),
                  ok(xd("etc"), xf("etc/emptied", ""), xl("localetc", "/etc")), rules=(9,)))

    passwd = [d("etc", 0o770), f("/etc/passwd", "inside")]
    same = "sameFile({}, /etc/passwd): the hardlink resolved inside the root"
    for sub, links, extra in (
            ("HardlinkRelative", [d("breakouts"), s("breakouts/d1", "../../etc"),
                                  h("breakouts/mypasswd", "/breakouts/d1/passwd")],
             [xd("breakouts"), xl("breakouts/d1", "../../etc"),
              xh("breakouts/mypasswd", "etc/passwd")]),
            ("HardlinkDownAndOut", [d("breakouts"), d("downandout"),
                                    s("breakouts/d1", "../downandout/../../etc"),
                                    h("breakouts/mypasswd", "/breakouts/d1/passwd")],
             [xd("breakouts"), xd("downandout"), xl("breakouts/d1", "../downandout/../../etc"),
              xh("breakouts/mypasswd", "etc/passwd")]),
            ("HardlinkAbsolute", [s("localetc", "/etc"), h("localpasswd", "/localetc/passwd")],
             [xl("localetc", "/etc"), xh("localpasswd", "etc/passwd")]),
            ("HardlinkRelativeLong", [s("localetc", "../../../../../../../etc"),
                                      h("localpasswd", "/localetc/passwd")],
             [xl("localetc", "../../../../../../../etc"), xh("localpasswd", "etc/passwd")]),
            ("HardlinkDirectAbsolute", [h("localpasswd", "/etc/passwd")],
             [xh("localpasswd", "etc/passwd")])):
        linked = next(e["path"] for e in extra if "same_as" in e)
        out.append(br(sub, [passwd + links], peer("ok", same.format(linked)),
                      ok(xd("etc", 0o770), xf("etc/passwd", "inside"), *extra), rules=(8,)))
    out.append(br("HardlinkRelativeUpAndOut",
                  [passwd + [s("localetc", "upandout/../../../etc"),
                             h("localpasswd", "/localetc/passwd")]],
                  peer("ok", same.format("localpasswd")), err("localpasswd", "hardlink target"),
                  why="imgtool resolves a hardlink target with the kernel inside the layer "
                      "(openat2 RESOLVE_IN_ROOT), as the container would at run time: upandout "
                      "does not exist, so upandout/../../../etc resolves to nothing; containerd "
                      "cleans the path lexically and finds etc/passwd",
                  rules=(8,)))
    out.append(br("HardlinkDirectRelative",
                  [passwd + [h("localpasswd", "../../../../../etc/passwd")]],
                  peer("ok", same.format("localpasswd")
                       + " (the target's `..` clamped at the root)"),
                  err("localpasswd", "escapes"), why=WHY_DOTDOT + " (rule 8)", rules=(1, 8)))
    out.append(br("SymlinkParentDirectory",
                  [passwd + [s("..", "/etc/"), h("localpasswd", "/etc/passwd")]],
                  peer("ok", "the symlink named `..` resolves to the root and is skipped; "
                             "sameFile(localpasswd, /etc/passwd)"),
                  err("escapes"),
                  why="imgtool refuses a name that climbs above the layer root (rule 1); "
                      "containerd skips an entry that resolves to the root",
                  rules=(1,)))
    out.append(br("SymlinkEmptyFilename",
                  [passwd + [s("", "/etc/"), h("localpasswd", "/etc/passwd")]],
                  peer("ok", "the symlink with an empty name resolves to the root and is skipped; "
                             "sameFile(localpasswd, /etc/passwd)"),
                  err("layer root entry is not a directory"),
                  why="an empty name is the layer root itself (rule 1), and imgtool refuses a "
                      "non-directory entry for the root (umoci CVE-2021-29136) where containerd "
                      "skips it",
                  rules=(1,)))
    out.append(br("SymlinkParentRelative",
                  [passwd + [s("localetc/sub/..", "/etc/"),
                             h("/localetc/localpasswd", "/etc/passwd")]],
                  peer("ok", "localetc/sub/.. names localetc; sameFile(/localetc/localpasswd, "
                             "/etc/passwd)"),
                  ok(xd("etc", 0o770), xf("etc/passwd", "inside"),
                     xh("etc/localpasswd", "etc/passwd"), xl("localetc", "/etc/")), rules=(1, 8)))
    out.append(br("SymlinkSlashEnded",
                  [passwd + [d("localetc/", 0o770), h("/localetc/localpasswd", "/etc/passwd")]],
                  peer("ok", "sameFile(/localetc/localpasswd, /etc/passwd)"),
                  ok(xd("etc", 0o770), xf("etc/passwd", "inside"), xd("localetc", 0o770),
                     xh("localetc/localpasswd", "etc/passwd")), rules=(8,)))
    lower = [d("/etc/"), f("/etc/passwd", "inside"), d("/localetc/")]
    for sub, target in (("SymlinkOverrideDirectory", "/etc"),
                        ("SymlinkOverrideDirectoryRelative", "../../etc")):
        upper = [s("localetc", target), h("/localetc/localpasswd", "/etc/passwd")]
        out.append(br(sub, [lower, upper],
                      peer("ok", "sameFile(/localetc/localpasswd, /etc/passwd): the symlink "
                                 "replaced the directory below and the link went through it"),
                      err("localetc/localpasswd"), why=WHY_CROSS_LAYER, rules=(7, 8)))
    out.append(br("DirectoryOverrideSymlink",
                  [[d("/etc/"), f("/etc/passwd", "inside"), s("localetc", "/etc")],
                   [d("/localetc/"), h("/localetc/localpasswd", "/etc/passwd")]],
                  peer("ok", "sameFile(/localetc/localpasswd, /etc/passwd): the directory replaced "
                             "the symlink below"),
                  err("localetc/localpasswd", "hardlink target"), why=WHY_CROSS_LAYER,
                  rules=(7, 8)))
    out.append(br("DirectoryOverrideSymlinkAndHardlink",
                  [[d("/etc/"), f("/etc/passwd", "inside"), h("etc/localpasswd", "etc/passwd"),
                    s("localetc", "etc")],
                   [d("/localetc/"), f("/localetc/localpasswd", "different")]],
                  peer("ok", "notSameFile(/localetc/localpasswd, /etc/passwd): the directory "
                             "replaced the symlink below"),
                  ok(xd("etc"), xf("etc/passwd", "inside"), xh("etc/localpasswd", "etc/passwd"),
                     xd("localetc"), xf("localetc/localpasswd", "different")), rules=(7,)))
    base = [d("/etc/"), f("/etc/passwd", "inside")]
    for sub, name in (("WhiteoutRootParent", ".wh..."), ("WhiteoutParent", "etc/.wh..."),
                      ("WhiteoutRoot", ".wh.."), ("WhiteoutCurrentDirectory", "etc/.wh..")):
        out.append(br(sub, [base, [f(name, "")]], peer("error", "errInvalidArchive"),
                      err("invalid whiteout"), rules=(10,)))
    users = [d("/etc/"), f("/etc/passwd", "all users")]
    out.append(br("WhiteoutSymlink", [users + [s("localetc", "/etc")], [f(".wh.localetc", "")]],
                  peer("ok", "etc/passwd kept, localetc gone"),
                  ok(xd("etc"), xf("etc/passwd", "all users")), rules=(2,)))
    whitedout = users + [f("/etc/whitedout", "ahhhh whiteout"), s("localetc", "/etc")]
    out.append(br("WhiteoutSymlinkPath", [whitedout, [f("localetc/.wh.whitedout", "")]],
                  peer("ok", "etc/whitedout deleted through the symlink localetc -> /etc, "
                             "etc/passwd kept (their TODO: should change once symlinks as "
                             "parents are refused)"),
                  err("localetc", layer=1), why=WHY_RULE6, rules=(6,)))
    out.append(br("WhiteoutDirectoryName", [whitedout, [f(".wh.etc/somefile", "non-empty")]],
                  peer("ok", ".wh.etc/somefile is an ordinary file (only a last component can be a "
                             "whiteout); etc/passwd kept"),
                  ok(xd("etc"), xf("etc/passwd", "all users"),
                     xf("etc/whitedout", "ahhhh whiteout"), xl("localetc", "/etc"),
                     xf(".wh.etc/somefile", "non-empty")), rules=(2, 6)))
    dead = users + [s("localetc", "/dne")]
    out.append(br("WhiteoutDeadSymlinkParent", [dead, [f("localetc/.wh.etc", "")]],
                  peer("ok", "a no-op: etc/passwd kept"), err("localetc", layer=1), why=WHY_RULE6,
                  rules=(6,)))
    out.append(br("WhiteoutRelativePath", [dead, [f("dne/../.wh.etc", "")]],
                  peer("ok", "dne/../.wh.etc names .wh.etc: etc is deleted"),
                  ok(xl("localetc", "/dne")), rules=(1, 2)))
    bo = f"foo/tmp/{MARKER}-breakout"
    out.append(br("SymlinkOverridePath",
                  [[d("foo"), d("foo/tmp"), f(bo, b"\0\1\2"), s("foo", "/"), f(bo, b"\3\4\5"),
                    d("foo"), d("foo/tmp"), f(bo, b"\6\7\10")]],
                  peer("ok", "nothing written to the host's /tmp; foo/tmp/breakout holds 6 7 8"),
                  ok(xd("foo"), xd("foo/tmp"), xf(bo, b"\6\7\10"),
                     xf(f"tmp/{MARKER}-breakout", b"\3\4\5")), rules=(6, 7, 9)))
    out.append(br("HardlinkSymlinkBeforeCreateTarget",
                  [[d("etc", 0o770), s("localpasswd", "/etc/passwd"),
                    h("localpasswd-dup", "localpasswd"), f("/etc/passwd", "after")]],
                  peer("ok", "sameFile(localpasswd-dup, /etc/passwd) (following links): the "
                             "hardlink is the symlink itself"),
                  ok(xd("etc", 0o770), xf("etc/passwd", "after"), xl("localpasswd", "/etc/passwd"),
                     xh("localpasswd-dup", "localpasswd")), rules=(8,)))
    for sub, target in (("HardlinkSymlinkRelative", "../../../../../etc/passwd"),
                        ("HardlinkSymlinkAbsolute", "/etc/passwd")):
        out.append(br(sub, [passwd + [s("passwdlink", target), h("localpasswd", "/passwdlink")]],
                      peer("ok", "localpasswd is the symlink passwdlink (same link text), and "
                                 "sameFile(localpasswd, /etc/passwd) when followed"),
                      ok(xd("etc", 0o770), xf("etc/passwd", "inside"), xl("passwdlink", target),
                         xh("localpasswd", "passwdlink")), rules=(8,)))
    ep, p = S + "/file.txt", S + "/sub/x"
    out.append(br("HardlinkSymlinkChmod",
                  [[s(ep, p), h("sketchylink", ep, mode=0o777)]],
                  peer("ok", "the file outside the root the symlink points at keeps its mode "
                             "(0400 there; the sentinel's sub/x 0600 here)"),
                  ok(xl(ep, p), xh("sketchylink", ep)), rules=(1, 8)))

    out.append(Case("containerd", F, "TestApplyTar/DirectoryCreation",
                    [[d("/etc/")], [d("/etc/subdir"), d("/etc/subdir2/"), d("/etc/subdir2/more"),
                                    d("/other/noparent-1/1"), d("/other/noparent-2/2/")]],
                    peer("ok", "etc/subdir, etc/subdir2, etc/subdir2/more, other/noparent-1/1 and "
                               "other/noparent-2/2 exist"),
                    ok(xd("etc"), xd("etc/subdir"), xd("etc/subdir2"), xd("etc/subdir2/more"),
                       xd("other/noparent-1/1"), xd("other/noparent-2/2")), rules=(6,)))

    base_applier = [d("etc"), f("etc/hosts", "127.0.0.1 localhost"),
                    h("etc/hosts.allow", "etc/hosts"), d("home"), d("home/derek", 0o700), d("usr"),
                    d("usr/local"), d("usr/local/lib"),
                    f("usr/local/lib/libnothing.so", b"\0\0", 0o755),
                    s("usr/local/lib/libnothing.so.2", "libnothing.so")]
    base_tree = [xd("etc"), xf("etc/hosts", "127.0.0.1 localhost"),
                 xh("etc/hosts.allow", "etc/hosts"), xd("home"), xd("home/derek", 0o700),
                 xd("usr"), xd("usr/local"), xd("usr/local/lib"),
                 xf("usr/local/lib/libnothing.so", b"\0\0", 0o755),
                 xl("usr/local/lib/libnothing.so.2", "libnothing.so")]
    out.append(Case("containerd", F, "TestUnpack", [base_applier],
                    peer("ok", "the tree GNU tar packed is applied unchanged "
                               "(CheckDirectoryEqual)"),
                    ok(*base_tree), rules=(8,)))
    for i, links in enumerate((
            [("home/derek/other", "../other"), ("home/derek/etc", "../../etc"),
             ("home/derek/updown", "up/../../other")],
            [("home/derek/breakout", "../../../breakout")],
            [("breakout", "../../breakout")],
            [("breakout", "etc/../../upandout")],
            [("home/breakout", "derek/../../../downandout")],
            [("localetc", "/etc")])):
        out.append(Case("containerd", F, f"TestRelativeSymlinks/{i}",
                        [base_applier + [s(n, t) for n, t in links]],
                        peer("ok", "the applied diff equals the source tree: symlink texts are "
                                   "kept as they are, whatever they point at"),
                        ok(*base_tree, *[xl(n, t) for n, t in links])))
    sb = b"\0\0"
    for i, (lower, upper, merged) in enumerate((
            ([d("bin"), f("bin/superbinary", sb, 0o755), s("bin/other1", "../bin/superbinary")],
             [d("bin"), s("bin/other1", "/bin/superbinary"), s("bin/other2", "../bin/superbinary"),
              s("bin/other3", "superbinary")],
             [xd("bin"), xf("bin/superbinary", sb, 0o755), xl("bin/other1", "/bin/superbinary"),
              xl("bin/other2", "../bin/superbinary"), xl("bin/other3", "superbinary")]),
            ([d("bin"), d("sbin"), f("sbin/superbinary", sb, 0o755),
              s("bin/superbinary", "/sbin/superbinary"), s("bin/other1", "../bin/superbinary")],
             [d("bin"), s("bin/other1", "/bin/superbinary"), s("bin/other2", "superbinary")],
             [xd("bin"), xd("sbin"), xf("sbin/superbinary", sb, 0o755),
              xl("bin/superbinary", "/sbin/superbinary"), xl("bin/other1", "/bin/superbinary"),
              xl("bin/other2", "superbinary")]),
            ([d("bin"), d("sbin"), f("sbin/superbinary", sb, 0o755),
              s("bin/superbinary", "../sbin/superbinary"), s("bin/other1", "../bin/superbinary")],
             [d("bin"), s("bin/other1", "/bin/superbinary")],
             [xd("bin"), xd("sbin"), xf("sbin/superbinary", sb, 0o755),
              xl("bin/superbinary", "../sbin/superbinary"), xl("bin/other1", "/bin/superbinary")]),
            ([d("bin"), f("bin/actualbinary", sb, 0o755), s("bin/superbinary", "actualbinary"),
              s("bin/other1", "../bin/superbinary"), s("bin/other2", "superbinary")],
             [d("bin"), s("bin/other1", "/bin/superbinary"), s("bin/other2", "superbinary")],
             [xd("bin"), xf("bin/actualbinary", sb, 0o755), xl("bin/superbinary", "actualbinary"),
              xl("bin/other1", "/bin/superbinary"), xl("bin/other2", "superbinary")]),
            ([d("bin"), f("bin/actualbinary", sb, 0o755), s("bin/myapp", "actualbinary")],
             [d("bin"), d("bin/myapp")],
             [xd("bin"), xf("bin/actualbinary", sb, 0o755), xd("bin/myapp")]))):
        out.append(Case("containerd", F, f"TestSymlinks/{i + 1}", [lower, upper],
                        peer("ok", "the second applier's diff, applied on the first, gives the "
                                   "tree of both (CheckDirectoryEqual)"),
                        ok(*merged), rules=(7,) if i == 4 else ()))
    out.append(Case("containerd", F, "TestTarWithXattr/WithXattrsUser",
                    [[f("/file", "", 0o755, pax=[("SCHILY.xattr.user.key", "value")])]],
                    peer("ok", "file carries user.key=value"),
                    ok(xf("file", "", 0o755, xattrs={"user.key": b"value".hex()}))))
    # Old Go (<= 1.7) archive/tar: an old-GNU magic header that still uses the ustar prefix field,
    # and a base-256 uid (2097152, one past 7 octal digits), typeflag NUL, mode 0.
    prefix = "a" * 95
    raw = header("foo", b"\0", mode=0, uid=b256(2097152, 8), mtime=0, gnu=True,
                 extra={345: prefix.encode()})
    out.append(Case("containerd", "pkg/archive/issues_test.go", "TestPrefixHeaderReadable",
                    [[Ent(f"{prefix}/foo", typeflag=b"\0", mode=0, uid=2097152, raw=raw)]],
                    peer("ok", "aaa...a(95)/foo exists (old Go writers put the name's prefix in "
                               "the ustar prefix field behind a GNU magic)"),
                    err("entry 1 (foo): an old GNU header whose time fields hold text",
                        f"({prefix}/foo)", "tar readers disagree on its name", layer=0),
                    expect_rootless=err("outside the ids mapped"),
                    why="one entry, two names: libarchive, GNU tar and bsdtar read a GNU-magic "
                        "header as GNU, whose bytes 345.. are atime/ctime, so the entry is `foo`; "
                        "Go's reader (containerd, umoci, scanners) guesses a pre-Go-1.8 prefix "
                        "when those bytes do not parse as numbers and reads aaa...a(95)/foo, as "
                        "this test expects, and so does Python's tarfile. imgtool refuses the "
                        "layer rather than pick one reading (docs/layers.md, \"Known reader "
                        "differences\"). Rootless: the base-256 owner 2097152 is beyond the "
                        "65,536 ids the test user is given, and the unpack stops at that first "
                        "(before the layer's names are judged, which happens once it unpacked)"))
    return out


def moby_cases(S: str) -> list:
    A, D, U = "archive_test.go", "diff_test.go", "archive_unix_test.go"
    breakout = ("a breakout error, or an extraction that wrote nothing outside dest and read "
                "nothing of victim/hello (testBreakout)")
    cs = "containers/storage pkg/archive/archive_test.go"
    out = []
    for i, name in enumerate((f"../{V}/dotdot", f"/../{V}/slash-dotdot")):
        out.append(Case("moby", A, f"TestUntarInvalidFilenames/{i}", [[f(name, "")]],
                        peer("error-or-contained", breakout + "; go-archive refuses it (a "
                             "leading / is trimmed first, then the `..` is not local)"),
                        err("escapes"), rules=(1,),
                        also=(f"{D} TestApplyLayerInvalidFilenames/{i}",
                              f"{cs} TestUntarInvalidFilenames/{i}",
                              f"containers/storage pkg/archive/diff_test.go "
                              f"TestApplyLayerInvalidFilenames/{i}")))
    for sub, name in (("bare parent", ".."), ("parent child", f"../{MARKER}-pwned"),
                      ("nested parent", f"../../{MARKER}-pwned")):
        out.append(Case("moby", A, f"TestUntarParentTraversalContained/{sub}", [[f(name, "bad")]],
                        peer("error", "breakoutErr, and dest's parent holds only dest"),
                        err("escapes"), rules=(1,)))
    out.append(Case("moby", A, "TestUntarSiblingPrefixContained",
                    [[h("grab", f"../{MARKER}-dest-evil/secret")]],
                    peer("error-or-contained", "no hardlink `grab` to the sibling dest-evil/secret "
                                               "exists in dest"),
                    err("grab", "escapes"), rules=(1, 8)))
    out.append(Case("moby", A, "TestUntarHardlinkToSymlink",
                    [[s("symlink1", "regfile", mode=0o644), h("symlink2", "symlink1"),
                      f("regfile", "")]],
                    peer("error-or-contained", breakout),
                    ok(xl("symlink1", "regfile"), xh("symlink2", "symlink1"), xf("regfile", "")),
                    rules=(8,), also=(f"{cs} TestUntarHardlinkToSymlink",)))
    loophole = h("loophole-victim", f"../{V}", mode=0o755)
    for i, ents in enumerate((
            [h("dotdot", f"../{V}/hello")],
            [h("slash-dotdot", f"/../{V}/hello")],
            [loophole, f("loophole-victim/file", "")],
            [loophole, s("symlink", "loophole-victim/hello", mode=0o644)],
            [loophole, h("hardlink", "loophole-victim/hello")],
            [loophole, f("loophole-victim", "")])):
        out.append(Case("moby", A, f"TestUntarInvalidHardlink/{i}", [ents],
                        peer("error-or-contained", breakout + "; go-archive refuses the target "
                                                              "(invalid hardlink target)"),
                        err(ents[0].name, "escapes"), rules=(1, 8),
                        also=(f"{D} TestApplyLayerInvalidHardlink/{i}",
                              f"{cs} TestUntarInvalidHardlink/{i}",
                              f"containers/storage pkg/archive/diff_test.go "
                              f"TestApplyLayerInvalidHardlink/{i}")))
    out.append(Case("moby", A, "TestUntarAbsoluteHardlink",
                    [[f("usr/bin/perlbug", "hello", 0o755),
                      h("usr/bin/perlthanks", "/usr/bin/perlbug", mode=0o755)]],
                    peer("ok", "perlbug and perlthanks share an inode: an absolute target is "
                               "resolved inside the root"),
                    ok(xf("usr/bin/perlbug", "hello", 0o755),
                       xh("usr/bin/perlthanks", "usr/bin/perlbug")),
                    rules=(6, 8)))
    sym_loop = s("loophole-victim", f"../{V}", mode=0o755)
    symlink_states = (breakout + "; go-archive (os.Root) keeps a symlink whatever its target and "
                      "refuses to write through one that leaves the root; containers/storage "
                      "refuses the symlink itself (invalid symlink)")
    for i, (ents, expect, why, rules) in enumerate((
            ([s("dotdot", f"../{V}/hello", mode=0o644)], ok(xl("dotdot", f"../{V}/hello")), None,
             ()),
            ([s("slash-dotdot", f"/../{V}/hello", mode=0o644)],
             ok(xl("slash-dotdot", f"/../{V}/hello")), None, ()),
            ([sym_loop, f("loophole-victim/file", "")], err("loophole-victim/file"), None, (6,)),
            ([sym_loop, s("symlink", "loophole-victim/hello", mode=0o644)],
             ok(xl("loophole-victim", f"../{V}"), xl("symlink", "loophole-victim/hello")), None,
             ()),
            ([sym_loop, h("hardlink", "loophole-victim/hello")], err("hardlink"), None, (8,)),
            ([sym_loop, f("loophole-victim", "")], ok(xf("loophole-victim", "")), None, (9,)),
            ([s("dir/loophole", f"../../{V}", mode=0o755), f("dir/loophole/newdir/newfile", "")],
             err("dir/loophole/newdir/newfile"), None, (6,)))):
        out.append(Case("moby", A, f"TestUntarInvalidSymlink/{i}", [ents],
                        peer("error-or-contained", symlink_states), expect, why=why, rules=rules,
                        also=(f"{cs} TestUntarInvalidSymlink/{i}",) + (
                            (f"{D} TestApplyLayerInvalidSymlink/{i}",
                             f"containers/storage pkg/archive/diff_test.go "
                             f"TestApplyLayerInvalidSymlink/{i}") if i < 6 else ())))
    out.append(Case("moby", A, "TestUntarSymlinkBreakout",
                    [[d("inner"), s("inner/go_up", ".."), s("inner/go_up/escape", f"../{V}"),
                      f("inner/go_up/escape/newfile", "")]],
                    peer("error-or-contained", "victim/newfile does not exist (a breakout error, "
                                               "or the write kept inside)"),
                    err("inner/go_up/escape/newfile"), why=None, rules=(6,)))

    base = [".baz", "bar/", "bar/bax", "bar/bay/", "baz", "foo/", "foo/.abc", "foo/.bcd/",
            "foo/.bcd/a", "foo/cde/", "foo/cde/def", "foo/cde/efg", "foo/fgh", "foobar"]
    changes = [base,
               [".bay", ".wh.baz", "foo/", "foo/.bce", "foo/.wh..wh..opq", "foo/cde/",
                "foo/cde/efg"],
               [".bay", ".wh..baz", ".wh.foobar", "bar/", "foo/", "foo/.abc", "foo/.wh.cde"],
               [".abc", ".wh..wh..opq", "foobar"]]
    expected = [base,
                [".bay", ".baz", "bar/", "bar/bax", "bar/bay/", "foo/", "foo/.bce", "foo/cde/",
                 "foo/cde/efg", "foobar"],
                [".bay", "bar/", "bar/bax", "bar/bay/", "foo/", "foo/.abc", "foo/.bce"],
                [".abc", "foobar"]]

    def listing_layer(names):
        # moby's makeTestLayer: files 0600 (empty), directories 0700, tarred in walk order.
        return [d(n.strip("/"), 0o700) if n.endswith("/") else f(n.strip("/"), "", 0o600)
                for n in sorted(n.strip("/") + ("/" if n.endswith("/") else "") for n in names)]

    def listing_tree(names):
        return [xd(n, 0o700) if n.endswith("/") else xf(n, "", 0o600) for n in names]

    layers = [listing_layer(cs_) for cs_ in changes]
    for i in range(4):
        out.append(Case("moby", D, f"TestApplyLayerWhiteouts/{i}", layers[:i + 1],
                        peer("ok", "after layer %d the tree lists exactly: %s" % (
                            i, ", ".join(n.strip("/") + ("/" if n.endswith("/") else "")
                                         for n in expected[i]))),
                        ok(*listing_tree(expected[i])), rules=(2, 3),
                        also=("containers/storage pkg/archive/diff_test.go "
                              f"TestApplyLayerWhiteouts/{i}",)))

    usr_lib = [d("usr/"), d("usr/lib/"), s("lib", "usr/lib")]
    out.append(Case("moby", U, "TestUnpackLayerCreatesImpliedDirectoriesThroughLowerLayerSymlink",
                    [usr_lib, [f("lib/systemd/system/container.service", "content")]],
                    peer("ok", "lib stays a symlink to usr/lib and usr/lib/systemd/system/"
                               "container.service holds `content` (written through the lower "
                               "layer's symlink)"),
                    err("lib", layer=1), why=WHY_RULE6, rules=(6,)))
    for sub, lower in (("existing target", [d("var"), s("var/run", "/run"), d("run"),
                                            d("run/existing")]),
                       ("missing target", [d("var"), s("var/run", "/run")])):
        out.append(Case("moby", U, f"TestUntarThroughAbsoluteSymlink/UnpackLayer/{sub}",
                        [lower, [f("var/run/existing/non-existing/file", "content")]],
                        peer("ok", "run/existing/non-existing/file holds `content` (the lower "
                                   "layer's absolute symlink var/run -> /run followed inside the "
                                   "root, missing directories made)"),
                        err("var/run", layer=1), why=WHY_RULE6, rules=(6,),
                        also=(f"{U} TestUntarThroughAbsoluteSymlink/Untar/{sub}",)))
    out.append(Case("moby", U, "TestUnpackRejectsRelativeEscapeBeforeAbsoluteSymlink",
                    [[d("target"), s("escape", ".."), s("absolute", "/target")],
                     [f("escape/absolute/file", "")]],
                    peer("error", "a path-escape error; target/file not created"),
                    err("escape", layer=1), rules=(6,)))
    out.append(Case("moby", U, "TestHardlinkSourceThroughAbsoluteSymlink",
                    [[d("var"), s("var/run", "/run")],
                     [f("var/run/source", "content"), h("var/run/link", "var/run/source")]],
                    peer("ok", "run/source and run/link share an inode (2 links) and hold "
                               "`content`"),
                    err("var/run", layer=1), why=WHY_RULE6, rules=(6,)))
    lf = "archive_linux_test.go"
    ovl = [d("d1/", 0o700), f("d1/.wh..wh..opq", "", 0o700), f("d1/f1", "", 0o600),
           d("d2/", 0o750), f("d2/.wh..wh..opq", "", 0o750), f("d2/f1", "", 0o660),
           d("d3/", 0o700), f("d3/.wh.f1", "", 0o600)]
    ovl_states = ("d1 (0700) and d2 (0750) opaque, d1/f1 0600, d2/f1 0660, d3 (0700) not opaque "
                  "with d3/f1 a 0:0 whiteout device")
    out.append(Case("moby", lf, "TestOverlayTarUntar", [ovl], peer("ok", ovl_states),
                    ok(xd("d1", 0o700), xf("d1/f1", "", 0o600), xd("d2", 0o750),
                       xf("d2/f1", "", 0o660), xd("d3", 0o700)), rules=(3, 4)))
    out.append(Case("moby", lf, "TestOverlayTarUntar",
                    [[d("d1", 0o700), f("d1/old", "old"), d("d2", 0o750), f("d2/old", "old"),
                      d("d3", 0o700), f("d3/f1", "lower"), f("d3/kept", "kept")], ovl],
                    peer("ok", ovl_states), variant="lower: the port adds a lower layer so that "
                    "the opaque directories and the whiteout have something to hide",
                    expect=ok(xd("d1", 0o700), xf("d1/f1", "", 0o600), xd("d2", 0o750),
                              xf("d2/f1", "", 0o660), xd("d3", 0o700), xf("d3/kept", "kept")),
                    rules=(2, 3)))
    for name in (".wh.", ".wh..", ".wh..."):
        out.append(Case("moby", lf, f"TestOverlayUntarInvalidWhiteoutNames/{name}",
                        [[f(name, "", 0o600)]], peer("error", "invalid whiteout entry"),
                        err("invalid whiteout"), rules=(10,)))
    out.append(Case("moby", A, "TestXGlobalNoParent",
                    [[Ent("foo/bar", "pax-global", raw=_global_header("foo/bar"))]],
                    peer("ok", "a PAX global header named foo/bar creates nothing: no foo"),
                    ok(), also=("containers/storage pkg/archive/archive_test.go "
                                "TestTypeXGlobalHeaderDoesNotFail",)))
    out.append(Case("moby", lf, "TestChmodNoSymlinkFallback",
                    [[f("regular-file", "", 0o640), f("regular-file-no-read-permission", "", 0o640),
                      d("directory", 0o640), fifo("fifo", 0o640),
                      c("character-device-on-nodev", 1, 3, 0o640),
                      bdev("block-device-on-nodev", 7, 0, 0o640), c("ptmx-device", 5, 2, 0o640)]],
                    peer("ok", "every kind of entry, device nodes on a nodev mount included, gets "
                               "the mode asked for (0640)"),
                    ok(xf("regular-file", "", 0o640),
                       xf("regular-file-no-read-permission", "", 0o640),
                       xd("directory", 0o640), xp("fifo", 0o640),
                       xc("character-device-on-nodev", 1, 3, 0o640),
                       xb("block-device-on-nodev", 7, 0, 0o640), xc("ptmx-device", 5, 2, 0o640)),
                    rules=(11,)))
    return out


def _global_header(name: str) -> bytes:
    """A PAX global header ('g') named `name` with one comment record, as Go writes one."""
    data = gen_hostile.pax_record("comment", "global")
    return header(name, b"g", size=len(data)) + pad(data)


def umoci_cases(S: str) -> list:
    F, LF = "oci/layer/tar_extract_test.go", "oci/layer/tar_extract_linux_test.go"
    out = []
    cc = b"container content"
    for sub, prefix in (("GarbagePrefix", "/.."), ("DotDotPrefix", "..")):
        out.append(Case("umoci", F, f"TestUnpackEntrySanitiseScoping/{sub}",
                        [[f(f"{prefix}/{MARKER}-file", cc)]],
                        peer("ok", "the entry lands at rootfs/file (the `..` clamped at the root); "
                                   "the host's file is unchanged"),
                        err("escapes"), why=WHY_DOTDOT + " (umoci's SecureJoin)", rules=(1,)))
    prefixes = (("RootPrefix", "/"), ("GarbagePrefix1", "/../"),
                ("GarbagePrefix2", "/../../../../../../../../../../../../../../../"),
                ("GarbagePrefix3", "/./.././.././.././.././.././.././.././.././../"),
                ("DotDotPrefix", ".."))
    out.append(Case("umoci", F, "TestUnpackEntrySymlinkScoping",
                    [[d("link")], [f("link/file", cc)]],
                    peer("ok", "(control) link is a directory: link/file is written in it"),
                    ok(xd("link"), xf("link/file", cc)),
                    variant="control: the port's own control, link a real directory below, so that "
                            "the top layer is already in the store when the cases below pull it "
                            "over a symlink (rule 6 must be checked per image, not per layer)",
                    rules=(6,)))
    for sub, prefix in prefixes:
        out.append(Case("umoci", F, f"TestUnpackEntrySymlinkScoping/{sub}",
                        [[s("link", prefix)], [f("link/file", cc)]],
                        peer("ok", "rootfs/file holds the content (link/file resolved through the "
                                   "existing symlink inside the root); the host's file unchanged"),
                        err("link", layer=1), why=WHY_RULE6, rules=(6,)))
    for sub, prefix in prefixes:
        out.append(Case("umoci", F, f"TestUnpackEntrySymlinkScoping/{sub}",
                        [[s("link", prefix), f("link/file", cc)]],
                        peer("ok", "rootfs/file holds the content (link/file resolved through the "
                                   "symlink inside the root)"),
                        ok(xl("link", prefix), xf("file", cc)),
                        variant="same-layer: the symlink in the same layer as the file (the peer "
                                "made it on disk first)", rules=(1,)))
    out.append(Case("umoci", F, "TestUnpackEntryNonDirParent",
                    [[f("nondir", "", 0o777), f("nondir/foo/bar/baz", "", 0o777)]],
                    peer("ok", "nondir becomes a directory holding foo/bar/baz"),
                    err("nondir/foo/bar/baz"),
                    why="imgtool never turns an entry of the layer into a directory implicitly: "
                        "only an explicit directory entry replaces a file (rules 6 and 9); "
                        "containerd's mkparent stops with ENOTDIR here too",
                    rules=(6,)))
    out.append(Case("umoci", F, "TestUnpackEntryParentDir",
                    [[f("a/b/c/file", "creating parentdirs")]],
                    peer("ok", "a/b/c/file holds the content, its parents made"),
                    ok(xf("a/b/c/file", "creating parentdirs")), rules=(6,)))

    # TestUnpackEntryWhiteout: the peer makes the parent (0755, mtime 123) and the path on disk,
    # then applies the whiteout: here the first layer and the second.
    for sub, path, is_dir, bad in (
            ("EmptyWhiteoutName-Root", "", False, True),
            ("EmptyWhiteoutName", "some/path/", False, True),
            ("FileInRoot", "rootpath", False, False),
            ("HiddenFileInRoot", ".hiddenroot", False, False),
            ("FileInSubdir", "some/path/file", False, False),
            ("HiddenFileInSubdir", "another/path/.hiddenfile", False, False),
            ("DirInRoot", "rootpath", True, False), ("HiddenDirInRoot", ".hiddenroot", True, False),
            ("DirInSubdir", "some/path/dir", True, False),
            ("HiddenDirInSubdir", "another/path/.hiddendir", True, False)):
        if path.endswith("/"):
            raw_dir, raw_file = path.rstrip("/"), ""
        else:
            raw_dir, raw_file = posixpath.split(path)
        lower, parents = [], []
        parts = [p for p in raw_dir.split("/") if p]
        for i in range(len(parts)):
            name = "/".join(parts[:i + 1])
            lower.append(d(name, mtime=123 if i == len(parts) - 1 else FIXED_MTIME))
            parents.append(xd(name))
        if is_dir:
            lower += [d(path), f(f"{path}/file1", "some value"), f(f"{path}/file2", "some value"),
                      d(f"{path}/.subdir"), f(f"{path}/.subdir/file3", "some value")]
        elif raw_file:
            lower.append(f(path, "some value"))
        wh = posixpath.join(raw_dir, ".wh." + raw_file) if raw_dir else ".wh." + raw_file
        layers = ([lower] if lower else []) + [[f(wh, "", 0)]]
        if bad:
            expect, states, rules = err("invalid whiteout"), "errInvalidWhiteout", (10,)
        else:
            expect, states, rules = ok(*parents), (
                f"{path} is gone; its parent keeps its mtime and atime"), (2, 6)
        out.append(Case("umoci", F, f"TestUnpackEntryWhiteout/{sub}", layers,
                        peer("error" if bad else "ok", states), expect, rules=rules,
                        why=None if bad or not raw_dir else
                        "same tree; but the merged parent is this layer's implicit directory "
                        "(rule 6: 0755 root:root, its own mtime), not the lower one umoci keeps "
                        "with mtime 123 (mtimes are not compared)"))

    # TestUnpackOpaqueWhiteout: the lower entries in one extractor, the upper ones in another, then
    # test-subdir/.wh..wh..opq: here layer 1 = test-subdir/ + lower, layer 2 = upper + the marker.
    W = "test-subdir"

    def ent(path, kind, target=""):
        name = f"{W}/{path}"
        if kind == "reg":
            return f(name, "", 0o777)
        if kind == "rega":
            return f(name, "", 0o777, typeflag=b"\0")
        if kind == "dir":
            return d(name, 0o777)
        if kind == "fifo":
            return fifo(name, 0o777)
        return s(name, target)

    def xent(path, kind, target=""):
        name = f"{W}/{path}"
        return {"reg": lambda: xf(name, "", 0o777), "rega": lambda: xf(name, "", 0o777),
                "dir": lambda: xd(name, 0o777), "fifo": lambda: xp(name, 0o777),
                "sym": lambda: xl(name, target)}[kind]()

    L, U_ = False, True
    etc_shadow = "../" * 12 + "etc/shadow"
    opaque_tests = {
        "EmptyDir": [],
        "OneLevel": [("file", "reg", "", L), ("link", "sym", "..", U_),
                     ("badlink", "sym", "./nothing", U_), ("fifo", "fifo", "", L)],
        "OneLevelNoUpper": [("file", "reg", "", L), ("link", "sym", "..", L),
                            ("badlink", "sym", "./nothing", L), ("fifo", "fifo", "", L)],
        "TwoLevel": [("file", "reg", "", U_), ("link", "sym", "..", L),
                     ("badlink", "sym", "./nothing", L), ("dir", "dir", "", U_),
                     ("dir/file", "rega", "", U_), ("dir/link", "sym", "../badlink", L),
                     ("dir/verybadlink", "sym", etc_shadow, U_),
                     ("dir/verybadlink2", "sym", "/" + etc_shadow, L)],
        "TwoLevelNoUpper": [("file", "reg", "", L), ("link", "sym", "..", L),
                            ("badlink", "sym", "./nothing", L), ("dir", "dir", "", L),
                            ("dir/file", "rega", "", L), ("dir/link", "sym", "../badlink", L),
                            ("dir/verybadlink", "sym", etc_shadow, L),
                            ("dir/verybadlink2", "sym", "/" + etc_shadow, L)],
        "MultiLevel": [("level1_file", "reg", "", U_), ("level1_link", "sym", "..", L),
                       ("level1a", "dir", "", U_), ("level1a/level2_file", "rega", "", L),
                       ("level1a/level2_link", "sym", "../../../", U_),
                       ("level1a/level2a", "dir", "", L),
                       ("level1a/level2a/level3_fileA", "reg", "", L),
                       ("level1a/level2a/level3_fileB", "reg", "", L),
                       ("level1a/level2b", "dir", "", U_),
                       ("level1a/level2b/level3_fileA", "reg", "", U_),
                       ("level1a/level2b/level3_fileB", "reg", "", L),
                       ("level1a/level2b/level3", "dir", "", L),
                       ("level1a/level2b/level3/level4", "dir", "", L),
                       ("level1a/level2b/level3/level4", "dir", "", L),
                       ("level1a/level2b/level3_fileA", "reg", "", U_), ("level1b", "dir", "", L),
                       ("level1b/level2_fileA", "reg", "", L),
                       ("level1b/level2_fileB", "reg", "", L), ("level1b/level2", "dir", "", L),
                       ("level1b/level2/level3_file", "reg", "", L)],
        "MissingUpperAncestor": [("some", "dir", "", L), ("some/dir", "dir", "", L),
                                 ("some/dir/somewhere", "reg", "", U_), ("another", "dir", "", L),
                                 ("another/dir", "dir", "", L),
                                 ("another/dir/somewhere", "reg", "", L)],
        "UpperWhiteout": [(".wh.fileB", "reg", "", U_), ("fileA", "reg", "", U_),
                          ("fileB", "reg", "", U_),
                          ("fileC", "reg", "", L), (".wh.fileA", "reg", "", U_),
                          (".wh.fileC", "reg", "", U_)],
        "UpperDirWhiteout": [(".wh.dir2", "reg", "", U_), ("file", "reg", "", L),
                             ("dir1", "dir", "", U_),
                             ("dir1/file", "rega", "", U_), ("dir1/link", "sym", "../badlink", L),
                             ("dir1/verybadlink", "sym", etc_shadow, U_),
                             ("dir1/verybadlink2", "sym", "/" + etc_shadow, L),
                             (".wh.dir1", "reg", "", U_),
                             ("dir2", "dir", "", U_), ("dir2/file", "rega", "", U_),
                             ("dir2/link", "sym", "../badlink", L)],
    }
    # MultiLevelNoUpper: MultiLevel with nothing in the upper layer.
    ml = opaque_tests["MultiLevel"]
    opaque_tests = dict(list(opaque_tests.items())[:6] + [("MultiLevelNoUpper", [
        (p, k, t, L) for p, k, t, _ in ml])] + list(opaque_tests.items())[6:])
    for sub, dentries in opaque_tests.items():
        lower = [d(W)] + [ent(p, k, t) for p, k, t, up in dentries if not up]
        upper = [ent(p, k, t) for p, k, t, up in dentries if up] + [f(f"{W}/.wh..wh..opq", "")]
        seen, survivors = set(), []
        for p, k, t, up in dentries:
            if up and not posixpath.basename(p).startswith(".wh.") and p not in seen:
                seen.add(p)
                survivors.append(xent(p, k, t))
        rules = (2, 3) if sub.startswith("Upper") else (3,)
        out.append(Case("umoci", F, f"TestUnpackOpaqueWhiteout/{sub}", [lower, upper],
                        peer("ok", "the upper entries survive (%s), the lower ones are gone, "
                                   "test-subdir stays a directory" % (
                                       ", ".join(sorted(seen)) or "none")),
                        ok(xd(W), *survivors), rules=rules))

    hl = [f("regular", "some content we won't check"),
          h("hard link", "/regular", uid=1337, gid=2020), s("link", "../../../regular")]
    out.append(Case("umoci", F, "TestUnpackHardlink",
                    [hl + [h("hard link to symlink", "../../../link", uid=1337, gid=2020)]],
                    peer("ok", "`hard link` shares regular's inode; `hard link to symlink` shares "
                               "the symlink's inode (same link text); the hardlinks' owners are "
                               "not applied"),
                    err("hard link to symlink", "escapes"), why=WHY_DOTDOT + " (rule 8)",
                    rules=(1, 8)))
    out.append(Case("umoci", F, "TestUnpackHardlink",
                    [hl + [h("hard link to symlink", "/link", uid=1337, gid=2020)]],
                    peer("ok", "as above"),
                    ok(xf("regular", "some content we won't check"), xh("hard link", "regular"),
                       xl("link", "../../../regular"), xh("hard link to symlink", "link")),
                    variant="in-root: the target of the last link written /link, so that the facts "
                            "about hardlinks to symlinks and the hardlinks' owners are checked too",
                    rules=(8,)))

    wh_states = "file is a plain overlay whiteout (the file written before is gone)"
    out.append(Case("umoci", LF, "TestUnpackEntry_OverlayfsRootfs_Whiteout",
                    [[f("file", "", 0o777), f(".wh.file", "", 0o777)]], peer("ok", wh_states),
                    ok(xf("file", "", 0o777)), why=WHY_SAME_LAYER_WH, rules=(2,)))
    out.append(Case("umoci", LF, "TestUnpackEntry_OverlayfsRootfs_Whiteout",
                    [[f("file", "lower"), f("other", "kept")],
                     [f("file", "", 0o777), f(".wh.file", "", 0o777)]],
                    peer("ok", wh_states), ok(xf("file", "", 0o777), xf("other", "kept")),
                    why=WHY_SAME_LAYER_WH, rules=(2,),
                    variant="lower: the port adds a lower layer with a file of that name"))
    opq = [d("dir", 0o777), f("dir/fileindir", "", 0o777), f("dir/.wh..wh..opq", "", 0o777)]
    out.append(Case("umoci", LF, "TestUnpackEntry_OverlayfsRootfs_OpaqueWhiteout", [opq],
                    peer("ok", "dir is an opaque directory"),
                    ok(xd("dir", 0o777), xf("dir/fileindir", "", 0o777)), rules=(3,)))
    out.append(Case("umoci", LF, "TestUnpackEntry_OverlayfsRootfs_OpaqueWhiteout",
                    [[d("dir"), f("dir/old", "old"), f("dir/fileindir", "lower")], opq],
                    peer("ok", "dir is an opaque directory"),
                    ok(xd("dir", 0o777), xf("dir/fileindir", "", 0o777)), rules=(3,),
                    variant="lower: the port adds a lower layer for the opaque directory to hide"))

    md = "TestUnpackEntry_OverlayfsRootfs_Whiteout_MissingDirs"
    missing = {
        "opaque-noparent": ([f(f"opaque-noparent/a/b/c/.wh..wh..opq", "", 0o777)],
                            [xd("opaque-noparent/a/b/c")], None, (3, 6)),
        "whiteout-noparent": ([f("whiteout-noparent/a/b/.wh.c", "", 0o777)],
                              [xd("whiteout-noparent/a/b")], None, (4, 6)),
        "opaque-nondir": ([f("opaque-nondir", "", 0o777),
                           f("opaque-nondir/.wh..wh..opq", "", 0o777)],
                          [xf("opaque-nondir", "", 0o777)],
                          "a marker whose parent is a non-directory of the same layer is a no-op "
                          "(rule 5), so the file stays; umoci turns the file into an opaque "
                          "directory", (5,)),
        "opaque-whiteout": ([f(".wh.opaque-whiteout", "", 0o777),
                             f("opaque-whiteout/.wh..wh..opq", "", 0o777)],
                            [xd("opaque-whiteout")], None, (2, 3)),
    }
    md_states = ("opaque-noparent/a/b/c is opaque, whiteout-noparent/a/b/c a plain whiteout, "
                 "opaque-nondir (a file before) and opaque-whiteout (whited out before) opaque "
                 "directories")
    for sub, (ents, xs, why, rules) in missing.items():
        out.append(Case("umoci", LF, f"{md}/{sub}", [ents], peer("ok", md_states), ok(*xs), why=why,
                        rules=rules))
    out.append(Case("umoci", LF, md,
                    [[f("opaque-noparent/a/b/c/old", "old"), f("opaque-noparent/a/b/kept", "kept"),
                      f("whiteout-noparent/a/b/c", "gone"), f("whiteout-noparent/a/b/d", "kept"),
                      d("opaque-nondir"), f("opaque-nondir/old", "old"),
                      f("opaque-whiteout/old", "old")],
                     [e for ents, _, _, _ in missing.values() for e in ents]],
                    peer("ok", md_states),
                    ok(xd("opaque-noparent/a/b/c"), xf("opaque-noparent/a/b/kept", "kept"),
                       xf("whiteout-noparent/a/b/d", "kept"), xf("opaque-nondir", "", 0o777),
                       xd("opaque-whiteout")),
                    why=missing["opaque-nondir"][2], rules=(2, 3, 5, 7),
                    variant="lower: the port adds a lower layer with something to hide under each"))

    nested = [f("opaque-innerplain/foo/bar/baz/.wh.before", "", 0o777),
              f("opaque-innerplain/regfile", "", 0o777),
              f("opaque-innerplain/.wh..wh..opq", "", 0o777),
              f("opaque-innerplain/a/b/c/d/e/f/.wh.after", "", 0o777),
              f("opaque-innerplain/a/b/c/d/regfile", "", 0o777),
              f("opaque-nested/a/b/c/d/.wh..wh..opq", "", 0o777),
              f("opaque-nested/a/b/.wh..wh..opq", "", 0o777),
              f("opaque-nested/.wh..wh..opq", "", 0o777)]
    nested_tree = (xf("opaque-innerplain/regfile", "", 0o777), xd("opaque-innerplain/foo/bar/baz"),
                   xd("opaque-innerplain/a/b/c/d/e/f"),
                   xf("opaque-innerplain/a/b/c/d/regfile", "", 0o777),
                   xd("opaque-nested/a/b/c/d"))
    nested_states = ("opaque-innerplain is opaque and holds no whiteout (before nor after), both "
                     "regfiles exist; opaque-nested, opaque-nested/a/b and "
                     "opaque-nested/a/b/c/d are opaque")
    out.append(Case("umoci", LF, "TestUnpackEntry_OverlayfsRootfs_Whiteout_Nested", [nested],
                    peer("ok", nested_states), ok(*nested_tree), rules=(3,)))
    out.append(Case("umoci", LF, "TestUnpackEntry_OverlayfsRootfs_Whiteout_Nested",
                    [[f("opaque-innerplain/old", "old"),
                      f("opaque-innerplain/foo/bar/baz/before", "x"),
                      f("opaque-innerplain/a/b/c/d/e/f/after", "x"),
                      f("opaque-nested/a/old", "old"),
                      f("opaque-nested/a/b/c/old", "old"), f("opaque-nested/a/b/c/d/old", "old")],
                     nested],
                    peer("ok", nested_states), ok(*nested_tree), rules=(3,),
                    variant="lower: the port adds a lower layer for the opaque directories to "
                            "hide"))
    conv = [f("autoconvert-opaquedir/before", "", 0o777), f(".wh.autoconvert-opaquedir", "", 0o777),
            f("autoconvert-opaquedir/foo/bar", "", 0o777),
            f("autoconvert-opaquedir/abc/def", "", 0o777)]
    conv_tree = (xf("autoconvert-opaquedir/before", "", 0o777),
                 xf("autoconvert-opaquedir/foo/bar", "", 0o777),
                 xf("autoconvert-opaquedir/abc/def", "", 0o777))
    conv_states = ("autoconvert-opaquedir is an opaque directory; before (written earlier in the "
                   "layer) is gone, foo/bar and abc/def exist")
    conv_why = ("rule 2: the whiteout deletes autoconvert-opaquedir from the layers below only, so "
                "what this layer put there before it (before) stays, and the directory becomes "
                "opaque; umoci's overlayfs writer deletes it")
    out.append(Case("umoci", LF, "TestUnpackEntry_OverlayfsRootfs_OpaqueWhiteoutConvert", [conv],
                    peer("ok", conv_states), ok(*conv_tree), why=conv_why, rules=(2,)))
    out.append(Case("umoci", LF, "TestUnpackEntry_OverlayfsRootfs_OpaqueWhiteoutConvert",
                    [[d("autoconvert-opaquedir"), f("autoconvert-opaquedir/old", "old")], conv],
                    peer("ok", conv_states), ok(*conv_tree), why=conv_why, rules=(2,),
                    variant="lower: the port adds a lower directory for the whiteout to delete"))
    return out


def containers_storage_cases(S: str) -> list:
    out = []
    lf = "pkg/archive/archive_linux_test.go"
    out.append(Case("containers-storage", lf, "TestOverlayTarUntar",
                    [[d("d1", 0o700), f("d1/f1", "", 0o600)],
                     [d("d1/", 0o700), f("d1/.wh..wh..opq", "", 0o700), f("d1/f1", "", 0o600),
                      d("d2/", 0o750), f("d2/f1", "", 0o660), d("d3/", 0o700),
                      f("d3/.wh.f1", "", 0)]],
                    peer("ok", "d1 opaque (the lower layer has d1), d2 not opaque (its writer "
                               "marks only directories the lower layer has), d3/f1 a 0:0 "
                               "whiteout device; d1 0700, d2 0750, d3 0700, d1/f1 0600, "
                               "d2/f1 0660"),
                    ok(xd("d1", 0o700), xf("d1/f1", "", 0o600), xd("d2", 0o750),
                       xf("d2/f1", "", 0o660), xd("d3", 0o700)), rules=(3, 4)))
    nested = [f(".wh.foo", ""), f("foo/.wh.bar", "")]
    out.append(Case("containers-storage", lf, "TestNestedOverlayWhiteouts", [nested],
                    peer("ok", "foo is a whiteout device; foo/.wh.bar beneath it is accepted"),
                    ok(), rules=(4, 5)))
    out.append(Case("containers-storage", lf, "TestNestedOverlayWhiteouts",
                    [[d("foo"), f("foo/bar", "bar"), f("foo/baz", "baz"), f("kept", "kept")],
                     nested],
                    peer("ok", "foo is a whiteout device; foo/.wh.bar beneath it is accepted"),
                    ok(xf("kept", "kept")), rules=(2, 5),
                    variant="lower: the port adds a lower foo/ for the whiteouts to hide"))
    out.append(Case("containers-storage", "pkg/chrootarchive/archive_test.go",
                    "TestChrootApplyDotDotFile",
                    [[f("..gitme", "")]], peer("ok", "a file named ..gitme applies"),
                    ok(xf("..gitme", ""))))
    removed = b"This file should get removed in upper!"
    lower = ([d("directory-0")]
             + [f(f"directory-0/file-{i}", f"seed 3 file {i}\n", 0o755) for i in range(10)]
             + [f("file-remove.txt", removed, 0o755), d("var"), d("var/lib")])
    upper = ([d("directory-0")]
             + [f(f"directory-0/file-{i}", f"seed 6 file {i}\n", 0o755) for i in range(10)]
             + [f(".wh.file-remove.txt", ""), d("var"), f("var/.wh.lib", "")])
    out.append(Case("containers-storage", "drivers/graphtest/graphtest_unix.go",
                    "DriverTestDiffApply (TestOverlayDiffApply10Files)", [lower, upper],
                    peer("ok", "the 10 files hold the upper layer's content, file-remove.txt and "
                               "var/lib are gone"),
                    ok(xd("directory-0"),
                       *[xf(f"directory-0/file-{i}", f"seed 6 file {i}\n", 0o755)
                         for i in range(10)],
                       xd("var")),
                    rules=(2,),
                    also=("drivers/overlay/overlay_test.go TestOverlayDiffApply10Files",),
                    variant="text: fixed text where the peer writes 64 random bytes per file"))
    return out


def findings_cases(S: str) -> list:
    """Layer findings of the outside attack on imgtool 55cfe6d that its own corpus missed."""
    F = "issue 12"
    lower_secret = [d("secret"), f("secret/key", "lower secret\n"), f("keep", "kept\n")]
    merged_usr = [d("usr"), d("usr/bin"), f("usr/bin/sh", "a shell\n", 0o755), s("bin", "usr/bin")]
    out = [
        # 11: a directory replaced within one layer must not let the lower one's contents through.
        Case("findings", F, "11 .wh.secret then secret/", [lower_secret, [f(".wh.secret", ""), d("secret"),
                                                                         f("secret/new", "new\n")]],
             peer("ok", "umoci: secret holds only new"),
             ok(xd("secret"), xf("secret/new", "new\n"), xf("keep", "kept\n")), rules=(2,)),
        Case("findings", F, "11 secret/ then .wh.secret", [lower_secret, [d("secret"), f("secret/new", "new\n"),
                                                                         f(".wh.secret", "")]],
             peer("ok", "umoci's directory writer: secret holds only new"),
             ok(xd("secret"), xf("secret/new", "new\n"), xf("keep", "kept\n")), rules=(2,)),
        Case("findings", F, "11 .wh.secret then secret/ with no new content",
             [lower_secret, [f(".wh.secret", ""), d("secret", 0o700)]],
             peer("ok", "umoci: an empty secret"), ok(xd("secret", 0o700), xf("keep", "kept\n")), rules=(2,)),
        # 12: an implicit directory over merged-/usr's bin -> usr/bin.
        Case("findings", F, "12 bin/newtool over bin -> usr/bin", [merged_usr, [f("bin/newtool", "new\n", 0o755)]],
             peer("ok", "containerd and umoci write usr/bin/newtool; docker/podman overlay2 hide /bin/sh"),
             err("bin", "non-directory", layer=1), why=WHY_RULE6, rules=(6,)),
        Case("findings", F, "12 bin/.wh.sh over bin -> usr/bin", [merged_usr, [f("bin/.wh.sh", "")]],
             peer("ok", "containerd and umoci delete usr/bin/sh"),
             err("bin", "non-directory", layer=1), why=WHY_RULE6, rules=(6,)),
        Case("findings", F, "12 bin/.wh..wh..opq over bin -> usr/bin", [merged_usr, [f("bin/.wh..wh..opq", "")]],
             peer("ok", "containerd and umoci empty usr/bin"),
             err("bin", "non-directory", layer=1), why=WHY_RULE6, rules=(6,)),
        Case("findings", F, "12 explicit bin/ replaces the symlink", [merged_usr, [d("bin"), f("bin/newtool", "new\n", 0o755)]],
             peer("ok", "containerd: the symlink is replaced by the directory"),
             ok(xd("usr"), xd("usr/bin"), xf("usr/bin/sh", "a shell\n", 0o755), xd("bin"),
                xf("bin/newtool", "new\n", 0o755)), rules=(7,)),
        Case("findings", F, "12 control, implicit bin/ over a lower directory",
             [[d("bin"), f("bin/sh", "a shell\n", 0o755)], [f("bin/newtool", "new\n", 0o755)]],
             peer("ok", "both files in bin"),
             ok(xd("bin"), xf("bin/sh", "a shell\n", 0o755), xf("bin/newtool", "new\n", 0o755)), rules=(6,)),
        # 13: a whiteout where no lower layer has the directory: no broken entry in the overlay view.
        Case("findings", F, "13 whiteout in a directory only this layer has",
             [[f("keep", "kept\n")], [d("newdir"), f("newdir/.wh.ghost", ""), f("newdir/file", "f\n")]],
             peer("ok", "newdir holds file only"),
             ok(xf("keep", "kept\n"), xd("newdir"), xf("newdir/file", "f\n")), rules=(4,)),
        Case("findings", F, "13 single-layer image with nested whiteouts",
             [[d("a"), d("a/b"), f("a/b/.wh.c", ""), f("a/b/d", "d\n")]],
             peer("ok", "a/b holds d only"), ok(xd("a"), xd("a/b"), xf("a/b/d", "d\n")), rules=(4,)),
        # 14: a hardlink to a whiteout would be a whiteout without a .wh. name.
        Case("findings", F, "14 hardlink to a whiteout",
             [[d("etc"), f("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), f("x", "x\n")],
              [f(".wh.x", ""), d("etc"), h("etc/passwd", "x")]],
             peer("error-or-contained", "umoci refuses a hardlink to a missing target"),
             err("does not exist", layer=1), rules=(8,)),
        # 15: valid layers the peers accept.
        Case("findings", F, "15 nested whiteouts under a replaced directory",
             [[d("d"), f("d/a", "a\n"), f("d/b", "b\n")], [f(".wh.d", ""), d("d"), f("d/.wh.a", ""), f("d/c", "c\n")]],
             peer("ok", "containerd, umoci: d holds c"), ok(xd("d"), xf("d/c", "c\n")), rules=(2, 3)),
        Case("findings", F, "15 whiteout under a file of the same layer",
             [[d("f"), f("f/x", "x\n")], [f("f", "now a file\n"), f("f/.wh.x", "")]],
             peer("ok", "containerd and containers/storage accept it; f is a file"),
             ok(xf("f", "now a file\n")), rules=(5,)),
        Case("findings", F, "15 whiteout with missing parents",
             [[d("x"), d("x/y"), f("x/y/z", "z\n"), f("x/y/keep", "k\n")], [f("x/y/.wh.z", "")]],
             peer("ok", "x/y/keep only"), ok(xd("x"), xd("x/y"), xf("x/y/keep", "k\n")), rules=(4, 6)),
        Case("findings", F, "15 symlink overriding a directory",
             [[d("d"), f("d/a", "a\n"), f("t", "t\n")], [s("d", "t")]],
             peer("ok", "d is a symlink"), ok(xl("d", "t"), xf("t", "t\n")), rules=(7,)),
        # Outside attack: a layer repeated in the stack made overlayfs refuse the mount (conflicting
        # lowerdir), forcing a full copy on every run.
        Case("findings", F, "repeated layer A B A",
             [[f("a", "a\n"), f("b", "b\n")], [f(".wh.a", ""), f("c", "c\n")], [f("a", "a\n"), f("b", "b\n")]],
             peer("ok", "a, b and c: the top A puts back what B deleted"),
             ok(xf("a", "a\n"), xf("b", "b\n"), xf("c", "c\n")), rules=(9,)),
        Case("findings", F, "15 directory overriding a symlink",
             [[d("real"), f("real/a", "a\n"), s("d", "real")], [d("d"), f("d/b", "b\n")]],
             peer("ok", "d is a directory holding b"),
             ok(xd("real"), xf("real/a", "a\n"), xd("d"), xf("d/b", "b\n")), rules=(7,)),
    ]
    return out


def all_cases(sentinel: str) -> list:
    cases = (containerd_cases(sentinel) + moby_cases(sentinel) + umoci_cases(sentinel)
             + containers_storage_cases(sentinel) + findings_cases(sentinel))
    # Names must be unique: a second port of the same subtest gets a number.
    seen: dict = {}
    for case in cases:
        n = seen.get(case.name, 0)
        seen[case.name] = n + 1
        if n:
            case.name += f"#{n + 1}"
    return cases


# Where `umoci unpack` 0.4.7 (Debian 12, the third opinion) does not give imgtool's expected tree.
_UMOCI_NO_PARENTS = ("umoci 0.4.7 makes no parent directories for a whiteout or opaque marker "
                     "that has nothing to act on; imgtool, like containerd and docker (which make "
                     "every entry's parents before looking at its name), keeps them as implicit "
                     "directories (rule 6)")
UMOCI: dict = {
    "moby.TestXGlobalNoParent": {
        "outcome": "error",
        "why": "umoci 0.4.7 refuses the PAX global header (unknown typeflag 'g')"},
    "umoci.TestUnpackOpaqueWhiteout.MissingUpperAncestor": {
        "outcome": "differs", "paths": ["/test-subdir/some", "/test-subdir/some/dir"],
        "why": "umoci applies the layers into one directory, so the parents the upper layer only "
               "implies keep the lower layer's mode (0777); in imgtool's views the opaque "
               "test-subdir hides the lower ones and the upper layer's implicit parents (0755, "
               "rule 6) show"},
    "umoci.TestUnpackEntry_OverlayfsRootfs_Whiteout_MissingDirs.opaque-noparent": {
        "outcome": "differs", "why": _UMOCI_NO_PARENTS,
        "paths": ["/opaque-noparent", "/opaque-noparent/a", "/opaque-noparent/a/b",
                  "/opaque-noparent/a/b/c"]},
    "umoci.TestUnpackEntry_OverlayfsRootfs_Whiteout_MissingDirs.whiteout-noparent": {
        "outcome": "differs", "why": _UMOCI_NO_PARENTS,
        "paths": ["/whiteout-noparent", "/whiteout-noparent/a", "/whiteout-noparent/a/b"]},
    "umoci.TestUnpackEntry_OverlayfsRootfs_Whiteout_MissingDirs.opaque-whiteout": {
        "outcome": "differs", "paths": ["/opaque-whiteout"],
        "why": "umoci 0.4.7's directory writer makes no directory for the opaque marker of a "
               "directory that does not exist (umoci's own overlayfs test expects one)"},
    "umoci.TestUnpackEntry_OverlayfsRootfs_Whiteout_MissingDirs+lower": {
        "outcome": "differs", "paths": ["/opaque-whiteout"],
        "why": "umoci 0.4.7's directory writer deletes opaque-whiteout and makes no directory for "
               "its opaque marker (umoci's own overlayfs test expects one)"},
    "umoci.TestUnpackEntry_OverlayfsRootfs_Whiteout_Nested": {
        "outcome": "differs", "why": _UMOCI_NO_PARENTS,
        "paths": ["/opaque-innerplain/a/b/c/d/e", "/opaque-innerplain/a/b/c/d/e/f",
                  "/opaque-innerplain/foo", "/opaque-innerplain/foo/bar",
                  "/opaque-innerplain/foo/bar/baz", "/opaque-nested", "/opaque-nested/a",
                  "/opaque-nested/a/b", "/opaque-nested/a/b/c", "/opaque-nested/a/b/c/d"]},
    "umoci.TestUnpackEntry_OverlayfsRootfs_Whiteout_Nested+lower": {
        "outcome": "differs", "why": _UMOCI_NO_PARENTS,
        "paths": ["/opaque-innerplain/a/b/c/d/e", "/opaque-innerplain/a/b/c/d/e/f",
                  "/opaque-innerplain/foo", "/opaque-innerplain/foo/bar",
                  "/opaque-innerplain/foo/bar/baz", "/opaque-nested/a", "/opaque-nested/a/b",
                  "/opaque-nested/a/b/c", "/opaque-nested/a/b/c/d"]},
}


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

def emit(outdir: str, index: int, case: Case) -> dict:
    blobs = [layer(tar_bytes(entries)) for entries in case.layers]
    tag = f"peers/{case.family}-{index:03d}:latest"
    img = oci_image(blobs, tag)
    rel = case.name + ".oci"
    write_layout(os.path.join(outdir, rel), img.files)
    rec = {"name": case.name, "family": case.family,
           "source": {"repo": REPOS[case.family], "file": case.file, "test": case.test,
                      "also": list(case.also), "variant": case.variant},
           "layers": [[e.record() for e in entries] for entries in case.layers],
           "peer": case.peer, "expect": case.expect, "why": case.why, "rules": sorted(case.rules),
           "umoci": UMOCI.get(case.name),
           "path": rel, "tag": tag, "diff_ids": img.diff_ids,
           "layer_digests": [gen_hostile.digest_of(b.data) for b in blobs]}
    if case.expect_rootless is not None:
        rec["expect_rootless"] = case.expect_rootless
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--sentinel-base", required=True, metavar="DIR",
                    help="directory whose sentinel/ subdirectory the absolute links point into")
    ap.add_argument("--only", nargs="+", action="extend", metavar="NAME")
    args = ap.parse_args(argv)
    sentinel = os.path.join(os.path.abspath(args.sentinel_base), "sentinel")
    cases = all_cases(sentinel)
    known = {c.name for c in cases}
    if args.only and set(args.only) - known:
        ap.error(f"unknown case(s): {', '.join(sorted(set(args.only) - known))}")
    os.makedirs(args.outdir, exist_ok=True)
    for name in os.listdir(args.outdir):
        if name.endswith(".oci") and os.path.isdir(os.path.join(args.outdir, name)):
            shutil.rmtree(os.path.join(args.outdir, name))
    records = [emit(args.outdir, i, c) for i, c in enumerate(cases)
               if not args.only or c.name in args.only]
    index = {"sentinel": sentinel, "marker": MARKER, "rules": {str(k): v for k, v in RULES.items()},
             "base": gen_hostile.base_image(args.outdir), "cases": records}
    tmp = os.path.join(args.outdir, "peers.json.tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(index, sort_keys=True, indent=1, ensure_ascii=True) + "\n")
    os.replace(tmp, os.path.join(args.outdir, "peers.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
