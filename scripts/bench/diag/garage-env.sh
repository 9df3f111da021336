# Sourced by the diagnostic scripts here: the binary ($A), the repo's Python ($PY) and bench tools ($T), a
# work directory $W with a private HOME, Garage on loopback (port DIAG_GARAGE_PORT, default 3990), and a
# cleanup on exit that unmounts $W/mnt, stops Garage and removes $W.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
A=${ASSETFS_BIN:-$ROOT/target/release/assetfs}
PY=${PY:-$ROOT/.venv/bin/python}
T=$ROOT/scripts/bench/mount-tools.py
W=$(mktemp -d /tmp/assetfs-diag.XXXX)
eval "$("${BENCH_GARAGE_UP:-/work/shared/bench/garage-up.sh}" "$W/garage" "${DIAG_GARAGE_PORT:-3990}")"
export HOME=$W/home XDG_DATA_HOME=$W/data XDG_CACHE_HOME=$W/cache ASSETFS_UNSAFE_SKIP_CONDITIONAL_CHECK=1
mkdir -p "$HOME" "$W/mnt" "$W/src"
cleanup() { "$A" unmount "$W/mnt" >/dev/null 2>&1 || umount -l "$W/mnt" 2>/dev/null || true; kill "$GARAGE_PID" 2>/dev/null; sleep 1; rm -rf "$W"; }
trap cleanup EXIT

# ticks PID: the CPU time (user + system, 1/100 s) process PID has used so far.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# push_big MIB STORE: a random MIB-MiB file $W/src/big.bin pushed to STORE as models/big (version 1).
push_big() {
  head -c $(($1 << 20)) /dev/urandom >"$W/src/big.bin"
  "$A" --store "$2" init >/dev/null 2>&1 || true
  "$A" --store "$2" push models/big "$W/src" -m p >/dev/null 2>&1
}

# fill_by_cat STORE: the cache $W/c filled as bench-mount.sh fills it, by a cold `cat` of models/big@1 through a
# mount.
fill_by_cat() {
  "$A" --store "$1" --cache-dir "$W/c" mount "$W/mnt" >/dev/null
  cat "$W/mnt/models/big@1/big.bin" >/dev/null
  "$A" unmount "$W/mnt" >/dev/null
}
