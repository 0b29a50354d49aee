#!/bin/sh
# The README's main job runs on the shipped example photos, and the
# official preset is what the programs use by default.
. "$top_srcdir/tests/lib.sh"
SF_BIN=$top_builddir/cmd sh "$top_srcdir/examples/demo.sh" > "$TMP/demo.out" 2> "$TMP/demo.err"; rc=$?
cat "$TMP/demo.out" "$TMP/demo.err"
check "demo.sh exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "demo.sh prints nothing on stderr" [ ! -s "$TMP/demo.err" ]
n=$(cut -f1 "$top_srcdir/examples/images/groups.tsv" | wc -l)
check "every example photo has 7 pyramid levels" \
    [ "$(grep -c '	image	' "$TMP/demo.out")" -eq $((n * 7)) ]
for f in $(cut -f1 "$top_srcdir/examples/images/groups.tsv"); do
    check "$f is in the stream" grep -q "^$f	" "$TMP/demo.out"
done
# examples/fire.yaml spells out the defaults: decoding with it or without it
# gives the same bytes.
cd "$top_srcdir/examples/images" || exit 99
sf-decode --size 128 left.jpg > "$TMP/default.sfs"
sf-decode --config ../fire.yaml --size 128 left.jpg > "$TMP/preset.sfs"
check "fire.yaml equals the built-in defaults" cmp -s "$TMP/default.sfs" "$TMP/preset.sfs"
finish
