#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds keel's image with podman from a host build, with no registry (what `make image` runs),
# and runs podman on the store that holds it.
#
#   image.sh build BUILD TAG       install BUILD (PREFIX=/usr) in BUILD/image/stage, make the root
#                                  file system from it (rootfs.sh), build Containerfile as TAG
#   image.sh podman BUILD ARGS...  podman ARGS on that image's store (save, run, inspect, ...)
#
# The store is BUILD/image/{storage,run,tmp}, vfs, not podman's default /var/lib/containers:
# the vfs driver is the one that works on these machines, and a store first made with another
# driver (podman's default is overlay) refuses --storage-driver=vfs; a store of its own also
# leaves the machine's images and containers alone, and goes with the build tree. Only podman's
# blob-info cache, /var/lib/containers/cache, is written outside it (no option moves it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
usage() {
    echo "usage: $0 build BUILD TAG | $0 podman BUILD ARGS..." >&2
    exit 64
}

# podman ARGS on BUILD's image store: podman_in BUILD ARGS...
podman_in() {
    dir=$(cd "$1" && pwd)/image
    shift
    podman --root "$dir/storage" --runroot "$dir/run" --tmpdir "$dir/tmp" --storage-driver=vfs "$@"
}

build() {
    build=$(cd "$1" && pwd) tag=$2
    dir=$build/image
    rm -rf "$dir/stage" "$dir/rootfs" "$dir/context"
    mkdir -p "$dir/context"
    # --prefix rather than reconfiguring: the build tree keeps its own CMAKE_INSTALL_PREFIX.
    DESTDIR="$dir/stage" cmake --install "$build" --prefix /usr >/dev/null
    LD_LIBRARY_PATH="$dir/stage/usr/lib/x86_64-linux-gnu:$dir/stage/usr/lib" \
        sh "$here/rootfs.sh" "$dir/rootfs" "$dir/stage/usr/bin/keel"
    # A tar keeps the owners rootfs.sh set (the state directory is 65532's); COPY would not.
    tar -C "$dir/rootfs" --numeric-owner -cf "$dir/context/rootfs.tar" .
    podman_in "$build" build --pull=never -f "$here/../../Containerfile" -t "$tag" "$dir/context"
    # Each build leaves the previous image untagged; in a store of its own, dropping them is safe.
    podman_in "$build" image prune --force >/dev/null
}

[ $# -ge 2 ] || usage
case $1 in
build) [ $# -eq 3 ] || usage; build "$2" "$3" ;;
podman) shift; podman_in "$@" ;;
*) usage ;;
esac
