#!/usr/bin/env bash
# Builds a realistic image with real tools (debootstrap, buildah, skopeo), for `tools/bench --image`:
#   layer 1  a Debian bookworm minbase root (debootstrap), added with `buildah add`
#   layer 2  `apt-get install` of a C/C++ and Python toolchain (gcc, g++, make, python3, perl, git)
#   layer 3  15,000 small files and 60 MiB of large ones, written by python3 in a RUN step
#   layer 4  deletions: docs, man pages, apt lists, part of layer 3 (whiteouts, an opaque dir)
# Output in OUT (default /var/tmp/imgtool-real): real.oci.tar (gzip layers, as `buildah push`
# writes them), real.docker.tar (docker-archive, uncompressed) and real.layout (OCI layout).
# Needs root and the Debian mirror (apt). Usage: tools/real_image.sh [OUT]
set -euo pipefail
OUT=${1:-/var/tmp/imgtool-real}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/deps.sh"
imgtool_install_packages buildah skopeo debootstrap
mkdir -p "$OUT"
cd "$OUT"
if [ -e real.oci.tar ] && [ -e real.docker.tar ] && [ -d real.layout ]; then
    echo "real_image: $OUT already holds the image"; exit 0
fi
if [ ! -e rootfs.complete ]; then
    rm -rf rootfs
    debootstrap --variant=minbase bookworm rootfs "$MIRROR"
    touch rootfs.complete
fi
tar --numeric-owner -C rootfs -cf rootfs.tar --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* .

export STORAGE_DRIVER=vfs  # no overlay-on-overlay surprises; the layers are what matters
B="buildah --root $OUT/storage --runroot $OUT/run"
step() {  # step NAME FROM CMD... : one layer from a RUN step, committed as NAME
    local name=$1 from=$2; shift 2
    local c; c=$($B from --pull-never "$from")
    $B run --isolation chroot --net host "$c" -- /bin/sh -c "$*"
    $B commit --quiet --rm "$c" "$name" >/dev/null
}
c=$($B from scratch)
$B add "$c" rootfs.tar /
$B config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$c"
$B commit --quiet --rm "$c" real-1 >/dev/null
step real-2 real-1 "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gcc g++ make python3 perl git"
step real-3 real-2 'python3 - <<"PY"
import os, random
r = random.Random(1)
words = [("w%d" % i) * (1 + i % 7) for i in range(3000)]
for d in range(300):
    base = "/srv/data/d%03d" % d
    os.makedirs(base, exist_ok=True)
    for f in range(50):
        with open("%s/f%02d.txt" % (base, f), "w") as fh:
            fh.write(" ".join(r.choice(words) for _ in range(r.randint(50, 900))))
os.makedirs("/srv/blobs", exist_ok=True)
for i in range(6):
    with open("/srv/blobs/b%d.bin" % i, "wb") as fh:
        fh.write(r.randbytes(10 << 20))
PY'
step real-4 real-3 'rm -rf /usr/share/doc /usr/share/man /var/lib/apt/lists/* /srv/blobs/b0.bin /srv/data/d00* && rm -rf /srv/data/d010 && mkdir /srv/data/d010 && echo new > /srv/data/d010/only'
rm -rf real.layout real.oci.tar real.docker.tar
$B push --quiet real-4 oci-archive:real.oci.tar:real
$B push --quiet real-4 docker-archive:real.docker.tar:real:latest
skopeo copy --quiet oci-archive:real.oci.tar oci:real.layout:real
rm -f rootfs.tar
ls -la "$OUT"
