#!/bin/sh
# The section-3 manual covers the public API: libsf(3) names every
# function and variable libsf exports (libsf.sym), sf_easy(3) documents
# every function of sf_easy.h and each has a page of its own that points
# there, and the pages format without warnings.
. "$top_srcdir/tests/lib.sh"
man=$top_srcdir/man
for sym in $(cat "$top_srcdir/libsf/libsf.sym"); do
    check "libsf.3 names $sym" grep -qF "\\fB$sym\\fR" "$man/libsf.3"
done
# The functions sf_easy.h declares (comments removed).
sed 's|/\*.*\*/||; /\/\*/,/\*\//d' "$top_srcdir/libsf/sf_easy.h" |
    grep -o '\bsf_[a-z0-9_]*[[:space:]]*(' | sed 's/[[:space:]]*($//' | sort -u > "$TMP/easy"
check "sf_easy.h declares functions" [ "$(wc -l < "$TMP/easy")" -gt 10 ]
for fn in $(cat "$TMP/easy"); do
    check "sf_easy.3 names $fn in its NAME section" \
        sh -c "sed -n '/^\.SH NAME/,/^\.SH SYNOPSIS/p' '$man/sf_easy.3' | grep -q '\\b$fn\\b'"
    check "sf_easy.3 has the prototype of $fn" grep -q "^\.BI* \".*\\b$fn(" "$man/sf_easy.3"
    check "sf_easy.3 describes $fn" grep -q "^\.B $fn\$" "$man/sf_easy.3"
    check "$fn.3 points to sf_easy.3" [ "$(cat "$man/$fn.3" 2>/dev/null)" = ".so man3/sf_easy.3" ]
    check "Makefile.am installs $fn.3" grep -q "man/$fn\.3" "$top_srcdir/Makefile.am"
done
if command -v groff >/dev/null; then
    for page in libsf.3 sf_easy.3; do
        groff -man -ww -z "$man/$page" > "$TMP/$page.warn" 2>&1
        check "$page formats without warnings ($(head -c 200 "$TMP/$page.warn"))" [ ! -s "$TMP/$page.warn" ]
    done
fi
finish
