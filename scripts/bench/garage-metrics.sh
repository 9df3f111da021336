# Sourced by scripts/bench-mount.sh and the diagnostics under scripts/bench/diag: Garage's traffic counters,
# read from its admin metrics endpoint on loopback port PORT + 3 (PORT: its S3 port, set by the caller).
metrics() { curl -fsS "http://127.0.0.1:$((PORT + 3))/metrics"; }
# gets: GetObject requests served so far; blocks: bytes of data blocks Garage has read from its disk so far.
gets() { metrics | sed -n 's/^api_s3_request_counter{api_endpoint="GetObject"} //p'; }
blocks() { metrics | awk '/^block_bytes_read / { printf "%.0f", $2 }'; }
# wire: "GetObject-count Garage-block-bytes-read loopback-bytes"; wirediff A B: the difference, readable;
# wirefield A B N: the difference of field N (1 GETs, 2 block bytes, 3 loopback bytes).
# Loopback bytes count all traffic on lo in this network namespace (other local servers would add to it).
wire() {
  metrics | awk -v lo="$(awk '$1 == "lo:" { print $2 }' /proc/net/dev)" '
    /^api_s3_request_counter\{api_endpoint="GetObject"\}/ { g = $2 } /^block_bytes_read / { b = $2 }
    END { printf "%.0f %.0f %.0f\n", g, b, lo }'
}
wirediff() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "%.0f GETs, %.0f MiB over loopback, %.0f MiB of Garage blocks read", y[1] - x[1], (y[3] - x[3]) / 1048576, (y[2] - x[2]) / 1048576 }'
}
wirefield() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.0f", y[n] - x[n] }'; }
