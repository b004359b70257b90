#!/usr/bin/env bash
# Runs a manifest one arm at a time, in the order `apitune plan` lists them (upstream first),
# each in its own process under GNU time, and prints every arm's wall time and peak resident
# set size as a Markdown table, then the totals. One process per arm is what makes the peak
# RSS per arm; `apitune run MANIFEST` runs the same arms in one process (and overlaps
# independent ones).
#
#   scripts/stage_costs.sh experiments/ablation.toml
#
# APITUNE names the binary (default: the release build under CARGO_TARGET_DIR or target/).
set -euo pipefail

manifest=${1:?usage: scripts/stage_costs.sh MANIFEST [extra apitune run args...]}
shift
apitune=${APITUNE:-${CARGO_TARGET_DIR:-target}/release/apitune}
if [[ ! -x $apitune ]]; then
    echo "no apitune binary at $apitune: run \`cargo build --release\` or set APITUNE" >&2
    exit 2
fi
if [[ ! -x /usr/bin/time ]]; then
    echo "GNU time is needed at /usr/bin/time (Debian: apt-get install time)" >&2
    exit 2
fi

# Arm names: the first column of the plan, without its summary line.
mapfile -t arms < <("$apitune" plan "$manifest" "$@" | awk 'NF > 1 && $1 !~ /^[0-9]+$/ { print $1 }')
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "| arm | wall | peak RSS |"
echo "| --- | ---: | ---: |"
total=0
peak=0
for arm in "${arms[@]}"; do
    if ! /usr/bin/time -f '%e %M' -o "$log" "$apitune" run "$manifest" "$arm" "$@" >/dev/null 2>"$log.err"; then
        cat "$log.err" >&2
        echo "arm $arm failed" >&2
        exit 3
    fi
    read -r seconds kib <"$log"
    total=$(awk -v a="$total" -v b="$seconds" 'BEGIN { print a + b }')
    (( kib > peak )) && peak=$kib
    printf '| %s | %s | %s MiB |\n' "$arm" \
        "$(awk -v s="$seconds" 'BEGIN { if (s >= 60) printf "%d min %02d s", s / 60, s % 60; else printf "%.1f s", s }')" \
        "$(awk -v k="$kib" 'BEGIN { printf "%.0f", k / 1024 }')"
done
rm -f "$log.err"
printf '| **all %d arms** | %s | %s MiB |\n' "${#arms[@]}" \
    "$(awk -v s="$total" 'BEGIN { printf "%d min %02d s", s / 60, s % 60 }')" \
    "$(awk -v k="$peak" 'BEGIN { printf "%.0f", k / 1024 }')"
