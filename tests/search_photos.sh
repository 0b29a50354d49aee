#!/bin/sh
# End to end on real photos: decode, extract, LIT, codebook, index, query
# every image, rank, evaluate against the answer key; then global mode with
# ASMK re-ranking, and pairwise matching with and without the template
# constraint.  A small random-weight model keeps it quick: the point is
# that the chain runs and that the metric is right, not the number.
. "$top_srcdir/tests/lib.sh"
need_photos

cd "$TMP" || exit 99
photos=$SF_PHOTOS_DIR/multiview
key=$photos/groups.tsv
ls "$photos"/* | grep -v 'groups.tsv$' > list.txt
n=$(wc -l < list.txt | tr -d ' ')

sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99
sf-decode --size 320 --set image.scales=1,0.7071 < list.txt |
    sf-extract -m small.sfm | sf-lit -m small.sfm --global > photos.sfs
check "features of all $n photos" [ "$(sf-cat --list photos.sfs | wc -l)" = "$n" ]
sf-codebook -q -k 256 --iterations 10 --seed 1 -o codebook.sfcb photos.sfs
check "codebook" [ -s codebook.sfcb ]
sf-index -q create -C codebook.sfcb photos.six && sf-index -q add photos.six photos.sfs
check "index of all photos" [ "$(sf-index info photos.six | sed -n 's/^images: //p')" = "$n" ]

# ---- query every image, rank, evaluate ----
sf-match -i photos.six -k 0 photos.sfs > hits.sfs
check "sf-match" [ -s hits.sfs ]
sf-rank --groups "$key" --per-query hits.sfs > eval.txt 2> eval.err
check "evaluation runs" [ $? -eq 0 ]
check "every query is in the key (paths match its base names)" [ ! -s eval.err ]
grep -v '^#' eval.txt | grep -v '^groups	[0-9]' | grep -v '	nan$' | cut -f1,3 |
    sed "s|^$photos/||" | sort > ap_sf.txt
sf-rank -k 0 hits.sfs | sed "s|$photos/||g" | awk_ap "$key" > ap_awk.txt
checks=$((checks + 1))
cmp -s ap_sf.txt ap_awk.txt || fail "per-query AP differs from awk: $(diff ap_sf.txt ap_awk.txt | head -5)"
summary=$(grep '^groups	[0-9]' eval.txt)
queries=$(echo "$summary" | cut -f2)
want=$(awk -F'\t' '$2 !~ /^single_/ { n[$2]++; f[$1] = $2 } END { for (x in f) c += n[f[x]] > 1; print c }' "$key")
check "queries with a partner: $queries of $want" [ "$queries" = "$want" ]
map=$(echo "$summary" | cut -f3)
mean=$(awk -F'\t' '{ s += $2 } END { printf "%.6f", s / NR }' ap_awk.txt)
check "mAP $map is the mean of the awk APs ($mean)" \
    awk -v a="$map" -v b="$mean" 'BEGIN { exit !(a - b < 1e-5 && b - a < 1e-5) }'
echo "search_photos: $n photos, random-weight ResNet-18 model, 256 words:"
echo "search_photos: $(grep '^# protocol' eval.txt | tr '\t' ' ' | sed 's/^# //')"
echo "search_photos: $(echo "$summary" | tr '\t' ' ')"

# ---- global mode, ASMK re-ranking ----
sf-match --global photos.sfs -k 1 photos.sfs | sf-rank -k 1 > g1.tsv
check "global: each image is its own nearest" [ "$(awk -F'\t' '$1 == $3' g1.tsv | wc -l)" = "$n" ]
sf-match --global photos.sfs -k 10 photos.sfs | sf-rank -k 10 | cut -f1,3 | sort > g10.txt
sf-match --global photos.sfs -i photos.six --rerank 10 -k 10 photos.sfs > rr.sfs
sf-rank -k 10 rr.sfs > rr.tsv
check "re-ranked hits are the global top 10" [ "$(cut -f1,3 rr.tsv | sort | cmp - g10.txt && echo same)" = same ]
# The re-ranked scores are the index's ASMK scores for those pairs.
sf-rank -k 0 hits.sfs | awk -F'\t' '{ print $1 "\t" $3 "\t" $4 }' | sort > asmk.txt
awk -F'\t' '{ print $1 "\t" $3 "\t" $4 }' rr.tsv | sort > rr3.txt
check "re-ranked scores equal query-mode scores" [ "$(comm -23 rr3.txt asmk.txt | wc -l)" = 0 ]
check "re-ranked lists descend" [ "$(awk -F'\t' '$1 == q && $4 > s; { q = $1; s = $4 }' rr.tsv | wc -l)" = 0 ]
sf-rank --groups "$key" rr.sfs > rr_eval.txt 2>/dev/null
# The index's own global stage gives the stream form's rankings exactly,
# all of them, and re-ranked.
check "the index has a global stage" sh -c "sf-index info photos.six | grep -q '^global: [0-9][0-9]*$'"
sf-match --global photos.sfs -k 0 photos.sfs | sf-rank -k 0 > gall.tsv
sf-match -i photos.six --index-global -k 0 photos.sfs | sf-rank -k 0 > iall.tsv
check "index global stage: the stream form's rankings ($(wc -l < gall.tsv) lines)" cmp -s gall.tsv iall.tsv
sf-match -i photos.six --index-global --rerank 10 -k 10 photos.sfs | sf-rank -k 10 > irr.tsv
check "index global stage re-ranked: as with the stream" cmp -s rr.tsv irr.tsv
# An index holding only some of the images: the others are left out of
# the re-ranked lists, with one warning for the whole run.
head -20 list.txt > half.txt
sf-cat --key-file half.txt photos.sfs > half.sfs
sf-index -q create -C codebook.sfcb half.six && sf-index -q add half.six half.sfs
sf-match --global photos.sfs -i half.six --rerank 10 -k 10 photos.sfs 2> half.err | sf-rank -k 0 > half.tsv
check "one warning for candidates outside the index" [ "$(wc -l < half.err)" -eq 1 ] && \
    grep -q 'candidates are not in the index; left out (said once)$' half.err
check "only indexed images are reported" [ "$(cut -f3 half.tsv | sort -u | grep -vxF -f half.txt | wc -l)" -eq 0 ]
echo "search_photos: global top 10 re-ranked: $(grep '^groups' rr_eval.txt | tr '\t' ' ')"

# ---- pairwise ----
head -8 list.txt | sf-decode --size 320 --set image.scales=1,0.7071 |
    sf-extract -m small.sfm | sf-lit -m small.sfm > eight.sfs
sf-match --pairwise eight.sfs -k 0 --no-pairs eight.sfs | sf-rank -k 0 | sort > pw.tsv
sf-match --pairwise eight.sfs --same-template -k 0 --no-pairs eight.sfs | sf-rank -k 0 | sort > pwt.tsv
check "pairwise: 8 images find themselves" [ "$(awk -F'\t' '$1 == $3 && $2 == 1' pw.tsv | wc -l)" = 8 ]
awk -F'\t' '{ print $1 "|" $3 "\t" $4 }' pw.tsv | sort > pw.j
awk -F'\t' '{ print $1 "|" $3 "\t" $4 }' pwt.tsv | sort > pwt.j
check "the template constraint only removes matches" \
    [ "$(join -t '	' pw.j pwt.j | awk -F'\t' '$3 > $2' | wc -l)" = 0 ] && \
    [ "$(join -t '	' -v 2 pw.j pwt.j | wc -l)" = 0 ]
sum() { awk -F'\t' '{ s += $4 } END { print s + 0 }' "$1"; }
echo "search_photos: pairwise matches among 8 photos: $(sum pw.tsv), same template only: $(sum pwt.tsv)"
finish
