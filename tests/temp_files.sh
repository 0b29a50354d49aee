#!/bin/sh
# Nothing half-written is left behind: an export that fails midway leaves
# no truncated file, a signal during a save removes the temporary file, and
# the temporary files of writers that died are removed by the next writer.
. "$top_srcdir/tests/lib.sh"
cd "$TMP" || exit 99
img=$top_srcdir/examples/images
sf-decode --size 64 --scales 1 "$img/aero1.jpg" >a.sfs || exit 99
leftovers() { ls -a "$@" 2>/dev/null | grep -c -e '\.tmp' -e '\.create-'; }

# A disk that fills up (a file size limit: writes fail with EFBIG): the
# 36 KB image record is not exported at all, the small ones are.
(trap '' XFSZ; ulimit -f 4; sf-cat --npy out --kind image --kind source a.sfs) 2>full.err
rc=$?
check "export to a full disk fails (exit $rc)" [ "$rc" -eq 3 ]
check "... naming the file and the reason" grep -q "out/.*image.0.npy: .*File too large" full.err
check "... and leaves no truncated .npy" [ -z "$(ls out | grep "\.image\.0\.npy")" ]
check "... nor a temporary file" [ "$(leftovers out)" = 0 ]
check "... the small record is exported" [ -n "$(ls out | grep "\.source\.0\.npy")" ]

# A signal between writing and renaming (the test hook raises it there).
# env --default-signal: a job started in the background or under nohup
# inherits SIGINT/SIGHUP ignored, and the shell cannot undo that.
for sig in 15 1 2; do
    SF_TEST_SIGNAL_BEFORE_COMMIT=$sig env --default-signal=HUP,INT,TERM sf-model random --arch resnet18 --dim 64 --N 8 --T 1 \
        -o m$sig.sfm 2>/dev/null
    rc=$?
    check "signal $sig during sf-model's save ends it (exit $rc)" [ "$rc" -eq $((128 + sig)) ]
    check "... leaving no model and no temporary file" \
        [ ! -e m$sig.sfm ] && [ "$(leftovers .)" = 0 ]
done
sf-model random --arch resnet18 --dim 64 --N 8 --T 1 -o m.sfm || exit 99
sf-extract -m m.sfm a.sfs | sf-lit -m m.sfm >f.sfs || exit 99
SF_TEST_SIGNAL_BEFORE_COMMIT=15 sf-codebook -k 4 -o cb.sfcb f.sfs 2>/dev/null
rc=$?
check "SIGTERM during sf-codebook's save (exit $rc)" [ "$rc" -eq 143 ] && [ ! -e cb.sfcb ] && \
    [ "$(leftovers .)" = 0 ]

# Writers killed with SIGKILL leave their temporary files; the next writer
# of the same file removes those of dead processes, never a live one's.
sh -c 'exit 0' & dead=$!
wait
: >"m.sfm.tmp$dead.0"
: >"m.sfm.tmp$$.0"
: >"x.six.create-$dead.tmp"
sf-model random --arch resnet18 --dim 64 --N 8 --T 1 -o m.sfm || exit 99
check "a dead writer's temporary model is removed" [ ! -e "m.sfm.tmp$dead.0" ]
check "a live writer's is kept" [ -e "m.sfm.tmp$$.0" ]
sf-codebook -k 4 -o cb.sfcb f.sfs || exit 99
sf-index create -C cb.sfcb x.six || exit 99
check "a dead sf-index create's temporary index is removed" [ ! -e "x.six.create-$dead.tmp" ]
finish
