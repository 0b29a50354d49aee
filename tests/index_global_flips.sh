#!/bin/sh
# Damage never changes a global-stage answer silently: after a byte of the
# segments or the commit record is flipped, sf-match -i INDEX
# --index-global (with and without re-ranking) either fails with exit 3
# naming the index or answers exactly as before; every flip inside a
# global part is caught, by it and by `sf-index check`.
. "$top_srcdir/tests/lib.sh"

gen="$top_builddir/tests/test_index"
cd "$TMP" || exit 99
$gen --write-codebook 64 128 1 cb.sfcb || exit 99
$gen --write-stream-global 30 7 128 a.sfs || exit 99
$gen --write-stream-global 20 8 128 b.sfs 30 || exit 99
cat a.sfs b.sfs > q.sfs
sf-index create -C cb.sfcb db.six && sf-index add db.six a.sfs && sf-index add db.six b.sfs ||
    exit 99

glob() { sf-match -i "$1" --index-global -k 10 q.sfs | sf-rank -k 0; }
rerank() { sf-match -i "$1" --index-global --rerank 15 -k 10 q.sfs | sf-rank -k 0; }
for r in glob rerank; do
    $r db.six > $r.ref 2> $r.referr || { cat $r.referr >&2; exit 99; }
    check "$r: the undamaged index answers" [ -s $r.ref ]
done

# Generation 3 is in slot 0; its commit record follows segment b, whose
# global part (20 x 128 f32, a multiple of 64 bytes) ends there.
commit=$(od -An -tu8 -j 528 -N8 db.six | tr -d ' ')
gstart=$((commit - 20 * 128 * 4))
size=$(wc -c < db.six)

# flip P: flip byte P of a copy, bad.six, with its own bit pattern.
flip() {
    cp db.six bad.six
    v=$(( ($1 * 7) % 255 + 1 ))
    old=$(od -An -tu1 -j "$1" -N1 db.six | tr -d ' ')
    printf "\\$(printf %o $((old ^ v)))" | dd of=bad.six bs=1 seek="$1" conv=notrunc 2>/dev/null
}

# About 150 flips over everything after the header and the slots, then
# 50 inside the global part of segment b.
flips=0 caught=0 in_global=0 caught_global=0
step=$(( (size - 1536) / 150 ))
[ "$step" -ge 1 ] || step=1
gstep=$(( (commit - gstart) / 50 ))
p=1536
while [ "$p" -lt "$size" ]; do
    flips=$((flips + 1))
    flip "$p"
    sf-index check bad.six > /dev/null 2>&1
    check_rc=$?
    inside=0
    [ "$p" -ge "$gstart" ] && [ "$p" -lt "$commit" ] && inside=1
    for r in glob rerank; do
        $r bad.six > $r.out 2> $r.err
        if [ -s $r.err ]; then
            grep -q "bad.six" $r.err || fail "byte $p: $r: message does not name the index: $(head -1 $r.err)"
            [ "$check_rc" -eq 3 ] || fail "byte $p: $r fails, sf-index check says ok"
            [ $r = glob ] && caught=$((caught + 1)) && [ $inside = 1 ] && caught_global=$((caught_global + 1))
        elif ! cmp -s $r.out $r.ref; then
            fail "byte $p: $r: a different answer with no error"
        fi
    done
    if [ $inside = 1 ]; then
        in_global=$((in_global + 1))
        [ "$check_rc" -eq 3 ] || fail "byte $p (global part): sf-index check exits $check_rc"
    fi
    if [ "$p" -lt "$gstart" ] && [ $((p + step)) -ge "$gstart" ]; then
        # Walk the global part densely, then go on.
        q=$gstart
        while [ "$q" -lt "$commit" ]; do
            flips=$((flips + 1)); in_global=$((in_global + 1))
            flip "$q"
            glob bad.six > glob.out 2> glob.err
            if grep -q "bad.six: segment at byte [0-9]*: its global descriptors do not match" glob.err; then
                caught=$((caught + 1)); caught_global=$((caught_global + 1))
            else
                fail "byte $q (global part): not caught: $(head -1 glob.err)"
            fi
            q=$((q + gstep))
        done
    fi
    p=$((p + step))
done
flip $((gstart + 100))
sf-match -i bad.six --index-global -k 10 q.sfs > /dev/null 2> status.err
rc=$?
check "sf-match --index-global on a damaged global part exits 3 (got $rc: $(head -1 status.err))" [ "$rc" -eq 3 ]
echo "# $flips flips: the global stage failed on $caught; $in_global in a global part, $caught_global of them caught"
check "every flip in a global part is caught ($caught_global of $in_global)" [ "$caught_global" -eq "$in_global" ]
check "some flips land in a global part" [ "$in_global" -ge 50 ]
finish
