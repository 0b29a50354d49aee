#!/bin/sh
# examples/photos.mk on real photos with awkward names and a broken file:
# the first run indexes the others and names the broken one, then each run
# processes only what changed: nothing for a touched photo, nothing for the
# broken photo until it changes, one extraction for a photo with new
# content, an add, a delete.
. "$top_srcdir/tests/lib.sh"
need_photos
command -v xxhsum >/dev/null 2>&1 || skip "xxhsum not found (Debian package xxhash)"
# Not the jobserver of a make check that runs us.
unset MAKEFLAGS MFLAGS MAKELEVEL
cd "$TMP" || exit 99
src=$SF_PHOTOS_DIR/multiview
mkdir -p photos/sub "photos/Été 2024 (copy)" || exit 99
for f in aero__aero1.jpg aero__aero3.jpg aloe__aloeL.jpg books__left.jpg box__box.png; do
    cp "$src/$f" photos/ || exit 99
done
cp "$src/aloe__aloeR.jpg" "photos/IMG (1).jpg"
cp "$src/books__right.jpg" "photos/it's \"quoted\".jpg"
cp "$src/graf__graf1.png" "photos/sub/-dash; \$HOME #1.png"
cp "$src/graf__graf3.png" "photos/Été 2024 (copy)/with space.png"
head -c 4000 "$src/leuven__leuvenA.jpg" > "photos/broken [cut].jpg"
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99

# A small, fast setting instead of the official one; the folder's name has
# a blank too.
mv photos "my photos"
pm() {
    make -f "$top_srcdir/examples/photos.mk" PHOTOS="my photos" MODEL=small.sfm \
        SETTINGS='--set image.size=320 --set image.scales=1,0.7071' > make.out 2> make.err
    rc=$?
    cat make.out make.err
}
did() { sed -n "s/^$1	//p" make.out | LC_ALL=C sort | tr '\n' '|'; }
info() { sf-index info photos.six | sed -n "s/^$1: //p"; }
# score QUERY KEY: the score of KEY in the ranking of the photo QUERY
score() {
    sf-search query -q -m small.sfm --set image.size=320 --set image.scales=1,0.7071 -k 0 \
        photos.six "my photos/$1" | awk -F '\t' -v k="$2" '$3 == k { print $4 }'
}

# ---- first run: everything but the broken photo ----
pm
check "first run: make fails, as a photo did (got $rc)" [ "$rc" -ne 0 ]
check "first run adds the 9 good photos (got: $(did add))" [ "$(did add)" = \
    "IMG (1).jpg|aero__aero1.jpg|aero__aero3.jpg|aloe__aloeL.jpg|books__left.jpg|box__box.png|it's \"quoted\".jpg|sub/-dash; \$HOME #1.png|Été 2024 (copy)/with space.png|" ]
check "the broken photo is reported" [ "$(did fail)" = "broken [cut].jpg|" ]
has make.err "broken \[cut\].jpg: not an image" "the broken photo's reason"
check "9 images" [ "$(info images)" = 9 ]
check "keys are the paths relative to PHOTOS" [ "$(sf-index list photos.six | LC_ALL=C sort | tr '\n' '|')" = "$(did add)" ]
check "the index is sound" sf-index check photos.six
gen=$(info generation)

# ---- nothing changed: nothing done, the broken photo only skipped ----
pm
check "second run succeeds (got $rc)" [ "$rc" -eq 0 ]
check "second run only skips the broken photo" [ "$(cat make.out)" = "$(printf 'skip\tbroken [cut].jpg')" ]
check "second run leaves the index alone" [ "$(info generation)" = "$gen" ]

# ---- a touched photo: hashed, not extracted ----
sleep 0.1
touch "my photos/aloe__aloeL.jpg" "my photos/IMG (1).jpg"
pm
check "touched photos are not extracted (got: $(did add)$(did replace))" [ -z "$(did add)$(did replace)" ]
check "touched photos leave the index alone" [ "$(info generation)" = "$gen" ]

# ---- new content: only that photo; the broken one fixed ----
s_old=$(score books__left.jpg aero__aero1.jpg)
s_self=$(score books__left.jpg books__left.jpg)
check "aero1 scores differently from books_left before ($s_old, $s_self)" [ "$s_old" != "$s_self" ]
sleep 0.1
cp "my photos/books__left.jpg" "my photos/aero__aero1.jpg"
cp "$src/leuven__leuvenA.jpg" "my photos/broken [cut].jpg"
pm
check "the changed photo is replaced, the fixed one added" \
    [ "$(did replace)$(did add)" = "aero__aero1.jpg|broken [cut].jpg|" ]
check "10 images" [ "$(info images)" = 10 ]
s_new=$(score books__left.jpg aero__aero1.jpg)
check "the index has the new content: aero1 now scores as books_left ($s_new, $s_self)" [ "$s_new" = "$s_self" ]

# ---- a new photo, a deleted one ----
cp "$src/boston__city-with-water.jpg" "my photos/sub/"
rm "my photos/it's \"quoted\".jpg"
pm
check "the new photo is added (got: $(did add))" [ "$(did add)" = "sub/boston__city-with-water.jpg|" ]
check "the deleted one removed (got: $(did remove))" [ "$(did remove)" = "it's \"quoted\".jpg|" ]
check "10 images again" [ "$(info images)" = 10 ]
check "the index is still sound" sf-index check photos.six

# ---- and then nothing again ----
pm
check "last run prints nothing" [ ! -s make.out ]
make -f "$top_srcdir/examples/photos.mk" PHOTOS="my photos" clean > /dev/null
check "clean removes the index and its state" [ ! -e photos.six ] && [ ! -e photos.six.d ]
finish
