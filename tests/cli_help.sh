#!/bin/sh
# Every program: --help and --version on stdout with exit 0, usage errors
# with exit 2 and nothing on stdout, and a man page that documents every
# option --help lists.
. "$top_srcdir/tests/lib.sh"
version=$(sed -n 's/^AC_INIT(\[sf\], \[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")
for prog in sf-decode sf-cat sf-extract sf-lit sf-model sf-codebook sf-index sf-match sf-rank sf-draw sf-report sf-search; do
    out=$TMP/$prog.out err=$TMP/$prog.err
    "$prog" --help >"$out" 2>"$err"; rc=$?
    check "$prog --help exits 0 (got $rc)" [ "$rc" -eq 0 ]
    check "$prog --help starts with Usage" grep -q "^Usage: $prog " "$out"
    check "$prog --help writes nothing on stderr" [ ! -s "$err" ]
    "$prog" -h >"$out.h" 2>&1
    check "$prog -h equals --help" cmp -s "$out" "$out.h"

    "$prog" --version >"$out" 2>"$err"; rc=$?
    check "$prog --version exits 0" [ "$rc" -eq 0 ]
    check "$prog --version prints '$prog (sf) $version'" [ "$(cat "$out")" = "$prog (sf) $version" ]

    "$prog" --no-such-option >"$out" 2>"$err"; rc=$?
    check "$prog bad option exits 2 (got $rc)" [ "$rc" -eq 2 ]
    check "$prog bad option: nothing on stdout" [ ! -s "$out" ]
    check "$prog bad option names the option" grep -q "^$prog: .*--no-such-option" "$err"
    check "$prog bad option suggests --help" grep -q "^Try '$prog --help'.$" "$err"

    "$prog" --set nosuch.key=1 >"$out" 2>"$err"; rc=$?
    check "$prog --set with an unknown key exits 2" [ "$rc" -eq 2 ]
    check "$prog --set names the key" grep -q "nosuch.key" "$err"

    page=$top_srcdir/man/$prog.1
    check "$prog has a man page" [ -f "$page" ]
    # Every long option in --help appears in the man page, as troff
    # writes it (\-\-max\-pixels).
    for opt in $("$prog" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
        troff=$(printf '%s' "$opt" | sed 's/-/\\-/g')
        check "$prog.1 documents $opt" grep -qF -- "$troff" "$page"
    done
done
finish
