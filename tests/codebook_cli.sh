#!/bin/sh
# sf-codebook: training on synthetic local_desc streams, --scale and
# --max-samples, determinism, --info, and errors with their exit codes.
. "$top_srcdir/tests/lib.sh"

command -v sf-codebook >/dev/null 2>&1 || { echo "sf-codebook is not on PATH" >&2; exit 99; }
gen="$top_builddir/tests/test_kmeans"
# 40 images of 100 descriptors of dimension 16, half of them at scale 1.
$gen --write-stream "$TMP/data.sfs" 40 100 16 || exit 99
$gen --write-stream "$TMP/noscale.sfs" 3 10 16 noscale || exit 99
$gen --write-stream "$TMP/dim8.sfs" 2 10 8 || exit 99
# Finite descriptors of up to 3e38, whose squared norms overflow float32.
$gen --write-stream "$TMP/huge.sfs" 4 100 16 huge || exit 99
cd "$TMP" || exit 99

info() { sf-codebook --info "$1" | sed -n "s/^$2: //p"; }

# ---- training ----
run train sf-codebook -k 8 --iterations 5 --seed 1 -o cb.sfcb data.sfs
expect_rc 0 "training"
empty train.out "training stdout"
empty train.err "training stderr (not a terminal, not -v)"
check "the codebook exists" [ -s cb.sfcb ]
check "no temporary file is left" [ "$(ls | grep -c '\.tmp')" -eq 0 ]

run info sf-codebook --info cb.sfcb
expect_rc 0 "--info"
empty info.err "--info stderr"
has info.out "^file: cb.sfcb$" "--info file"
has info.out "^version: 1$" "--info version"
has info.out "^k: 8$" "--info k"
has info.out "^dim: 16$" "--info dim"
has info.out "^seed: 1$" "--info seed"
has info.out "^iterations: 5$" "--info iterations"
has info.out "^samples: 4000$" "--info samples"
has info.out "^checksum: [0-9a-f]\{16\}$" "--info checksum"
has info.out "^inertia: [0-9]" "--info inertia"
inertia=$(info cb.sfcb inertia)
check "inertia $inertia is positive" awk "BEGIN { exit !($inertia > 0) }"
check "file size: 128 + 8*16*4 bytes" [ "$(wc -c < cb.sfcb)" -eq 640 ]

run again sf-codebook -k 8 --iterations 5 --seed 1 --threads 1 -o cb1.sfcb data.sfs
check "same seed, one thread: the same file" cmp -s cb.sfcb cb1.sfcb
run again sf-codebook -k 8 --iterations 5 --seed 1 --threads 3 -o cb3.sfcb data.sfs
check "same seed, three threads: the same file" cmp -s cb.sfcb cb3.sfcb
run stdin sf-codebook -k 8 --iterations 5 --seed 1 -o cbin.sfcb - < data.sfs
expect_rc 0 "from stdin"
check "stdin gives the same codebook" cmp -s cb.sfcb cbin.sfcb
run noop sf-codebook -k 8 --iterations 5 --seed 1 -o cbno.sfcb < data.sfs
check "no operand reads stdin" cmp -s cb.sfcb cbno.sfcb
run set sf-codebook --set asmk.codebook_size=8 --set asmk.kmeans_iterations=5 \
    --set asmk.kmeans_seed=1 -o cbset.sfcb data.sfs
check "the asmk.* keys equal the flags" cmp -s cb.sfcb cbset.sfcb
run seed2 sf-codebook -k 8 --iterations 5 --seed 2 -o cb2.sfcb data.sfs
check "another seed: another checksum" [ "$(info cb.sfcb checksum)" != "$(info cb2.sfcb checksum)" ]
run two sf-codebook -k 8 --iterations 5 --seed 1 -o cbtwo.sfcb data.sfs data.sfs
check "two streams: twice the descriptors" [ "$(info cbtwo.sfcb samples)" = 8000 ]

# ---- choosing descriptors ----
run scale1 sf-codebook -k 8 --iterations 3 --scale 1 -o s1.sfcb data.sfs
expect_rc 0 "--scale 1"
check "--scale 1 keeps the scale-1 half" [ "$(info s1.sfcb samples)" = 2000 ]
run scale05 sf-codebook -k 8 --iterations 3 --scale 0.5 -o s05.sfcb data.sfs
check "--scale 0.5 keeps the other half" [ "$(info s05.sfcb samples)" = 2000 ]
check "the two halves train different codebooks" \
    [ "$(info s1.sfcb checksum)" != "$(info s05.sfcb checksum)" ]
run max sf-codebook -k 8 --iterations 3 --max-samples 500 -o m.sfcb data.sfs
check "--max-samples 500" [ "$(info m.sfcb samples)" = 500 ]
run maxv sf-codebook -v -k 8 --iterations 3 --max-samples 500 -o m2.sfcb data.sfs
check "the sample depends on the seed only" cmp -s m.sfcb m2.sfcb
has maxv.err "^sf-codebook: iteration 0/3: inertia " "-v: progress of iteration 0"
has maxv.err "^sf-codebook: iteration 3/3: inertia " "-v: progress of the last iteration"
has maxv.err "on 500 of 4000 descriptors (d = 16) from 40 images" "-v: sampling summary"
has maxv.err "^sf-codebook: wrote m2.sfcb" "-v: what was written"
last=$(sed -n 's|^sf-codebook: iteration 3/3: inertia \([^ ]*\) .*|\1|p' maxv.err)
stored=$(info m2.sfcb inertia)
check "the file keeps the last inertia ($last, $stored)" \
    awk "BEGIN { d = $last - $stored; exit !(d < 1e-6 * $stored && -d < 1e-6 * $stored) }"
run quiet sf-codebook -q -k 8 --iterations 3 -o q.sfcb data.sfs
empty quiet.err "-q"

# ---- no -k: the size follows the data (4000 descriptors: 64 words) ----
run auto sf-codebook -o auto.sfcb data.sfs
expect_rc 0 "no -k"
has auto.err "^sf-codebook: codebook size 64 for 4000 descriptors (the largest power of two with 32 descriptors per word, at most 65536; -k to choose)$" "no -k: the size chosen is printed"
check "no -k: 64 words" [ "$(sf-codebook --info auto.sfcb | sed -n 's/^k: //p')" = 64 ]
run auto64 sf-codebook -k 64 -o auto64.sfcb data.sfs
check "no -k gives what -k 64 gives" cmp -s auto.sfcb auto64.sfcb
printf 'asmk:\n  codebook_size: 0\n' > auto.yaml
run autoq sf-codebook -q --config auto.yaml -o autoq.sfcb data.sfs
expect_rc 0 "codebook_size 0 in a preset"
empty autoq.err "-q: the chosen size is not printed"
check "codebook_size 0 in a preset: 64 words" cmp -s auto.sfcb autoq.sfcb
printf 'asmk:\n  codebook_size: 4001\n' > big.yaml
run bigk sf-codebook --config big.yaml -o big.sfcb data.sfs
expect_rc 1 "a preset's codebook_size above the descriptors"
has bigk.err "the largest codebook they can train has 4000 words" "preset k refused with the largest k"
check "a refused k writes no codebook" [ ! -e big.sfcb ]
check "4000 words (one per descriptor) train" sf-codebook -q -k 4000 --iterations 1 -o k4000.sfcb data.sfs

# ---- errors ----
cp cb.sfcb keep.sfcb
run missing sf-codebook -k 8 -o keep.sfcb nosuch.sfs data.sfs
expect_rc 1 "a missing input"
empty missing.out "a missing input: stdout"
has missing.err "^sf-codebook: nosuch.sfs: No such file or directory$" "a missing input: message"
has missing.err "no codebook written" "a missing input: nothing is trained"
check "a failed run leaves the old codebook" cmp -s cb.sfcb keep.sfcb

run many sf-codebook -k 5000 -o keep.sfcb data.sfs
expect_rc 1 "more words than descriptors"
has many.err "5000 visual words need at least 5000 training descriptors.*there are 4000: the largest codebook they can train has 4000 words; the default for them is 64" "more words than descriptors: message with the largest k"
empty many.out "more words than descriptors: stdout"
check "k > samples leaves the old codebook" cmp -s cb.sfcb keep.sfcb
run manymax sf-codebook -k 100 --max-samples 50 -o x.sfcb data.sfs
expect_rc 2 "-k above --max-samples"
has manymax.err "^Try 'sf-codebook --help'.$" "-k above --max-samples: hint"
run noscale sf-codebook -k 8 --scale 1 -o x.sfcb data.sfs noscale.sfs
expect_rc 1 "--scale without local_scale records"
has noscale.err "noscale.sfs: image000.jpg: no local_scale record" "--scale without local_scale: message"
run scale3 sf-codebook -k 8 --scale 3 -o x.sfcb data.sfs
expect_rc 1 "--scale that matches nothing"
has scale3.err "no local descriptors" "--scale that matches nothing: message"
run dims sf-codebook -k 8 -o x.sfcb data.sfs dim8.sfs
expect_rc 1 "two descriptor dimensions"
has dims.err "dimension 8, the first ones had 16" "two descriptor dimensions: message"
check "no codebook after failures" [ ! -e x.sfcb ]

run huge sf-codebook -k 8 -o keep.sfcb huge.sfs
expect_rc 1 "descriptors of 3e38"
empty huge.out "descriptors of 3e38: stdout"
has huge.err "^sf-codebook: k-means: training vector [0-9]*: its squared norm overflows float32" \
    "descriptors of 3e38: message"
check "descriptors of 3e38: no codebook, the old one is kept" cmp -s cb.sfcb keep.sfcb

head -c 5000 data.sfs > cut.sfs
run cut sf-codebook -k 8 -o x.sfcb cut.sfs
expect_rc 3 "a truncated stream"
empty cut.out "a truncated stream: stdout"
has cut.err "^sf-codebook: cut.sfs" "a truncated stream: message names the file"
cp data.sfs flip.sfs
printf 'X' | dd of=flip.sfs bs=1 seek=3000 conv=notrunc 2>/dev/null
run flip sf-codebook -k 8 -o x.sfcb flip.sfs
expect_rc 3 "a corrupt stream"
has flip.err "checksum" "a corrupt stream: message"
check "no codebook from a corrupt stream" [ ! -e x.sfcb ]

run noout sf-codebook -k 8 data.sfs
expect_rc 2 "no -o"
has noout.err "no output" "no -o: message"
run badk sf-codebook -k 0 -o x.sfcb data.sfs
expect_rc 2 "-k 0"
run badscale sf-codebook --scale abc -o x.sfcb data.sfs
expect_rc 2 "--scale abc"
run infoo sf-codebook --info -o x.sfcb cb.sfcb
expect_rc 2 "--info with -o"
run infonone sf-codebook --info
expect_rc 2 "--info without a file"
run infomiss sf-codebook --info nosuch.sfcb cb.sfcb
expect_rc 1 "--info on a missing file"
has infomiss.err "^sf-codebook: nosuch.sfcb: No such file or directory$" "--info missing: message"
has infomiss.out "^file: cb.sfcb$" "--info goes on after a missing file"
cp cb.sfcb bad.sfcb
printf 'X' | dd of=bad.sfcb bs=1 seek=300 conv=notrunc 2>/dev/null
run infobad sf-codebook --info bad.sfcb
expect_rc 1 "--info on a damaged codebook"
has infobad.err "centroid checksum mismatch" "--info damaged: message"
empty infobad.out "--info damaged: stdout"
run infostream sf-codebook --info data.sfs
expect_rc 1 "--info on a stream"
has infostream.err "not an sf codebook" "--info on a stream: message"

# ---- help and version ----
run help sf-codebook --help
expect_rc 0 "--help"
has help.out "^Usage: sf-codebook " "--help usage line"
empty help.err "--help stderr"
run version sf-codebook --version
expect_rc 0 "--version"
has version.out "^sf-codebook (sf) " "--version line"
finish
