#!/bin/sh
# Replay the saved fuzz corpora, and the reproducers of fixed crashes,
# through the fuzz targets' entry points, so every input that once mattered
# runs under `make check` (and the sanitizers with --enable-asan/--enable-ubsan
# or --enable-fuzzers).  Reproducers of findings not fixed yet live in
# fuzz/open/, which is not replayed (fuzz/README).
. "$top_srcdir/tests/lib.sh"

for target in stream config model index npy codebook gnd groups keys \
        npy_stack; do
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
    crashes="$top_srcdir/fuzz/crashes/$target"
    if [ -n "$(ls "$crashes" 2>/dev/null)" ]; then
        check "replay $target crashes" "$replay" "$crashes"
    fi
done

finish
