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
need_golden() {
    [ -n "${SF_GOLDEN_DIR:-}" ] && [ -f "$SF_GOLDEN_DIR/r18-small/manifest.yaml" ] \
        || skip "golden fixtures not found (SF_GOLDEN_DIR=${SF_GOLDEN_DIR:-})"
}
need_photos() {
    [ -n "${SF_PHOTOS_DIR:-}" ] && [ -f "$SF_PHOTOS_DIR/multiview/groups.tsv" ] \
        || skip "photos not found (SF_PHOTOS_DIR=${SF_PHOTOS_DIR:-}); run shared/datasets/fetch_photos.sh"
}
finish() {
    echo "$(basename "$0"): $checks checks, $fails failed"
    [ "$fails" -eq 0 ]
}
