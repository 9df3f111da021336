# Sourced by the diagnostic scripts here: helpers for A/B rounds.
#
# ab_order ROUND A [B]: the builds to run in round ROUND, the order swapped in even rounds. Passes right
# after one another are not alike on this VM: in an A/A run of local-cold-read.sh (one binary under two
# names, 5 rounds) the second read of a round was faster in 3 rounds (by 4-16%), and in
# warm-loader-profile.sh the first pass of a round was the faster one in 4 of 4 rounds.
ab_order() {
  if [ -n "${3:-}" ] && [ $(( $1 % 2 )) = 0 ]; then echo "$3 $2"; else echo "$2 ${3:-}"; fi
}

# cpu_share CMD...: runs CMD (its output passes through), then prints the machine's busy and iowait
# shares over the run (/proc/stat).
cpu_share() {
  local s0 s1
  s0=$(head -1 /proc/stat); "$@"; s1=$(head -1 /proc/stat)
  printf '%s\n%s\n' "$s0" "$s1" | awk '{b = $2 + $3 + $4 + $7 + $8; t = b + $5 + $6
    if (NR == 1) { b0 = b; t0 = t; w0 = $6 } else printf "  machine busy %.0f%%, iowait %.0f%%\n", 100 * (b - b0) / (t - t0), 100 * ($6 - w0) / (t - t0) }'
}
