#!/usr/bin/env bash
# Instructions per call of one codec operation, counted by callgrind: repeatable whatever
# else the machine is doing, unlike any timing on a shared VM.
#
#   scripts/instructions-per-call.sh 'cpu/parse ADD' 'CallbackReg*parse'
#   scripts/instructions-per-call.sh 'cpu/parse SC_EVENT' 'Event*parse'
#
# The first argument selects a case of `cargo bench --bench codec`, the second is the function
# whose calls are counted (a callgrind --toggle-collect pattern, without the surrounding '*').
set -euo pipefail

case_filter=${1:?usage: $0 BENCH-CASE FUNCTION-PATTERN}
function_pattern=${2:?usage: $0 BENCH-CASE FUNCTION-PATTERN}

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cd "$(dirname "$0")/.."
bench=$(cargo bench --bench codec --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*codec-[^"]*\)".*/\1/p' | tail -1)
[ -x "$bench" ] || { echo "could not build the codec bench" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect="*${function_pattern}*" \
    "$bench" --bench "$case_filter" --profile-time 1 >/dev/null 2>&1

# Ir collected inside the function, divided by the number of calls to it (names are defined
# on the first fn= or cfn= line that mentions a function's id).
awk -v pattern="$function_pattern" '
    BEGIN { gsub(/\*/, ".*", pattern) }
    /^summary:/ { total = $2 }
    /^c?fn=/ {
        match($0, /^c?fn=\([0-9]+\)/)
        open = index($0, "(")
        id = substr($0, open + 1, RLENGTH - open - 1)
        name = substr($0, RLENGTH + 2)
        if (name != "") names[id] = name
        if ($0 ~ /^cfn=/) target = (names[id] ~ pattern)
        next
    }
    /^calls=/ { if (target) { split($0, f, /[= ]/); calls += f[2] } target = 0 }
    END {
        if (calls == 0) { print "no calls matched" > "/dev/stderr"; exit 1 }
        printf "%d instructions per call (%d calls)\n", total / calls, calls
    }' "$out"
