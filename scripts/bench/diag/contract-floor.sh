#!/bin/bash
# The floor of a cold read for a mount that verifies what it serves (docs/benchmarks.md, goal 1): a 1 GiB
# file (MIB) read cold, ROUNDS (3) rounds of: raw ranged GETs of its packs by curl (8 MiB x 16); the same
# GETs by scripts/bench/floor-client (object_store, the daemon's client) receiving only (get), also hashing
# every 300 KiB with BLAKE3 (verify), also making the two copies a read through a page cache costs (serve),
# with no FUSE and no disk cache; and `dd` through the mount (empty cache). MiB/s by each tool's own timing
# (curl, floor-client) or dd's wall time, the client's CPU-s and the machine's busy share. Builds the floor
# client once under ~/.cache/assetfs-bench/floor-client (dependencies pinned by the repo's Cargo.lock).
# Root; Garage on loopback.
set -e
# Built before garage-env.sh gives this script a private HOME (cargo needs the real one).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
FD=${BENCH_FLOOR_DIR:-$HOME/.cache/assetfs-bench/floor-client}
mkdir -p "$FD/src"
if ! cmp -s "$ROOT/scripts/bench/floor-client/main.rs" "$FD/src/main.rs" || [ ! -x "$FD/target/release/floor-client" ]; then
  cp "$ROOT/scripts/bench/floor-client/main.rs" "$FD/src/main.rs"
  cp "$ROOT/Cargo.lock" "$FD/Cargo.lock"
  cat >"$FD/Cargo.toml" <<TOML
[package]
name = "floor-client"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
object_store = { version = "0.12", default-features = false, features = ["aws"] }
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
futures = "0.3"
blake3 = "1"
TOML
  cargo build --release --manifest-path "$FD/Cargo.toml" >&2
fi
source "$(dirname "${BASH_SOURCE[0]}")/garage-env.sh"
source "$(dirname "${BASH_SOURCE[0]}")/rounds.sh"
MIB=${MIB:-1024}; S=s3://bench/floor
push_big "$MIB" $S
# step LABEL CMD...: one timed step, page cache dropped first; MiB/s from the JSON `seconds` the command
# prints, else from the wall time; then the machine's busy share (`cpu_share`).
quiet() { /usr/bin/time -f "%U %S" -o "$W/cpu" "$@" >"$W/out" 2>/dev/null; }
step() {
  local l=$1 t0 t1 secs busy; shift; sync; echo 3 >/proc/sys/vm/drop_caches
  t0=$(date +%s.%N); busy=$(cpu_share quiet "$@"); t1=$(date +%s.%N)
  secs=$(grep -o '"seconds": [0-9.]*' "$W/out" | awk '{print $2}')
  printf '  %-22s %5.0f MiB/s  client %.2f CPU-s %s\n' "$l" "$(echo "$MIB / ${secs:-($t1 - $t0)}" | bc -l)" \
    "$(awk '{print $1 + $2}' "$W/cpu")" "$busy"
}
for r in $(seq "${ROUNDS:-3}"); do
  echo "round $r"
  step "curl 8 MiB x 16" $PY $T rawget-curl bench floor/packs 8192 16
  for mode in get verify serve; do step "floor-client $mode" "$FD/target/release/floor-client" $mode 16 8 bench floor/packs; done
  rm -rf "$W/c"; "$A" --store $S --cache-dir "$W/c" mount "$W/mnt" >/dev/null
  PID=$(pgrep -f "mount.*$W/mnt" | head -1); c0=$(ticks "$PID")
  step "mount dd" dd if="$W/mnt/models/big@1/big.bin" of=/dev/null bs=1M
  echo "    (dd's own CPU; the daemon's: $(( $(ticks "$PID") - c0 )) ticks)"
  "$A" unmount "$W/mnt" >/dev/null
done
