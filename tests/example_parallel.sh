#!/bin/sh
# examples/parallel.sh on this machine only (-S :) with 2 shards: the
# shards split the photos, and the merged ranking is exactly the ranking of
# one index holding every photo.
. "$top_srcdir/tests/lib.sh"
need_photos
parallel --version 2>/dev/null | grep -q 'GNU parallel' \
    || skip "GNU parallel not found (Debian package parallel)"
cd "$TMP" || exit 99
src=$SF_PHOTOS_DIR/multiview
mkdir -p photos/sub home || exit 99
for f in aero__aero1.jpg aero__aero3.jpg aloe__aloeL.jpg aloe__aloeR.jpg \
         books__left.jpg books__right.jpg box__box.png box__box_in_scene.png; do
    cp "$src/$f" photos/ || exit 99
done
cp "$src/graf__graf1.png" photos/sub/ || exit 99
cp "$src/graf__graf3.png" "photos/sub/graf 3.png" || exit 99
# awkward names and a broken photo
cp "$src/leuven__leuvenA.jpg" "photos/-dash (1) l'été \"q\".jpg" || exit 99
head -c 3000 "$src/leuven__leuvenB.jpg" > "photos/broken;\$x.jpg" || exit 99
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99

# parallel keeps state in ~/.parallel: not in the real home.
# $PARALLEL's --joblog counts the jobs: one per photo extracted.
prun() {
    rm -f jobs
    HOME=$TMP/home DECODE_FLAGS='--size 320 --set image.scales=1,0.7071' CODEBOOK_FLAGS='-k 64' \
        PARALLEL="--joblog $TMP/jobs" \
        sh "$top_srcdir/examples/parallel.sh" -S : -n 2 -m small.sfm -o out photos > ranking.tsv 2> err
    rc=$?
    cat err
}
njobs() { if [ -f jobs ]; then echo $(($(wc -l < jobs) - 1)); else echo 0; fi; }
prun
check "parallel.sh exits 1: a photo failed (got $rc)" [ "$rc" -eq 1 ]
check "the broken photo is named" grep -q '^parallel.sh: broken;\$x.jpg: no features' err
check "12 photos tried ($(njobs))" [ "$(njobs)" = 12 ]
n() { sf-index info "out/$1" | sed -n 's/^images: //p'; }
check "2 shards of 11 photos" [ "$(n shard1.six)/$(n shard2.six)" = 6/5 ]
check "the dashed, quoted, UTF-8 name is indexed" grep -q "^-dash (1) l'été \"q\".jpg	1	" ranking.tsv
mv ranking.tsv ranking1.tsv
prun
check "a rerun: exit 1, the broken photo still left out (got $rc)" [ "$rc" -eq 1 ]
check "a rerun extracts nothing ($(njobs))" [ "$(njobs)" = 0 ]
check "and says the broken photo was left out unchanged" grep -q 'broken;\$x.jpg: failed before and unchanged' err
check "a rerun ranks the same" cmp -s ranking.tsv ranking1.tsv
cp "$src/leuven__leuvenB.jpg" "photos/broken;\$x.jpg"
prun
check "once fixed: exit 0 (got $rc)" [ "$rc" -eq 0 ]
check "parallel.sh prints nothing on stderr" [ ! -s err ]
check "only the fixed photo is extracted ($(njobs))" [ "$(njobs)" = 1 ]
check "2 shards of 6 photos" [ "$(n shard1.six)/$(n shard2.six)" = 6/6 ]
check "the shards hold every photo once" sh -c \
    '{ sf-index list out/shard1.six; sf-index list out/shard2.six; } | LC_ALL=C sort | cmp -s - out/photos.list'
check "keys are relative to PHOTOS, blanks and all" grep -q '^sub/graf 3.png	1	' ranking.tsv
check "12 queries" [ "$(cut -f1 ranking.tsv | LC_ALL=C sort -u | wc -l)" -eq 12 ]

# The same features and codebook in one index give the same ranking.
sf-index create -C out/codebook.sfcb one.six || exit 99
sf-index add one.six out/all.sfs || exit 99
sf-match -i one.six -k 10 out/all.sfs | sf-rank -k 10 > one.tsv || exit 99
check "the merged ranking is the one-index ranking" cmp ranking.tsv one.tsv
check "a real ranking" [ "$(wc -l < one.tsv)" -gt 10 ]
finish
