#!/bin/sh
# Backbone + LIT per image for each compute backend, on a random ResNet-50
# FIRe model: the official configuration (a 1024 x 640 image, seven scales
# 2.0 ... 0.25; the largest level is 2048 x 1280), seconds per image, peak
# RSS, GFLOP/s against this machine's peak measured in the same run, and
# the ratio to the published PyTorch figures (9.1 s, 1.3 GB).  onednn runs
# a second time with --precision bf16 (where the CPU has AVX512-BF16), and
# the two are printed side by side with their ratio.
#
# The reference backend is far too slow for that: it runs at a quarter of
# the size (256 x 160, same seven scales, one image) and says so.
#
# Usage: bench/extract.sh [IMAGES]   (default 3; the first includes set-up)
# Run from the build directory, or set
#   SF_BENCH_NETWORK  the bench_network program (default: bench/bench_network)
#   SF_BACKEND_PATH   where the backends are (default: backends/.libs)
#   SF_BENCH_BACKENDS which backends (default: "onednn reference")
#   SF_THREADS        threads (default 0: all cores)
set -eu
images=${1:-3}
bench=${SF_BENCH_NETWORK:-./bench/bench_network}
: "${SF_BACKEND_PATH:=./backends/.libs}"
export SF_BACKEND_PATH
threads=${SF_THREADS:-0}
if [ ! -x "$bench" ]; then
    echo "extract.sh: no $bench (build it, or set SF_BENCH_NETWORK)" >&2
    exit 2
fi
echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for backend in ${SF_BENCH_BACKENDS:-onednn reference}; do
    echo
    if [ "$backend" = reference ]; then
        echo "reference: REDUCED SIZE 256 x 160 (1/16 of the pixels), one image;"
        echo "  its seconds are not comparable with the official configuration"
        "$bench" --backend reference --width 256 --height 160 --images 1 \
            --threads "$threads" --no-peak || status=1
    else
        "$bench" --backend "$backend" --width 1024 --height 640 --images "$images" \
            --threads "$threads" | tee "$tmp/$backend.f32" || status=1
        [ "$backend" = onednn ] || continue
        # bf16 beside f32, in the same run: refused (and said so) on a CPU
        # without AVX512-BF16.
        echo
        if "$bench" --backend "$backend" --width 1024 --height 640 --images "$images" \
            --threads "$threads" --no-peak --bf16 > "$tmp/$backend.bf16" 2>&1; then
            cat "$tmp/$backend.bf16"
            # "  best image: T s (...); peak RSS M MB"
            awk '/best image:/ { t[FILENAME] = $3; r[FILENAME] = $(NF - 1) }
                 END { f = ARGV[1]; b = ARGV[2]
                       printf "\n%s per image: f32 %.3f s, bf16 %.3f s: bf16/f32 %.2fx " \
                              "(target <= 0.55x); peak RSS f32 %s MB, bf16 %s MB (target <= 400)\n",
                              "'"$backend"'", t[f], t[b], t[b] / t[f], r[f], r[b] }' \
                "$tmp/$backend.f32" "$tmp/$backend.bf16"
        else
            echo "$backend bf16: $(tail -n 1 "$tmp/$backend.bf16")"
        fi
    fi
done
exit $status
