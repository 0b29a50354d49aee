#!/bin/sh
# What used to pass silently now fails loudly: a missing stage, a model mix
# at each stage and at the index, a producer that died in front of
# sf-index add, an empty input to sf-match, NaN in a descriptor.  In each
# case: one line, a non-zero exit status, nothing stored changed.
. "$top_srcdir/tests/lib.sh"
cd "$TMP" || exit 99
lines() { wc -l < "$1" | tr -d ' '; }
img=$top_srcdir/examples/images
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o m1.sfm || exit 99
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 2 -o m2.sfm || exit 99
dec() { sf-decode --size 128 --set image.scales=1,0.5 "$@"; }
dec "$img"/aero1.jpg "$img"/aero3.jpg "$img"/butterfly.jpg >pyr.sfs || exit 99
sf-extract -m m1.sfm pyr.sfs >fm.sfs || exit 99
sf-lit -m m1.sfm --global fm.sfs >a.sfs || exit 99
sf-lit -m m1.sfm --global --keep 50 fm.sfs >keep50.sfs || exit 99
sf-codebook -k 16 -o cb.sfcb a.sfs || exit 99
sf-index create -C cb.sfcb db.six || exit 99
sf-index add db.six a.sfs || exit 99
cp db.six db.before

# ---- provenance ----
run p sf-cat --text a.sfs
check "sf-cat --text shows provenance" grep -q "provenance.*stage=lit decode=" p.out
run miss sf-lit -m m1.sfm pyr.sfs
expect_rc 1 "sf-lit on a pyramid (no sf-extract)"
has miss.err "the output of sf-decode, where the output of sf-extract is needed" "missing stage named"
check "missing stage: one line per image" [ "$(lines miss.err)" = 3 ]
check "missing stage: no image out" [ -z "$(sf-cat --list miss.out)" ]
run mix sf-lit -m m2.sfm fm.sfs
expect_rc 1 "sf-lit with another model than sf-extract's"
has mix.err "feature maps of model [0-9a-f]*, this model is [0-9a-f]*" "model mix named"
run twice sf-extract -m m1.sfm fm.sfs
expect_rc 1 "sf-extract on feature maps"
run ok sf-lit -m m2.sfm --allow-mismatch fm.sfs
expect_rc 0 "--allow-mismatch"
check "--allow-mismatch: one warning" [ "$(lines ok.err)" = 1 ]
sf-decode --size 128 --set image.scales=1,0.5 "$img"/aero1.jpg | sf-extract -m m2.sfm |
    sf-lit -m m2.sfm >other.sfs || exit 99
run add sf-index add db.six other.sfs
expect_rc 1 "sf-index add of another model's features"
has add.err "features [0-9a-f]*, the index holds features [0-9a-f]*" "index mismatch named"
check "index unchanged by refused images" cmp -s db.six db.before
run add50 sf-index add db.six keep50.sfs
expect_rc 1 "sf-index add of features kept differently"
run q sf-match -i db.six other.sfs
expect_rc 1 "sf-match -i with a query of another model"
has q.err "the index holds features" "query mismatch named"
run qg sf-match --global a.sfs other.sfs
expect_rc 1 "sf-match --global with a query of another model"
run cb sf-codebook -k 4 -o cb2.sfcb a.sfs other.sfs
check "sf-codebook refuses a mix" [ "$rc" -ne 0 ] && [ ! -e cb2.sfcb ]

# ---- a producer that stopped early ----
# Cut at an image boundary: the end record is missing.
size=$(wc -c <a.sfs)
head -c $((size - 74)) a.sfs >cut.sfs   # the end record of "sf-lit": 68 + 6 bytes
run cut sf-index add db.six cut.sfs
expect_rc 3 "sf-index add of a stream without its end"
has cut.err "without its end record: the program that wrote it stopped early" "cut named"
check "index unchanged by a cut stream" cmp -s db.six db.before
head -c 100000 a.sfs >cut2.sfs
run cut2 sf-index add db.six cut2.sfs
expect_rc 3 "sf-index add of a stream cut inside a record"
check "index unchanged by a stream cut in a record" cmp -s db.six db.before
# A real pipeline whose middle program dies: sf-lit sees no end, exits 3
# and writes none, so sf-index add refuses.
run pipe sh -c "sf-decode --size 128 --set image.scales=1,0.5 $img/aero1.jpg $img/aero3.jpg |
    sf-extract -m m1.sfm | head -c 60000 | sf-lit -m m1.sfm | sf-index add db.six"
expect_rc 3 "a producer killed mid-stream in front of sf-index add"
check "index unchanged by a dead producer" cmp -s db.six db.before
run rmcut sf-index remove --keys-from cut.sfs db.six
expect_rc 3 "sf-index remove --keys-from a stream without its end"
check "index unchanged by remove --keys-from a cut stream" cmp -s db.six db.before
sf-cat -k "$img/aero3.jpg" --kind provenance a.sfs >one.sfs
check "sf-cat --kind provenance keeps images of nothing else" [ "$(sf-cat --list one.sfs)" = "$img/aero3.jpg" ]
check "sf-cat --index N: no image of provenance alone" [ -z "$(sf-cat --index 7 a.sfs | sf-cat --list)" ]
sf-index remove --keys-from one.sfs db.six
rc=$?; n=rmone; expect_rc 0 "sf-index remove --keys-from a whole stream"
check "... removes its images" [ "$(sf-index list db.six | wc -l)" = 2 ]
cp db.before db.six
run ecb sf-codebook -k 4 -o cb3.sfcb cut.sfs
expect_rc 3 "sf-codebook of a stream without its end"
check "no codebook from a cut stream" [ ! -e cb3.sfcb ]

# ---- empty and wrong inputs ----
run empty sf-match -i db.six </dev/null
expect_rc 3 "sf-match with an empty input"
has empty.err "empty input" "empty input named"
sf-cat -k none a.sfs >none.sfs
run none sf-match -i db.six none.sfs
expect_rc 1 "sf-match with no query images"
has none.err "no query images" "no queries named"
run rk sf-rank a.sfs
expect_rc 3 "sf-rank of features"
empty rk.out "sf-rank of features: no output"
finish
