#!/usr/bin/env bash
# The main job end to end on a demo image this script makes itself: build imgtool (Release), generate a
# small image, pull it into a store under build/, list and inspect it.
set -euo pipefail
IMGTOOL_SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$IMGTOOL_SRC/tools/deps.sh"
imgtool_install_packages $IMGTOOL_BUILD_PACKAGES python3 zstd busybox-static
BUILD="$IMGTOOL_SRC/build/release"
imgtool_build "$BUILD" Release >/dev/null
IMGTOOL="$BUILD/src/imgtool"
DEMO="$IMGTOOL_SRC/build/demo"
STORE="$DEMO/store"
rm -rf "$DEMO"
mkdir -p "$DEMO"
python3 "$IMGTOOL_SRC/tools/gen_images.py" "$DEMO/images" --only demo >/dev/null

run() { echo "\$ imgtool $*"; "$IMGTOOL" --root "$STORE" "$@"; echo; }
run pull-local "$DEMO/images/demo.oci.tar"
run images
run inspect imgtool-demo

# Mount the merged root read-only, list it, unmount.
MNT="$DEMO/mnt"
mkdir -p "$MNT"
run mount imgtool-demo "$MNT"
echo "\$ ls $MNT"; ls "$MNT"; echo
run mounts
run umount "$MNT"

# Run the image's default command, then one of ours, in new namespaces.
run run imgtool-demo
run run imgtool-demo sh -c 'echo "pid $$ on $(hostname) as $(id -un) in $(pwd)"'
