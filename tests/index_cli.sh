#!/bin/sh
# sf-index: create, add (streams, stdin, replacement), remove, compact,
# info, list, check; the lock; damaged files and bad input; usage errors;
# the examples of sf-index(1).
. "$top_srcdir/tests/lib.sh"

command -v sf-index >/dev/null 2>&1 || { echo "sf-index is not on PATH" >&2; exit 99; }
gen="$top_builddir/tests/test_index"
cd "$TMP" || exit 99
# A 64-word codebook of dimension 16 and streams of synthetic local_desc
# records (keys imgFIRST..): the same seed and key give the same image.
$gen --write-codebook 64 16 1 codebook.sfcb || exit 99
$gen --write-codebook 64 16 2 other.sfcb || exit 99
$gen --write-stream 30 7 16 a.sfs || exit 99         # img00000..img00029
$gen --write-stream 20 8 16 b.sfs 30 || exit 99      # img00030..img00049
$gen --write-stream 10 9 16 c.sfs || exit 99         # img00000..img00009, other content
$gen --write-stream 20 7 16 a2.sfs 10 || exit 99     # img00010..img00029 as in a.sfs
$gen --write-stream 3 7 8 dim8.sfs 100 || exit 99

info() { sf-index info "$1" | sed -n "s/^$2: //p"; }
same_value() { checks=$((checks + 1)); [ "$(info "$1" "$3")" = "$(info "$2" "$3")" ] || fail "$1 and $2 differ in $3: $(info "$1" "$3") / $(info "$2" "$3")"; }

# ---- create ----
run create sf-index create -C codebook.sfcb db.six
expect_rc 0 "create"
empty create.out "create stdout"
empty create.err "create stderr"
check "no temporary file is left" [ "$(ls | grep -c 'tmp')" -eq 0 ]
check "an empty index" [ "$(info db.six images)" = 0 ]
check "default parameters" [ "$(info db.six binary)/$(info db.six idf)/$(info db.six alpha)/$(info db.six threshold)" = "true/false/3/0" ]
check "codebook size" [ "$(info db.six codebook)" = "64 x 16" ]
check "codebook path" [ "$(info db.six 'codebook path')" = "$(pwd -P)/codebook.sfcb" ]
run again sf-index create -C codebook.sfcb db.six
expect_rc 3 "create over an index"
has again.err "^sf-index: db.six: already exists$" "create over an index"
run params sf-index create -C codebook.sfcb --no-binary --idf --alpha 2.5 --threshold 0.25 --ma 2 p.six
expect_rc 0 "create with parameters"
check "parameters kept" [ "$(info p.six binary)/$(info p.six idf)/$(info p.six alpha)/$(info p.six threshold)/$(info p.six 'multiple assignment database')" = "false/true/2.5/0.25/2" ]
run set sf-index --set asmk.alpha=4 create -C codebook.sfcb s.six
check "config keys set the defaults" [ "$(info s.six alpha)" = 4 ]

# ---- add ----
run add sf-index add db.six a.sfs
expect_rc 0 "add"
empty add.out "add stdout"
empty add.err "add stderr"
check "30 images" [ "$(info db.six images)" = 30 ]
run stdin sf-index -v add db.six < b.sfs
expect_rc 0 "add from stdin"
has stdin.err "added 20 images (0 replaced), 50 in all" "add -v summary"
check "50 images" [ "$(info db.six images)" = 50 ]
check "two commits, two segments" [ "$(info db.six generation)/$(info db.six segments)" = "3/2" ]
sf-index list db.six > keys.txt
check "list gives the keys in order" [ "$(head -1 keys.txt)/$(tail -1 keys.txt)/$(wc -l < keys.txt)" = "img00000/img00049/50" ]

# Re-adding keys replaces them.
run replace sf-index -v add db.six c.sfs
expect_rc 0 "add existing keys"
check "one line per replaced key" [ "$(grep -c ': replaced$' replace.err)" -eq 10 ]
has replace.err "^sf-index: img00003: replaced$" "replaced key named"
check "still 50 images" [ "$(info db.six images)/$(info db.six ids)" = "50/60" ]
# The same images in one go, in the order they now have.
sf-index create -C codebook.sfcb one.six && cat a2.sfs b.sfs c.sfs | sf-index add one.six
check "same keys as one go" [ "$(sf-index list db.six)" = "$(sf-index list one.six)" ]
same_value db.six one.six vectors

# ---- remove ----
printf 'img00040\nimg00041\r\n\nimg00042\n' > gone.txt
run remove sf-index remove db.six img00001 nope --keys-from gone.txt
expect_rc 1 "remove with a missing key"
has remove.err "^sf-index: db.six: no image 'nope'$" "missing key named"
empty remove.out "remove stdout"
check "4 images removed, the others committed" [ "$(info db.six images)" = 46 ]
run remove2 sf-index remove db.six img00001
expect_rc 1 "remove a removed key"
check "list skips removed images" [ "$(sf-index list db.six | grep -c 'img0000[1]\|img0004[012]')" -eq 0 ]

# ---- compact ----
run compact sf-index compact db.six
expect_rc 0 "compact"
empty compact.err "compact stderr"
check "one segment, ids renumbered" [ "$(info db.six segments)/$(info db.six ids)/$(info db.six images)" = "1/46/46" ]
check "compaction keeps the order" [ "$(sf-index list db.six)" = "$(sf-index list one.six | grep -v 'img0000[1]\|img0004[012]')" ]
check "no temporary file is left" [ "$(ls | grep -c 'tmp')" -eq 0 ]
run check sf-index check db.six
expect_rc 0 "check"
empty check.out "check stdout"
empty check.err "check stderr"
run checkv sf-index -v check db.six
has checkv.err "^sf-index: db.six: ok, 46 images$" "check -v"

# ---- the lock ----
if command -v flock >/dev/null 2>&1; then
    flock db.six sh -c 'sleep 3; touch holder.done' &
    holder=$!
    i=0     # until the holder has the lock
    while flock -n db.six true 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    run busy sf-index add --no-wait db.six a.sfs
    expect_rc 3 "--no-wait while another writer holds the lock"
    has busy.err "^sf-index: db.six: locked by another writer$" "--no-wait message"
    empty busy.out "--no-wait stdout"
    check "readers do not wait" sh -c 'sf-index info db.six > /dev/null'
    run wait sf-index remove db.six img00002
    expect_rc 0 "a writer waits for the lock"
    check "the writer waited for the holder to finish" [ -e holder.done ]
    wait $holder
else
    echo "flock(1) not found: lock checks skipped" >&2
fi

# ---- bad input ----
head -c 3000 b.sfs > cut.sfs
before=$(info db.six generation)
run cut sf-index add db.six c.sfs cut.sfs
expect_rc 3 "a truncated stream"
has cut.err "unchanged" "all or nothing"
check "nothing was committed" [ "$(info db.six generation)" = "$before" ]
sf-cat --kind local_strength --kind provenance a.sfs > nodesc.sfs
run nodesc sf-index add db.six nodesc.sfs
expect_rc 1 "images without local_desc"
has nodesc.err "^sf-index: nodesc.sfs: img00000: no local_desc record" "missing local_desc named"
run dim sf-index add db.six dim8.sfs
expect_rc 1 "descriptors of another dimension"
has dim.err "img00100: local_desc is not a K x 16 float32 array" "dimension named"
run other sf-index add -C other.sfcb db.six a.sfs
expect_rc 3 "another codebook"
has other.err "built with another codebook" "codebook mismatch"
run nofile sf-index info missing.six
expect_rc 3 "a missing index"
has nofile.err "^sf-index: missing.six: No such file or directory$" "missing index named"
run notindex sf-index info codebook.sfcb
expect_rc 3 "not an index"
has notindex.err "not an sf index" "not an index"

# Damage: a flipped byte in a list is found by check (and only by check:
# opening reads no list); a truncated file does not open.
cp db.six bad.six
size=$(wc -c < db.six)
printf '\377' | dd of=bad.six bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
run bad sf-index check bad.six
expect_rc 3 "check of a damaged index"
has bad.err "checksum mismatch" "damage found"
head -c $((size - 10)) db.six > short.six
run short sf-index info short.six
expect_rc 3 "a truncated index"
has short.err "short.six: " "truncated index named"

# A header is bounded before anything is sized by it: an empty index's
# 1.6 KB claiming a codebook of 1.2 billion words is refused at once.
sf-index create -C codebook.sfcb huge.six && $gen --set-header-k huge.six 1200000000 || exit 99
for c in check info; do
    run huge sf-index $c huge.six
    expect_rc 3 "$c of a header claiming 1.2e9 words"
    has huge.err "^sf-index: huge.six: header: a codebook of 1200000000 words (1..16777216)$" "$c: bad k named"
done
run huge sf-index remove huge.six img00000
expect_rc 3 "a writer of a header claiming 1.2e9 words"
$gen --set-header-k huge.six 16777216 || exit 99
run huge sf-index -v check huge.six
expect_rc 0 "check of an empty index of 2^24 words"
has huge.err "ok, 0 images" "2^24 words: ok"

# A failed sync after the commit slot is written: the change is made but
# may not be durable, exit 4; before it, the index is unchanged, exit 3.
sf-index create -C codebook.sfcb sync.six && sf-index add sync.six a.sfs || exit 99
run sync5 env SF_INDEX_TEST_FAIL=5 sf-index add sync.six c.sfs
expect_rc 3 "a failed sync before the slot"
check "unchanged" [ "$(info sync.six generation)" = 2 ]
run sync8 env SF_INDEX_TEST_FAIL=8 sf-index remove sync.six img00001
expect_rc 4 "a failed sync after the slot"
has sync8.err "^sf-index: sync.six: generation 3 is committed (readers see it) but may not be durable: fdatasync: Input/output error$" "not durable named"
check "the removal is visible" [ "$(info sync.six images)" = 29 ]
run sync14 env SF_INDEX_TEST_FAIL=14 sf-index compact sync.six
expect_rc 4 "a failed directory sync after compaction"
has sync14.err "compacted (readers see it) but the rename may not be durable" "compaction not durable named"
check "sync.six is compacted" [ "$(info sync.six segments)" = 1 ]

# A damaged newest commit slot rolls the index back a commit: check says
# so; writers refuse to discard the newer commit unless told to.
sf-index create -C codebook.sfcb rb.six && sf-index add rb.six a.sfs && sf-index add rb.six b.sfs || exit 99
cp rb.six old.six
printf '\377' | dd of=rb.six bs=1 seek=$((512 + 40)) conv=notrunc 2>/dev/null   # slot 0, generation 3
cp rb.six rb.orig
run rb sf-index -v check rb.six
expect_rc 3 "check of a rolled-back index"
has rb.err "^sf-index: rb.six: commit slot 0 is damaged: the index is at generation 2, a newer commit (generation 3?) was lost or never completed$" "rollback named"
run rbinfo sf-index info rb.six
expect_rc 0 "info of a rolled-back index"
has rbinfo.out "^generation: 2$" "info: the older commit"
has rbinfo.out "^damaged commit slot: 0 (a newer commit may be lost)$" "info: damaged slot"
has rbinfo.err "commit slot 0 is damaged" "info: warning"
for c in "add rb.six c.sfs" "remove rb.six img00000" "compact rb.six"; do
    run rbw sf-index $c
    expect_rc 3 "sf-index $c on a rolled-back index"
    has rbw.err "^sf-index: rb.six: commit slot 0 is damaged: .*; writing would discard it for good (--accept-rollback: go on from generation 2)$" "sf-index $c: refused"
    check "sf-index $c: the file is untouched" cmp -s rb.six rb.orig
done
run rbok sf-index remove --accept-rollback rb.six img00000
expect_rc 0 "remove --accept-rollback"
check "after --accept-rollback" [ "$(info rb.six generation)/$(info rb.six images)" = "3/29" ]
run rbc sf-index check rb.six
expect_rc 0 "check after --accept-rollback"
run rbinfo sf-index info rb.six
check "info: no damaged slot" [ "$(grep -c damaged rbinfo.out)" -eq 0 ]
run rbu sf-index check --accept-rollback rb.six
expect_rc 2 "--accept-rollback with check"
# The older slot damaged: nothing is lost; check says so, a writer clears it.
printf '\377' | dd of=old.six bs=1 seek=$((1024 + 40)) conv=notrunc 2>/dev/null
run old sf-index check old.six
expect_rc 3 "check with the older slot damaged"
has old.err "commit slot 1 is damaged (it held no commit newer than generation 3" "older slot named"
run old sf-index remove old.six img00000
expect_rc 0 "a writer with the older slot damaged"
check "the older slot cleared" sf-index check old.six

# ---- usage errors: exit 2, nothing on stdout ----
for args in "" "frobnicate x.six" "info" "add --ma 2 db.six" "info db.six extra" \
            "create db2.six" "list --no-wait db.six" "remove db.six --bogus"; do
    run usage sf-index $args
    expect_rc 2 "sf-index $args"
    empty usage.out "sf-index $args: stdout"
    has usage.err "^Try 'sf-index --help'.$" "sf-index $args: hint"
done
run help sf-index --help
expect_rc 0 "--help"
has help.out "^Usage: sf-index COMMAND" "--help usage"

# ---- the examples of sf-index(1) ----
mkdir ex && cd ex || exit 99
cp ../codebook.sfcb ../a.sfs ../b.sfs . && cp ../a.sfs photos-2024-06-01.sfs
echo img00003 > withdrawn.txt
check "example: create" sf-index create -C codebook.sfcb photos.six
check "example: add" sf-index add photos.six a.sfs b.sfs
check "example: nightly add" sh -c 'sf-index add --no-wait photos.six photos-2024-06-01.sfs'
check "example: remove" sf-index remove photos.six --keys-from withdrawn.txt
check "example: compact and check" sh -c 'sf-index compact photos.six && sf-index check photos.six'
check "example: info" sh -c 'sf-index info photos.six | grep -q "^images: 49$"'
cd .. || exit 99
# Out-of-range settings are usage errors, before anything is written.
run alpha sf-index create -C cb.sfcb --alpha 1e300 alpha.six
expect_rc 2 "--alpha 1e300"
has alpha.err "asmk.alpha: 1e300 is out of range" "--alpha 1e300 named"
check "--alpha 1e300: no index" [ ! -e alpha.six ]

# An index written before list checksums (segments SFIXSEG1, made by
# 3352184 from the streams below: 12 + 8 images, img00003 removed) is
# checked whole on opening, answers as the same index written now, and
# compaction rewrites it in the current layout.
mkdir v1 && cd v1 || exit 99
$gen --write-codebook 64 16 1 cb.sfcb && $gen --write-stream 12 7 16 a.sfs &&
    $gen --write-stream 8 8 16 b.sfs 12 || exit 99
cp "$top_srcdir/tests/data/index-v1.six" old.six && chmod u+w old.six
sf-index create -C cb.sfcb new.six && sf-index add new.six a.sfs && sf-index add new.six b.sfs &&
    sf-index remove new.six img00003 || exit 99
check "layout 1 on file" [ "$(grep -c SFIXSEG1 old.six)" -eq 2 ]
run v1check sf-index check old.six
expect_rc 0 "check of a layout-1 index"
sf-match -i new.six -C cb.sfcb -k 5 a.sfs b.sfs | sf-rank -k 0 > new.tsv
run v1match sf-match -i old.six -C cb.sfcb -k 5 a.sfs b.sfs
expect_rc 0 "search of a layout-1 index"
sf-rank -k 0 v1match.out > old.tsv
check "a layout-1 index answers as the current layout" cmp -s old.tsv new.tsv
check "it has answers" [ "$(wc -l < old.tsv)" -ge 19 ]
cp old.six bad.six
printf '\377' | dd of=bad.six bs=1 seek=2000 conv=notrunc 2>/dev/null
run v1bad sf-match -i bad.six -C cb.sfcb -k 5 a.sfs
expect_rc 3 "search of a damaged layout-1 index"
has v1bad.err "^sf-match: bad.six: segment 0: checksum mismatch$" "layout-1 damage named"
run v1compact sf-index compact old.six
expect_rc 0 "compaction of a layout-1 index"
check "compaction writes the current layout" [ "$(grep -c SFIXSEG1 old.six)/$(grep -c SFIXSEG2 old.six)" = 0/1 ]
sf-match -i old.six -C cb.sfcb -k 5 a.sfs b.sfs | sf-rank -k 0 > compacted.tsv
check "compacted: the same answers" cmp -s compacted.tsv new.tsv
cd .. || exit 99
finish
