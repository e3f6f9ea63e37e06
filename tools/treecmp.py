#!/usr/bin/env python3
"""Compare two root filesystem trees entry by entry.

Built to check that imgtool unpacks an image into the same merged root
filesystem as umoci or podman, but usable on any two directory trees.

A *snapshot* maps each path (relative to the tree root, "/"-prefixed; the
root itself is "/") to a dict describing the entry:

    type        "dir" | "file" | "symlink" | "chr" | "blk" | "fifo" | "sock"
    mode        permission bits incl. setuid/setgid/sticky, octal string "0755"
    uid, gid    numeric owner
    size        regular files only
    sha256      regular files only: hex digest of the content
    target      symlinks only: the link text
    rdev        chr/blk only: "major:minor" (overlay whiteouts show as "0:0")
    xattrs      name -> hex value; omitted when empty; overlayfs-internal
                names and security.selinux are left out
    link_group  non-directories hard-linked to another entry *inside* the
                tree: the smallest path sharing the same (st_dev, st_ino)
    mtime       st_mtime_ns; directories only when dir_mtimes is requested

Symlinks are never followed.  Module use (from integration tests):

    import treecmp
    diffs = treecmp.compare(treecmp.load("/tmp/a"), treecmp.load("b.json"))

CLI:
    treecmp.py snapshot DIR [-o OUT.json] [--no-mtime] [--dir-mtime] [--ignore PATH ...]
    treecmp.py compare A B [--no-mtime] [--dir-mtime] [--ignore PATH ...] [--max N]
    treecmp.py hash DIR [--ignore PATH ...]

A and B may each be a directory or a snapshot JSON file.  --ignore takes
one or more paths, so put it after the positional arguments.

Exit status: 0 equal / success, 1 trees differ, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import posixpath
import stat
import sys
from collections.abc import Iterable, Mapping

SNAPSHOT_FORMAT = "treecmp/1"

# overlayfs bookkeeping (opaque dirs, redirects, origin, ...) and the SELinux
# label depend on the host and the unpacking method, not on the image content.
_XATTR_SKIP_PREFIXES = ("trusted.overlay.", "user.overlay.")
_XATTR_SKIP_NAMES = frozenset({"security.selinux"})

# Errors meaning "this filesystem or file has no xattr support": treat as none.
_XATTR_UNSUPPORTED = frozenset(
    {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM}
)

_TYPE_NAMES = (
    (stat.S_ISDIR, "dir"),
    (stat.S_ISREG, "file"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "chr"),
    (stat.S_ISBLK, "blk"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "sock"),
)

# Order in which a path's fields are reported; unknown fields follow, sorted.
_FIELD_ORDER = (
    "type", "mode", "uid", "gid", "size", "sha256", "target", "rdev",
    "link_group", "xattrs", "mtime",
)
# Fields that only make sense for one type; skipped when the types differ
# (a "type" line already says everything useful).
_TYPE_SPECIFIC = frozenset({"size", "sha256", "target", "rdev"})

_HASH_CHUNK = 1 << 20


# --------------------------------------------------------------------------
# Path helpers


def _norm_rel(path: str) -> str:
    """Normalise a tree-relative path to the "/"-prefixed snapshot form."""
    # Strip first: posixpath.normpath keeps a leading "//" as-is.
    return posixpath.normpath("/" + path.strip("/"))


def _sort_key(path: str) -> list[str]:
    # Component-wise order keeps each subtree contiguous and parents first
    # ("/a", "/a/b", "/a-b"), which reads better than plain string order.
    return path.split("/")


def _is_ignored(path: str, ignore: frozenset[str]) -> bool:
    """True if path is, or lies beneath, an ignored path.

    Ignoring "/" drops only the root's own entry, never the whole tree.
    """
    if path in ignore:
        return True
    parent = path
    while parent != "/":
        parent = posixpath.dirname(parent)
        if parent != "/" and parent in ignore:
            return True
    return False


# --------------------------------------------------------------------------
# Snapshot


def _file_type(mode: int) -> str:
    for test, name in _TYPE_NAMES:
        if test(mode):
            return name
    return "unknown"


def _sha256_file(path: str, size: int) -> str:
    # O_NOFOLLOW/O_NONBLOCK: if the entry was swapped for a symlink or FIFO
    # since lstat, fail or return instead of following it or hanging.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        h = hashlib.sha256()
        # Most files in a rootfs are small: size the read to the file rather
        # than allocating a big buffer per file; stream big ones in chunks.
        chunk = min(size + 1, _HASH_CHUNK)
        while data := os.read(fd, chunk):
            h.update(data)
        return h.hexdigest()
    finally:
        os.close(fd)


def _read_xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in _XATTR_UNSUPPORTED:
            return {}
        raise
    out = {}
    for name in names:
        if name in _XATTR_SKIP_NAMES or name.startswith(_XATTR_SKIP_PREFIXES):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            # Listed but unreadable (e.g. trusted.* without privilege, or
            # removed meanwhile): not something we can compare.
            if e.errno in _XATTR_UNSUPPORTED:
                continue
            raise
        out[name] = value.hex()
    return dict(sorted(out.items()))


def _describe(path: str, st: os.stat_result, *, mtimes: bool, dir_mtimes: bool) -> dict:
    kind = _file_type(st.st_mode)
    entry: dict = {
        "type": kind,
        "mode": format(stat.S_IMODE(st.st_mode), "04o"),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }
    if kind == "file":
        entry["size"] = st.st_size
        entry["sha256"] = _sha256_file(path, st.st_size)
    elif kind == "symlink":
        entry["target"] = os.readlink(path)
    elif kind in ("chr", "blk"):
        entry["rdev"] = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    xattrs = _read_xattrs(path)
    if xattrs:
        entry["xattrs"] = xattrs
    if mtimes and (kind != "dir" or dir_mtimes):
        entry["mtime"] = st.st_mtime_ns
    return entry


def snapshot(
    root: str | os.PathLike,
    *,
    mtimes: bool = True,
    ignore: Iterable[str] = (),
    dir_mtimes: bool = False,
) -> dict[str, dict]:
    """Describe every entry under root (root included) without following symlinks.

    mtimes=False drops all mtimes; directory mtimes are only recorded with
    dir_mtimes=True because unpackers legitimately differ there.  Each path
    in ignore is dropped with everything beneath it ("/" drops only the
    root's own entry).
    """
    # Resolve the root itself so a symlink to a tree (e.g. /var/tmp/x) works;
    # nothing below the root is ever followed.
    top = os.path.realpath(os.fspath(root))
    ignored = frozenset(_norm_rel(p) for p in ignore)

    root_st = os.lstat(top)
    if not stat.S_ISDIR(root_st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", top)

    entries: dict[str, dict] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    if "/" not in ignored:
        entries["/"] = _describe(top, root_st, mtimes=mtimes, dir_mtimes=dir_mtimes)

    stack = [(top, "/")]
    while stack:
        abs_dir, rel_dir = stack.pop()
        prefix = "" if rel_dir == "/" else rel_dir
        with os.scandir(abs_dir) as it:
            children = list(it)
        for de in children:
            rel = f"{prefix}/{de.name}"
            # Skipping here means an ignored subtree is never even walked.
            if rel in ignored:
                continue
            st = de.stat(follow_symlinks=False)  # one lstat, cached by DirEntry
            entries[rel] = _describe(de.path, st, mtimes=mtimes, dir_mtimes=dir_mtimes)
            if stat.S_ISDIR(st.st_mode):
                stack.append((de.path, rel))
            elif st.st_nlink > 1:
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)

    # Only links *within* the tree count: nlink may include names elsewhere.
    for paths in inodes.values():
        if len(paths) > 1:
            group = min(paths)
            for p in paths:
                entries[p]["link_group"] = group

    return {p: entries[p] for p in sorted(entries, key=_sort_key)}


def _filter(
    entries: Mapping[str, dict],
    *,
    mtimes: bool = True,
    dir_mtimes: bool = True,
    ignore: Iterable[str] = (),
) -> dict[str, dict]:
    """Apply snapshot options after the fact (to a snapshot loaded from JSON)."""
    ignored = frozenset(_norm_rel(p) for p in ignore)
    out: dict[str, dict] = {}
    for path, entry in entries.items():
        if ignored and _is_ignored(path, ignored):
            continue
        entry = dict(entry)
        if "mtime" in entry and (not mtimes or (entry.get("type") == "dir" and not dir_mtimes)):
            del entry["mtime"]
        out[path] = entry

    if ignored:
        # Ignoring a path may remove a hard-link group's leader or leave a
        # single member; recompute groups from the surviving members.
        groups: dict[str, list[str]] = {}
        for path, entry in out.items():
            if "link_group" in entry:
                groups.setdefault(entry["link_group"], []).append(path)
        for members in groups.values():
            leader = min(members)
            for p in members:
                if len(members) > 1:
                    out[p]["link_group"] = leader
                else:
                    del out[p]["link_group"]
    return out


# --------------------------------------------------------------------------
# Snapshot files


def dump(entries: Mapping[str, dict], *, mtimes: bool = True, dir_mtimes: bool = False,
         ignore: Iterable[str] = ()) -> str:
    """Serialise a snapshot deterministically, recording the options used."""
    doc = {
        "format": SNAPSHOT_FORMAT,
        "options": {
            "mtimes": mtimes,
            "dir_mtimes": mtimes and dir_mtimes,
            "ignore": sorted({_norm_rel(p) for p in ignore}),
        },
        "entries": entries,
    }
    # ensure_ascii keeps non-UTF-8 names (surrogate-escaped) round-trippable.
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def _load_with_options(
    path_or_dir: str | os.PathLike,
    *,
    mtimes: bool = True,
    dir_mtimes: bool = False,
    ignore: Iterable[str] = (),
) -> tuple[dict[str, dict], dict]:
    """Return (entries, options actually present) for a directory or JSON file."""
    ignore = tuple(ignore)
    path = os.fspath(path_or_dir)
    if os.path.isdir(path):
        entries = snapshot(path, mtimes=mtimes, ignore=ignore, dir_mtimes=dir_mtimes)
        return entries, {"mtimes": mtimes, "dir_mtimes": mtimes and dir_mtimes}

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except ValueError as e:  # JSONDecodeError / UnicodeDecodeError
        raise ValueError(f"{path}: not a snapshot JSON file ({e})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a treecmp snapshot")
    if "entries" in doc:
        if doc.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"{path}: unsupported snapshot format {doc.get('format')!r}")
        raw, opts = doc["entries"], doc.get("options", {})
    elif all(k.startswith("/") for k in doc):
        # A bare entries mapping (e.g. json.dump(snapshot(...)) from a test).
        raw, opts = doc, {}
    else:
        raise ValueError(f"{path}: not a treecmp snapshot")
    has_mtimes = opts.get("mtimes", any("mtime" in e for e in raw.values()))
    has_dir_mtimes = opts.get(
        "dir_mtimes",
        any("mtime" in e for e in raw.values() if e.get("type") == "dir"),
    )
    entries = _filter(raw, mtimes=mtimes, dir_mtimes=dir_mtimes, ignore=ignore)
    return entries, {
        "mtimes": mtimes and has_mtimes,
        "dir_mtimes": mtimes and dir_mtimes and has_dir_mtimes,
    }


def load(
    path_or_dir: str | os.PathLike,
    *,
    mtimes: bool = True,
    dir_mtimes: bool = False,
    ignore: Iterable[str] = (),
) -> dict[str, dict]:
    """Snapshot a directory, or read a snapshot JSON file, with the same options.

    Options can only remove information from a JSON snapshot: mtimes that
    were not recorded there stay absent.
    """
    return _load_with_options(path_or_dir, mtimes=mtimes, dir_mtimes=dir_mtimes, ignore=ignore)[0]


def tree_hash(root: str | os.PathLike, *, ignore: Iterable[str] = ()) -> str:
    """sha256 over the full snapshot, including every mtime (directories and
    the root too), for "tree untouched before/after" checks."""
    entries = snapshot(root, mtimes=True, dir_mtimes=True, ignore=ignore)
    canon = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canon.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------
# Compare


def _fmt(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _field_order(fields: Iterable[str]) -> list[str]:
    known = [f for f in _FIELD_ORDER if f in fields]
    return known + sorted(set(fields) - set(_FIELD_ORDER))


def _entry_diffs(path: str, ea: Mapping, eb: Mapping) -> list[str]:
    lines = []
    same_type = ea.get("type") == eb.get("type")
    for field in _field_order(set(ea) | set(eb)):
        if not same_type and field in _TYPE_SPECIFIC:
            continue
        if field == "xattrs":
            xa, xb = ea.get(field) or {}, eb.get(field) or {}
            if xa != xb:
                # Show only the names that differ; hex values can be long.
                names = sorted(n for n in set(xa) | set(xb) if xa.get(n) != xb.get(n))
                sub_a = {n: xa[n] for n in names if n in xa}
                sub_b = {n: xb[n] for n in names if n in xb}
                lines.append(f"{path}: xattrs {_fmt(sub_a)} != {_fmt(sub_b)}")
            continue
        va, vb = ea.get(field), eb.get(field)
        if va != vb:
            lines.append(f"{path}: {field} {_fmt(va)} != {_fmt(vb)}")
    return lines


def compare(a, b) -> list[str]:
    """Human-readable differences between two snapshots, [] if equal.

    a and b are snapshot dicts (or directories / JSON files, passed to load()
    with default options).  Lines are ordered by path, then field.
    """
    if not isinstance(a, Mapping):
        a = load(a)
    if not isinstance(b, Mapping):
        b = load(b)
    lines: list[str] = []
    for path in sorted(set(a) | set(b), key=_sort_key):
        if path not in b:
            lines.append(f"only in A: {path}")
        elif path not in a:
            lines.append(f"only in B: {path}")
        else:
            lines.extend(_entry_diffs(path, a[path], b[path]))
    return lines


# --------------------------------------------------------------------------
# CLI


def _cmd_snapshot(args) -> int:
    entries = snapshot(args.dir, mtimes=args.mtimes, ignore=args.ignore,
                       dir_mtimes=args.dir_mtime)
    text = dump(entries, mtimes=args.mtimes, dir_mtimes=args.dir_mtime, ignore=args.ignore)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        # Write then rename so a failed run never leaves a truncated snapshot.
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, args.output)
    return 0


def _cmd_compare(args) -> int:
    opts = dict(mtimes=args.mtimes, dir_mtimes=args.dir_mtime, ignore=args.ignore)
    a, got_a = _load_with_options(args.a, **opts)
    b, got_b = _load_with_options(args.b, **opts)
    # If one side is a snapshot recorded without (dir) mtimes, comparing them
    # would flag every entry; compare only what both sides recorded.
    common = {k: got_a[k] and got_b[k] for k in ("mtimes", "dir_mtimes")}
    if common != got_a or common != got_b:
        missing = "mtimes" if not common["mtimes"] else "directory mtimes"
        print(f"treecmp: note: {missing} not compared (absent from one snapshot)",
              file=sys.stderr)
        a, b = _filter(a, **common), _filter(b, **common)

    diffs = compare(a, b)
    shown = diffs if args.max <= 0 else diffs[: args.max]
    for line in shown:
        print(line)
    if len(diffs) > len(shown):
        print(f"... and {len(diffs) - len(shown)} more")
    print(f"{len(set(a) | set(b))} entries compared, {len(diffs)} differences")
    return 1 if diffs else 0


def _cmd_hash(args) -> int:
    print(tree_hash(args.dir, ignore=args.ignore))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="treecmp.py",
        description="Snapshot and compare root filesystem trees entry by entry.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def add_filters(sp, *, mtime_opts=True):
        sp.add_argument("--ignore", action="extend", nargs="+", default=[], metavar="PATH",
                        help="drop PATH and everything beneath it (\"/\": only the root "
                             "entry itself); repeatable")
        if mtime_opts:
            sp.add_argument("--no-mtime", dest="mtimes", action="store_false",
                            help="do not record/compare any mtimes")
            sp.add_argument("--dir-mtime", action="store_true",
                            help="also record/compare directory mtimes (off by default)")

    sp = sub.add_parser("snapshot", help="write a deterministic JSON snapshot of DIR")
    sp.add_argument("dir", metavar="DIR")
    sp.add_argument("-o", "--output", metavar="OUT.json", help="output file (default: stdout)")
    add_filters(sp)
    sp.set_defaults(func=_cmd_snapshot)

    sp = sub.add_parser("compare", help="compare two directories and/or snapshot files")
    sp.add_argument("a", metavar="A", help="directory or snapshot JSON")
    sp.add_argument("b", metavar="B", help="directory or snapshot JSON")
    sp.add_argument("--max", type=int, default=50, metavar="N",
                    help="print at most N differences (default 50, 0 = all)")
    add_filters(sp)
    sp.set_defaults(func=_cmd_compare)

    sp = sub.add_parser("hash", help="sha256 over the full snapshot of DIR, all mtimes included")
    sp.add_argument("dir", metavar="DIR")
    add_filters(sp, mtime_opts=False)
    sp.set_defaults(func=_cmd_hash)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Paths may be non-UTF-8 (surrogate-escaped); never crash while printing.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        return args.func(args)
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        print(f"treecmp: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
