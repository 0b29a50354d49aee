#!/bin/sh
# The main job on the example photos: decode every image, run the FIRe
# backbone and LIT, and show the super-features each image got.  The model
# has random weights (the official architecture); pass the official one as
#   examples/demo.sh fire.pth
# Run from an installed sf, or from a build tree with SF_BIN pointing at its
# cmd/ directory (and SF_BACKEND_PATH at its backends/.libs).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ -z "${SF_BIN:-}" ] || PATH=$SF_BIN:$PATH
out=${TMPDIR:-/tmp}/sf-demo.$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT INT TERM

model=${1:-}
if [ -z "$model" ]; then
    model=$out/random-fire.sfm
    echo "== model: random weights, official architecture (sf-model random) =="
    sf-model random --seed 1 -o "$model"
fi
sf-model info "$model" | grep -E '^(architecture|lit|reduction|parameters):'

cd "$here/images"
n=$(ls *.jpg *.png | wc -l)
echo "== decode -> extract -> LIT: $n photos, long side 1024, 7 scales =="
ls *.jpg *.png | sf-decode --config "$here/fire.yaml" |
    sf-extract -m "$model" |
    sf-lit -m "$model" --config "$here/fire.yaml" --global > "$out/features.sfs"
echo "== super-features per image =="
sf-cat --text --kind local_desc --kind global "$out/features.sfs" | cut -f1,2,5,6
sf-cat --check -v "$out/features.sfs" 2>&1
