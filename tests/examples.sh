#!/bin/sh
# The README's main job runs on the shipped example photos, and the
# official preset is what the programs use by default.
. "$top_srcdir/tests/lib.sh"
SF_BIN=$top_builddir/cmd sh "$top_srcdir/examples/demo.sh" > "$TMP/demo.out" 2> "$TMP/demo.err"; rc=$?
cat "$TMP/demo.out" "$TMP/demo.err"
check "demo.sh exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "demo.sh prints nothing on stderr" [ ! -s "$TMP/demo.err" ]
for f in $(cut -f1 "$top_srcdir/examples/images/groups.tsv"); do
    check "$f is added to the index" grep -q "^add	$f$" "$TMP/demo.out"
done
check "the codebook size chosen is shown" grep -q "^sf-codebook: codebook size [0-9]* for " "$TMP/demo.out"
check "the index summary" grep -q "photos.six: 8 added, 0 replaced, 0 removed, 0 failed" "$TMP/demo.out"
# The ranked results: three per photo, never itself, scores descending.
grep -E '^[a-z_0-9]+\.(jpg|png)	[123]	' "$TMP/demo.out" > "$TMP/ranked.tsv"
check "3 ranked results for each of the 8 photos" [ "$(wc -l < "$TMP/ranked.tsv")" -eq 24 ]
check "a photo is not its own result" [ "$(awk -F'\t' '$1 == $3' "$TMP/ranked.tsv" | wc -l)" -eq 0 ]
check "scores descend" [ "$(awk -F'\t' '$1 == q && $4 > s; { q = $1; s = $4 }' "$TMP/ranked.tsv" | wc -l)" -eq 0 ]
check "index of 8 photos" grep -q "^images: 8$" "$TMP/demo.out"
check "evaluation over the 6 photos with a partner" grep -q "^groups	6	[0-9.]*	" "$TMP/demo.out"
# examples/fire.yaml spells out the defaults, leaving the model's own to
# the model: decoding with it or without it gives the same bytes.
cd "$top_srcdir/examples/images" || exit 99
sf-decode --size 128 left.jpg > "$TMP/default.sfs"
sf-decode --config ../fire.yaml --size 128 left.jpg > "$TMP/preset.sfs"
check "fire.yaml equals the built-in defaults" cmp -s "$TMP/default.sfs" "$TMP/preset.sfs"
finish
