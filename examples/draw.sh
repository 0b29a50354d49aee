#!/bin/sh
# The pictures in the README: two example photos of one scene through the
# pipeline, keeping what sf-draw needs (sf-decode --pixels, sf-lit
# --attention), matched super-feature by super-feature (sf-match
# --pairwise), then drawn: the match picture and the attention panels of
# the strongest super-features.  The model has random weights (the
# official architecture) unless one is given, so the pictures show what
# sf-draw draws, not what a trained FIRe finds.
#   examples/draw.sh [MODEL [OUTDIR]]     (OUTDIR: examples/pictures)
# Run from an installed sf, or from a build tree with SF_BIN pointing at its
# cmd/ directory (and SF_BACKEND_PATH at its backends/.libs).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ -z "${SF_BIN:-}" ] || PATH=$SF_BIN:$PATH
dest=${2:-$here/pictures}
work=${TMPDIR:-/tmp}/sf-draw.$$
mkdir -p "$work" "$dest"
dest=$(cd "$dest" && pwd)
trap 'rm -rf "$work"' EXIT INT TERM

model=${1:-}
if [ -z "$model" ]; then
    model=$work/random-fire.sfm
    sf-model random --seed 1 -o "$model"
fi
cd "$here/images"
sf-decode --pixels --size 384 --scales 1.4142,1,0.7071 left.jpg right.jpg |
    sf-extract -m "$model" | sf-lit -m "$model" --attention > "$work/features.sfs"
sf-match --pairwise "$work/features.sfs" "$work/features.sfs" > "$work/matches.sfs"
sf-draw match --query left.jpg --hit right.jpg --max-lines 60 --height 180 \
    -o "$dest/match.png" "$work/matches.sfs" "$work/features.sfs"
sf-draw attention --key left.jpg --strongest 4 --mark --height 120 \
    -o "$dest/attention.png" "$work/features.sfs"
echo "wrote $dest/match.png and $dest/attention.png"
