# Sourced by tools/demo.sh and tools/test.sh: installs the Debian packages imgtool needs, only if missing.
# Build: compiler, CMake, and the libraries the design card allows (see docs/dependencies.md).
IMGTOOL_BUILD_PACKAGES="g++ cmake ninja-build pkg-config libarchive-dev libssl-dev nlohmann-json3-dev \
libcli11-dev libisal-dev libzstd-dev libseccomp-dev libcurl4-openssl-dev libtoml11-dev doctest-dev \
scdoc dpkg-dev"
# Tests: reference implementations and payloads (umoci/skopeo to compare trees, busybox as a static
# payload, zstd to generate zstd layers, util-linux for unshare, tmux for the terminal tests, uidmap for
# the rootless tests: newuidmap/newgidmap; gcc builds a static setuid probe and strace watches where
# files are created in test_boundaries; crun and runc run `bundle`'s output, whose config.json is checked
# against the runtime-spec's schema; podman loads `save`'s; bash-completion and man-db for test_install,
# which drives the completion script and installs the .deb).
IMGTOOL_TEST_PACKAGES="python3 zstd umoci skopeo busybox-static util-linux tmux attr uidmap gcc strace \
docker-registry apache2-utils openssl crun runc podman golang-github-opencontainers-specs-dev python3-jsonschema \
bash-completion man-db"

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
    # Packages such as docker-registry start a service on install (a registry on every interface at
    # :5000): the tests start their own on 127.0.0.1, so no service may start (policy-rc.d, exit 101).
    local policy=/usr/sbin/policy-rc.d placed=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && placed=1
    fi
    local rc=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    [ -n "$placed" ] && rm -f "$policy"
    if command -v systemctl >/dev/null && systemctl is-enabled docker-registry >/dev/null 2>&1; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
    return $rc
}

imgtool_build() {  # $1 = build dir, $2 = build type, then extra cmake arguments
    local dir=$1 type=$2
    shift 2
    cmake -S "$IMGTOOL_SRC" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
    cmake --build "$dir" -j "$(nproc)"
}
