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
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99

# parallel keeps state in ~/.parallel: not in the real home.
HOME=$TMP/home DECODE_FLAGS='--size 320 --set image.scales=1,0.7071' CODEBOOK_FLAGS='-k 64' \
    sh "$top_srcdir/examples/parallel.sh" -S : -n 2 -m small.sfm -o out photos > ranking.tsv 2> err
rc=$?
cat err
check "parallel.sh exits 0 (got $rc)" [ "$rc" -eq 0 ]
check "parallel.sh prints nothing on stderr" [ ! -s err ]
n() { sf-index info "out/$1" | sed -n 's/^images: //p'; }
check "2 shards of 5 photos" [ "$(n shard1.six)/$(n shard2.six)" = 5/5 ]
check "the shards hold every photo once" sh -c \
    '{ sf-index list out/shard1.six; sf-index list out/shard2.six; } | LC_ALL=C sort | cmp -s - out/photos.list'
check "keys are relative to PHOTOS, blanks and all" grep -q '^sub/graf 3.png	1	' ranking.tsv
check "10 queries" [ "$(cut -f1 ranking.tsv | LC_ALL=C sort -u | wc -l)" -eq 10 ]

# The same features and codebook in one index give the same ranking.
sf-index create -C out/codebook.sfcb one.six || exit 99
sf-index add one.six out/all.sfs || exit 99
sf-match -i one.six -k 10 out/all.sfs | sf-rank -k 10 > one.tsv || exit 99
check "the merged ranking is the one-index ranking" cmp ranking.tsv one.tsv
check "a real ranking" [ "$(wc -l < one.tsv)" -gt 10 ]
finish
