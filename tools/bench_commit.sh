#!/bin/bash
# Usage: tools/bench_commit.sh (as root; IMGTOOL=binary, IMAGE=busybox OCI archive, W=work dir; needs podman and buildah)
# imgtool commit vs podman commit and buildah commit (containers/storage, buildah's commit code) of one
# container with 100 MB of new files (100 x 1 MiB random), stopped; each sample's image removed before
# the next. Caches dropped before each sample.
set -e
REPO=$(cd "$(dirname "$0")/.." && pwd)
B=${IMGTOOL:-$REPO/build/src/imgtool}; IMG=${IMAGE:-$REPO/build/test-tmp/images/busybox.oci.tar}
W=${W:-/var/tmp/bench-commit}; rm -rf $W; mkdir -p $W/data
for i in $(seq 0 99); do head -c 1048576 /dev/urandom > $W/data/f$i; done
R=$W/imgtool; $B --root $R pull-local $IMG -t bb >/dev/null
CID=$($B --root $R run -d -v $W/data:/src:ro bb sh -c 'mkdir /big; cat /src/f0 > /dev/null; for f in /src/*; do cat $f > /big/${f##*/}; done')
while ! $B --root $R ps -a | grep -q Exited; do sleep 0.2; done
P="podman --root $W/pm/graph --runroot $W/pm/run --tmpdir $W/pm/libpod --storage-driver overlay --events-backend file --cgroup-manager cgroupfs"
$P load -q -i $IMG >/dev/null
$P create --name c1 imgtool-test/busybox true >/dev/null
M=$($P mount c1); mkdir $M/big; cp $W/data/* $M/big/; $P umount c1 >/dev/null
BU="buildah --root $W/bu/graph --runroot $W/bu/run --storage-driver overlay"
$BU pull -q oci-archive:$IMG >/dev/null
BC=$($BU from -q --pull-never "$($BU images -q | head -1)")
BM=$($BU mount $BC); mkdir $BM/big; cp $W/data/* $BM/big/; $BU umount $BC >/dev/null
sync
t() { local s=$(date +%s%N); "$@" >/dev/null; echo "scale=3; ($(date +%s%N) - $s) / 1000000000" | bc; }
for n in 1 2 3 4 5; do
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  a=$(t $B --root $R commit $CID big:1); $B --root $R rmi big:1 >/dev/null
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  b=$(t $P commit -q c1 pbig:1); $P rmi pbig:1 >/dev/null
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  c=$(t $BU commit -q $BC bbig:1); $BU rmi bbig:1 >/dev/null
  echo "sample $n: imgtool $a s, podman $b s, buildah $c s"
done
rm -rf $W
