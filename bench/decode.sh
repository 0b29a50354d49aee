#!/bin/sh
# Decode throughput on the example photos, against libvips' own
# vipsthumbnail (decode + shrink, no normalisation or pyramid) measured in
# the same run.  Usage: bench/decode.sh [ROUNDS [DIR]] (default 5 rounds,
# examples/images; e.g. DIR=$SF_PHOTOS_DIR/multiview for larger photos)
#   SF_BIN: directory of the sf programs (default: installed ones)
set -eu
rounds=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
[ -z "${SF_BIN:-}" ] || PATH=$SF_BIN:$PATH
images=${2:-$here/../examples/images}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
files=$(cd "$images" && ls | grep -E '\.(jpg|png)$')
n=$(echo "$files" | wc -l)

now() { date +%s.%N; }
# run LABEL COMMAND...: best wall time over the rounds
best=
run() {
    label=$1; shift
    best=
    i=0
    while [ $i -lt "$rounds" ]; do
        t0=$(now); "$@"; t1=$(now)
        t=$(awk "BEGIN { print $t1 - $t0 }")
        if [ -z "$best" ] || awk "BEGIN { exit !($t < $best) }"; then best=$t; fi
        i=$((i + 1))
    done
    printf '%-44s %8.3f s  %7.1f images/s\n' "$label" "$best" "$(awk "BEGIN { print $n / $best }")"
}

cd "$images"
echo "$n photos in $images, best of $rounds rounds, $(nproc) cores"
sf_pyramid() { sf-decode $files > /dev/null; }
sf_single() { sf-decode --scales 1 $files > /dev/null; }
run "sf-decode, 1024, 7 scales" sf_pyramid; t_pyr=$best
run "sf-decode, 1024, scale 1 only" sf_single; t_one=$best
if command -v vipsthumbnail > /dev/null; then
    vt() { vipsthumbnail --size 1024x1024 --no-rotate -o "$tmp/%s.v" $files; }
    run "baseline: vipsthumbnail 1024 (to .v files)" vt; t_base=$best
    printf 'ratio sf-decode (scale 1) / vipsthumbnail: %.2f\n' "$(awk "BEGIN { print $t_one / $t_base }")"
    printf 'ratio sf-decode (7 scales) / vipsthumbnail: %.2f\n' "$(awk "BEGIN { print $t_pyr / $t_base }")"
else
    echo "baseline skipped: vipsthumbnail not installed (Debian package libvips-tools)"
fi
