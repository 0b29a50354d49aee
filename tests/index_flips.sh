#!/bin/sh
# Damage in an index never changes an answer silently: after a byte of the
# segments or the commit record is flipped, each search either fails with
# exit 3 naming the index or answers exactly as before; `sf-index check`
# finds every flip that a reader finds (flips in dead space, such as an
# older commit record, change nothing).  Three readers: a full search (sf-match -i), re-ranking
# a few candidates (--global -i --rerank), and listing keys.
. "$top_srcdir/tests/lib.sh"

gen="$top_builddir/tests/test_index"
cd "$TMP" || exit 99
$gen --write-codebook 64 128 1 cb.sfcb || exit 99
$gen --write-stream-global 30 7 128 a.sfs || exit 99
$gen --write-stream-global 20 8 128 b.sfs 30 || exit 99
cat a.sfs b.sfs > q.sfs
sf-index create -C cb.sfcb db.six && sf-index add db.six a.sfs && sf-index add db.six b.sfs ||
    exit 99

full() { sf-match -i "$1" -k 10 q.sfs | sf-rank -k 0; }
rerank() { sf-match --global q.sfs -i "$1" --rerank 15 -k 10 q.sfs | sf-rank -k 0; }
keys() { sf-index list "$1"; }
for r in full rerank keys; do
    $r db.six > $r.ref 2> $r.referr || { cat $r.referr >&2; exit 99; }
    check "$r: the undamaged index answers" [ -s $r.ref ]
done

# About 200 flips spread over everything after the header and the slots
# (1536 bytes), each with its own bit pattern.
size=$(wc -c < db.six)
step=$(( (size - 1536) / 200 ))
[ "$step" -ge 1 ] || step=1
flips=0 caught=0 caught_rerank=0 checked=0 list_flip=
p=1536
while [ "$p" -lt "$size" ]; do
    flips=$((flips + 1))
    cp db.six bad.six
    v=$(( (p * 7) % 255 + 1 ))
    old=$(od -An -tu1 -j "$p" -N1 db.six | tr -d ' ')
    printf "\\$(printf %o $((old ^ v)))" | dd of=bad.six bs=1 seek="$p" conv=notrunc 2>/dev/null
    sf-index check bad.six > /dev/null 2>&1
    check_rc=$?
    [ "$check_rc" -eq 0 ] || [ "$check_rc" -eq 3 ] || fail "byte $p ^ $v: sf-index check exits $check_rc"
    for r in full rerank keys; do
        $r bad.six > $r.out 2> $r.err
        # The pipelines' status is sf-rank's or sf-index's: sf-match's
        # failure shows as its message and a short output.
        if [ -s $r.err ]; then
            grep -q "bad.six" $r.err || fail "byte $p ^ $v: $r: message does not name the index: $(head -1 $r.err)"
            [ "$check_rc" -eq 3 ] || fail "byte $p ^ $v: $r fails, sf-index check says ok"
            case $r in full) caught=$((caught + 1)); [ -n "$list_flip" ] || list_flip="$p $v" ;; rerank) caught_rerank=$((caught_rerank + 1)) ;; esac
        elif ! cmp -s $r.out $r.ref; then
            fail "byte $p ^ $v: $r: a different answer with no error"
        fi
    done
    [ "$check_rc" -eq 0 ] || checked=$((checked + 1))
    p=$((p + step))
done
# sf-match's own status, on the first flip a full search caught (the
# segments end with their global parts: the middle of the file is not
# always in the lists).
cp db.six bad.six
set -- $list_flip
check "a full search caught a flip" [ -n "$list_flip" ]
old=$(od -An -tu1 -j "$1" -N1 db.six | tr -d ' ')
printf "\\$(printf %o $((old ^ $2)))" | dd of=bad.six bs=1 seek="$1" conv=notrunc 2>/dev/null
sf-match -i bad.six -k 10 q.sfs > /dev/null 2> status.err
rc=$?
check "sf-match -i on a damaged list exits 3 (got $rc: $(head -1 status.err))" [ "$rc" -eq 3 ]
echo "# $flips flips: sf-index check failed on $checked, full search on $caught, re-ranking on $caught_rerank; the rest answered as before"
check "full searches catch damage ($caught of $flips)" [ "$caught" -gt $((flips / 4)) ]
check "re-ranking catches damage ($caught_rerank of $flips)" [ "$caught_rerank" -gt $((flips / 4)) ]
finish
