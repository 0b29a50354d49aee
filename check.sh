#!/bin/sh
# The whole test suite, from a fresh clone on Debian 12: install the
# packages, fetch the test photos, build with -Werror, AddressSanitizer and
# UBSan, run `make check`, then `make distcheck`.  CI runs exactly this.
#   SF_GOLDEN_DIR  golden fixtures (default: ../shared/golden)
#   SF_PHOTOS_DIR  test photos (default: a cache filled on first use)
set -eu
top=$(cd "$(dirname "$0")" && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

# The README's first command configures in the source tree; configure then
# refuses a build directory beside it.  Clean that build (what it installed
# stays installed) so that the two commands work in either order.
if [ -f "$top/config.status" ]; then
    echo "check.sh: cleaning the build in the source tree (make distclean) to build in _build"
    make -s distclean >/dev/null 2>&1 || rm -f "$top/config.status"
fi
./bootstrap.sh

# Packages only the tests need, kept out of bootstrap.sh's list (what
# building and running sf needs): chromium loads the HTML report of
# sf-report in tests/report_html.sh.  Without them those tests skip, and
# fail under CI=true.
TEST_PACKAGES="chromium"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=
    for p in $TEST_PACKAGES; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "check.sh: installing test packages:$missing"
        # shellcheck disable=SC2086
        { apt-get update -q >/dev/null &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null; } ||
            echo "check.sh: could not install$missing; the tests that need them will say so"
    fi
fi

: "${SF_GOLDEN_DIR:=$(cd "$top/.." && pwd)/shared/golden}"
fetch=$(cd "$top/.." && pwd)/shared/datasets/fetch_photos.sh
if [ -z "${SF_PHOTOS_DIR:-}" ]; then
    if [ "$(id -u)" -eq 0 ]; then SF_PHOTOS_DIR=/var/cache/sf-photos
    else SF_PHOTOS_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/sf-photos; fi
fi
if [ ! -f "$SF_PHOTOS_DIR/multiview/groups.tsv" ] && [ -f "$fetch" ]; then
    echo "check.sh: fetching test photos into $SF_PHOTOS_DIR"
    [ "$(id -u)" -ne 0 ] || apt-get update -q >/dev/null
    mkdir -p "$SF_PHOTOS_DIR"
    bash "$fetch" "$SF_PHOTOS_DIR" multiview
fi
export SF_GOLDEN_DIR SF_PHOTOS_DIR

rm -rf _build
mkdir _build
cd _build
# Leaks inside libvips/GLib's process-lifetime caches are not ours.
LSAN_OPTIONS="suppressions=$top/tests/lsan.supp:print_suppressions=0"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS UBSAN_OPTIONS
../configure --enable-werror --enable-asan --enable-ubsan -q
make -j"$jobs" >/dev/null
status=0
make -j"$jobs" check || status=$?
if [ -f test-suite.log ]; then
    sed -n '/^# TOTAL/,/^# ERROR/p' test-suite.log
fi
if [ "$status" -eq 0 ]; then
    # distcheck builds the tarball without sanitizers and runs the suite again.
    make -j"$jobs" distcheck >distcheck.log 2>&1 || { tail -50 distcheck.log; status=1; }
    [ "$status" -ne 0 ] || grep -E '^=+$|archives ready' distcheck.log | tail -2
fi
summary() {
    total=$(sed -n 's/^# TOTAL: *//p' test-suite.log)
    pass=$(sed -n 's/^# PASS: *//p' test-suite.log)
    skip=$(sed -n 's/^# SKIP: *//p' test-suite.log)
    fail=$(( $(sed -n 's/^# FAIL: *//p' test-suite.log) + $(sed -n 's/^# XPASS: *//p' test-suite.log) + $(sed -n 's/^# ERROR: *//p' test-suite.log) ))
    [ "$status" -eq 0 ] || [ "$fail" -gt 0 ] || fail=1
    echo "$pass passed, $fail failed, $skip skipped"
}
summary
exit "$status"
