#!/usr/bin/env bash
# Line and branch coverage per module: builds imgtool with IMGTOOL_COVERAGE (gcov counters written
# before every exec/_exit too, so the container's child and the user namespace's parent count) in
# build-cov/, runs every test but the fuzz smoke run, and prints a table per src/<module>.
# Usage: ./tools/coverage.sh [ctest args...]        (needs gcov, from the gcc package)
# Rootless tests run a copy of the binary as other users, who cannot write the counters: their
# processes do not count.
set -euo pipefail
IMGTOOL_SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$IMGTOOL_SRC/tools/deps.sh"
imgtool_install_packages $IMGTOOL_BUILD_PACKAGES $IMGTOOL_TEST_PACKAGES
BUILD="$IMGTOOL_SRC/build-cov"
cmake -S "$IMGTOOL_SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DIMGTOOL_COVERAGE=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
find "$BUILD" -name '*.gcda' -delete
(cd "$BUILD" && ctest -LE fuzz --timeout 900 "$@") || echo "(some tests failed; coverage below is still what ran)"

# gcov's summary per source file, summed per module directory.
cd "$BUILD"
python3 - "$IMGTOOL_SRC" <<'PY'
import collections, os, re, subprocess, sys
src = sys.argv[1]
lines = collections.defaultdict(lambda: [0, 0])
branches = collections.defaultdict(lambda: [0, 0])
for dirpath, _, files in os.walk("src"):
    for f in files:
        if not f.endswith(".gcda"):
            continue
        out = subprocess.run(["gcov", "-n", "-b", "-o", dirpath, os.path.join(dirpath, f)],
                             capture_output=True, text=True, cwd=".").stdout
        current = None
        for line in out.splitlines():
            m = re.match(r"File '(.+)'", line)
            if m:
                path = os.path.realpath(m.group(1))
                current = path if path.startswith(os.path.join(src, "src") + "/") else None
                continue
            if current is None:
                continue
            module = os.path.relpath(current, os.path.join(src, "src")).split("/")[0]
            m = re.match(r"Lines executed:([\d.]+)% of (\d+)", line)
            if m:
                total = int(m.group(2))
                lines[(module, current)] = [round(float(m.group(1)) * total / 100), total]
            m = re.match(r"Branches executed:[\d.]+% of (\d+)", line)
            if m:
                branches[(module, current)][1] = int(m.group(1))
            m = re.match(r"Taken at least once:([\d.]+)% of (\d+)", line)
            if m:
                branches[(module, current)][0] = round(float(m.group(1)) * int(m.group(2)) / 100)
per = collections.defaultdict(lambda: [0, 0, 0, 0])
for (module, path), (hit, total) in lines.items():
    per[module][0] += hit
    per[module][1] += total
for (module, path), (hit, total) in branches.items():
    per[module][2] += hit
    per[module][3] += total
print(f"{'module':10} {'lines':>16} {'branches':>16}")
all_ = [0, 0, 0, 0]
for module in sorted(per):
    h, t, bh, bt = per[module]
    all_ = [a + b for a, b in zip(all_, per[module])]
    print(f"{module:10} {h:6}/{t:<6} {100*h/max(t,1):3.0f}% {bh:6}/{bt:<6} {100*bh/max(bt,1):3.0f}%")
h, t, bh, bt = all_
print(f"{'all':10} {h:6}/{t:<6} {100*h/max(t,1):3.0f}% {bh:6}/{bt:<6} {100*bh/max(bt,1):3.0f}%")
PY
