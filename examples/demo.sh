#!/bin/sh
# The main job on the example photos: decode every image into the feature
# stream and show what the stream holds.  Run from an installed sf, or from
# a build tree with SF_BIN pointing at its cmd/ directory.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ -z "${SF_BIN:-}" ] || PATH=$SF_BIN:$PATH
out=${TMPDIR:-/tmp}/sf-demo.$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT INT TERM

cd "$here/images"
echo "== decode: $(ls *.jpg *.png | wc -l) photos, long side 1024, 7 scales =="
ls *.jpg *.png | sf-decode --config "$here/fire.yaml" > "$out/photos.sfs"
echo "== stream: $(wc -c < "$out/photos.sfs") bytes; records per image =="
sf-cat --text "$out/photos.sfs" | cut -f1-6
sf-cat --check -v "$out/photos.sfs" 2>&1
