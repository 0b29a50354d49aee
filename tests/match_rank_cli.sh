#!/bin/sh
# sf-match (index, shards, pairwise) and sf-rank (TSV, pairs, stream,
# merging, evaluation) on synthetic streams; bad input and usage errors.
# Real photos and global mode: tests/search_photos.sh.
. "$top_srcdir/tests/lib.sh"

for p in sf-match sf-rank sf-index; do
    command -v $p >/dev/null 2>&1 || { echo "$p is not on PATH" >&2; exit 99; }
done
gen="$top_builddir/tests/test_index"
cd "$TMP" || exit 99
$gen --write-codebook 64 16 1 cb.sfcb || exit 99
$gen --write-codebook 64 8 1 cb8.sfcb || exit 99
$gen --write-stream 30 7 16 a.sfs || exit 99      # img00000..img00029
$gen --write-stream 20 8 16 b.sfs 30 || exit 99   # img00030..img00049
cat a.sfs b.sfs > ab.sfs
sf-index -q create -C cb.sfcb all.six && sf-index -q add all.six ab.sfs || exit 99
sf-index -q create -C cb.sfcb sa.six && sf-index -q add sa.six a.sfs || exit 99
sf-index -q create -C cb.sfcb sb.six && sf-index -q add sb.six b.sfs || exit 99

same() { checks=$((checks + 1)); cmp -s "$1" "$2" || fail "$3: $1 and $2 differ: $(diff "$1" "$2" | head -5)"; }
lines() { wc -l < "$1" | tr -d ' '; }

# ---- query mode ----
run q sf-match -i all.six ab.sfs
expect_rc 0 "query mode"
check "query mode writes nothing on stderr" [ ! -s q.err ]
sf-cat --text q.sfs >/dev/null 2>&1
sf-cat --text q.out > q.txt
check "two records per query" [ "$(lines q.txt)" = 100 ]
has q.txt "^img00049	hit_scores	.*last$" "hit_scores ends each image"
run tsv sf-rank -k 1 q.out
expect_rc 0 "sf-rank"
check "every image finds itself first" [ "$(awk -F'\t' '$1 == $3 && $2 == 1' tsv.out | wc -l)" = 50 ]
check "TSV: query, rank, key, score" [ "$(awk -F'\t' 'NF != 4 || $4 !~ /^[0-9.e-]+$/' tsv.out | wc -l)" = 0 ]
sf-rank -k 0 q.out > all.tsv
check "sf-match -k 100 (default) keeps all 50" [ "$(lines all.tsv)" = 2500 ]
sf-match -i all.six -k 3 ab.sfs | sf-rank -k 0 > k3.tsv
check "sf-match -k 3" [ "$(lines k3.tsv)" = 150 ]
check "scores descend" [ "$(awk -F'\t' '$1 == q && $4 > s { print }; { q = $1; s = $4 }' all.tsv | wc -l)" = 0 ]
sf-rank -k 5 --no-self q.out > noself.tsv
check "--no-self" [ "$(awk -F'\t' '$1 == $3' noself.tsv | wc -l)" = 0 ] && [ "$(lines noself.tsv)" = 250 ]
# stdin and ma
sf-match -i all.six --ma 1 < a.sfs | sf-rank -k 0 > ma1.tsv
check "--ma 1 changes the scores" sh -c "! cmp -s ma1.tsv all.tsv"

# ---- shards ----
sf-match -i sa.six -i sb.six ab.sfs | sf-rank -k 0 > shards.tsv
same all.tsv shards.tsv "two shards searched as one"
sf-match -i sa.six ab.sfs > ha.sfs
sf-match -i sb.six ab.sfs > hb.sfs
sf-rank -k 0 hb.sfs ha.sfs > merged.tsv
same all.tsv merged.tsv "shard results merged by sf-rank"
sf-match -i sa.six -k 4 ab.sfs > ha4.sfs
sf-match -i sb.six -k 4 ab.sfs > hb4.sfs
sf-rank -k 4 ha4.sfs hb4.sfs > merged4.tsv
sf-rank -k 4 q.out > top4.tsv
same top4.tsv merged4.tsv "top 4 of each shard merge into the top 4"
sf-rank -k 0 -f stream ha.sfs hb.sfs > merged.sfs
sf-rank -k 0 merged.sfs > again.tsv
same all.tsv again.tsv "--format stream round trip"

# ---- pairs ----
sf-rank -k 3 -f pairs q.out > pairs.txt
check "pairs: no self pair" [ "$(awk -F'\t' '$1 == $2' pairs.txt | wc -l)" = 0 ]
check "pairs: each once, a < b" [ "$(awk -F'\t' '$1 >= $2' pairs.txt | wc -l)" = 0 ] && \
    [ "$(sort pairs.txt | uniq -d | wc -l)" = 0 ]
want=$(sf-rank -k 3 q.out | awk -F'\t' '$1 != $3' | awk -F'\t' '{ if ($1 < $3) print $1 "\t" $3; else print $3 "\t" $1 }' | sort -u | wc -l)
check "pairs: every pair of the top 3" [ "$(lines pairs.txt)" = "$want" ]

# ---- pairwise mode ----
run pw sf-match --pairwise a.sfs a.sfs
expect_rc 0 "pairwise"
sf-rank -k 1 pw.out > pw1.tsv
# Rows of each image's local_desc: every feature matches itself.
sf-cat --text --kind local_desc a.sfs | awk -F'\t' '{ split($6, s, "x"); print $1 "\t1\t" $1 "\t" s[1] }' > self.tsv
same self.tsv pw1.tsv "pairwise: each image's best match is itself, with all its features"
n0=$(head -1 self.tsv | cut -f4)
sf-cat --text --kind match_pairs pw.out | head -1 > pairs0.txt
has pairs0.txt "^img00000	match_pairs	index=0	.*i32	${n0}x2" "matched pairs of the first hit"
run sim sf-cat --text --kind match_similarity pw.out
has sim.out "max=1" "a feature matched to itself has similarity 1"
sf-match --pairwise a.sfs --no-pairs b.sfs > nopairs.sfs
check "--no-pairs keeps counts only" [ "$(sf-cat --text nopairs.sfs | grep -c match_)" = 0 ]
sf-match --pairwise a.sfs --min-matches 1000 b.sfs | sf-rank > none.tsv
check "--min-matches above every count leaves no hits" [ ! -s none.tsv ]
run tmpl sf-match --pairwise a.sfs --same-template b.sfs
expect_rc 1 "--same-template without local_index"
has tmpl.err "^sf-match: a.sfs: img00000: --same-template needs a local_index record$" \
    "--same-template: a database image without local_index is named"

# ---- global mode: bad input (real descriptors: tests/search_photos.sh) ----
run g sf-match --global a.sfs a.sfs
expect_rc 1 "global mode without global records"
has g.err "^sf-match: a.sfs: img00000: no global record (sf-lit --global)$" "database image without global"
has g.err "^sf-match: img00000: no global record (sf-lit --global)$" "query without global"

# ---- evaluation ----
# A key where img0000N and img0001N form groups; img00029 alone.
awk 'BEGIN { for (i = 0; i < 29; i++) printf "img%05d\tg%d\n", i, i % 10; print "img00029\tsingle_x" }' > groups.tsv
run ev sf-rank --groups groups.tsv --per-query q.out
expect_rc 0 "--groups"
has ev.err "20 queries are not in groups.tsv" "queries outside the key: one line"
check "one warning line" [ "$(lines ev.err)" = 1 ]
has ev.out "^# protocol	queries	mAP	mP@1	mP@5	mP@10	R@1	R@5	R@10$" "report header"
has ev.out "^groups	29	" "29 queries with positives"
# Recompute every AP independently (awk_ap in lib.sh).
sf-rank -k 0 q.out | awk_ap groups.tsv > ap_awk.txt
awk -F'\t' '$2 == "groups" { print $1 "\t" $3 }' ev.out | sort | grep -v "^img00029" > ap_sf.txt
same ap_awk.txt ap_sf.txt "per-query AP equals an independent computation"
mean=$(awk -F'\t' '{ s += $2 } END { printf "%.4f", s / NR }' ap_awk.txt)
got=$(awk -F'\t' '$1 == "groups" { printf "%.4f", $3 }' ev.out)
check "mAP is the mean AP ($mean vs $got)" [ "$mean" = "$got" ]
r1=$(sf-rank -k 1 --no-self q.out | awk -F'\t' 'NR == FNR { g[$1] = $2; next } ($1 in g) && ($3 in g) && g[$1] == g[$3] { h++ } END { printf "%.6f", h / 29 }' groups.tsv -)
check "R@1 ($r1)" [ "$(awk -F'\t' '$1 == "groups" { print $7 }' ev.out)" = "$r1" ]
# revisited format: each image is its own only easy positive
sf-index list all.six > db.txt
head -5 db.txt > queries.txt
awk '{ printf "- {easy: [%d], hard: [], junk: []}\n", NR - 1 }' queries.txt > gnd.yaml
run gnd sf-rank --gnd gnd.yaml --db-list db.txt --query-list queries.txt q.out
expect_rc 0 "--gnd"
has gnd.err "^sf-rank: 45 queries are not in queries.txt (img00005, ...); left out$" \
    "--gnd: results of other images: one line"
check "--gnd: one warning line" [ "$(lines gnd.err)" = 1 ]
has gnd.out "^easy	5	1.000000	1.000000	" "self found first: AP 1 (easy)"
has gnd.out "^hard	0	nan" "no hard positives"
run gndmiss sf-rank --gnd gnd.yaml --db-list db.txt --query-list queries.txt ha4.sfs
expect_rc 0 "--gnd with a shard's results"
run gnd2 sf-rank --gnd gnd.yaml --query-list queries.txt q.out
expect_rc 2 "--gnd without --db-list"
head -3 queries.txt > q3.txt
run gnd3 sf-rank --gnd gnd.yaml --db-list db.txt --query-list q3.txt q.out
expect_rc 2 "query list of another length"
has gnd3.err "q3.txt names 3 queries, gnd.yaml has 5" "query list length message"

: > empty.txt
run gndempty sf-rank --gnd gnd.yaml --db-list empty.txt --query-list queries.txt q.out
expect_rc 2 "--gnd with an empty database list"
has gndempty.err "^sf-rank: gnd.yaml: query 0 lists image 0; empty.txt has 0$" \
    "an empty list is read as one of 0 names"

# ---- bad input ----
run cb8 sf-match -i all.six -C cb8.sfcb a.sfs
expect_rc 3 "another codebook"
has cb8.err "codebook" "another codebook is named"
$gen --write-stream 3 7 8 dim8.sfs 100 || exit 99
cat dim8.sfs a.sfs > mixed.sfs
run mixed sf-match -i all.six mixed.sfs
expect_rc 1 "a query of another dimension"
check "one line per bad query" [ "$(lines mixed.err)" = 3 ]
check "the good queries are answered" [ "$(sf-rank -k 1 mixed.out | wc -l)" = 30 ]
has mixed.err "^sf-match: img00100: local_desc is not one K x 16 float32 array" "bad query message"
head -c 5000 q.out > cut.sfs
run cut sf-rank cut.sfs
expect_rc 3 "truncated hits"
check "nothing printed from a broken merge" [ ! -s cut.out ]
run cutm sf-rank q.out cut.sfs
expect_rc 3 "truncated shard"
check "no partial merge" [ ! -s cutm.out ]
run nofile sf-rank nonexistent.sfs
expect_rc 3 "missing input"
has nofile.err "^sf-rank: nonexistent.sfs: No such file or directory$" "missing input message"
run nofeat sf-rank a.sfs
expect_rc 3 "features instead of hits"
has nofeat.err "no hit records: not the output of sf-match" "features instead of hits"
empty nofeat.out "features instead of hits: no output"
run noidx sf-match -i nonexistent.six a.sfs
expect_rc 3 "missing index"
# A list cut by a filter: keys without scores, scores without keys.
sf-cat --kind hit_keys -k img00001 q.out > keysonly.sfs
run ko sf-rank -k 1 keysonly.sfs q.out
expect_rc 1 "hit_keys without hit_scores"
has ko.err "^sf-rank: keysonly.sfs: 'img00001': hit_keys without hit_scores$" "keys without scores"
check "keys without scores: one line" [ "$(lines ko.err)" = 1 ]
check "keys without scores: the rest is ranked" [ "$(lines ko.out)" = 50 ]
sf-cat --kind hit_scores -k img00001 q.out > scoresonly.sfs
run so sf-rank scoresonly.sfs
expect_rc 1 "hit_scores without hit_keys"
has so.err "^sf-rank: scoresonly.sfs: 'img00001': hit_scores without hit_keys$" "scores without keys"
check "scores without keys: one line" [ "$(lines so.err)" = 1 ]

# Odd records written by test_hits --write-odd.
"$top_builddir/tests/test_hits" --write-odd . || exit 99
cat zero.sfs a.sfs > za.sfs
for mode in "-i all.six" "--pairwise a.sfs"; do
    run z sf-match $mode za.sfs
    expect_rc 1 "$mode: a query of 0 x 16 descriptors"
    has z.err "^sf-match: za.sfs: 'zero': local_desc: empty (dimension 0 is 0)$" \
        "$mode: a query of 0 descriptors is named"
    check "$mode: the queries after it are answered" \
        [ "$(sf-rank -k 1 z.out | awk -F'\t' '$1 == $3' | wc -l)" = 30 ]
done
cat nodim.sfs a.sfs > nodim_a.sfs
run nd sf-match --pairwise nodim_a.sfs a.sfs
expect_rc 1 "pairwise: a database image of 3 x 0 descriptors"
has nd.err "^sf-match: nodim_a.sfs: 'nodim': local_desc: empty (dimension 1 is 0)$" \
    "a database image of 3 x 0 descriptors is named"
check "... and the others serve" [ "$(sf-rank -k 1 nd.out | awk -F'\t' '$1 == $3' | wc -l)" = 30 ]
cat nan.sfs a.sfs > nan_a.sfs
run nq sf-match --pairwise a.sfs nan_a.sfs
expect_rc 1 "pairwise: a query with a NaN"
has nq.err "^sf-match: nan_a.sfs: 'nan': local_desc: 1 NaN or infinite values$" "a NaN query is named"
check "... and the queries after it are answered" \
    [ "$(sf-rank -k 1 nq.out | awk -F'\t' '$1 == $3' | wc -l)" = 30 ]
run ndb sf-match --pairwise nan_a.sfs a.sfs
expect_rc 1 "pairwise: a database image with a NaN"
has ndb.err "^sf-match: nan_a.sfs: 'nan': local_desc: 1 NaN or infinite values$" \
    "a NaN database image is named"
check "... once" [ "$(lines ndb.err)" = 1 ]
check "... and the others serve" [ "$(sf-rank -k 1 ndb.out | awk -F'\t' '$1 == $3' | wc -l)" = 30 ]
# t2 has 3 templates for 4 descriptors.
run st sf-match --pairwise tmpl.sfs --same-template --ratio 1 tmpl.sfs
expect_rc 1 "--same-template with a short local_index"
# Every reader refuses it the same way, as database image and as query.
has st.err "^sf-match: tmpl.sfs: 't2': local_index has 3 entries for 4 local_desc rows" \
    "--same-template: the image is named"
check "--same-template: one line each" [ "$(lines st.err)" = 2 ]
check "--same-template: t1 and t3 are answered, without t2" \
    [ "$(sf-rank -k 0 st.out | awk -F'\t' '$1 == $3 && $2 == 1 { printf "%s ", $1 } $3 == "t2"')" = "t1 t3 " ]
run st0 sf-match --pairwise tmpl.sfs --ratio 1 tmpl.sfs
expect_rc 1 "without --same-template a short local_index is refused all the same"
check "... and every other image finds itself" \
    [ "$(sf-rank -k 1 st0.out | awk -F'\t' '$1 == $3' | wc -l)" = 2 ]
# Globals of 0, 4, 4 and 3 floats.
run gd sf-match --global gdb.sfs -k 0 gq.sfs
expect_rc 1 "global: database vectors of 0 and 3 floats"
has gd.err "^sf-match: gdb.sfs: 'g0': global: empty (dimension 0 is 0)$" "a 0-float global"
has gd.err "^sf-match: gdb.sfs: g3: global is not one float32 vector of 4$" "a 3-float global"
check "global: the 4-float images by dot product" \
    [ "$(sf-rank -k 0 gd.out | cut -f2,3 | tr '\t\n' '  ')" = "1 g2 2 g1 " ]
sf-cat -k none gq.sfs > nothing.sfs
run ge sf-match --global nothing.sfs gq.sfs
expect_rc 0 "global: an empty database"
check "global: an empty database answers with no hits" \
    [ "$(sf-cat --text ge.out | grep -c '^q	hit_[a-z]*	index=0	scale=1	[uf][86]4*	0	')" = 2 ]

printf 'other\tg\nthing\tg\n' > nokeys.tsv
run nokey sf-rank --groups nokeys.tsv q.out
expect_rc 1 "no query in the answer key"
has nokey.err "^sf-rank: no query is in nokeys.tsv (the first is img00000)$" "no query in the key"
empty nokey.out "no report without queries"
# ---- usage ----
run u1 sf-match a.sfs
expect_rc 2 "no mode"
run u2 sf-match -i all.six --pairwise a.sfs a.sfs
expect_rc 2 "two modes"
run u3 sf-rank -f json q.out
expect_rc 2 "unknown format"
run u4 sf-rank --recall 0 --groups groups.tsv q.out
expect_rc 2 "recall at 0"
run u5 sf-rank --groups groups.tsv --gnd gnd.yaml q.out
expect_rc 2 "two answer keys"
run u6 sf-match --pairwise a.sfs --ratio 2 a.sfs
expect_rc 2 "ratio above 1"
run u7 sf-match -i all.six --ratio 0.8 a.sfs
expect_rc 2 "--ratio in query mode"
has u7.err "^sf-match: --ratio goes with --pairwise$" "--ratio in query mode"
run u8 sf-match --pairwise a.sfs --ma 3 a.sfs
expect_rc 2 "--ma without an index"
run u9 sf-match -i all.six --rerank 5 a.sfs
expect_rc 2 "--rerank without --global"
run u7 sf-rank --recall 5 q.out
expect_rc 2 "--recall without an answer key"
$gen --write-codebook 8 16 1 k8.sfcb || exit 99
sf-index -q create -C k8.sfcb k8.six && sf-index -q add k8.six a.sfs || exit 99
run u8 sf-match -i k8.six --ma 9 a.sfs
expect_rc 2 "--ma above the codebook size"
has u8.err "^sf-match: --ma 9: .*k8.sfcb has 8 words$" "--ma above the codebook size, said once"
finish
