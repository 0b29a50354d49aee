#!/bin/sh
# examples/photos.mk on real photos: the first run indexes them all, then
# each run processes only what changed: nothing for a touched photo, one
# extraction for a photo with new content, an add, a delete.
. "$top_srcdir/tests/lib.sh"
need_photos
command -v xxhsum >/dev/null 2>&1 || skip "xxhsum not found (Debian package xxhash)"
# Not the jobserver of a make check that runs us.
unset MAKEFLAGS MFLAGS MAKELEVEL
cd "$TMP" || exit 99
src=$SF_PHOTOS_DIR/multiview
mkdir -p photos/sub || exit 99
for f in aero__aero1.jpg aero__aero3.jpg aloe__aloeL.jpg aloe__aloeR.jpg \
         books__left.jpg books__right.jpg box__box.png; do
    cp "$src/$f" photos/ || exit 99
done
cp "$src/graf__graf1.png" photos/sub/ || exit 99
cp "$src/graf__graf3.png" "photos/with space.png" || exit 99
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99

# A small, fast setting instead of the official one.
pm() {
    make -f "$top_srcdir/examples/photos.mk" PHOTOS=photos MODEL=small.sfm \
        DECODE_FLAGS='--size 320 --set image.scales=1,0.7071' CODEBOOK_FLAGS='-k 64' \
        > make.out 2> make.err
    rc=$?
    cat make.out make.err
    checks=$((checks + 1))
    [ "$rc" -eq 0 ] || fail "make exits $rc"
}
extracted() { sed -n 's/^extract //p' make.out | tr '\n' ' '; }
info() { sf-index info photos.six | sed -n "s/^$1: //p"; }
# score QUERY KEY: the score of KEY in the ranking of QUERY's features
score() {
    sf-match -i photos.six -k 0 "photos.six.d/feat/$1.sfs" | sf-rank -k 0 |
        awk -F '\t' -v k="$2" '$3 == k { print $4 }'
}
# the names, sizes and mtimes of the files of STATE, or of its features
snapshot() { (cd "photos.six.d/${1:-}" && find . -type f | LC_ALL=C sort | xargs ls -l --full-time); }
unchanged() { snapshot "$@" | cmp -s - "snap${1:-}"; }

# ---- first run: everything ----
pm
check "first run extracts the 8 photos" [ "$(extracted)" = "aero__aero1.jpg aero__aero3.jpg aloe__aloeL.jpg aloe__aloeR.jpg books__left.jpg books__right.jpg box__box.png sub/graf__graf1.png " ]
check "first run trains a codebook" grep -q '^train ' make.out
check "first run adds 8 photos" grep -qx 'add 8 photos to photos.six' make.out
check "the name with a blank is skipped with a warning" grep -q 'skipping 1 photos' make.err
check "8 images" [ "$(info images)" = 8 ]
check "keys are the paths relative to PHOTOS" [ "$(sf-index list photos.six | LC_ALL=C sort | tr '\n' ' ')" = "aero__aero1.jpg aero__aero3.jpg aloe__aloeL.jpg aloe__aloeR.jpg books__left.jpg books__right.jpg box__box.png sub/graf__graf1.png " ]
check "the index is sound" sf-index check photos.six
gen=$(info generation)
snapshot > snap
snapshot feat > snapfeat

# ---- nothing changed: nothing done ----
pm
check "second run prints nothing" [ ! -s make.out ]
check "second run changes no file" unchanged
check "second run leaves the index alone" [ "$(info generation)" = "$gen" ]

# ---- a touched photo: hashed, not extracted ----
sleep 0.1
touch photos/aloe__aloeL.jpg photos/sub/graf__graf1.png
pm
check "touched photos are not extracted (got: $(extracted))" [ -z "$(extracted)" ]
check "touched photos leave the index alone" [ "$(info generation)" = "$gen" ]
check "touched photos keep their features" unchanged feat

# ---- new content: only that photo ----
s_old=$(score books__left.jpg aero__aero1.jpg)
s_self=$(score books__left.jpg books__left.jpg)
check "aero1 scores differently from books_left before ($s_old, $s_self)" [ "$s_old" != "$s_self" ]
sleep 0.1
cp photos/books__left.jpg photos/aero__aero1.jpg
pm
check "only the changed photo is extracted (got: $(extracted))" [ "$(extracted)" = "aero__aero1.jpg " ]
check "and added again" grep -qx 'add 1 photos to photos.six' make.out
check "still 8 images" [ "$(info images)" = 8 ]
s_new=$(score books__left.jpg aero__aero1.jpg)
check "the index has the new content: aero1 now scores as books_left ($s_new, $s_self)" [ "$s_new" = "$s_self" ]

# ---- a new photo ----
sleep 0.1
cp "$src/boston__city-with-water.jpg" photos/
pm
check "only the new photo is extracted (got: $(extracted))" [ "$(extracted)" = "boston__city-with-water.jpg " ]
check "9 images" [ "$(info images)" = 9 ]
check "the new key is listed" sh -c 'sf-index list photos.six | grep -qx boston__city-with-water.jpg'

# ---- a deleted photo ----
rm photos/books__right.jpg
pm
check "a deletion extracts nothing (got: $(extracted))" [ -z "$(extracted)" ]
check "a deletion removes one photo" grep -qx 'remove 1 photos from photos.six' make.out
check "8 images again" [ "$(info images)" = 8 ]
check "the key is gone" sh -c '! sf-index list photos.six | grep -qx books__right.jpg'
check "its features are gone" [ ! -e photos.six.d/feat/books__right.jpg.sfs ]
check "the index is still sound" sf-index check photos.six

# ---- and then nothing again ----
pm
check "last run prints nothing" [ ! -s make.out ]
finish
