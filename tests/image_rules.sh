#!/bin/sh
# One image, one truth: every program that reads a stream treats an image
# closed by a record of a kind it does not know (and skips) exactly like the
# same image without that record; and every program refuses NaN or infinite
# descriptors, in every mode, with one line and exit status 1.
. "$top_srcdir/tests/lib.sh"
cd "$TMP" || exit 99
ts="$top_builddir/tests/test_stream"
img=$top_srcdir/examples/images
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o m.sfm || exit 99
sf-decode --size 128 --set image.scales=1,0.5 "$img"/aero1.jpg "$img"/aero3.jpg \
    "$img"/butterfly.jpg >pyr.sfs || exit 99
sf-extract -m m.sfm pyr.sfs >fm.sfs || exit 99
sf-lit -m m.sfm --global fm.sfs >f.sfs || exit 99
sf-codebook -k 8 -o cb.sfcb f.sfs || exit 99
sf-index create -C cb.sfcb i.six || exit 99
sf-index add i.six f.sfs || exit 99
sf-match -i i.six f.sfs >h.sfs || exit 99
for s in pyr fm f h; do
    "$ts" --rewrite optional $s.sfs $s.opt.sfs || exit 99
done
check "the rewritten streams have the extra records" \
    [ "$(wc -c <f.opt.sfs)" -gt "$(wc -c <f.sfs)" ]

# same NAME COMMAND...: COMMAND with X replaced by each of the two streams
# gives the same output and status.
same() {
    what=$1; shift
    a=$(echo "$*" | sed 's/@/./g'); b=$(echo "$*" | sed 's/@/.opt./g')
    sh -c "$a" >same.a 2>same.a.err; ra=$?
    sh -c "$b" >same.b 2>same.b.err; rb=$?
    check "$what: status $ra, as without the record" [ "$ra" = "$rb" ] && [ "$ra" = 0 ]
    check "$what: the same output" cmp -s same.a same.b
}
same sf-cat "sf-cat --text f@sfs"
same sf-cat-stream "sf-cat f@sfs | sf-cat --text"
same sf-extract "sf-extract -m m.sfm pyr@sfs | sf-cat --text"
same sf-lit "sf-lit -m m.sfm --global fm@sfs | sf-cat --text"
same sf-codebook "sf-codebook -k 8 -o cb@sfcb f@sfs && cat cb@sfcb"
same sf-index "rm -f x@six && sf-index create -C cb.sfcb x@six && sf-index add x@six f@sfs && sf-index list x@six && sf-match -i x@six f.sfs | sf-rank -k 0"
same sf-match-index "sf-match -i i.six f@sfs | sf-rank -k 0"
same sf-match-pairwise "sf-match --pairwise f@sfs f@sfs | sf-rank -k 0"
same sf-match-global "sf-match --global f@sfs f@sfs | sf-rank -k 0"
same sf-rank "sf-rank -k 0 h@sfs"

# NaN and infinity in the first image's local_desc and global.
for v in nan inf; do
    "$ts" --rewrite $v f.sfs f.$v.sfs || exit 99
    for mode in "-i i.six" "--pairwise f.sfs" "--global f.sfs"; do
        run q sf-match $mode f.$v.sfs
        expect_rc 1 "$v in a query, sf-match $mode"
        has q.err "aero1.jpg': [a-z_]*: 1 NaN or infinite values" "$v in a query, $mode: named"
        check "$v in a query, $mode: one line" [ "$(wc -l <q.err)" = 1 ]
        check "$v in a query, $mode: the other queries are answered" \
            [ "$(sf-rank -k 1 q.out | wc -l)" = 2 ]
    done
    for mode in "--pairwise" "--global"; do
        run d sf-match $mode f.$v.sfs f.sfs
        expect_rc 1 "$v in a database image, sf-match $mode"
        has d.err "aero1.jpg': [a-z_]*: 1 NaN or infinite values" "$v in the database, $mode: named"
        check "$v in the database, $mode: the image is left out" \
            [ "$(sf-rank -k 0 d.out | cut -f3 | grep -c aero1)" = 0 ]
    done
    cp i.six i.before
    run a sf-index add i.six f.$v.sfs
    expect_rc 1 "$v: sf-index add"
    has a.err "1 NaN or infinite values" "$v: sf-index add names it"
    run c sf-codebook -k 4 -o c.$v.sfcb f.$v.sfs
    check "$v: sf-codebook refuses" [ "$rc" -ne 0 ] && [ ! -e c.$v.sfcb ]
done
finish
