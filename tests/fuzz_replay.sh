#!/bin/sh
# Replay the saved fuzz corpora through the fuzz targets' entry points, so
# every input that once mattered runs under `make check` (and the sanitizers
# with --enable-asan/--enable-ubsan).
. "$top_srcdir/tests/lib.sh"

for target in stream config model index npy codebook gnd groups keys; do
    replay="$top_builddir/fuzz/replay_$target"
    corpus="$top_srcdir/fuzz/corpus/$target"
    if [ ! -x "$replay" ]; then
        fail "$replay was not built"
        continue
    fi
    if [ -z "$(ls "$corpus" 2>/dev/null)" ]; then
        fail "$corpus is empty"
        continue
    fi
    check "replay $target corpus" "$replay" "$corpus"
done

finish
