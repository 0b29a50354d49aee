#!/bin/sh
# NumPy interop both ways: sf-cat --npy-stack (one array per kind and a
# manifest) and --from-npy (back to a stream, or external features in),
# sf-codebook --from-npy (outside centroids, tied to their descriptors),
# and the refusals of bad input.  Arrays are built and read here with
# printf, od and perl (Debian's essential perl-base), never Python.
. "$top_srcdir/tests/lib.sh"

for p in sf-cat sf-codebook sf-index sf-match sf-rank perl; do
    command -v $p >/dev/null 2>&1 || { echo "$p is not on PATH" >&2; exit 99; }
done
cd "$TMP" || exit 99
"$top_builddir/tests/test_stream" --write-sample basic basic.sfs || exit 99
gen="$top_builddir/tests/test_index"
$gen --write-stream-global 30 7 16 a.sfs || exit 99     # img00000..img00029, LIT
$gen --write-stream-global 10 8 16 b.sfs 30 || exit 99  # img00030..img00039

# npy DESCR SHAPE: a 128-byte .npy 1.0 header; the data follow it.
npy() {
    printf '\223NUMPY\001\000\166\000'
    printf "%-117s\n" "{'descr': '$1', 'fortran_order': False, 'shape': ($2), }"
}
# data_of FILE: the bytes after a .npy file's header.
data_of() { tail -c +$(($(od -An -tu2 -j8 -N2 "$1" | tr -d ' ') + 11)) "$1"; }
# header_of FILE: its header dict without the padding.
header_of() { head -c $(($(od -An -tu2 -j8 -N2 "$1" | tr -d ' ') + 10)) "$1" | tail -c +11 | tr -d ' \n'; }
# one_line FILE DESCRIPTION: stderr is exactly one line naming the program
one_line() {
    checks=$((checks + 1))
    [ "$(wc -l < "$1")" -eq 1 ] && grep -q '^sf-[a-z]*: ' "$1" \
        || fail "$2: not one message line: $(head -c 300 "$1")"
}
tabs() { tr '|' '\t'; }

# ---- export: one array per kind, the manifest ----
run ex sf-cat --npy-stack st a.sfs b.sfs
expect_rc 0 "--npy-stack"
empty ex.err "--npy-stack stderr"
empty ex.out "--npy-stack stdout"
check "one file per kind and the manifest" \
    [ "$(ls st | tr '\n' ' ')" = "global.npy local_desc.npy local_strength.npy manifest.tsv provenance.npy " ]
check "global: stacked, one row per image" \
    [ "$(header_of st/global.npy)" = "{'descr':'<f4','fortran_order':False,'shape':(40,16),}" ]
check "provenance: stacked" \
    [ "$(header_of st/provenance.npy)" = "{'descr':'<i8','fortran_order':False,'shape':(40,6),}" ]
rows=$(sf-cat -t --kind local_desc a.sfs b.sfs | cut -f6 | cut -dx -f1 | awk '{ s += $1 } END { print s }')
check "local_desc: all images' rows, $rows in all" \
    [ "$(header_of st/local_desc.npy)" = "{'descr':'<f4','fortran_order':False,'shape':($rows,16),}" ]
check "the data start at 256, aligned" [ "$(od -An -tu2 -j8 -N2 st/global.npy | tr -d ' ')" = 246 ]
check "manifest header" [ "$(head -1 st/manifest.tsv)" = "$(printf 'image\tkey\tkind\tindex\tscale\tfirst\trows\tshape')" ]
check "a line per record" [ "$(($(wc -l < st/manifest.tsv) - 1))" = "$(sf-cat -t a.sfs b.sfs | wc -l)" ]
# Every record's rows are its bytes: checked against --npy's one file per
# record, record by record.
sf-cat --npy per a.sfs b.sfs || exit 99
tail -n +2 st/manifest.tsv | while IFS='	' read -r image key kind index scale first rows shape; do
    per=per/$key.$kind.$index.npy
    case $kind in
        local_desc) unit=64 ;;
        global) unit=64 ;;
        provenance) unit=48 ;;
        *) unit=4 ;;
    esac
    data_of "$per" > rec.bin
    tail -c +$((256 + first * unit + 1)) "st/$kind.npy" | head -c $((rows * unit)) > got.bin
    cmp -s rec.bin got.bin || echo "$image $key $kind rows $first+$rows differ"
done > mismatch.txt
check "each manifest line gives its record's bytes" [ ! -s mismatch.txt ]
check "images numbered in order" \
    [ "$(tail -n +2 st/manifest.tsv | cut -f1,2 | uniq | awk -F'\t' '$1 != NR - 1 || $2 != sprintf("img%05d", NR - 1)' | wc -l)" = 0 ]

# ---- and back: the same stream ----
run back sf-cat --from-npy st
expect_rc 0 "--from-npy"
empty back.err "--from-npy stderr"
sf-cat a.sfs b.sfs > ab.sfs
check "stream -> arrays -> stream: the same bytes" cmp -s back.out ab.sfs

# The sample's kinds, scales and keys (a '/', a space) and its flattened
# image records; its second global has another dimension than the first:
# refused alone.
run bs sf-cat --npy-stack bs basic.sfs
expect_rc 1 "a global of another shape"
one_line bs.err "a global of another shape"
has bs.err "basic.sfs: 'dir/b c.png': global: shape 2, the global records before are 4" "the reason"
tabs <<'EOF' > bs.want
image|key|kind|index|scale|first|rows|shape
0|photo.jpg|source|0|1|0|1|2
0|photo.jpg|image|0|1|0|12|3x2x2
0|photo.jpg|image|1|0.5|12|3|3x1x1
0|photo.jpg|local_desc|0|1|0|4|4x2
0|photo.jpg|global|0|1|0|1|4
1|x|pixels|0|1|0|12|2x2x3
EOF
check "manifest of the sample" cmp -s bs/manifest.tsv bs.want
check "image: flattened, 15 elements" \
    [ "$(header_of bs/image.npy)" = "{'descr':'<f4','fortran_order':False,'shape':(15,),}" ]
run bs2 sf-cat --npy-stack bs2 --kind source --kind image --kind local_desc --kind local_index \
    --kind strength --kind pixels basic.sfs
expect_rc 0 "the sample without global"
sf-cat --kind source --kind image --kind local_desc --kind local_index --kind strength \
    --kind pixels basic.sfs > bs2.sfs
sf-cat --from-npy bs2 > bs2back.sfs
check "the sample's round trip" cmp -s bs2.sfs bs2back.sfs
check "scales exactly" [ "$(sf-cat -t bs2back.sfs | cut -f4 | sort -u | tr '\n' ' ')" = "scale=0.5 scale=1 " ]

# Filters choose what is exported; a second export replaces the first.
sf-cat --npy-stack st2 -k img00003 --kind global a.sfs
check "filtered: one image, one kind" [ "$(ls st2 | tr '\n' ' ')" = "global.npy manifest.tsv " ] &&
    [ "$(tail -n +2 st2/manifest.tsv | cut -f1-3)" = "$(printf '0\timg00003\tglobal')" ]
check "no temporary files left" [ "$(ls st st2 | grep -c tmp)" = 0 ]

# An input that cannot be read to its end exports nothing.
head -c 3000 a.sfs > cut.sfs
run cut sf-cat --npy-stack stc a.sfs cut.sfs
expect_rc 3 "a cut stream"
check "a cut stream: nothing renamed into place" [ -z "$(ls stc)" ]
# A full disk (a file size limit: writes fail with EFBIG) and a signal
# before the renames leave an earlier export as it was, with no temporary
# file beside it.
leftovers() { ls -a "$@" 2>/dev/null | grep -c -e '\.tmp' -e '\.create-'; }
cp -r st keep
(trap '' XFSZ; ulimit -f 8; sf-cat --npy-stack keep a.sfs b.sfs) 2>full.err
rc=$?
check "export to a full disk fails (exit $rc)" [ "$rc" -eq 3 ]
has full.err "keep/.*: .*File too large" "... naming the file and the reason"
check "... leaves the earlier export as it was" diff -r st keep
check "... and no temporary file" [ "$(leftovers keep)" = 0 ]
SF_TEST_SIGNAL_BEFORE_COMMIT=15 sf-cat --npy-stack keep --kind global a.sfs 2>/dev/null
rc=$?
check "SIGTERM before the renames ends it (exit $rc)" [ "$rc" -eq 143 ]
check "... leaving the earlier export" diff -r st keep
check "... and no temporary file" [ "$(leftovers keep)" = 0 ]
run nodir sf-cat --npy-stack no/such/dir a.sfs
expect_rc 3 "a directory that cannot be made"
one_line nodir.err "a directory that cannot be made"

# ---- import: external features ----
# Three images of 2-d descriptors, f64 as numpy writes by default, a
# manifest with only the columns needed.
mkdir ext
{ npy '<f8' '6, 2'; perl -e 'print pack("d<*", 1,0, 0.9,0.1, 0,1, 0.1,0.9, -1,0, -0.9,-0.1)'; } > ext/local_desc.npy
{ npy '<f4' '3, 2'; perl -e 'print pack("f<*", 1,0, 0,1, -1,0)'; } > ext/global.npy
tabs <<'EOF' > ext/manifest.tsv
key|kind|first|rows
east.jpg|local_desc|0|2
east.jpg|global|0|1
north.jpg|local_desc|2|2
north.jpg|global|1|1
west.jpg|local_desc|4|2
west.jpg|global|2|1
EOF
run imp sf-cat --from-npy --features mine ext
expect_rc 0 "external features"
empty imp.err "external features stderr"
mv imp.out ext.sfs
check "three images" [ "$(sf-cat --list ext.sfs | tr '\n' ' ')" = "east.jpg north.jpg west.jpg " ]
has_text() { sf-cat -t ext.sfs > ext.txt; has ext.txt "$1" "$2"; }
has_text "^north.jpg	local_desc	index=0	scale=1	f32	2x2	16 bytes	min=0 max=1 mean=0.5" "f64 narrowed to f32"
has_text "^east.jpg	provenance	.*stage=lit" "--features gives a provenance"
sf-cat --kind local_desc ext.sfs | sf-cat --npy-stack extback
check "the f32 values are the f64 ones" \
    [ "$(data_of extback/local_desc.npy | od -An -tf4 -v | tr -s ' \n' '  ')" = " 1 0 0.9 0.1 0 1 0.1 0.9 -1 0 -0.9 -0.1 " ]
# ... and can be indexed and searched.
sf-codebook -q -k 3 --seed 1 -o ext.sfcb ext.sfs || fail "codebook of external features"
sf-index -q create -C ext.sfcb ext.six && sf-index -q add ext.six ext.sfs || fail "index of external features"
sf-match -i ext.six --ma 1 -k 1 ext.sfs | sf-rank -k 1 | cut -f1,3 > ext1.tsv
check "each external image finds itself" [ "$(awk -F'\t' '$1 == $2' ext1.tsv | wc -l)" = 3 ]
sf-cat --from-npy --features theirs ext > other.sfs
run other sf-index add ext.six other.sfs
expect_rc 1 "features under another name"
has other.err "features [0-9a-f]*, the index holds features" "refused as other features"
sf-cat --from-npy ext > noprov.sfs
run noprov sf-index add ext.six noprov.sfs
expect_rc 1 "no provenance and no --features"
has noprov.err "no provenance record" "refused without provenance"

# ---- import: refusals ----
cp -r ext bad
printf 'west.jpg\tlocal_desc\t5\t2\n' >> bad/manifest.tsv
run rows sf-cat --from-npy --features mine bad
expect_rc 1 "rows beyond the array"
one_line rows.err "rows beyond the array"
has rows.err "bad/manifest.tsv: line 8: 'west.jpg': local_desc: rows 5..7, the array has 6" "the reason"
check "west.jpg is refused, the others imported" [ "$(sf-cat --list rows.out | tr '\n' ' ')" = "east.jpg north.jpg " ]
cp -r ext nan
{ npy '<f8' '6, 2'; perl -e 'print pack("d<*", 1,0, 0.9,0.1, 9**9**9/9**9**9,1, 0.1,0.9, -1,0, -0.9,-0.1)'; } > nan/local_desc.npy
run nan sf-cat --from-npy --features mine nan
expect_rc 1 "NaN in a descriptor"
one_line nan.err "NaN in a descriptor"
has nan.err "line 4: 'north.jpg': local_desc: 1 NaN or infinite values" "the NaN is named"
check "the other images are imported" [ "$(sf-cat --list nan.out | tr '\n' ' ')" = "east.jpg west.jpg " ]
cp -r ext big
{ npy '<f8' '6, 2'; perl -e 'print pack("d<*", 1,0, 1e300,0.1, 0,1, 0.1,0.9, -1,0, -0.9,-0.1)'; } > big/local_desc.npy
run big sf-cat --from-npy --features mine big
expect_rc 1 "a value beyond float32"
has big.err "'east.jpg': local_desc: 1 NaN or infinite values" "beyond float32 is refused"
cp -r ext syn
printf 'east.jpg\tlocal_desc\tx\t2\n' >> syn/manifest.tsv
run syn sf-cat --from-npy syn
expect_rc 1 "a bad manifest line"
one_line syn.err "a bad manifest line"
has syn.err "syn/manifest.tsv: line 8: bad first" "the line and the field"
check "nothing imported from a bad manifest" [ -z "$(sf-cat --list syn.out)" ]
cp -r ext col
sed -i '1s/first/start/' col/manifest.tsv
run col sf-cat --from-npy col
expect_rc 1 "a missing column"
has col.err "the header names no 'first' column" "the column is named"
cp -r ext type
{ npy '<i4' '6, 2'; perl -e 'print pack("l<*", 1,0,1,0,1,0,1,0,1,0,1,0)'; } > type/local_desc.npy
run type sf-cat --from-npy type
expect_rc 1 "an array of another type"
has type.err "type/local_desc.npy: i32; local_desc records are f32 (or f64, converted)" "the type is named"
cp -r ext short
head -c 150 ext/local_desc.npy > short/local_desc.npy
run short sf-cat --from-npy short
expect_rc 1 "a truncated array"
has short.err "short/local_desc.npy: .npy data ends early" "truncated"
rm ext2 2>/dev/null; cp -r ext ext2 && rm ext2/global.npy
run miss sf-cat --from-npy ext2
expect_rc 1 "a missing array"
has miss.err "ext2/global.npy: No such file or directory (the manifest names global records)" "the file is named"
run two sf-cat --from-npy --features mine nosuch ext
expect_rc 1 "a missing directory, then a good one"
check "the good one is imported" [ "$(sf-cat --list two.out | wc -l)" = 3 ]

# ---- codebook from .npy centroids ----
sf-codebook -q -k 16 --seed 3 -o cb.sfcb a.sfs || exit 99
{ npy '<f4' '16, 16'; tail -c +129 cb.sfcb; } > c.npy
run cbi sf-codebook --from-npy c.npy -o imp.sfcb a.sfs
expect_rc 0 "--from-npy"
empty cbi.err "--from-npy stderr"
sf-codebook --info cb.sfcb > native.info
sf-codebook --info imp.sfcb > imp.info
check "the same centroids, the same checksum" \
    [ "$(grep '^checksum' native.info)" = "$(grep '^checksum' imp.info)" ]
check "the features of the streams recorded" \
    [ "$(grep '^features' native.info)" = "$(grep '^features' imp.info)" ] &&
    ! grep -q '^features: 0000000000000000' imp.info
check "not trained here" grep -q '^iterations: 0' imp.info
for c in cb imp; do
    sf-index -q create -C $c.sfcb $c.six && sf-index -q add $c.six a.sfs b.sfs || fail "index with $c"
    sf-match -i $c.six -k 0 a.sfs b.sfs | sf-rank -k 0 > $c.tsv
done
check "the imported codebook searches as the native one" cmp -s cb.tsv imp.tsv
check "results to compare" [ "$(wc -l < cb.tsv)" = 1600 ]
# The same descriptors brought in from outside (no provenance, imported
# under a name) give the same codebook and the same results.
for x in a b; do
    sf-cat --kind local_desc --kind global $x.sfs | sf-cat --npy-stack out_$x
    sf-cat --from-npy --features outside out_$x > o$x.sfs
done
sf-codebook -q -k 16 --seed 3 -o outside.sfcb oa.sfs
check "external descriptors: the same codebook" \
    [ "$(sf-codebook --info outside.sfcb | grep '^checksum')" = "$(grep '^checksum' native.info)" ]
sf-index -q create -C outside.sfcb outside.six && sf-index -q add outside.six oa.sfs ob.sfs
sf-match -i outside.six -k 0 oa.sfs ob.sfs | sf-rank -k 0 > outside.tsv
check "external descriptors: the same results" cmp -s cb.tsv outside.tsv
# f64 centroids, as the reference saves them: the same codebook.
{ npy '<f8' '16, 16'; tail -c +129 cb.sfcb | perl -e 'local $/; print pack("d<*", unpack("f<*", <STDIN>))'; } > c64.npy
sf-codebook -q --from-npy c64.npy -o imp64.sfcb a.sfs
check "f64 centroids give the same file" cmp -s imp.sfcb imp64.sfcb

# Tied to the features: an index of other features refuses it.
sf-codebook -q --from-npy c.npy -o imp.sfcb a.sfs
sf-cat --kind local_desc --kind global a.sfs | sf-cat --npy-stack np
sf-cat --from-npy --features elsewhere np > else.sfs
sf-index -q create -C imp.sfcb else.six
run tied sf-index add else.six else.sfs
expect_rc 1 "images of other features against the codebook's"
has tied.err "features [0-9a-f]*, the index holds features" "refused by the codebook's features"
# A codebook that records no features (an older sf's) leaves the index to
# its first image; the same centroids imported for a.sfs then refuse it.
$gen --write-codebook 16 16 1 plain.sfcb || exit 99
{ npy '<f4' '16, 16'; tail -c +129 plain.sfcb; } > p.npy
sf-codebook -q --from-npy p.npy -o pimp.sfcb a.sfs
sf-index -q create -C plain.sfcb held.six && sf-index -q add held.six else.sfs
check "a codebook without features takes any" [ "$(sf-index info held.six | sed -n 's/^images: //p')" = 30 ]
run held sf-index add -C pimp.sfcb held.six a.sfs
expect_rc 1 "a codebook for other features than the index holds"
has held.err "pimp.sfcb: made for features [0-9a-f]*, the index holds features" "the codebook is named"

# Refusals: one line, status 1 (2 for usage), no file written.
rm -f x.sfcb
refuse() {
    d=$1; shift
    run refuse sf-codebook "$@"
    expect_rc 1 "$d"
    one_line refuse.err "$d"
    empty refuse.out "$d: stdout"
    checks=$((checks + 1)); [ ! -e x.sfcb ] || { fail "$d: x.sfcb written"; rm -f x.sfcb; }
}
{ npy '<f4' '16, 16'; tail -c +129 cb.sfcb | perl -e 'local $/; my @v = unpack("f<*", <STDIN>); $v[20] = 9**9**9; print pack("f<*", @v)'; } > inf.npy
refuse "infinite centroid" --from-npy inf.npy -o x.sfcb a.sfs
has refuse.err "inf.npy: centroid 1 has a non-finite value" "the centroid is named"
{ npy '<f8' '16, 16'; tail -c +129 cb.sfcb | perl -e 'local $/; my @v = unpack("f<*", <STDIN>); $v[40] = 9**9**9/9**9**9; print pack("d<*", @v)'; } > nan64.npy
refuse "NaN centroid (f64)" --from-npy nan64.npy -o x.sfcb a.sfs
{ npy '<f8' '16, 16'; tail -c +129 cb.sfcb | perl -e 'local $/; my @v = unpack("f<*", <STDIN>); $v[0] = 1e300; print pack("d<*", @v)'; } > huge.npy
refuse "a centroid beyond float32" --from-npy huge.npy -o x.sfcb a.sfs
has refuse.err "huge.npy: centroid 0: 1e+300 is beyond float32" "beyond float32"
{ npy '<f4' '32, 8'; tail -c +129 cb.sfcb; } > d8.npy
run wrongd sf-codebook --from-npy d8.npy -o x.sfcb a.sfs
expect_rc 1 "centroids of another dimension"
check "another dimension: said once, then no codebook" [ "$(wc -l < wrongd.err)" = 2 ]
has wrongd.err "descriptors of dimension 16, the centroids have 8" "the dimensions"
check "another dimension: nothing written" [ ! -e x.sfcb ]
npy '<f4' '0, 16' > k0.npy
refuse "k = 0" --from-npy k0.npy -o x.sfcb a.sfs
has refuse.err "no centroids: k and d must be at least 1, this is 0 x 16" "k < 1"
{ npy '<f4' '256,'; tail -c +129 cb.sfcb; } > flat.npy
refuse "a 1-d array" --from-npy flat.npy -o x.sfcb a.sfs
{ npy '<i4' '16, 16'; tail -c +129 cb.sfcb; } > int.npy
refuse "integers" --from-npy int.npy -o x.sfcb a.sfs
{ printf '\223NUMPY\001\000\166\000'; printf "%-117s\n" "{'descr': '<f4', 'fortran_order': True, 'shape': (16, 16), }"; tail -c +129 cb.sfcb; } > fortran.npy
refuse "Fortran order" --from-npy fortran.npy -o x.sfcb a.sfs
head -c 1000 c.npy > short.npy
refuse "a truncated file" --from-npy short.npy -o x.sfcb a.sfs
refuse "not .npy" --from-npy a.sfs -o x.sfcb a.sfs
refuse "no such file" --from-npy nosuch.npy -o x.sfcb a.sfs
refuse "-k other than the file's" --from-npy c.npy -k 8 -o x.sfcb a.sfs
run nostream sf-codebook --from-npy c.npy -o x.sfcb
expect_rc 2 "no stream to tie the centroids to"
has nostream.err "needs the STREAMs" "why a stream is needed"
sf-cat --kind global a.sfs > noloc.sfs
run noloc sf-codebook --from-npy c.npy -o x.sfcb noloc.sfs
expect_rc 1 "no descriptors to check against"
check "nothing written without descriptors" [ ! -e x.sfcb ]

# ---- sf-decode's .npy input ----
{ npy '<f4' '3, 2, 3'; perl -e 'print pack("f<*", 0..17)'; } > t.npy
sf-decode --scales 1 t.npy | sf-cat --npy-stack dec
check "a tensor goes through as it is" \
    [ "$(data_of dec/image.npy | od -An -tf4 -v | tr -s ' \n' '  ')" = " 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 " ]
check "source: [W, H] of the array" [ "$(data_of dec/source.npy | od -An -td8 -v | tr -s ' \n' '  ')" = " 3 2 " ]
run crop sf-decode --scales 1 --crop 0,0,1,1 t.npy
expect_rc 1 "--crop with a .npy file"
one_line crop.err "--crop with a .npy file"
has crop.err "t.npy: a query crop does not apply to a .npy file" "the crop is refused, not ignored"
{ npy '<f4' '3, 2, 2'; perl -e 'print pack("f<*", 0..4, 9**9**9, 6..11)'; } > tinf.npy
run tinf sf-decode --scales 1 tinf.npy t.npy
expect_rc 1 "an infinite value in a tensor"
has tinf.err "tinf.npy: 1 NaN or infinite values in the tensor" "named"
check "the other file goes on" [ "$(sf-cat --list tinf.out)" = t.npy ]
{ npy '<f8' '3, 2, 2'; perl -e 'print pack("d<*", 0..11)'; } > t64.npy
run t64 sf-decode --scales 1 t64.npy
expect_rc 1 "an f64 tensor"
has t64.err "expected a 3 x H x W float32 tensor or H x W x 3 uint8 pixels" "the layouts are named"

# ---- usage ----
for args in "--npy-stack d --text a.sfs" "--npy-stack d --npy e a.sfs" "--features x a.sfs" \
            "--from-npy" "--from-npy --list st" "--npy-stack ''"; do
    eval "run usage sf-cat $args"
    expect_rc 2 "sf-cat $args"
    empty usage.out "sf-cat $args: stdout"
done

finish
