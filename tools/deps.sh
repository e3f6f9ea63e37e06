# Sourced by tools/demo.sh and tools/test.sh: installs the Debian packages imgtool needs, only if missing.
# Build: compiler, CMake, and the libraries the design card allows (see docs/dependencies.md).
IMGTOOL_BUILD_PACKAGES="g++ cmake ninja-build pkg-config libarchive-dev libssl-dev nlohmann-json3-dev \
libcli11-dev libisal-dev libzstd-dev libseccomp-dev doctest-dev"
# Tests: reference implementations and payloads (umoci/skopeo to compare trees, busybox as a static
# payload, zstd to generate zstd layers, util-linux for unshare, tmux for the terminal tests, uidmap for
# the rootless tests: newuidmap/newgidmap; gcc builds a static setuid probe and strace watches where
# files are created in test_boundaries).
IMGTOOL_TEST_PACKAGES="python3 zstd umoci skopeo busybox-static util-linux tmux attr uidmap gcc strace"

imgtool_install_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing Debian packages: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: packages missing and not root: apt-get install ${missing[*]}" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

imgtool_build() {  # $1 = build dir, $2 = build type
    cmake -S "$IMGTOOL_SRC" -B "$1" -G Ninja -DCMAKE_BUILD_TYPE="$2" >/dev/null
    cmake --build "$1" -j "$(nproc)"
}
