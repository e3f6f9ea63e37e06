#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in build/fuzz, generates their seed
# corpora from tools/gen_images.py output, and runs each target for a few seconds. Exits non-zero if any
# target finds a crash, a sanitizer report, a hang or a leak; the input is saved under
# build/fuzz/artifacts/<target>/ and the reproducer command printed. Longer runs: docs/fuzzing.md.
#
# Usage: tools/fuzz.sh [--seconds N] [--timeout S] [--build-only] [TARGET...]
#   --seconds N   run each target for N seconds (default 10)
#   --timeout S   a single input running longer than S seconds is a hang (default 10)
#   --build-only  build the targets and the seeds, run nothing
#   TARGET        fuzz_json fuzz_tar_index fuzz_unpack fuzz_entry_path fuzz_tar_check (default: all)
# Works from any working directory (CTest runs it as the fuzz.smoke test). Run it as root: fuzz_unpack
# creates device nodes and chowns files, exactly as the unpacker does during a pull.
set -euo pipefail
IMGTOOL_SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$IMGTOOL_SRC/tools/deps.sh"

ALL_TARGETS=(fuzz_json fuzz_tar_index fuzz_unpack fuzz_entry_path fuzz_tar_check)
seconds=10
timeout=10
build_only=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
        --seconds=*) seconds=${1#*=}; shift ;;
        --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
        --timeout=*) timeout=${1#*=}; shift ;;
        --build-only) build_only=1; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        fuzz_*) targets+=("$1"); shift ;;
        *) echo "fuzz.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
# libFuzzer reads -max_total_time=0 as "forever".
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds must be a positive integer" >&2; exit 2; }
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --timeout must be a positive integer" >&2; exit 2; }
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target $t" >&2; exit 2; }
done

# clang 14 is Debian 12's clang; its sanitizer and libFuzzer runtimes live in libclang-rt-14-dev,
# llvm-symbolizer (for readable stack traces) in llvm-14. python3 + zstd: gen_images.py and the seeds.
imgtool_install_packages $IMGTOOL_BUILD_PACKAGES clang libclang-rt-14-dev llvm-14 python3 zstd

BUILD="$IMGTOOL_SRC/build/fuzz"
mkdir -p "$BUILD"
# One fuzz.sh per build dir at a time (CTest may start it while someone runs it by hand).
exec 9>"$BUILD/.fuzz.lock"
flock 9

SAN_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CMAKE_ARGS=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMGTOOL_FUZZ=ON -DIMGTOOL_TESTS=ON
            "-DCMAKE_CXX_FLAGS=$SAN_FLAGS")
start=$(date +%s)
if [ ! -f "$BUILD/build.ninja" ] || [ "$(cat "$BUILD/.fuzz-config" 2>/dev/null)" != "${CMAKE_ARGS[*]}" ]; then
    echo "fuzz: configuring $BUILD (clang, $SAN_FLAGS)"
    rm -f "$BUILD/CMakeCache.txt"
    CC=clang CXX=clang++ cmake -S "$IMGTOOL_SRC" -B "$BUILD" "${CMAKE_ARGS[@]}" >"$BUILD/configure.log" 2>&1 ||
        { cat "$BUILD/configure.log" >&2; echo "fuzz: configure failed" >&2; exit 1; }
    echo "${CMAKE_ARGS[*]}" >"$BUILD/.fuzz-config"
fi
if ! cmake --build "$BUILD" --target "${targets[@]}" -j "$(nproc)" >"$BUILD/build.log" 2>&1; then
    grep -E "error|Error|FAILED" "$BUILD/build.log" | head -40 >&2
    echo "fuzz: build failed (full log: $BUILD/build.log)" >&2
    exit 1
fi
echo "fuzz: built ${targets[*]} in $(( $(date +%s) - start )) s"

# ---------------------------------------------------------------------------------------------------------
# Seeds: small, real inputs taken apart from gen_images.py output, plus hand-made hostile ones. Binary
# seeds are never committed; they are rebuilt when gen_images.py or this script changes.
SEEDS="$BUILD/seeds"
if [ ! -f "$SEEDS/.stamp" ] || [ "$IMGTOOL_SRC/tools/gen_images.py" -nt "$SEEDS/.stamp" ] ||
   [ "$IMGTOOL_SRC/tools/fuzz.sh" -nt "$SEEDS/.stamp" ]; then
    rm -rf "$SEEDS"
    mkdir -p "$SEEDS"
    python3 - "$IMGTOOL_SRC" "$SEEDS" <<'PY'
import gzip, hashlib, io, json, os, struct, subprocess, sys, tarfile

src, out = sys.argv[1], sys.argv[2]
gen = os.path.join(out, "images")
MAX_LAYER = 128 << 10   # bigger layers are shrunk: libFuzzer's max_len follows the largest seed
MAX_OUTER = 256 << 10
counts = {}

def seed(target, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, hashlib.sha1(data).hexdigest())
    if not os.path.exists(path):
        with open(path, "wb") as fh:
            fh.write(data)
        counts[target] = counts.get(target, 0) + 1

only = ["basic", "rootopq", "multiarch", "demo", "broken-json"]
cmd = [sys.executable, os.path.join(src, "tools", "gen_images.py"), gen, "--busybox", "/nonexistent"]
if subprocess.run(cmd + ["--only", *only], stdout=subprocess.DEVNULL).returncode != 0:
    print("fuzz: gen_images.py --only failed; generating every image", file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

def decompress(blob):
    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob), "gzip"
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        return subprocess.run(["zstd", "-dcq"], input=blob, stdout=subprocess.PIPE, check=True).stdout, "zstd"
    return blob, "none"

def compress(tar, how):
    if how == "gzip":
        return gzip.compress(tar, mtime=0)
    if how == "zstd":
        return subprocess.run(["zstd", "-qc", "-19"], input=tar, stdout=subprocess.PIPE, check=True).stdout
    return tar

def shrink_tar(tar, keep=256):
    """The same entries (headers, PAX records, xattrs), with file data cut to `keep` bytes."""
    src_tf = tarfile.open(fileobj=io.BytesIO(tar), mode="r:")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=src_tf.format or tarfile.PAX_FORMAT) as dst:
        for m in src_tf.getmembers():
            data = src_tf.extractfile(m).read()[:keep] if m.isreg() else None
            if m.isreg():
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()

names = set()
def layer_seed(blob):
    try:
        tar, how = decompress(blob)
        tf = tarfile.open(fileobj=io.BytesIO(tar), mode="r:")
        names.update(m.name for m in tf.getmembers())
    except Exception:
        seed("fuzz_unpack", blob[:MAX_LAYER])  # deliberately broken blobs stay seeds too
        return
    if len(blob) <= MAX_LAYER:
        seed("fuzz_unpack", blob)
    else:
        small = shrink_tar(tar)
        seed("fuzz_unpack", small)
        seed("fuzz_unpack", compress(small, how))

def is_json(data):
    try:
        json.loads(data)
        return True
    except Exception:
        return data.lstrip()[:1] in (b"{", b"[")  # truncated documents (broken-json) are good seeds

def member_seed(name, data):
    if name.endswith((".json", "/json", "index.json")) or name == "repositories" or is_json(data):
        if len(data) <= 64 << 10:
            seed("fuzz_json", data)
    elif name.endswith("VERSION") or name == "oci-layout":
        pass
    else:
        layer_seed(data)

for entry in sorted(os.listdir(gen)):
    path = os.path.join(gen, entry)
    if entry.endswith(".tar"):
        raw = open(path, "rb").read()
        if len(raw) <= MAX_OUTER:
            seed("fuzz_tar_index", raw)
        else:
            seed("fuzz_tar_index", shrink_tar(raw, keep=0))
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                names.add(m.name)
                if m.isreg():
                    member_seed(m.name, tf.extractfile(m).read())
    elif os.path.isdir(path):
        for root, _, files in os.walk(path):
            for fname in files:
                member_seed(fname, open(os.path.join(root, fname), "rb").read())

# --- hand-made hostile layers -----------------------------------------------------------------------------
def build(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for kind, name, arg, *extra in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            data = None
            if kind == "f":
                data = arg.encode()
                ti.size = len(data)
            elif kind == "d":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
            elif kind == "c":
                ti.type, (ti.devmajor, ti.devminor) = tarfile.CHRTYPE, arg
            elif kind == "b":
                ti.type, (ti.devmajor, ti.devminor) = tarfile.BLKTYPE, arg
            elif kind == "p":
                ti.type = tarfile.FIFOTYPE
            if extra:
                ti.pax_headers = extra[0]
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()

hostile = [
    [("f", "../escape", "x")],
    [("f", "a/../../escape", "x")],
    [("f", "/abs/file", "contained")],
    [("l", "link", "/"), ("f", "link/etc/created-through-link", "x")],
    [("l", "link", "../../../.."), ("d", "link/sub", None), ("f", "link/sub/f", "x")],
    [("l", "dir", "/tmp"), ("d", "dir", None), ("f", "dir/f", "x")],
    [("h", "h", "../../etc/passwd")],
    [("h", "h", "/etc/passwd")],
    [("f", "t", "target"), ("l", "s", "t"), ("h", "h", "s"), ("h", "h2", "t")],
    [("d", "d", None), ("h", "h", "d")],
    [("f", ".wh..", "")], [("f", ".wh.", "")], [("f", ".wh..wh..opq", "")],
    [("d", "d", None), ("f", "d/x", "x"), ("f", "d/.wh..wh..opq", ""), ("f", "d/.wh.x", ""), ("f", ".wh.d", "")],
    [("f", ".wh..wh.plnk", "")],
    [("c", "dev/null", (1, 3)), ("c", "raw-whiteout", (0, 0)), ("b", "blk", (4095, 1048575)), ("p", "fifo", None)],
    [("d", "x", None), ("f", "x/y", "y"), ("f", "x", "now a file"), ("d", "x", None)],
    [("f", "o", "x", {"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.a": "b"})],
    [("f", "o", "x", {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"})],
    [("f", "./" + "long/" * 60 + "name", "pax long name")],
    [("d", ".", None), ("d", "./", None), ("f", "./a", "a")],
    [("f", "big", "x", {"size": "99999999999999999999"})],
]
for entries in hostile:
    seed("fuzz_unpack", build(entries))
seed("fuzz_unpack", build([("f", "g" * 150, "gnu long name"), ("l", "l" * 120, "t" * 120)], tarfile.GNU_FORMAT))
first = build(hostile[8])
seed("fuzz_unpack", gzip.compress(first, mtime=0) + gzip.compress(first, mtime=0))  # two gzip members
seed("fuzz_unpack", gzip.compress(first, mtime=0) + b"garbage")
seed("fuzz_unpack", compress(first, "zstd"))
seed("fuzz_unpack", compress(first, "zstd")[:-3])

# --- outer archives -------------------------------------------------------------------------------------
def base256_size(tar):
    """The first header's size field rewritten in GNU base-256 form, checksum fixed."""
    h = bytearray(tar[:512])
    size = int(h[124:136].rstrip(b"\0 ") or b"0", 8)
    h[124:136] = b"\x80" + size.to_bytes(11, "big")
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h) + tar[512:]

outer = build([("f", "manifest.json", "[]"), ("f", "blobs/sha256/" + "a" * 64, "x")])
seed("fuzz_tar_index", outer)
seed("fuzz_tar_index", base256_size(outer))
seed("fuzz_tar_index", build([("f", "m" * 200, "x")], tarfile.GNU_FORMAT))
for entries in hostile[:9]:
    seed("fuzz_tar_index", build(entries))

# --- JSON documents ---------------------------------------------------------------------------------------
for doc in [b'{"schemaVersion":1}', b'{"a":1,"a":2}', b"[" * 70 + b"]" * 70, b'{"size":-1}',
            b'{"n":1e999,"m":-0,"u":18446744073709551616}', b'"\\ud800"', b'{} trailing',
            b'[{"Config":"c.json","RepoTags":["a:b","UPPER","x@sha256:00"],"Layers":["l/layer.tar"]}]',
            b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":'
            b'[{"mediaType":"m","digest":"sha256:' + b"0" * 64 + b'","size":1,'
            b'"platform":{"os":"linux","architecture":"arm","variant":"v7"}}]}']:
    seed("fuzz_json", doc)

# --- entry names ------------------------------------------------------------------------------------------
names.update(["", "/", ".", "..", "./", "a/..", "a/../..", "/../x", "a//b/", "./a/./b/.", ".wh.", ".wh..",
              ".wh...", ".wh..wh..opq", "a/.wh..wh..opq", ".wh..wh.plnk", "dir/.wh.file", "a/b/../../../c"])
for n in sorted(names):
    seed("fuzz_entry_path", n.encode("utf-8", "surrogateescape"))

# --- raw layer tars for the header checker: the uncompressed fuzz_unpack seeds -----------------------------
unpack_dir = os.path.join(out, "fuzz_unpack")
for name in sorted(os.listdir(unpack_dir)):
    with open(os.path.join(unpack_dir, name), "rb") as fh:
        data = fh.read()
    if not data.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd")):
        seed("fuzz_tar_check", data)

print("fuzz: seeds " + ", ".join(f"{t} {counts.get(t, 0)}" for t in
                                 ["fuzz_json", "fuzz_tar_index", "fuzz_unpack", "fuzz_entry_path",
                                  "fuzz_tar_check"]))
PY
    rm -rf "$SEEDS/images"
    # Dictionaries: the tokens a mutator cannot guess byte by byte.
    printf '%s\n' '"mediaType"' '"digest"' '"size"' '"schemaVersion"' '"manifests"' '"layers"' '"config"' \
        '"platform"' '"annotations"' '"urls"' '"rootfs"' '"diff_ids"' '"architecture"' '"os"' '"variant"' \
        '"Config"' '"RepoTags"' '"Layers"' '"created"' '"sha256:"' \
        '"sha256:0000000000000000000000000000000000000000000000000000000000000000"' \
        '"application/vnd.oci.image.index.v1+json"' '"application/vnd.oci.image.manifest.v1+json"' \
        '"application/vnd.docker.distribution.manifest.v2+json"' '"\\u0000"' '"\\ud800"' >"$SEEDS/json.dict"
    printf '%s\n' '"ustar\x00"' '"ustar  \x00"' '"path="' '"linkpath="' '"size="' '"SCHILY.xattr."' \
        '"SCHILY.xattr.trusted.overlay.opaque="' '"GNU.sparse.map="' '"GNU.sparse.size="' '"GNU.sparse.major="' \
        '"././@LongLink"' '".wh."' '".wh..wh..opq"' '"../"' '"\x80\x00\x00\x00"' >"$SEEDS/tar.dict"
    touch "$SEEDS/.stamp"
fi
[ "$build_only" -eq 1 ] && { echo "fuzz: --build-only: not running"; exit 0; }

# ---------------------------------------------------------------------------------------------------------
export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
crashes=0
for t in "${targets[@]}"; do
    case "$t" in
        fuzz_json) dict="$SEEDS/json.dict" ;;
        fuzz_tar_index|fuzz_unpack) dict="$SEEDS/tar.dict" ;;
        *) dict="" ;;
    esac
    corpus="$BUILD/corpus/$t"           # what libFuzzer learns; grows across runs
    artifacts="$BUILD/artifacts/$t/"
    work="$BUILD/work/$t"               # an empty cwd: fuzz_unpack checks nothing appears in it
    mkdir -p "$corpus" "$artifacts" "$BUILD/logs"
    rm -rf "$work" && mkdir -p "$work"
    log="$BUILD/logs/$t.log"
    # libFuzzer replays the whole corpus before fuzzing and never deletes the inputs it supersedes, so
    # the directory grows with every run: minimise it (-merge=1 keeps one input per feature) once it
    # holds twice as many files as after the last minimisation.
    count=$(find "$corpus" -maxdepth 1 -type f | wc -l)
    last=$(cat "$BUILD/corpus/.$t.merged" 2>/dev/null || echo 100)
    if [ "$count" -gt $((2 * last)) ]; then
        rm -rf "$corpus.new" && mkdir -p "$corpus.new"
        if (cd "$work" && exec "$BUILD/tests/fuzz/$t" -merge=1 -timeout="$timeout" -rss_limit_mb=2048 \
                "$corpus.new" "$corpus") >"$BUILD/logs/$t.merge.log" 2>&1; then
            rm -rf "$corpus" && mv "$corpus.new" "$corpus"
            find "$corpus" -maxdepth 1 -type f | wc -l >"$BUILD/corpus/.$t.merged"
            echo "fuzz: $t: corpus minimised, $count -> $(cat "$BUILD/corpus/.$t.merged") inputs"
        else
            rm -rf "$corpus.new"  # a crash while merging shows up again in the run below
        fi
    fi
    marker="$BUILD/logs/$t.start"
    touch "$marker"
    rc=0
    (cd "$work" && exec "$BUILD/tests/fuzz/$t" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts" -print_final_stats=1 ${dict:+-dict="$dict"} "$corpus" "$SEEDS/$t") \
        >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $t: ok, ${runs:-?} runs in ${seconds} s, ${cov:-no coverage line}"
        continue
    fi
    crashes=$((crashes + 1))
    found=$(find "$artifacts" -maxdepth 1 -type f -newer "$marker" | head -1)
    echo "fuzz: $t: FAILED (exit $rc) after ${runs:-?} runs; log $log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz_[a-z_]+: |==[0-9]+== ERROR: libFuzzer)' "$log" |
        head -5 | sed 's/^/  /'
    grep -E '^ +#[0-9]+ ' "$log" | head -12 | sed -e 's/ (BuildId: [0-9a-f]*)//' -e 's/^/  /'
    if [ -n "$found" ]; then
        echo "  input: $found"
        echo "  reproduce: (cd $work && $BUILD/tests/fuzz/$t $found)"
    fi
done
echo "fuzz: ${#targets[@]} targets, $crashes crashes"
[ "$crashes" -eq 0 ]
