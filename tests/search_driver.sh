#!/bin/bash
# sf-search, the one-command index and search: on 10 photos with awkward
# names and one broken file (added, skipped, retried once it changes,
# replaced, removed), then on the multiview photos; each time its index and
# its rankings must equal those of the five programs it is made of.
. "$top_srcdir/tests/lib.sh"
need_photos
command -v xxhsum >/dev/null 2>&1 || skip "xxhsum not found (Debian package xxhash)"
cd "$TMP" || exit 99
lacks() { ! grep -q -- "$2" "$1"; }  # lacks FILE PATTERN
not_indexed() { ! sf-index list "$1" | grep -qxF -- "$2"; }  # not_indexed INDEX KEY
src=$SF_PHOTOS_DIR/multiview
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99
# The model is named once, in the preset; small settings keep it quick.
printf 'image:\n  size: 320\n  scales: [1.0, 0.7071]\ncompute:\n  model: %s\n' \
    "$PWD/small.sfm" > small.yaml

# ---- 10 photos, awkward names, one broken ----
mkdir -p photos/sub || exit 99
cp "$src/aero__aero1.jpg" "photos/IMG (1).jpg"
cp "$src/aero__aero3.jpg" "photos/it's a \"quote\".jpg"
cp "$src/aloe__aloeL.jpg" "photos/-leading dash.jpg"
cp "$src/aloe__aloeR.jpg" "photos/café ñ 写真.jpg"
cp "$src/books__left.jpg" "photos/sub/with  two  spaces.jpg"
cp "$src/books__right.jpg" 'photos/$dollar;semi*star?.JPG'
cp "$src/box__box.png" "photos/sub/[brackets] #hash%.png"
cp "$src/graf__graf1.png" "photos/graf1.png"
cp "$src/graf__graf3.png" "photos/sub/back\\slash.png"
head -c 3000 "$src/leuven__leuvenA.jpg" > "photos/broken (cut).jpg"
cp "$src/chessroom__left01.jpg" "photos/.hidden.jpg"   # left out, as hidden files are
good=$(cd photos && find . -name '[!.]*' -type f ! -name 'broken*' | sed 's|^\./||' | LC_ALL=C sort)

run first sf-search index --config small.yaml photos p.six
expect_rc 1 "first run: one photo fails"
has first.err "^sf-decode: broken (cut).jpg: not an image" "the broken photo is named"
has first.err "^sf-codebook: codebook size 32 for " "the codebook size chosen is printed"
has first.err "p.six: 9 added, 0 replaced, 0 removed, 1 failed" "first run: summary"
check "first run: one line per photo" [ "$(sort first.out)" = "$(printf '%s\n' "$good" |
    sed 's/^/add\t/'; printf 'fail\tbroken (cut).jpg\n')" ]
check "the index keys are the paths relative to the folder" \
    [ "$(sf-index list p.six | LC_ALL=C sort)" = "$good" ]
check "the index is sound" sf-index check p.six

# The five programs, by hand, on the same photos in the same order, give
# the same codebook and the same index contents.
(cd photos && printf '%s\n' "$good" | sf-decode -q --config ../small.yaml) |
    sf-extract -q --config small.yaml | sf-lit -q --config small.yaml > pipe.sfs
sf-codebook -q --config small.yaml -o pipe.sfcb pipe.sfs
check "the same codebook as sf-codebook's" cmp -s pipe.sfcb p.six.d/codebook.sfcb
sf-index -q create --config small.yaml -C pipe.sfcb pipe.six && sf-index -q add pipe.six pipe.sfs
# queries named as the index keys, from inside the folder
ranks() { # INDEX: every photo's top 5 without itself, as the pipeline ranks them
    sf-match -q -i "$1" pipe.sfs | sf-rank -k 5 --no-self
}
ranks pipe.six > pipe.tsv
ranks p.six > pipe_on_driver.tsv
check "the pipeline's ranking on both indexes is the same" cmp -s pipe.tsv pipe_on_driver.tsv
printf '%s\n' "$good" | tr '\n' '\0' > good.list
(cd photos && xargs -0 sf-search query -q --config ../small.yaml -k 5 --no-self ../p.six -- \
    < ../good.list) > drv.tsv
check "sf-search query ranks as the five programs ($(wc -l < drv.tsv) lines)" cmp -s pipe.tsv drv.tsv
check "9 photos x 5 results" [ "$(wc -l < drv.tsv)" = 45 ]
(cd photos && sf-match -q -i ../p.six -k 7 ../pipe.sfs | sf-rank -k 7) > pipe7.tsv
(cd photos && xargs -0 sf-search query -q --config ../small.yaml -k 7 ../p.six -- \
    < ../good.list) > drv7.tsv
check "without --no-self too" cmp -s pipe7.tsv drv7.tsv

# Recognised by content: a copy elsewhere under another name is the photo.
cp "$src/aloe__aloeL.jpg" copy.jpg
run self sf-search query --config small.yaml -k 3 p.six copy.jpg
check "a copy finds its original first" [ "$(head -1 self.out | cut -f3)" = "-leading dash.jpg" ]
run noself sf-search query --config small.yaml -k 3 --no-self p.six copy.jpg
expect_rc 0 "query --no-self"
check "--no-self leaves out the original, by content" lacks noself.out 'leading dash' 
check "--no-self still gives 3 results" [ "$(wc -l < noself.out)" = 3 ]
check "ranks 1..3" [ "$(cut -f2 noself.out | tr '\n' ' ')" = "1 2 3 " ]
# by name: the photo given by another path to the same file
run byname sf-search query --config small.yaml -k 3 --no-self p.six "$PWD/photos/sub/back\\slash.png"
cut -f3 byname.out > byname.keys
check "--no-self by name (a key with a backslash)" lacks byname.keys 'back'
check "--no-self by name: 3 results" [ "$(wc -l < byname.keys)" = 3 ]
# A broken query is named, the others are answered, the status says so.
run badq sf-search query --config small.yaml -k 2 p.six "photos/broken (cut).jpg" copy.jpg
expect_rc 1 "a broken query photo"
check "the other query is answered" [ "$(cut -f1 badq.out | sort -u)" = copy.jpg ]
has badq.err "broken (cut).jpg: not an image" "a broken query photo is named"

# ---- updates ----
run second sf-search index --config small.yaml photos p.six
expect_rc 0 "second run: the broken photo is only skipped"
check "second run: only the skip line" [ "$(cat second.out)" = "$(printf 'skip\tbroken (cut).jpg')" ]
has second.err "0 added, 0 replaced, 0 removed, 0 failed, 1 skipped (failed before, unchanged), 9 unchanged" "second run: summary"
gen=$(sf-index info p.six | sed -n 's/^generation: //p')
touch "photos/IMG (1).jpg"
run touched sf-search index --config small.yaml photos p.six
check "a touched photo is not extracted again" lacks touched.out 'IMG' 
check "nothing written to the index" [ "$(sf-index info p.six | sed -n 's/^generation: //p')" = "$gen" ]
cp "$src/leuven__leuvenA.jpg" "photos/broken (cut).jpg"   # fixed
cp "$src/box__box_in_scene.png" "photos/IMG (1).jpg"       # new content
rm "photos/graf1.png"
mkdir -p "photos/new dir"; cp "$src/graf__graf1.png" "photos/new dir/(graf).png"
run third sf-search index --config small.yaml photos p.six
expect_rc 0 "third run"
check "third run: what was added, replaced, removed" [ "$(sort third.out)" = "$(printf \
    'add\tbroken (cut).jpg\nadd\tnew dir/(graf).png\nremove\tgraf1.png\nreplace\tIMG (1).jpg')" ]
check "10 images" [ "$(sf-index list p.six | wc -l)" = 10 ]
(cd photos && sf-decode -q --config ../small.yaml "IMG (1).jpg") | sf-extract -q --config small.yaml |
    sf-lit -q --config small.yaml > img1.sfs
check "the replaced photo has its new features" \
    [ "$(sf-match -q -i p.six -k 1 img1.sfs | sf-rank -k 1 | cut -f3)" = "IMG (1).jpg" ]
head -c 2000 "$src/box__box_in_scene.png" > "photos/IMG (1).jpg"   # broken now
run fourth sf-search index --config small.yaml photos p.six
expect_rc 1 "a photo that breaks"
check "a photo that breaks leaves the index" not_indexed p.six 'IMG (1).jpg'
# file lists, leading dashes and all
printf '%s\n' "photos/-leading dash.jpg" "photos/café ñ 写真.jpg" "photos/missing.jpg" > list.txt
run list sf-search index --config small.yaml list.txt l.six
expect_rc 1 "a list with a missing file"
check "the list's keys are its lines" [ "$(sf-index list l.six | LC_ALL=C sort | tr '\n' '|')" = "photos/-leading dash.jpg|photos/café ñ 写真.jpg|" ]
has list.err "photos/missing.jpg: No such file" "a missing listed file is named"
# too big a -k is refused before any extraction, with the largest that works
run bigk sf-search index --config small.yaml --set asmk.codebook_size=20000 photos k.six
expect_rc 1 "-k the photos cannot support"
has bigk.err "the largest codebook they can train has 10000 words" "-k refused with the largest k"
check "refused before extracting" lacks bigk.err extracting
check "no index made" [ ! -e k.six ]
# usage
run u1 sf-search index photos; expect_rc 2 "index with one operand"; empty u1.out "usage: stdout"
run u2 sf-search query --top x p.six copy.jpg; expect_rc 2 "--top x"
run u3 sf-search frob; expect_rc 2 "unknown command"
run u4 sf-search query --set image.size=big p.six copy.jpg; expect_rc 2 "bad setting"
has u4.err "^sf-search: image.size: expected an integer" "bad setting named"

# ---- the multiview photos: equal to the pipeline's rankings ----
run mv sf-search index -q --config small.yaml "$src" mv.six
expect_rc 0 "multiview: index"
n=$(cd "$src" && ls | grep -vc 'groups.tsv$')
check "multiview: $n images" [ "$(sf-index list mv.six | wc -l)" = "$n" ]
(cd "$src" && ls | grep -v 'groups.tsv$' | LC_ALL=C sort > "$OLDPWD/mv.list"
 sf-decode -q --config "$OLDPWD/small.yaml" < "$OLDPWD/mv.list") |
    sf-extract -q --config small.yaml | sf-lit -q --config small.yaml > mv.sfs
sf-codebook -q --config small.yaml -o mv.sfcb mv.sfs
check "multiview: the same codebook" cmp -s mv.sfcb mv.six.d/codebook.sfcb
sf-index -q create -C mv.sfcb mvp.six && sf-index -q add mvp.six mv.sfs
sf-match -q -i mvp.six mv.sfs | sf-rank -k 10 --no-self > mvp.tsv
tr '\n' '\0' < mv.list > mv.list0
(cd "$src" && xargs -0 sf-search query -q --config "$OLDPWD/small.yaml" -k 10 --no-self \
    "$OLDPWD/mv.six" -- < "$OLDPWD/mv.list0") > mvd.tsv
check "multiview: sf-search query ranks as the five programs" cmp -s mvp.tsv mvd.tsv
check "multiview: $n x 10 results" [ "$(wc -l < mvd.tsv)" = "$((n * 10))" ]
sf-match -q -i mvp.six -k 0 mv.sfs | sf-rank --groups "$src/groups.tsv" > mvp_eval.txt
(cd "$src" && xargs -0 sf-search query -q --config "$OLDPWD/small.yaml" --groups groups.tsv \
    --hits "$OLDPWD/mvd_hits.sfs" "$OLDPWD/mv.six" -- < "$OLDPWD/mv.list0") > mvd_eval.txt
check "multiview: --groups evaluates as sf-rank --groups" cmp -s mvp_eval.txt mvd_eval.txt
check "multiview: a real evaluation" grep -q '^groups	[0-9]' mvd_eval.txt
check "multiview: --hits keeps the hits sf-rank ranks as the pipeline's" \
    sh -c 'sf-rank -k 10 --no-self mvd_hits.sfs | cmp -s - mvp.tsv'
finish
