#!/bin/sh
# sf-draw on two real photos of one place: the match picture and the
# attention panels, checked pixel by pixel by draw_check, which computes
# the locations and the heat maps itself from sf-draw(1)'s definitions:
# size, the line colour at both ends and the middle of every match, the
# photos untouched away from the lines, each panel's heat map.  Then what
# sf-draw says when a stream lacks what a picture needs.
. "$top_srcdir/tests/lib.sh"
need_photos

cd "$TMP" || exit 99
photos=$SF_PHOTOS_DIR/multiview
a=$photos/graf__graf1.png b=$photos/graf__graf3.png
[ -f "$a" ] && [ -f "$b" ] || skip "graf photos missing from $photos"

# Three scales, none of them hard-coded in sf-draw: each super-feature is
# drawn from the attention map of the scale it came from.
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99
sf-decode --pixels --size 320 --set image.scales=1.4142,1,0.7071 "$a" "$b" |
    sf-extract -m small.sfm | sf-lit -m small.sfm --attention > feats.sfs || exit 99
sf-match --pairwise feats.sfs -k 0 feats.sfs > m.sfs || exit 99
pairs=$(sf-rank -k 0 m.sfs | awk -F'\t' -v q="$a" -v h="$b" '$1 == q && $3 == h { print $4 }')
check "the two photos match ($pairs matches)" [ "${pairs:-0}" -gt 5 ]

# ---- the match picture ----
run draw sf-draw match --color ff00ff -o match.png --query "$a" --hit "$b" m.sfs feats.sfs
expect_rc 0 "sf-draw match"
empty draw.out "sf-draw match: stdout"
empty draw.err "sf-draw match: stderr"
draw_check match feats.sfs m.sfs "$a" "$b" match.png ff00ff 2 > check.txt 2>&1; rc=$?
check "match picture: size, lines at the matches, photos elsewhere ($(tr '\n' ';' < check.txt))" \
    [ $rc -eq 0 ]
cat check.txt | sed 's/^/draw_photos: match: /'
# The checker can fail: the same picture is not drawn in green.
draw_check match feats.sfs m.sfs "$a" "$b" match.png 00ff00 2 > /dev/null 2>&1; rc=$?
check "the checker refuses a picture drawn in another colour" [ $rc -eq 1 ]
# Default query and hit: the first query, its best hit other than itself.
sf-draw match --color ff00ff -o default.png m.sfs feats.sfs
check "default query and hit draw the same picture" cmp -s match.png default.png
# Coloured by similarity, fewer lines, wider, centroid locations, resized,
# JPEG: each writes a picture of the size expected.
sf-draw match -o sim.png m.sfs feats.sfs
check "coloured by similarity: a picture" [ -s sim.png ]
differ() { [ -s "$1" ] && [ -s "$2" ] && ! cmp -s "$1" "$2"; }
check "coloured by similarity differs from one colour" differ sim.png match.png
check "by similarity: size" [ "$(draw_check size sim.png)" = "648 256" ]
sf-draw match --max-lines 10 --line-width 3 --location centroid --range 0.9,1 -o few.png m.sfs feats.sfs
check "--max-lines, --line-width, --location centroid, --range" [ "$(draw_check size few.png)" = "648 256" ]
sf-draw match --height 128 -o small.jpg m.sfs feats.sfs
check "--height 128 and JPEG: 160+8+160 x 128" [ "$(draw_check size small.jpg)" = "328 128" ]

# ---- attention panels ----
run att sf-draw attention -k "$a" --strongest 6 --columns 3 -o att.png feats.sfs
expect_rc 0 "sf-draw attention --strongest"
empty att.err "sf-draw attention: stderr"
draw_check attention feats.sfs "$a" att.png 3 strongest 6 > check.txt 2>&1; rc=$?
check "attention panels of the 6 strongest ($(tr '\n' ';' < check.txt))" [ $rc -eq 0 ]
sed 's/^/draw_photos: attention: /' check.txt
draw_check attention feats.sfs "$b" att.png 3 strongest 6 > /dev/null 2>&1; rc=$?
check "the checker refuses the other photo's maps" [ $rc -eq 1 ]
sf-draw attention -k "$b" --templates 0,3,7 --scale 0.7071 -o tmpl.png feats.sfs
draw_check attention feats.sfs "$b" tmpl.png 3 templates 0.7071 0,3,7 > check.txt 2>&1; rc=$?
check "attention panels of templates 0,3,7 at scale 0.7071 ($(tr '\n' ';' < check.txt))" [ $rc -eq 0 ]
sf-draw attention -k "$b" --templates 0,3,7 -o tmpl1.png feats.sfs
draw_check attention feats.sfs "$b" tmpl1.png 3 templates 1 0,3,7 > check.txt 2>&1; rc=$?
check "templates default to the scale nearest 1 ($(tr '\n' ';' < check.txt))" [ $rc -eq 0 ]
sf-draw attention --mark --strongest 6 --columns 3 -o marked.png < feats.sfs
check "--mark from standard input: same size" [ "$(draw_check size marked.png)" = "$(draw_check size att.png)" ]
check "--mark draws rings" differ marked.png att.png

# ---- what is missing, said in one line; no picture ----
sf-decode --size 320 --set image.scales=1,0.7071 "$a" "$b" | sf-extract -m small.sfm |
    sf-lit -m small.sfm > plain.sfs
run nopix sf-draw match -o nopix.png m.sfs plain.sfs
expect_rc 1 "features without pixels"
has nopix.err "^sf-draw: plain.sfs: '$a': no pixels record (sf-decode --pixels writes it), no attention record (sf-lit --attention writes it)$" "names the file, the kinds and the options"
check "no picture without pixels" [ ! -e nopix.png ]
run noatt sf-draw attention -o noatt.png plain.sfs
expect_rc 1 "attention without attention records"
has noatt.err "sf-lit --attention" "names sf-lit --attention"
check "no picture without attention" [ ! -e noatt.png ]
sf-match --pairwise feats.sfs --no-pairs feats.sfs > counts.sfs
run nopairs sf-draw match -o nopairs.png counts.sfs feats.sfs
expect_rc 1 "matches without pairs"
has nopairs.err "no match_pairs record for hit 2 (sf-match --pairwise writes them, unless --no-pairs)" "names --no-pairs"
# Features of another run (fewer kept) are not the ones matched.
sf-decode --pixels --size 320 --set image.scales=1.4142,1,0.7071 "$a" "$b" |
    sf-extract -m small.sfm | sf-lit -m small.sfm --attention --keep 150 > other.sfs
run other sf-draw match -o other.png m.sfs other.sfs
expect_rc 1 "features that were not matched"
has other.err "the feature streams are not the ones that were matched" "says the streams do not belong together"
check "no picture from other features" [ ! -e other.png ]
run nohit sf-draw match -o x.png --hit nosuch.jpg m.sfs feats.sfs
expect_rc 1 "a hit that is not there"
has nohit.err "'nosuch.jpg' is not among the 2 hits" "names the hit"
run gif sf-draw match -o x.gif m.sfs feats.sfs
expect_rc 2 "an unknown picture format"
empty gif.out "usage error: stdout"
run mix sf-draw attention --color ff0000 -o x.png feats.sfs
expect_rc 2 "a match option with attention"
run nothing sf-draw match -o x.png m.sfs
expect_rc 2 "match without feature streams"

# ---- the README's pictures: examples/draw.sh makes them as committed ----
mkdir -p readme
SF_BIN=$top_builddir/cmd sh "$top_srcdir/examples/draw.sh" "" readme > readme.out 2> readme.err; rc=$?
check "examples/draw.sh runs ($(head -c 300 readme.err))" [ $rc -eq 0 ]
for p in match attention; do
    check "examples/draw.sh: $p.png has the committed picture's size" \
        [ "$(draw_check size "readme/$p.png")" = "$(draw_check size "$top_srcdir/examples/pictures/$p.png")" ]
done
finish
