#!/bin/sh
# The README's main job runs on the shipped example photos, and the
# official preset is what the programs use by default.
. "$top_srcdir/tests/lib.sh"
SF_BIN=$top_builddir/cmd sh "$top_srcdir/examples/demo.sh" > "$TMP/demo.out" 2> "$TMP/demo.err"; rc=$?
cat "$TMP/demo.out" "$TMP/demo.err"
check "demo.sh exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "demo.sh prints nothing on stderr" [ ! -s "$TMP/demo.err" ]
for f in $(cut -f1 "$top_srcdir/examples/images/groups.tsv"); do
    check "$f has 1000 local super-features" grep -q "^$f	local_desc	f32	1000x128$" "$TMP/demo.out"
    check "$f has a global descriptor" grep -q "^$f	global	f32	128$" "$TMP/demo.out"
done
# The ranked results: three per photo, never itself, scores descending.
grep -E '^[a-z_0-9]+\.(jpg|png)	[123]	' "$TMP/demo.out" > "$TMP/ranked.tsv"
check "3 ranked results for each of the 8 photos" [ "$(wc -l < "$TMP/ranked.tsv")" -eq 24 ]
check "a photo is not its own result" [ "$(awk -F'\t' '$1 == $3' "$TMP/ranked.tsv" | wc -l)" -eq 0 ]
check "scores descend" [ "$(awk -F'\t' '$1 == q && $4 > s; { q = $1; s = $4 }' "$TMP/ranked.tsv" | wc -l)" -eq 0 ]
check "index of 8 photos" grep -q "^images: 8$" "$TMP/demo.out"
check "evaluation over the 6 photos with a partner" grep -q "^groups	6	[0-9.]*	" "$TMP/demo.out"
# examples/fire.yaml spells out the defaults: decoding with it or without it
# gives the same bytes.
cd "$top_srcdir/examples/images" || exit 99
sf-decode --size 128 left.jpg > "$TMP/default.sfs"
sf-decode --config ../fire.yaml --size 128 left.jpg > "$TMP/preset.sfs"
check "fire.yaml equals the built-in defaults" cmp -s "$TMP/default.sfs" "$TMP/preset.sfs"
finish
