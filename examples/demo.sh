#!/bin/sh
# The main job on the example photos, in one command each (sf-search):
# index the photos (decode, FIRe backbone and LIT, a codebook trained on
# them, an ASMK index), query every photo against the index and print the
# ranked results and how they score against examples/images/groups.tsv.
# The model has random weights (the official architecture); pass the
# official one as
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
case $model in /*) ;; *) model=$PWD/$model ;; esac
sf-model info "$model" | grep -E '^(architecture|lit|reduction|parameters|image_size|features_num):'
# The model is named once, in a preset on top of the official settings.
printf 'compute:\n  model: "%s"\nasmk:\n  kmeans_seed: 1\n' "$model" > "$out/demo.yaml"
set -- --config "$here/fire.yaml" --config "$out/demo.yaml"

cd "$here/images"
n=$(ls *.jpg *.png | wc -l)
echo "== sf-search index: $n photos -> decode, extract, LIT, codebook, ASMK index =="
sf-search index "$@" . "$out/photos.six" 2>&1
sf-index info "$out/photos.six" | grep -E '^(images|words used|bytes per image):'
echo "== sf-search query: each photo's 3 best matches among the others =="
sf-search query -q "$@" -k 3 --no-self --hits "$out/hits.sfs" "$out/photos.six" *.jpg *.png
echo "== against groups.tsv (sf-rank on the hits; random weights: expect little) =="
sf-rank --groups groups.tsv "$out/hits.sfs"
