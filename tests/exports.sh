#!/bin/sh
# libsf.so exports the public API and nothing else: the functions and data
# declared in the installed headers (all of which sf.h includes), listed
# in libsf/libsf.sym for the linker.  A function added to a public header
# goes into libsf.sym too; a failure here names what differs.
. "$top_srcdir/tests/lib.sh"
so=$top_builddir/libsf/.libs/libsf.so
[ -f "$so" ] || skip "no shared libsf (configured with --disable-shared?)"
command -v nm >/dev/null || skip "nm not found"

# Names followed by "(" or "[" once comments are gone: declarations only.
${CC:-cc} -E -P -I"$top_srcdir/libsf" "$top_srcdir/libsf/sf.h" |
    grep -o '\bsf_[a-z0-9_]*[[:space:]]*[([]' | sed 's/[[:space:]]*[([]$//' |
    sort -u >"$TMP/declared"
sort -u "$top_srcdir/libsf/libsf.sym" >"$TMP/listed"
nm -D --defined-only "$so" | awk '{ print $3 }' | sort -u >"$TMP/exported"

check "the headers declare the public API" [ -s "$TMP/declared" ]
check "libsf.sym lists what the headers declare ($(comm -3 "$TMP/declared" "$TMP/listed" |
    tr -d '\t' | tr '\n' ' '))" cmp -s "$TMP/declared" "$TMP/listed"
check "libsf.so exports what libsf.sym lists ($(comm -3 "$TMP/listed" "$TMP/exported" |
    tr -d '\t' | tr '\n' ' '))" cmp -s "$TMP/listed" "$TMP/exported"
finish
