#!/usr/bin/env bash
# Builds the mountpoint-s3 baseline of scripts/bench-mount.sh, once, outside the repository:
#
#   scripts/bench/build-mountpoint-s3.sh      # prints the binary's path; ~10-20 minutes the first time on 2 cores
#
# mountpoint-s3 has no binary on crates.io, but its library is published there (`mountpoint-s3-fs` 0.11.0,
# with `mountpoint-s3-client` and the AWS CRT). This makes a small Cargo project under
# BENCH_MP_DIR [~/.cache/assetfs-bench/mountpoint-s3] whose only code is scripts/bench/mountpoint-s3/main.rs
# (a thin `mount-s3`: parse a few options, build the library's client, file system and FUSE session) and
# builds it with `cargo build --release`, dependencies pinned by the Cargo.lock that ships inside the
# mountpoint-s3-fs package. The AWS CRT is C, built by cmake, and the FUSE layer links libfuse3, as mount-s3 does:
# needs `cmake`, a C compiler, pkg-config and the libfuse3 headers (apt-get install cmake clang pkg-config libfuse3-dev). Rebuilds only when main.rs changes. Runs the build under
# `flock -s /work/locks/quiet` when that lock exists (a build, not a benchmark).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${BENCH_MP_DIR:-$HOME/.cache/assetfs-bench/mountpoint-s3}
VERSION=0.11.0
SRC="$ROOT/scripts/bench/mountpoint-s3/main.rs"
BIN="$DIR/target/release/mp-mount"

die() { echo "build-mountpoint-s3: ERROR: $*" >&2; exit 1; }
if [ -x "$BIN" ] && cmp -s "$SRC" "$DIR/src/main.rs"; then echo "$BIN"; exit 0; fi
command -v cargo >/dev/null || die "cargo missing (install Rust)"
command -v cmake >/dev/null || die "cmake missing: apt-get install -y cmake clang (the AWS CRT is built with cmake)"
command -v cc >/dev/null || command -v clang >/dev/null || die "no C compiler: apt-get install -y clang"
command -v pkg-config >/dev/null || die "pkg-config missing: apt-get install -y pkg-config libfuse3-dev"
pkg-config --exists fuse3 || die "libfuse3 headers missing: apt-get install -y libfuse3-dev (mountpoint-s3 links libfuse3)"

mkdir -p "$DIR/src"
cp "$SRC" "$DIR/src/main.rs"
cat >"$DIR/Cargo.toml" <<TOML
[package]
name = "mp-mount"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
mountpoint-s3-fs = "=$VERSION"
mountpoint-s3-client = "0.22"
anyhow = "1"

[profile.release]
debug = false
TOML
if [ ! -f "$DIR/Cargo.lock" ]; then
  # The library package's own lock file pins every dependency the way its authors tested it.
  lock=$(ls "$HOME"/.cargo/registry/src/*/mountpoint-s3-fs-$VERSION/Cargo.lock 2>/dev/null | head -n 1 || true)
  if [ -z "$lock" ]; then
    cargo fetch --manifest-path "$DIR/Cargo.toml" >&2 || die "cargo fetch failed"
    lock=$(ls "$HOME"/.cargo/registry/src/*/mountpoint-s3-fs-$VERSION/Cargo.lock 2>/dev/null | head -n 1 || true)
  fi
  if [ -n "$lock" ]; then cp "$lock" "$DIR/Cargo.lock"; fi
fi
echo "build-mountpoint-s3: building $BIN (log: $DIR/build.log)" >&2
run=(cargo build --release --manifest-path "$DIR/Cargo.toml")
if [ -e /work/locks/quiet ]; then run=(flock -s /work/locks/quiet "${run[@]}"); fi
if ! "${run[@]}" >"$DIR/build.log" 2>&1; then
  tail -n 30 "$DIR/build.log" >&2
  die "cargo build failed (full log: $DIR/build.log)"
fi
[ -x "$BIN" ] || die "build finished but $BIN is missing"
echo "$BIN"
