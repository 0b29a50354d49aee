# Sourced by the shell tests.  Exit codes follow automake: 0 pass, 1 fail,
# 77 skip, 99 hard error.
set -u
fails=0
checks=0
TMP=${top_builddir:-.}/tests/tmp/$(basename "$0" .sh)
rm -rf "$TMP"; mkdir -p "$TMP"

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }
# check DESCRIPTION COMMAND...: the command must succeed
check() { local d=$1; shift; checks=$((checks + 1)); "$@" || fail "$d"; }

# skip REASON: skip the whole test, or fail under CI=true where data must exist
skip() {
    if [ "${CI:-}" = true ]; then echo "FAIL (CI=true, data required): $*" >&2; exit 1; fi
    echo "SKIP: $*" >&2; exit 77
}
# What the machine cannot do at all (no pseudo-terminals in a container),
# not missing data: a skip even under CI=true, said as such.
skip_machine() {
    echo "SKIP (the machine cannot): $*" >&2; exit 77
}
need_golden() {
    [ -n "${SF_GOLDEN_DIR:-}" ] && [ -f "$SF_GOLDEN_DIR/r18-small/manifest.yaml" ] \
        || skip "golden fixtures not found (SF_GOLDEN_DIR=${SF_GOLDEN_DIR:-})"
}
need_photos() {
    [ -n "${SF_PHOTOS_DIR:-}" ] && [ -f "$SF_PHOTOS_DIR/multiview/groups.tsv" ] \
        || skip "photos not found (SF_PHOTOS_DIR=${SF_PHOTOS_DIR:-}); run shared/datasets/fetch_photos.sh"
}
# run NAME CMD...: stdout to NAME.out, stderr to NAME.err, status in $rc.
run() {
    n=$1; shift
    "$@" >"$n.out" 2>"$n.err"
    rc=$?
}
# expect_rc WANT DESCRIPTION: the status of the last run
expect_rc() {
    checks=$((checks + 1))
    [ "$rc" -eq "$1" ] || fail "$2: exit status $rc, expected $1 (stderr: $(head -c 300 "$n.err"))"
}
# empty FILE DESCRIPTION; has FILE PATTERN DESCRIPTION (grep)
empty() { checks=$((checks + 1)); [ ! -s "$1" ] || fail "$2: $1 is not empty: $(head -c 300 "$1")"; }
has() { checks=$((checks + 1)); grep -q -- "$2" "$1" || fail "$3: '$2' not in $1: $(head -c 300 "$1")"; }
# awk_ap GROUPS < TSV: the AP of each query of a full sf-rank TSV ranking
# against a file<TAB>group key, computed here independently of libsf: the
# query is left out of its own ranking, images the key does not name are
# negatives, positives are the rest of its group (none for single_*), AP
# by the trapezoid rule (spec section 8).  Keys must equal the key's
# names.  Prints "query<TAB>AP" sorted, for queries with positives.
awk_ap() {
    awk -F'\t' '
    NR == FNR { g[$1] = $2; n[$2]++; next }
    !($1 in g) || $3 == $1 { next }
    { q = $1; if (q != last) { r[q] = 0; f[q] = 0 }; last = q
      if (($3 in g) && g[$3] == g[q] && g[q] !~ /^single_/) {
          j = f[q]; rk = r[q]
          ap[q] += ((rk ? j / rk : 1) + (j + 1) / (rk + 1)) / (2 * (n[g[q]] - 1)); f[q]++ }
      r[q]++ }
    END { for (q in ap) printf "%s\t%.6f\n", q, ap[q] }' "$1" - | sort
}
finish() {
    echo "$(basename "$0"): $checks checks, $fails failed"
    [ "$fails" -eq 0 ]
}
