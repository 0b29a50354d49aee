#!/bin/sh
# sf-group on real photos: the groups of eight multiview photos matched
# pairwise equal the connected components computed here with awk, either
# way and mutual; on all the multiview photos (ASMK), the answer-key report
# counts the key's pairs, its precision and recall at the threshold used
# equal an awk computation from the groups sf-group writes, and sf-rank
# --groups reads those groups back as an answer key.  A small random-weight
# model keeps it quick: the point is the grouping, not the scores.
. "$top_srcdir/tests/lib.sh"
need_photos

cd "$TMP" || exit 99
photos=$SF_PHOTOS_DIR/multiview
key=$photos/groups.tsv
ls "$photos"/* | grep -v 'groups.tsv$' > list.txt
nphotos=$(wc -l < list.txt | tr -d ' ')
same() { checks=$((checks + 1)); cmp -s "$1" "$2" || fail "$3: $(diff "$1" "$2" | head -6)"; }

sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99
sf-decode --size 320 --set image.scales=1,0.7071 < list.txt |
    sf-extract -m small.sfm | sf-lit -m small.sfm > photos.sfs || exit 99

# components T < TSV: each image and the first (in sort order) image of its
# connected component, joined by pairs scoring at least T (either way).
components() {
    awk -F'\t' -v t="$1" '
    function find(x) { while (up[x] != x) x = up[x]; return x }
    { for (i = 1; i <= 3; i += 2) if (!($i in up)) up[$i] = $i
      if ($1 != $3 && $4 + 0 >= t + 0) { a = find($1); b = find($3); if (a < b) up[b] = a; else up[a] = b } }
    END { for (x in up) print x "\t" find(x) }' | LC_ALL=C sort
}
# reps < groups output: each file and the first file of its group.
reps() {
    LC_ALL=C sort -t'	' -k2,2 -k1,1 | awk -F'\t' '$2 != g { g = $2; r = $1 } { print $1 "\t" r }' |
        LC_ALL=C sort
}

# ---- eight photos (four pairs of views), pairwise matches ----
head -8 list.txt > eight.txt
sf-cat --key-file eight.txt photos.sfs > eight.sfs
sf-match --pairwise eight.sfs -k 0 --no-pairs eight.sfs > pw.sfs || exit 99
sf-rank -k 0 pw.sfs > pw.tsv
for t in 60 75 90; do
    run g$t sf-group -t $t pw.sfs
    expect_rc 0 "sf-group -t $t"
    check "-t $t: a line per photo" [ "$(wc -l < g$t.out)" -eq 8 ]
    components $t < pw.tsv > want$t.txt
    reps < g$t.out > got$t.txt
    same want$t.txt got$t.txt "-t $t: the connected components of the pairs at $t or more"
done
check "the thresholds give different groupings" sh -c '! cmp -s got60.txt got90.txt'
# Mutual: a pair joins when both found each other with at least T, i.e.
# by the lower of its two scores.
awk -F'\t' '$1 != $3 { k = ($1 < $3) ? $1 SUBSEP $3 : $3 SUBSEP $1; n[k]++
        if (!(k in lo) || $4 + 0 < lo[k]) lo[k] = $4 + 0 }
    END { for (k in n) if (n[k] == 2) { split(k, p, SUBSEP); print p[1] "\t0\t" p[2] "\t" lo[k] } }' \
    pw.tsv > mutual.tsv
cut -f1 pw.tsv | sort -u | awk '{ print $1 "\t0\t" $1 "\t0" }' >> mutual.tsv
run gm sf-group --mutual -t 75 pw.sfs
expect_rc 0 "sf-group --mutual"
components 75 < mutual.tsv > wantm.txt
reps < gm.out > gotm.txt
same wantm.txt gotm.txt "--mutual -t 75: components of the pairs both found at 75 or more"
check "groups of one are single_*" [ "$(awk -F'\t' '{ c[$2]++ } END { for (g in c) if ((c[g] == 1) != (g ~ /^single_/)) print g }' g90.out | wc -l)" -eq 0 ]

# ---- all the photos, ASMK, against the answer key ----
sf-codebook -q -k 256 --iterations 10 --seed 1 -o codebook.sfcb photos.sfs || exit 99
sf-index -q create -C codebook.sfcb photos.six && sf-index -q add photos.six photos.sfs || exit 99
sf-match -i photos.six -k 0 photos.sfs > asmk.sfs || exit 99
run groups sf-group -m asmk asmk.sfs
expect_rc 0 "sf-group -m asmk"
check "a line per photo" [ "$(wc -l < groups.out)" -eq "$nphotos" ]
run report sf-group -m asmk --groups "$key" asmk.sfs
expect_rc 0 "the answer-key report"
empty report.err "every photo is in the key"
# The key's true pairs: pairs of files in one group other than single_*.
want_true=$(awk -F'\t' '!/^#/ && NF == 2 && $2 !~ /^single_/ { c[$2]++ } END { for (g in c) s += c[g] * (c[g] - 1) / 2; print s }' "$key")
check "same: every true pair scored ($want_true)" \
    [ "$(awk -F'\t' '$1 == "same" { print $2 + $3 }' report.out)" = "$want_true" ]
check "different: every other pair ($((nphotos * (nphotos - 1) / 2 - want_true)))" \
    [ "$(awk -F'\t' '$1 == "different" { print $2 + $3 }' report.out)" = "$((nphotos * (nphotos - 1) / 2 - want_true))" ]
check "quantiles ascend" [ "$(awk -F'\t' '$1 == "same" || $1 == "different" { for (i = 5; i <= 10; i++) if ($i + 0 < $(i - 1) + 0) print }' report.out | wc -l)" -eq 0 ]
# Pairwise precision and recall of the groups sf-group wrote, here.
awk -F'\t' 'NR == FNR { if (!/^#/ && NF == 2) truth[$1] = $2; next }
    { f = $1; sub(/.*\//, "", f); file[++n] = f; grp[n] = $2 }
    END { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) {
              t = truth[file[i]] == truth[file[j]] && truth[file[i]] !~ /^single_/
              g = grp[i] == grp[j]; tp += t && g; found += g; tru += t }
          printf "%d\t%d\t%d\t%.6f\t%.6f\n", found, tp, tru, tp / found, tp / tru }' "$key" groups.out > pr_awk.txt
awk -F'\t' '$1 == "used" { print $4 "\t" $5 "\t" $6 "\t" $7 "\t" $8 }' report.out > pr_sf.txt
same pr_awk.txt pr_sf.txt "the report's precision and recall equal those of the groups written"
check "the report's best threshold is no worse than the one used" \
    awk -F'\t' '$1 == "best" { b = $9 } $1 == "used" { u = $9 } END { exit !(b + 0 >= u + 0) }' report.out
echo "group_photos: $nphotos photos, ASMK, random-weight ResNet-18, default threshold:" \
    "$(awk -F'\t' '$1 == "used" { print "threshold " $2 ", " $3 " groups, precision " $7 ", recall " $8 }' report.out)"
# The groups are an answer key sf-rank reads.
run rank sf-rank --groups groups.out asmk.sfs
expect_rc 0 "sf-rank --groups reads sf-group's output"
has rank.out "^groups	" "sf-rank's report on them"

# ---- usage and bad input ----
run nomode sf-group asmk.sfs
expect_rc 2 "neither --mode nor --threshold"
empty nomode.out "no mode: nothing on stdout"
has nomode.err "hit records do not say what their scores are" "no mode: says why"
run badmode sf-group -m l2 asmk.sfs
expect_rc 2 "an unknown mode"
run badt sf-group -t 1x asmk.sfs
expect_rc 2 "a threshold that is no number"
run notkey sf-group -m asmk --groups /nonexistent asmk.sfs
expect_rc 2 "a missing answer key"
run nohits sf-group -m asmk photos.sfs
expect_rc 3 "features instead of hits"
empty nohits.out "features: nothing on stdout"
printf 'x\ty\n' > other.tsv
run otherkey sf-group -m asmk --groups other.tsv asmk.sfs
expect_rc 1 "a key that names none of the photos"
has otherkey.err "no image is in other.tsv" "says so"
finish
