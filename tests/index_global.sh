#!/bin/sh
# The global stage of an index (sf-match -i INDEX --index-global): the same
# rankings as the stream form (sf-match --global DB), with and without
# re-ranking, through additions in several segments, removals,
# replacements and compaction; what an index without one, or an image
# without one, gets; damaged global parts fail with exit 3.
. "$top_srcdir/tests/lib.sh"

gen="$top_builddir/tests/test_index"
cd "$TMP" || exit 99
$gen --write-codebook 64 32 1 cb.sfcb || exit 99
$gen --write-stream-global 60 7 32 a.sfs || exit 99      # img00000..img00059
$gen --write-stream-global 40 8 32 b.sfs 60 || exit 99   # img00060..img00099
$gen --write-stream-global 15 9 32 q.sfs 500 || exit 99  # queries
$gen --write-stream 5 10 32 nog.sfs 200 || exit 99       # without global
$gen --write-stream-global 5 11 16 d16.sfs 300 || exit 99 # global of 16
cat a.sfs b.sfs > ab.sfs
cat q.sfs a.sfs > qa.sfs

sf-index create -C cb.sfcb db.six && sf-index add db.six a.sfs && sf-index add db.six b.sfs ||
    exit 99
check "two segments" [ "$(sf-index info db.six | sed -n 's/^segments: //p')" = 2 ]
check "info says the global dimension" [ "$(sf-index info db.six | sed -n 's/^global: //p')" = 32 ]

# same NAME STREAM-FORM-ARGS -- INDEX-FORM-ARGS: both rank the queries alike.
same() {
    name=$1; shift
    a=""; while [ "$1" != "--" ]; do a="$a $1"; shift; done; shift
    sf-match $a qa.sfs | sf-rank -k 0 > "$name.stream" 2> "$name.serr"
    sf-match "$@" qa.sfs | sf-rank -k 0 > "$name.index" 2> "$name.ierr"
    check "$name: the stream form answers" [ -s "$name.stream" ]
    check "$name: the same rankings (stream $(wc -l < "$name.stream") lines, index $(wc -l < "$name.index"): $(head -1 "$name.ierr"))" cmp -s "$name.stream" "$name.index"
}
same all --global ab.sfs -k 0 -- -i db.six --index-global -k 0
same top --global ab.sfs -k 7 -- -i db.six --index-global -k 7
same rerank --global ab.sfs -i db.six --rerank 25 -k 10 -- -i db.six --index-global --rerank 25 -k 10
same threads --global ab.sfs -k 30 -- -i db.six --index-global -k 30 --threads 2
# The query image itself is found first, with its own score.
check "a database image finds itself first" [ "$(sed -n 's/^img00003	1	\(img[0-9]*\)	.*/\1/p' all.index | head -1)" = img00003 ]

# Removals: the stream form without them.
sf-index remove db.six img00060 img00061 img00062 img00063 img00064 img00065 img00066 img00067 \
    img00068 img00069 img00070 img00071 img00072 img00073 img00074 img00075 img00076 img00077 \
    img00078 img00079 img00080 img00081 img00082 img00083 img00084 img00085 img00086 img00087 \
    img00088 img00089 img00090 img00091 img00092 img00093 img00094 img00095 img00096 img00097 \
    img00098 img00099 || exit 99
same removed --global a.sfs -k 0 -- -i db.six --index-global -k 0
sf-index compact db.six || exit 99
check "compacted: one segment" [ "$(sf-index info db.six | sed -n 's/^segments: //p')" = 1 ]
check "compaction keeps the global stage" [ "$(sf-index info db.six | sed -n 's/^global: //p')" = 32 ]
same compacted --global a.sfs -k 0 -- -i db.six --index-global -k 0
same compacted_rerank --global a.sfs -i db.six --rerank 20 -k 5 -- -i db.six --index-global --rerank 20 -k 5
sf-index add db.six b.sfs || exit 99
same readded --global ab.sfs -k 0 -- -i db.six --index-global -k 0
check "sf-index check passes" sf-index check db.six

# Images without a global record, once every image has one: refused, one
# line each, the others added; the stage stays.
run nog sf-index add db.six nog.sfs
expect_rc 1 "adding images without global"
check "one line per refused image ($(wc -l < nog.err))" [ "$(grep -c 'no global descriptor, and every image of the index has one' nog.err)" -eq 5 ]
check "the stage stays" [ "$(sf-index info db.six | sed -n 's/^global: //p')" = 32 ]
check "nothing was added" [ "$(sf-index info db.six | sed -n 's/^images: //p')" = 100 ]
# (Images with a global descriptor of another dimension: tests/test_index.c.)

# Queries of another dimension, or without global.
run q16 sf-match -i db.six --index-global d16.sfs
expect_rc 1 "a query of another dimension"
has q16.err "global is not one float32 vector of 32 (as the index's)" "the dimension is named"
run qnog sf-match -i db.six --index-global nog.sfs
expect_rc 1 "a query without global"
has qnog.err "no global record (sf-lit --global)" "says the record is missing"

# An index whose images have no global descriptors has no global stage:
# refused as a whole, never answered from part of the images.
sf-index create -C cb.sfcb old.six && sf-index add old.six nog.sfs || exit 99
sf-index add old.six a.sfs || exit 99
run old sf-match -i old.six --index-global q.sfs
expect_rc 3 "an index without a global stage"
has old.err "old.six: no global stage: 5 of its 65 images were added without a global record" "says how many lack one"
empty old.out "no output without a global stage"
check "info says none" [ "$(sf-index info old.six | sed -n 's/^global: //p')" = "none (5 images without)" ]
sf-index remove old.six img00200 img00201 img00202 img00203 img00204 || exit 99
same old_removed --global a.sfs -k 0 -- -i old.six --index-global -k 0

# Usage.
run u1 sf-match --index-global q.sfs
expect_rc 2 "--index-global without -i"
run u2 sf-match -i db.six -i old.six --index-global q.sfs
expect_rc 2 "--index-global with two indexes"
run u3 sf-match --global ab.sfs -i db.six --index-global q.sfs
expect_rc 2 "--index-global with --global DB"
run u4 sf-match -i db.six --index-global --ma 3 q.sfs
expect_rc 2 "--ma without --rerank"
for u in u1 u2 u3 u4; do empty $u.out "$u: nothing on stdout"; done

# A damaged global part: exit 3, naming the index; full searches still
# answer (they do not read it); sf-index check finds it.
cp db.six bad.six
gen_=$(sf-index info bad.six | sed -n 's/^generation: //p')
# The commit in use is in slot (generation - 1) % 2; its record follows
# the last segment, whose global part (40 images x 32 f32) ends there.
if [ $(( (gen_ - 1) % 2 )) -eq 0 ]; then at=528; else at=1040; fi
commit=$(od -An -tu8 -j "$at" -N8 bad.six | tr -d ' ')
p=$((commit - 40 * 32 * 4 + 333))
old=$(od -An -tu1 -j "$p" -N1 bad.six | tr -d ' ')
printf "\\$(printf %o $((old ^ 4)))" | dd of=bad.six bs=1 seek="$p" conv=notrunc 2>/dev/null
run flip sf-match -i bad.six --index-global q.sfs
expect_rc 3 "a damaged global part"
has flip.err "bad.six: segment at byte [0-9]*: its global descriptors do not match their checksum" "names the part"
empty flip.out "no answer from a damaged global part"
run flipfull sf-match -i bad.six q.sfs
expect_rc 0 "a full search does not read the global part"
run flipcheck sf-index check bad.six
expect_rc 3 "sf-index check finds it"
finish
