#!/bin/sh
# examples/nightly.sh as cron runs it: silent and 0 when all is well, a log
# of timestamped lines; a run that finds another one running does nothing
# and says so; a run that finds the index locked by another writer fails at
# once, and the next one catches up.
. "$top_srcdir/tests/lib.sh"
need_photos
command -v xxhsum >/dev/null 2>&1 || skip "xxhsum not found (Debian package xxhash)"
command -v flock >/dev/null 2>&1 || skip "flock not found (Debian package util-linux)"
unset MAKEFLAGS MFLAGS MAKELEVEL
cd "$TMP" || exit 99
src=$SF_PHOTOS_DIR/multiview
mkdir photos || exit 99
for f in aero__aero1.jpg aloe__aloeL.jpg books__left.jpg box__box.png \
         graf__graf1.png leuven__leuvenA.jpg; do
    cp "$src/$f" photos/ || exit 99
done
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99

nightly() {
    sh "$top_srcdir/examples/nightly.sh" -l nightly.log PHOTOS=photos MODEL=small.sfm \
        SETTINGS='--set image.size=320 --set image.scales=1,0.7071' \
        > out 2> err
    rc=$?
    cat out err
}
lines() { wc -l < nightly.log; }
silent() { [ ! -s out ] && [ ! -s err ]; }
images() { sf-index info photos.six | sed -n 's/^images: //p'; }
# hold FILE: lock FILE from another process until `release` is touched
hold() {
    rm -f held release
    flock "$1" sh -c 'touch held; while [ ! -e release ]; do sleep 0.1; done' &
    holder=$!
    i=0
    while [ ! -e held ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}
release() { touch release; wait "$holder"; }

# ---- first run ----
nightly
check "first run exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "first run prints nothing" silent
cat nightly.log
check "every log line is timestamped" sh -c '! grep -Ev "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} " nightly.log'
check "the log has a start line" grep -q ' start: PHOTOS=photos MODEL=small.sfm' nightly.log
check "the log names the 6 photos added" [ "$(grep -c ' add	' nightly.log)" -eq 6 ]
check "the log has the summary" grep -q 'photos.six: 6 added, 0 replaced, 0 removed, 0 failed' nightly.log
check "the log ends with done" sh -c 'tail -n 1 nightly.log | grep -q " done in [0-9]* s: added 6, replaced 0, removed 0, failed 0, skipped 0$"'
check "6 images indexed" [ "$(images)" = 6 ]

# ---- second run: nothing to do ----
n=$(lines)
nightly
check "second run exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "second run prints nothing" silent
check "second run logs start, the summary and done only" [ "$(lines)" -eq $((n + 3)) ]

# ---- another run holds the lock ----
cp "$src/boston__city-with-water.jpg" photos/
hold photos.six.lock
n=$(lines)
nightly
check "a run during another exits 75 (got $rc)" [ "$rc" -eq 75 ]
check "and says so on stderr" grep -q '^nightly.sh: another run holds photos.six.lock' err
check "and in the log" sh -c 'tail -n 1 nightly.log | grep -q " another run holds photos.six.lock: nothing done$"'
check "and does nothing else" [ "$(lines)/$(images)" = "$((n + 1))/6" ]
release

# ---- another writer holds the index ----
hold photos.six
nightly
check "a run while the index is being written fails (got $rc)" [ "$rc" -ne 0 ]
check "with the status of make, not 75" [ "$rc" -ne 75 ]
check "one line on stderr" [ "$(wc -l < err)" -eq 1 ]
check "saying the update failed" grep -q '^nightly.sh: the update failed' err
check "the log says why" grep -q 'photos.six: locked by another writer' nightly.log
check "the log ends with failed" sh -c 'tail -n 1 nightly.log | grep -q " failed: make exit status [0-9]*$"'
check "the index is as it was" [ "$(images)" = 6 ]
release

# ---- the next run catches up ----
n=$(lines)
nightly
check "the next run exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "the next run prints nothing" silent
check "the next run adds the new photo" [ "$(images)" = 7 ]
check "without extracting it again" sh -c "! tail -n +$((n + 1)) nightly.log | grep -q 'extracting'"
check "with the features the failed run kept" sh -c "tail -n +$((n + 1)) nightly.log | grep -q '1 photos. features from the run that could not write'"
check "the log names the photo added" sh -c "tail -n +$((n + 1)) nightly.log | grep -q ' add	boston__city-with-water.jpg$'"
check "the log ends with the counts" sh -c 'tail -n 1 nightly.log | grep -q " done in [0-9]* s: added 1, replaced 0, removed 0, failed 0, skipped 0$"'

# ---- awkward names, a broken photo: logged, mailed once, then skipped ----
cp "$src/aero__aero3.jpg" "photos/-IMG (2) l'été.jpg"
head -c 3000 "$src/aloe__aloeR.jpg" > "photos/broken \"one\".jpg"
rm photos/box__box.png
n=$(lines)
nightly
check "a broken photo: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "a broken photo: one line on stderr" [ "$(wc -l < err)" -eq 1 ]
check "saying a photo failed" grep -q '^nightly.sh: 1 photos failed (the others are indexed' err
tail -n +$((n + 1)) nightly.log > run.log
check "the log names the added photo" grep -q " add	-IMG (2) l'été.jpg$" run.log
check "the log names the removed photo" grep -q ' remove	box__box.png$' run.log
check "the log names the failed photo" grep -q ' fail	broken "one".jpg$' run.log
check "the log has the reason" grep -q 'broken "one".jpg: not an image' run.log
check "the log ends with the counts" sh -c 'tail -n 1 nightly.log | grep -q " added 1, replaced 0, removed 1, failed 1, skipped 0$"'
check "7 images" [ "$(images)" = 7 ]
n=$(lines)
nightly
check "the next night is silent (got $rc)" [ "$rc" -eq 0 ] && silent
check "and only skips the broken photo" sh -c "tail -n +$((n + 1)) nightly.log | grep -q ' skip	broken \"one\".jpg$'"
cp "$src/aloe__aloeR.jpg" "photos/broken \"one\".jpg"
nightly
check "once it changes, it is tried again and added (got $rc)" [ "$rc" -eq 0 ] && [ "$(images)" = 8 ]
tail -n +$((n + 1)) nightly.log
finish
