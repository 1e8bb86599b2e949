#!/usr/bin/env bash
# Instructions per referral on the benchmark's path, by party and by function, counted by
# valgrind's callgrind — the same on every run, unlike time on these shared machines.
#
# Two `rujuk bench` runs that differ only in the throughput run's count; their difference,
# divided by the difference in referrals, leaves out start-up, warm-up and the latency run.
# Each thread is counted on its own (--separate-threads) and put with its party by the function
# at its root. Slow: under callgrind the whole process runs on one core, ~50x slower.
#
# usage: Profile/callgrind.sh path/to/rujuk   (make profile builds it and runs this)
set -euo pipefail
binary=${1:?usage: Profile/callgrind.sh path/to/rujuk}
out=${PROFILE_DIR:-${TMPDIR:-/tmp}/rujuk-profile}
small=${PROFILE_SMALL:-500}
large=${PROFILE_LARGE:-1000}
rm -rf "$out"
mkdir -p "$out"
# Valgrind 3.19 (Debian 12's) cannot read the DWARF 5 that Swift 6.3 writes and gives up: profile
# a copy without the debug sections. The symbol table stays, so functions keep their names. And
# it crashes at the start of a Swift async main: RUJUK_MAIN_THREAD_WAITS (Sources/rujuk/Rujuk.swift).
objcopy --strip-debug "$binary" "$out/rujuk"
for count in "$small" "$large"; do
    mkdir -p "$out/$count"
    RUJUK_MAIN_THREAD_WAITS=1 valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/$count/callgrind" \
        "$out/rujuk" bench --config Config/rujuk.toml --count "$count" --runs 1 --rate 100 --seconds 1 \
        --sweep-handoffs 0 --api-requests 0 --events 0 >"$out/$count/bench.log" 2>"$out/$count/valgrind.log"
    for file in "$out/$count"/callgrind-*; do
        callgrind_annotate --inclusive=no --threshold=100 "$file" >"$file.self" 2>/dev/null
        callgrind_annotate --inclusive=yes --threshold=100 "$file" >"$file.inclusive" 2>/dev/null
    done
done
python3 "$(dirname "$0")/callgrind_parties.py" "$out/$small" "$out/$large" "$((large - small))"
