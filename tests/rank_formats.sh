#!/bin/sh
# sf-rank's outputs for other tools, each read back by its own grammar:
# CSV (RFC 4180) and JSON Lines parsed here with awk and compared with the
# TSV; COLMAP, hloc and kapture pairs files parsed as those tools do and
# compared with -f pairs; names a grammar cannot hold refused, one line
# each and exit 1, never written broken; COLMAP itself reading the pairs
# (when installed; required under CI=true).
. "$top_srcdir/tests/lib.sh"
for p in sf-rank "$top_builddir/tests/test_hits"; do
    command -v "$p" >/dev/null 2>&1 || { echo "$p not found" >&2; exit 99; }
done
cd "$TMP" || exit 99

# Hits whose keys hold what the formats must quote, escape or refuse:
# query TAB key TAB score, keys with \t \n \xHH escapes (test_hits).
hit() { printf '%s\t%s\t%s\n' "$1" "$2" "$3"; }
{
    hit photos/a.jpg photos/a.jpg 1
    hit photos/a.jpg photos/sub/b.png 0.75
    hit photos/a.jpg 'photos/c,d.jpg' 0.5
    hit photos/a.jpg 'photos/q"uote.jpg' 0.25
    hit photos/sub/b.png photos/a.jpg 0.75
    hit photos/sub/b.png 'photos/caf\xc3\xa9.jpg' 0.125
    hit photos/sub/b.png 'photos/e f.jpg' 0.0625
    hit 'photos/caf\xc3\xa9.jpg' 'photos/#h.jpg' 3
    hit 'photos/caf\xc3\xa9.jpg' 'photos/bad\xff.jpg' 2
    hit 'photos/caf\xc3\xa9.jpg' elsewhere/z.jpg 1.5
    hit 'photos/x\ny.jpg' photos/a.jpg 1e-05
    hit 'photos/t\tab.jpg' photos/a.jpg -0.5
} | "$top_builddir/tests/test_hits" --hits-from-text h.sfs || exit 99
sf-rank -k 0 h.sfs > ref.tsv || exit 99
check "the reference TSV: 12 results" [ "$(wc -l < ref.tsv)" -eq 12 ]
same() { checks=$((checks + 1)); cmp -s "$1" "$2" || fail "$3: $(diff "$1" "$2" | head -8)"; }
cafe=$(printf 'caf\303\251')
bad=$(printf 'bad\377')

# ---- CSV ----
# RFC 4180 read back strictly: CRLF record ends; quoted fields, "" inside;
# a quote, CR or LF anywhere else is an error.  Fields come out escaped as
# sf-rank's TSV escapes keys, tab-separated.
csv2tsv() {
    awk 'BEGIN { RS = "\001" }
    function esc(s) { gsub(/\\/, "\\\\", s); gsub(/\t/, "\\t", s); gsub(/\n/, "\\n", s);
                      gsub(/\r/, "\\r", s); return s }
    function bad(why) { print "CSV error at byte " i ": " why > "/dev/stderr"; err = 1; exit 1 }
    {
        n = length($0); i = 1; f = ""; rec = ""; nf = 0
        while (i <= n) {
            c = substr($0, i, 1)
            if (c == "\"" && f == "" && !inq_done) {         # a quoted field
                i++
                while (1) {
                    if (i > n) bad("unterminated quote")
                    c = substr($0, i, 1)
                    if (c == "\"") {
                        if (substr($0, i + 1, 1) == "\"") { f = f "\""; i += 2; continue }
                        i++; break
                    }
                    f = f c; i++
                }
                inq_done = 1
                c = substr($0, i, 1)
                if (c != "," && substr($0, i, 2) != "\r\n") bad("text after a closing quote")
                continue
            }
            if (c == ",") { rec = rec (nf ? "\t" : "") esc(f); nf++; f = ""; inq_done = 0; i++; continue }
            if (substr($0, i, 2) == "\r\n") {
                rec = rec (nf ? "\t" : "") esc(f); nf++
                if (nf != 4) bad(nf " fields")
                print rec; rec = ""; nf = 0; f = ""; inq_done = 0; i += 2; continue
            }
            if (c == "\"" || c == "\r" || c == "\n") bad("bare quote or line break")
            f = f c; i++
        }
        if (f != "" || nf) bad("no CRLF at the end")
    }' "$@"
}
run csv sf-rank -k 0 -f csv h.sfs
expect_rc 0 "CSV"
empty csv.err "CSV: no messages"
{ printf 'query\trank\tkey\tscore\n'; cat ref.tsv; } > want_csv.tsv
csv2tsv csv.out > got_csv.tsv
same want_csv.tsv got_csv.tsv "CSV read back as RFC 4180 equals the TSV"
has csv.out ',"photos/c,d.jpg",' "a comma is quoted"
has csv.out '"photos/q""uote.jpg"' "a quote is doubled inside quotes"
sf-rank -k 1 -f csv h.sfs | head -c 22 > head.bin
printf 'query,rank,key,score\r\n' > head.want
same head.want head.bin "the header row, CRLF"

# ---- JSON Lines ----
# Each line one object {"query":S,"rank":N,"key":S,"score":X} read with a
# JSON string parser (escapes, \uXXXX for ASCII); out as the TSV.
json2tsv() {
    awk '
    function bad(why) { print "JSON error on line " NR ": " why ": " $0 > "/dev/stderr"; exit 1 }
    function str(   s, c, h) {                     # the string at p
        if (substr($0, p, 1) != "\"") bad("no string")
        p++; s = ""
        while (1) {
            c = substr($0, p, 1)
            if (c == "") bad("unterminated string")
            if (c == "\"") { p++; return s }
            if (c == "\\") {
                c = substr($0, p + 1, 1); p += 2
                if (c == "n") s = s "\\n"; else if (c == "t") s = s "\\t"
                else if (c == "r") s = s "\\r"; else if (c == "\\") s = s "\\\\"
                else if (c == "\"" || c == "/") s = s c
                else if (c == "b") s = s "\b"; else if (c == "f") s = s "\f"
                else if (c == "u") {
                    h = substr($0, p, 4); p += 4
                    if (h !~ /^00[0-7][0-9a-fA-F]$/) bad("\\u" h " past ASCII")
                    s = s sprintf("%c", hex(h))
                } else bad("bad escape \\" c)
                continue
            }
            if (c < " ") bad("raw control character")
            s = s c; p++
        }
    }
    function hex(h,   v, i) { v = 0; for (i = 1; i <= 4; i++) v = v * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1; return v }
    function lit(t) { if (substr($0, p, length(t)) != t) bad("expected " t); p += length(t) }
    {
        p = 1
        lit("{\"query\":"); q = str(); lit(",\"rank\":")
        match(substr($0, p), /^[0-9]+/); if (!RSTART) bad("rank"); r = substr($0, p, RLENGTH); p += RLENGTH
        lit(",\"key\":"); k = str(); lit(",\"score\":")
        rest = substr($0, p)
        if (rest !~ /^(null|-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)}$/) bad("score")
        print q "\t" r "\t" k "\t" substr(rest, 1, length(rest) - 1)
    }' "$@"
}
run jsonl sf-rank -k 0 -f jsonl h.sfs
expect_rc 1 "JSON Lines with a key that is not UTF-8"
check "one line for it" [ "$(wc -l < jsonl.err)" -eq 1 ]
has jsonl.err "photos/bad\\\\xFF.jpg: not valid UTF-8 (byte 11), which a JSON string cannot hold" \
    "the message names the key and the byte"
has jsonl.err "; result 2 of photos/$cafe.jpg left out$" "which result of which query"
check "JSON Lines output is valid UTF-8" iconv -f UTF-8 -t UTF-8 jsonl.out -o /dev/null
{ hit 'q\xfe.jpg' a.jpg 1; hit 'q\xfe.jpg' b.jpg 0.5; hit ok.jpg a.jpg 1; } |
    "$top_builddir/tests/test_hits" --hits-from-text badq.sfs || exit 99
run badq sf-rank -f jsonl badq.sfs
expect_rc 1 "JSON Lines with a query that is not UTF-8"
check "badq: one line for the query" [ "$(wc -l < badq.err)" -eq 1 ]
has badq.err 'q\\xFE.jpg: not valid UTF-8 (byte 2), which a JSON string cannot hold; its 2 results left out' \
    "badq: says how many results are left out"
check "badq: the other query's result is written" [ "$(cat badq.out)" = '{"query":"ok.jpg","rank":1,"key":"a.jpg","score":1}' ]
grep -a -v "$bad" ref.tsv > want_jsonl.tsv
json2tsv jsonl.out > got_jsonl.tsv
same want_jsonl.tsv got_jsonl.tsv "JSON Lines read back equal the TSV but for the refused result"
has jsonl.out '"key":"photos/q\\"uote.jpg"' "a quote escaped"
has jsonl.out '"query":"photos/x\\ny.jpg"' "a line feed escaped"

# ---- pairs files ----
sf-rank -k 0 -f pairs h.sfs > pairs.tsv || exit 99
check "-f pairs: 10 pairs" [ "$(wc -l < pairs.tsv)" -eq 10 ]
# Pairs as "a<TAB>b", a sorting first, names with the root put back and
# escaped as TSV: comparable with -f pairs.
norm() { awk -F'\t' '{ a = "photos/" $1; b = "photos/" $2
                       if (a < b) print a "\t" b; else print b "\t" a }' | LC_ALL=C sort; }
LC_ALL=C sort pairs.tsv > pairs.sorted
# check_pairs FORMAT PARSED: the pairs the grammar read back are pairs of
# -f pairs, and with the refused ones (a line each) they are all of them.
check_pairs() {
    norm < "$2" > "$1.norm"
    checks=$((checks + 1))
    [ "$(LC_ALL=C comm -23 "$1.norm" pairs.sorted | wc -l)" -eq 0 ] ||
        fail "$1: pairs not in -f pairs: $(LC_ALL=C comm -23 "$1.norm" pairs.sorted | head -3)"
    check "$1: written + refused = every pair" \
        [ $(($(wc -l < "$1.norm") + $(wc -l < "$1.err"))) -eq 10 ]
    check "$1: each message says which pair and why" \
        [ "$(grep -c '^sf-rank: pair .* left out: ' "$1.err")" -eq "$(wc -l < "$1.err")" ]
}

# COLMAP: lines trimmed, empty and #... skipped, names split at spaces.
run colmap sf-rank -k 0 -f colmap --root photos h.sfs
expect_rc 1 "colmap with names it cannot hold"
awk '{ sub(/^[ \t\r\v\f]+/, ""); sub(/[ \t\r\v\f]+$/, "") }
     $0 == "" || /^#/ { next }
     { n = split($0, f, " "); if (n != 2) { print "COLMAP: " n " names: " $0 > "/dev/stderr"; exit 1 }
       print f[1] "\t" f[2] }' colmap.out > colmap.parsed
check "colmap: every line is two names" [ $? -eq 0 ]
printf '%s\n' "a.jpg	sub/b.png" "a.jpg	c,d.jpg" 'a.jpg	q"uote.jpg' "$cafe.jpg	sub/b.png" \
    "$bad.jpg	$cafe.jpg" > colmap.want
same colmap.want colmap.parsed "colmap: the pairs, in -f pairs order, names under the root"
check_pairs colmap colmap.parsed
has colmap.err "photos/e f.jpg: holds a space, where COLMAP's image_pairs.txt splits" "colmap: a space"
has colmap.err "photos/#h.jpg: starts with #" "colmap: a first name from #"
has colmap.err "elsewhere/z.jpg: not under the root photos" "colmap: outside the root"
has colmap.err 'photos/x\\ny.jpg: holds white space' "colmap: a line feed, printed escaped"

# hloc: Python's line.split() must give two names, query first.
run hloc sf-rank -k 0 -f hloc --root photos/ h.sfs
expect_rc 1 "hloc with names it cannot hold"
awk 'NF != 2 { print "hloc: " NF " names: " $0 > "/dev/stderr"; exit 1 } { print $1 "\t" $2 }' \
    hloc.out > hloc.parsed
check "hloc: every line is two names" [ $? -eq 0 ]
printf '%s\n' "a.jpg	sub/b.png" "a.jpg	c,d.jpg" 'a.jpg	q"uote.jpg' "sub/b.png	$cafe.jpg" \
    "$cafe.jpg	#h.jpg" > hloc.want
same hloc.want hloc.parsed "hloc: query, then hit, as first met"
check_pairs hloc hloc.parsed
has hloc.err "photos/bad\\\\xFF.jpg: is not valid UTF-8 (byte 11)" "hloc: not UTF-8"

# kapture: its header, then `query, map, score`; lines from # skipped,
# fields split at commas and stripped.
run kapture sf-rank -k 0 -f kapture --root ./photos h.sfs
expect_rc 1 "kapture with names it cannot hold"
check "kapture: its header" [ "$(head -2 kapture.out)" = "# kapture format: 1.1
# query_image, map_image, score" ]
awk '/^#/ || /^[ \t]*$/ { next }
     { n = split($0, f, ","); if (n != 3) { print "kapture: " n " fields: " $0 > "/dev/stderr"; exit 1 }
       for (i = 1; i <= 3; i++) { sub(/^[ \t]+/, "", f[i]); sub(/[ \t]+$/, "", f[i]); gsub(/\t/, "\\t", f[i]) }
       if (f[3] !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) { print "kapture: score " f[3] > "/dev/stderr"; exit 1 }
       print f[1] "\t" f[2] "\t" f[3] }' kapture.out > kapture.parsed3
check "kapture: every line is three fields" [ $? -eq 0 ]
# (a tab inside a name is kept by kapture's reader: shown here as \t)
printf '%s\n' "a.jpg	sub/b.png	0.75" 'a.jpg	q"uote.jpg	0.25' "sub/b.png	$cafe.jpg	0.125" \
    "sub/b.png	e f.jpg	0.0625" "$cafe.jpg	#h.jpg	3" 't\tab.jpg	a.jpg	-0.5' > kapture.want
same kapture.want kapture.parsed3 "kapture: query, map image, its score, as first met"
cut -f1,2 kapture.parsed3 > kapture.parsed
check_pairs kapture kapture.parsed
has kapture.err "photos/c,d.jpg: holds a comma" "kapture: a comma"
has kapture.err 'photos/x\\ny.jpg: holds a line break' "kapture: a line break"

# ---- usage ----
run json sf-rank -f json h.sfs
expect_rc 2 "-f json"
empty json.out "-f json: nothing on stdout"
has json.err "JSON Lines: jsonl" "-f json points to jsonl"
run root sf-rank -f csv --root photos h.sfs
expect_rc 2 "--root without a pairs format"
empty root.out "--root with csv: nothing on stdout"
run noroot sf-rank -k 0 -f colmap h.sfs
expect_rc 1 "without --root"
check "without --root, relative keys are written as they are" \
    [ "$(head -1 noroot.out)" = "photos/a.jpg photos/sub/b.png" ]
check "without --root, 3 pairs refused (photos/#h.jpg starts with no #)" \
    [ "$(wc -l < noroot.err)" -eq 3 ]
{ hit /data/p/a.jpg /data/p/b.jpg 1; hit /data/p/b.jpg /data/p/a.jpg 1; } |
    "$top_builddir/tests/test_hits" --hits-from-text abs.sfs || exit 99
run abs sf-rank -f hloc abs.sfs
expect_rc 1 "absolute keys without --root"
empty abs.out "absolute keys: nothing written"
has abs.err "/data/p/a.jpg: an absolute path, but hloc's pairs file names images relative to their folder: give that folder as the root" \
    "absolute keys: the message says to give the root"
run absroot sf-rank -f hloc --root /data/p abs.sfs
expect_rc 0 "absolute keys under --root"
check "absolute keys under --root: names relative to it" [ "$(cat absroot.out)" = "a.jpg b.jpg" ]

# ---- COLMAP reads the file ----
# Its image names are the files under the folder given as --image_path;
# every pair sf-rank wrote must be in its database after matches_importer.
if ! command -v colmap >/dev/null 2>&1 || ! command -v sqlite3 >/dev/null 2>&1; then
    [ "${CI:-}" != true ] || { fail "CI=true: colmap and sqlite3 are required"; finish; exit; }
    echo "rank_formats: colmap or sqlite3 not installed: COLMAP not run (check.sh installs them)"
else
    img="$top_srcdir/examples/images"
    mkdir -p photos/sub
    cp "$img/aero1.jpg" photos/a.jpg && cp "$img/box.png" photos/sub/b.png &&
        cp "$img/aero3.jpg" 'photos/c,d.jpg' && cp "$img/butterfly.jpg" 'photos/q"uote.jpg' &&
        cp "$img/aero1.jpg" "photos/$cafe.jpg" && cp "$img/aero3.jpg" "photos/$bad.jpg" || exit 99
    export QT_QPA_PLATFORM=offscreen
    colmap database_creator --database_path c.db > colmap_run.log 2>&1 &&
        colmap feature_extractor --database_path c.db --image_path photos \
            --SiftExtraction.use_gpu 0 --SiftExtraction.num_threads 2 \
            --SiftExtraction.max_image_size 320 >> colmap_run.log 2>&1 &&
        colmap matches_importer --database_path c.db --match_list_path colmap.out \
            --match_type pairs --SiftMatching.use_gpu 0 --SiftMatching.num_threads 2 \
            > colmap_match.log 2>&1
    check "COLMAP ran (log: $TMP/colmap_run.log)" [ $? -eq 0 ]
    check "COLMAP found every image the pairs name" sh -c "! grep -q 'does not exist' colmap_match.log"
    # pair_id = 2147483647 * id1 + id2, id1 < id2; back to names.
    sqlite3 -separator '	' c.db 'SELECT image_id, name FROM images;' > ids.tsv
    sqlite3 c.db 'SELECT pair_id FROM matches;' |
        awk -F'\t' 'NR == FNR { name[$1] = $2; next }
            { a = int($1 / 2147483647); b = $1 - a * 2147483647; print name[a] "\t" name[b] }' \
            ids.tsv - | norm > colmap_db.norm
    norm < colmap.parsed > colmap.sorted
    same colmap.sorted colmap_db.norm "COLMAP's database holds exactly the pairs written"
fi
finish
