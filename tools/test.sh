#!/usr/bin/env bash
# Builds imgtool and runs every test (unit + integration) with ctest. Exits non-zero on any failure.
# Usage: ./tools/test.sh [ctest args...]   e.g. ./tools/test.sh -L unit
set -euo pipefail
IMGTOOL_SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$IMGTOOL_SRC/tools/deps.sh"
imgtool_install_packages $IMGTOOL_BUILD_PACKAGES $IMGTOOL_TEST_PACKAGES
BUILD="$IMGTOOL_SRC/build"
# -O2 as RelWithDebInfo, without the debug information: about a fifth of the build's time, which CI's
# 15 minutes (build and tests) need.
imgtool_build "$BUILD" RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG"
cd "$BUILD"
ctest --output-on-failure --timeout 900 "$@"
