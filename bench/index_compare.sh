#!/bin/sh
# Query time of two builds of bench_index, each on an index it built from
# the same synthetic data (see bench/index.sh), measured in turns in one
# run so that the machine's drift over an hour falls on both alike.  For a
# change to the index or the search: BASE is the program before it, NEW
# after.  Prints each turn's medians and the ratio NEW/BASE.
#
# Usage: bench/index_compare.sh BASE NEW [IMAGES] [TURNS]
#   IMAGES: database size (default 1000000); TURNS: default 3
#   BENCH_DIR: scratch directory (default: $TMPDIR or /tmp); both indexes
#              (about 16 kB per image each) are deleted at the end
#   BENCH_THREADS: search threads (default: all cores)
# Each turn reads a program's index through once (the two need not fit in
# memory together), runs 10 queries unmeasured, then times 20 (100 below
# 100000 images) and takes the median: of whole searches, and of scoring
# 100 random images alone (rerank100, as global-mode re-ranking does).
# 1st: the first query of the process, after opening (page faults, and
# anything done once per process).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 BASE NEW [IMAGES] [TURNS]" >&2; exit 2; }
base=$1 new=$2 n=${3:-1000000} turns=${4:-3}
threads=${BENCH_THREADS:-0}
dir=${BENCH_DIR:-${TMPDIR:-/tmp}}/sf-bench-compare.$$
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT INT TERM
need_kb=$((n * 16 * 3 + 100000))
free_kb=$(df -Pk "$dir" | awk 'NR == 2 { print $4 }')
[ "$need_kb" -le "$free_kb" ] || { echo "$n images need ${need_kb} kB of disk, $dir has ${free_kb}" >&2; exit 1; }

echo "sf index comparison, $n images, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
for p in base new; do
    eval prog=\$$p
    "$prog" build "$dir/$p.six" "$n" > "$dir/$p.build"
    echo "$p: $prog: $(sed -n 's/^build: add+commit \(.*\)/build \1/p' "$dir/$p.build" | head -1)"
done
q=$((n >= 100000 ? 20 : 100))
printf '%5s %9s %9s %7s %13s %13s %7s %9s %9s\n' turn base_ms new_ms ratio base_rerank100 new_rerank100 ratio base_1st new_1st
t=1
while [ "$t" -le "$turns" ]; do
    for p in base new; do
        eval prog=\$$p
        cat "$dir/$p.six" > /dev/null
        "$prog" query "$dir/$p.six" --threads "$threads" --queries 10 > /dev/null
        "$prog" query "$dir/$p.six" --threads "$threads" --queries $q --rerank 100 > "$dir/q.log"
        eval ${p}_ms=$(sed -n 's/^query:.*median \([0-9.]*\) ms.*/\1/p' "$dir/q.log")
        eval ${p}_rr=$(sed -n 's/^rerank:.*median \([0-9.]*\) ms.*/\1/p' "$dir/q.log")
        eval ${p}_first=$(sed -n 's/^query:.*first query \([0-9.]*\) ms.*/\1/p' "$dir/q.log")
    done
    printf '%5s %9s %9s %7s %13s %13s %7s %9s %9s\n' "$t" "$base_ms" "$new_ms" \
        "$(awk "BEGIN { printf \"%.3f\", $new_ms / $base_ms }")" "$base_rr" "$new_rr" \
        "$(awk "BEGIN { printf \"%.3f\", $new_rr / $base_rr }")" "$base_first" "$new_first"
    t=$((t + 1))
done
