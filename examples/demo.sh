#!/bin/sh
# The main job on the example photos: decode every image, run the FIRe
# backbone and LIT, show the super-features each image got, then index
# them with ASMK, query every photo against the index and print the
# ranked results and how they score against examples/images/groups.tsv.  The model
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

echo "== ASMK: 256 visual words from these photos (sf-codebook), index (sf-index) =="
sf-codebook -q -k 256 --seed 1 -o "$out/words.sfcb" "$out/features.sfs"
sf-index -q create -C "$out/words.sfcb" "$out/photos.six"
sf-index -q add "$out/photos.six" "$out/features.sfs"
sf-index info "$out/photos.six" | grep -E '^(images|words used|bytes per image):'
echo "== query each photo: its 3 best matches among the others (sf-match | sf-rank) =="
sf-match -i "$out/photos.six" "$out/features.sfs" > "$out/hits.sfs"
sf-rank -k 3 --no-self "$out/hits.sfs"
echo "== against groups.tsv (random weights: expect little) =="
sf-rank --groups groups.tsv "$out/hits.sfs"
