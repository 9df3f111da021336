# Sourced by the diagnostic scripts of a `file://` store: the binary ($A), a work directory $W under /tmp with a
# private HOME, a store $S in it holding models/big@1, a MIB (default 1024) MiB random file, and a cleanup on exit
# that unmounts $W/mnt and removes $W.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
A=${ASSETFS_BIN:-$ROOT/target/release/assetfs}
MIB=${MIB:-1024}
W=$(mktemp -d /tmp/local-diag.XXXX)
export HOME=$W/home XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache
S=file://$W/store
mkdir -p "$HOME" "$W/mnt" "$W/src"
cleanup() { "$A" unmount "$W/mnt" >/dev/null 2>&1 || umount -l "$W/mnt" 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
head -c $((MIB << 20)) /dev/urandom >"$W/src/big.bin"
"$A" --store $S init >/dev/null 2>&1 || true
"$A" --store $S push models/big "$W/src" -m p >/dev/null 2>&1
rm -rf "$W/src"
