#!/bin/sh
# SPDX-License-Identifier: MIT
# Makes keel's image root file system in DEST from an installed BINARY: the binary; its agent's
# module (LIBDIR/keel/keel-agent.so of the same install, where the binary's RUNPATH finds it); every
# library they link, the libcurl keel loads at run time to confirm its servers and the libssl it
# loads for TLS (with theirs); the dynamic loader; the CA bundle libcurl reads for ACME and OAuth2 over TLS; the keel user, 65532, and its
# state directory /var/lib/keel. Nothing else: no shell, no package manager. image.sh runs it for
# the Containerfile; tests/integration/test_image.py also runs keel chrooted in what it makes.
#
#   rootfs.sh DEST BINARY        (LD_LIBRARY_PATH finds a libkeel that is not installed yet)
set -eu
[ $# -eq 2 ] || { echo "usage: $0 DEST BINARY" >&2; exit 64; }
dest=$1 bin=$2
uid=65532

# The libraries and the loader of an ELF file, one absolute path each, as ldd resolves them.
needs() {
    out=$(ldd "$1") || { echo "rootfs.sh: ldd $1 failed" >&2; exit 1; }
    if printf '%s\n' "$out" | grep -q 'not found'; then
        printf 'rootfs.sh: %s needs a library that is not found:\n%s\n' "$1" "$out" >&2
        exit 1
    fi
    printf '%s\n' "$out" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}

# The first libcurl keel would dlopen (core/http/curl.c), from the linker's cache.
curl=
for name in libcurl-gnutls.so.4 libcurl.so.4; do
    curl=$(ldconfig -p | awk -v n="$name" '$1 == n { print $NF; exit }')
    [ -n "$curl" ] && break
done
[ -n "$curl" ] || { echo "rootfs.sh: no libcurl-gnutls.so.4 or libcurl.so.4 to put in the image" >&2; exit 1; }
# The libssl a TLS server loads (services/identity/libssl.c).
ssl=$(ldconfig -p | awk '$1 == "libssl.so.3" { print $NF; exit }')
[ -n "$ssl" ] || { echo "rootfs.sh: no libssl.so.3 to put in the image" >&2; exit 1; }

# The module, at the same place under /usr as under the install's prefix.
prefix=$(dirname "$(dirname "$bin")")
module=$(find "$prefix/lib" -path '*/keel/keel-agent.so' 2>/dev/null | head -n 1)
[ -n "$module" ] || { echo "rootfs.sh: no lib/.../keel/keel-agent.so in $prefix, the install of $bin" >&2; exit 1; }
module_dir=/usr${module#"$prefix"}
module_dir=${module_dir%/keel-agent.so}

loader=$(needs "$bin" | grep '/ld-linux' | head -n 1)
libdir=$(dirname "$(readlink -f "$loader")") # /usr/lib/x86_64-linux-gnu: a directory ld.so searches

mkdir -p "$dest/usr/bin" "$dest$libdir" "$dest$module_dir" "$dest$(dirname "$loader")" "$dest/etc/ssl/certs" "$dest/etc/keel" \
    "$dest/var/lib/keel"
cp "$bin" "$dest/usr/bin/keel"
cp "$module" "$dest$module_dir/keel-agent.so"
cp -L "$loader" "$dest$loader"
for lib in $( (needs "$bin"; needs "$module"; echo "$curl"; needs "$curl"; echo "$ssl"; needs "$ssl") | grep -v '/ld-linux' | sort -u); do
    cp -L "$lib" "$dest$libdir/$(basename "$lib")"
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp -L /etc/ssl/certs/ca-certificates.crt "$dest/etc/ssl/certs/"
else
    echo "rootfs.sh: /etc/ssl/certs/ca-certificates.crt is missing (the Debian package ca-certificates)" >&2
    exit 1
fi
printf 'root:x:0:0::/:/nonexistent\nkeel:x:%s:%s::/var/lib/keel:/nonexistent\n' $uid $uid >"$dest/etc/passwd"
printf 'root:x:0:\nkeel:x:%s:\n' $uid >"$dest/etc/group"
printf 'hosts: files dns\n' >"$dest/etc/nsswitch.conf"
chmod 0700 "$dest/var/lib/keel"
chown $uid:$uid "$dest/var/lib/keel" 2>/dev/null || echo "rootfs.sh: not root: /var/lib/keel stays ours, not $uid's" >&2
