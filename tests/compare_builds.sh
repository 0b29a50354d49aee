#!/bin/sh
# compare_builds.sh BUILDDIR OUTDIR: run the whole pipeline of BUILDDIR's programs on
# the 67 multiview photos (small random model, small images) and write every
# ranking and the descriptors (.npy) into OUTDIR, so that two builds can be
# compared with `diff -r OUT1 OUT2`.
# Not part of make check: it needs two builds.  To prove a refactoring
# changes no result, run it with the build before and the build after, then
# `diff -r OUT_BEFORE OUT_AFTER`.
set -eu
B=$(cd "$1" && pwd); mkdir -p "$2"; O=$(cd "$2" && pwd)
export SF_BACKEND_PATH=$B/backends/.libs PATH=$B/cmd:$PATH
P=${SF_PHOTOS_DIR:-/var/cache/sf-photos}/multiview
T=$(mktemp -d); cd "$T"
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o m.sfm
ls "$P"/*.jpg "$P"/*.png 2>/dev/null | sort > list
sf-decode --size 192 --set image.scales=1,0.7071 < list | sf-extract -m m.sfm | sf-lit -m m.sfm --global > f.sfs
sf-cat --npy "$O/npy" --kind local_desc --kind global --kind local_scale --kind local_index f.sfs
sf-codebook -k 64 -o cb.sfcb f.sfs
sf-index create -C cb.sfcb i.six && sf-index add i.six f.sfs
sf-match -i i.six -k 20 f.sfs > hi.sfs
sf-match --pairwise f.sfs -k 20 f.sfs > hp.sfs
sf-match --global f.sfs -k 20 f.sfs > hg.sfs
sf-match --global f.sfs -i i.six --rerank 30 -k 20 f.sfs > hr.sfs
for m in hi hp hg hr; do
    sf-rank -k 0 $m.sfs > "$O/$m.tsv"
    sf-rank -k 5 -f pairs $m.sfs > "$O/$m.pairs"
    sf-rank --groups "$P/groups.tsv" --per-query $m.sfs > "$O/$m.eval" 2>&1 || true
    sf-rank --no-self -k 3 $m.sfs > "$O/$m.noself.tsv"
done
sf-rank -k 10 hi.sfs hg.sfs > "$O/merge.tsv"
cd /; rm -rf "$T"
echo "compare_builds: $(ls "$O" | wc -l) outputs in $O"
