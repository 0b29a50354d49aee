#!/bin/sh
# sf-report on real photos, checked in a real browser: headless Chromium
# loads a copy of the page with a probe script added (the page itself has
# none) that writes into the DOM it dumps every image's decoded size,
# every link's resolved URL and what the page says of each result; the
# test then checks that every image decoded at the size the page gives,
# that every link resolves to a file in the folder or an anchor of the
# page, and that marks, APs and the mAP are sf-rank's.  Also: keys that
# need escaping, a file that is gone and one that is not an image (one
# line each, a placeholder, exit 1), --root, the match-picture hook and
# usage errors.  Chromium comes from Debian's `chromium` (check.sh
# installs it); without one the test skips, and fails under CI=true.
. "$top_srcdir/tests/lib.sh"
need_photos
browser=
for b in ${SF_CHROMIUM:-} chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
[ -n "$browser" ] || skip "no Chromium found (apt-get install chromium; check.sh installs it)"

cd "$TMP" || exit 99
TMP=$(pwd)
photos=$SF_PHOTOS_DIR/multiview
lines() { wc -l < "$1" | tr -d ' '; }

# Six pairs of the answer key, and a seventh image under a name that
# needs escaping everywhere, in the group of the first pair.
mkdir pics
head -12 "$photos/groups.tsv" > key.tsv
cut -f1 key.tsv | while read -r f; do cp "$photos/$f" pics/; done
first=$(head -1 key.tsv | cut -f1)
odd="o<b>&amp;\"it's\".png"
cp "$photos/$first" "pics/$odd"
printf '%s\t%s\n' "$odd" "$(head -1 key.tsv | cut -f2)" >> key.tsv
# Keys relative to $TMP: pics/NAME.
cut -f1 key.tsv | sed 's|^|pics/|' > list.txt
count=$(lines list.txt)

sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99
sf-decode --size 224 --set image.scales=1 < list.txt |
    sf-extract -m small.sfm | sf-lit -m small.sfm --global > feats.sfs || exit 99
sf-match --global feats.sfs -k 0 feats.sfs > hits.sfs || exit 99
check "features of all $count photos" [ "$(sf-cat --list feats.sfs | wc -l)" = "$count" ]

# ---- the report, from another directory, keys under --root ----
mkdir elsewhere
(cd elsewhere && sf-report --root "$TMP" -o ../report -k 4 --groups ../key.tsv \
    --title "multiview <test>" ../hits.sfs > ../rep.out 2> ../rep.err)
rc=$?
check "sf-report exits 0 (got $rc: $(head -c 300 rep.err))" [ "$rc" -eq 0 ]
empty rep.out "nothing on stdout"
empty rep.err "nothing on stderr"
check "index.html" [ -s report/index.html ]
check "a thumbnail per image" [ "$(ls report/thumbs | wc -l)" = "$count" ]
check "the page has no script" sh -c "! grep -qi '<script' report/index.html"
check "the page names no other site" sh -c "! grep -Eqi '(src|href)=\"[a-z]*:|(src|href)=\"//' report/index.html"
check "the odd key is escaped" grep -qF 'o&lt;b&gt;&amp;amp;&#34;it&#39;s&#34;.png' report/index.html

# ---- in the browser ----
# probe PAGE: dump the DOM of PAGE, with the probe added, into PAGE.dom,
# and the probe's lines, entities decoded, into PAGE.probe.
probe() {
    sed 's|</body>|<script src="probe.js"></script></body>|' "$1/index.html" > "$1/probe.html"
    cat > "$1/probe.js" <<'EOF'
window.addEventListener('load', function () {
  var out = [];
  for (const img of document.images)
    out.push(['img', img.src, img.complete, img.naturalWidth, img.naturalHeight,
              img.getAttribute('width'), img.getAttribute('height')].join('\t'));
  for (const el of document.querySelectorAll('[href],[src]')) {
    if (el.tagName === 'SCRIPT') continue;
    var url = new URL(el.getAttribute('href') !== null ? el.getAttribute('href') : el.getAttribute('src'), document.baseURI);
    if (url.hash && url.pathname === location.pathname)
      out.push(['anchor', url.hash, document.getElementById(url.hash.slice(1)) ? 1 : 0].join('\t'));
    else
      out.push(['link', url.href].join('\t'));
  }
  for (const li of document.querySelectorAll('li.hit')) {
    var q = li.closest('section').querySelector('h2 .key').textContent;
    out.push(['hit', q, li.querySelector('.rank').textContent, li.className.replace('hit ', ''),
              li.querySelector('figcaption .key').textContent].join('\t'));
  }
  for (const s of document.querySelectorAll('section.query'))
    out.push(['ap', s.querySelector('h2 .key').textContent, s.getAttribute('data-ap')].join('\t'));
  var m = document.getElementById('map');
  out.push(['map', m ? m.getAttribute('data-map') : ''].join('\t'));
  out.push('done');
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = out.join('\n');
  document.body.appendChild(pre);
});
EOF
    rm -rf "$TMP/profile"
    timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
        --user-data-dir="$TMP/profile" \
        --run-all-compositor-stages-before-draw --virtual-time-budget=10000 \
        --dump-dom "file://$TMP/$1/probe.html" > "$1.dom" 2> "$1.browser.err"
    sed -n '/<pre id="probe">/,/<\/pre>/p' "$1.dom" |
        sed 's|.*<pre id="probe">||; s|</pre>.*||' |
        sed 's/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&#39;/'"'"'/g; s/&nbsp;/ /g; s/&amp;/\&/g' > "$1.probe"
    rm -f "$1/probe.html" "$1/probe.js"
}
# broken_links DIR PROBE: the anchors of the probe that are no element of
# the page and the links that are no file inside DIR, one a line.
broken_links() {
    awk -F'\t' '$1 == "anchor" && $3 != 1 { print "no element " $2 }' "$2"
    awk -F'\t' '$1 == "link" { print $2 }' "$2" | while read -r url; do
        case $url in
        "file://$TMP/$1/"*)
            f=$(printf '%s' "${url#file://}" | sed 's/%\([0-9A-Fa-f][0-9A-Fa-f]\)/\\x\1/g')
            [ -f "$(printf '%b' "$f")" ] || echo "no file for $url" ;;
        *) echo "$url leaves the folder $1" ;;
        esac
    done
}
# broken_images PROBE: the images of the probe that did not decode, or
# not at the size the page gives.
broken_images() {
    awk -F'\t' '$1 == "img" && ($3 != "true" || $4 == 0 || $4 != $6 || $5 != $7)' "$1"
}

probe report
check "the browser ran the probe ($(tail -c 300 report.browser.err))" grep -qx done report.probe
awk -F'\t' '$1 == "img"' report.probe > imgs.txt
check "an image per query and per shown result: $(lines imgs.txt)" \
    [ "$(lines imgs.txt)" = $((count + count * 4)) ]
bad=$(broken_images report.probe)
check "every image decodes at the size the page gives${bad:+: $bad}" [ -z "$bad" ]
check "the page has links and anchors" \
    sh -c "grep -q '^link	' report.probe && grep -q '^anchor	' report.probe"
bad=$(broken_links report report.probe)
check "every link resolves to a file of the folder or an anchor${bad:+: $bad}" [ -z "$bad" ]

# The marks: sf-rank's top 4, right when the result is in the query's
# group, the query itself marked as such.
sf-rank -k 4 hits.sfs | sed 's|pics/||g' |
    awk -F'\t' 'NR == FNR { g[$1] = $2; next }
        { m = $1 == $3 ? "ignored" : g[$1] == g[$3] ? "right" : "wrong"
          print $1 "\t" $2 "\t" m "\t" $3 }' key.tsv - > marks.want
awk -F'\t' '$1 == "hit" { print $2 "\t" $3 "\t" $4 "\t" $5 }' report.probe |
    sed 's|pics/||g' > marks.got
check "marks: $(lines marks.got) results, as sf-rank and the key say" cmp -s marks.want marks.got
check "some results are right, some wrong" \
    sh -c "grep -q '	right	' marks.got && grep -q '	wrong	' marks.got"
check "the odd key is shown as it is" grep -qF "$odd" marks.got
# APs and the mAP: sf-rank's over the whole lists.
sf-rank --groups key.tsv --per-query hits.sfs > eval.txt
awk -F'\t' '!/^#/ && $2 == "groups" && $3 != "nan" { print $1 "\t" $3 }' eval.txt | sort > ap.want
awk -F'\t' '$1 == "ap" && $3 != "" { print $2 "\t" $3 }' report.probe | sort > ap.got
check "AP of every query: as sf-rank --per-query ($(lines ap.got))" cmp -s ap.want ap.got
map=$(awk -F'\t' '$1 == "groups" && $2 ~ /^[0-9]+$/ { print $3 }' eval.txt)
check "mAP $map" [ "$(awk -F'\t' '$1 == "map" { print $2 }' report.probe)" = "$map" ]

# The checks can fail: a copy with a thumbnail that is not a JPEG, one
# that is gone, a broken anchor and a link out of the folder.
cp -R report broken
printf 'not a JPEG' > broken/thumbs/000002.jpg
rm broken/thumbs/000003.jpg
sed -i 's|href="#q2"|href="#q99"|; s|href="#q3"|href="../key.tsv"|' broken/index.html
probe broken
check "the probe flags the two thumbnails" \
    [ "$(broken_images broken.probe | cut -f2 | sed 's|.*/||' | sort -u | tr '\n' ' ')" = "000002.jpg 000003.jpg " ]
broken_links broken broken.probe > broken.links
check "the link check flags the anchor, the file gone and the link out ($(tr '\n' ';' < broken.links))" \
    sh -c "grep -qx 'no element #q99' broken.links && grep -q '^no file for .*/000003.jpg$' broken.links &&
           grep -q 'key.tsv leaves' broken.links && ! grep -v -e q99 -e 000003.jpg -e key.tsv broken.links"

# ---- a file that is gone, one that is not an image; the match hook ----
gone=$(sed -n 3p list.txt) broken=$(sed -n 5p list.txt)
mv "$gone" gone.jpg
printf 'not an image\n' > "$broken"
q1=$(head -1 list.txt)
hit=$(sf-rank -k 2 hits.sfs | sed -n 2p | cut -f3)
printf '%s\t%s\t%s\n' "$q1" "$hit" "gone.jpg" > matches.tsv
printf 'one field\n' >> matches.tsv
run bad sf-report -o report2 -k 3 --matches matches.tsv --no-self hits.sfs
expect_rc 1 "unreadable images"
empty bad.out "nothing on stdout"
check "one line for each: the missing, the broken file, the bad matches line ($(cat bad.err))" \
    [ "$(lines bad.err)" = 3 ]
has bad.err "^sf-report: $gone: " "the missing file is named"
has bad.err "^sf-report: $broken: .*not an image" "the broken file is named"
has bad.err "^sf-report: matches.tsv: line 2: " "the bad line of the matches list"
check "placeholders for the two" [ "$(grep -o 'class="missing"' report2/index.html | wc -l)" -ge 2 ]
check "the match picture" [ "$(od -An -c -N4 report2/matches/000001.png | tr -d ' ')" = '211PNG' ]
check "is linked" grep -q '<a href="matches/000001.png">' report2/index.html
check "--no-self: no query among its results" sh -c "! grep -q 'hit ignored' report2/index.html"
probe report2
check "the browser ran the probe" grep -qx done report2.probe
bad=$(broken_images report2.probe)
check "every image decodes, placeholders aside${bad:+: $bad}" [ -z "$bad" ]
check "fewer images: $count thumbnails less two" \
    [ "$(awk -F'\t' '$1 == "img"' report2.probe | wc -l)" -lt $((count + count * 3)) ]
bad=$(broken_links report2 report2.probe)
check "every link resolves${bad:+: $bad}" [ -z "$bad" ]
mv gone.jpg "$gone"

# ---- usage errors ----
run u1 sf-report hits.sfs
expect_rc 2 "no -o"
empty u1.out "no -o: nothing on stdout"
run u2 sf-report -o r3 --thumb-size 2 hits.sfs
expect_rc 2 "--thumb-size 2"
run u3 sf-report -o r3 --groups no-such.tsv hits.sfs
expect_rc 2 "an answer key that cannot be read"
check "no folder after a usage error" [ ! -e r3 ]
run u4 sf-report -o r4 feats.sfs
expect_rc 3 "features are not hits"
check "no page from input that is not hits" [ ! -e r4/index.html ]
printf 'x\n' > file
run u5 sf-report -o file hits.sfs
expect_rc 3 "-o names a file"
has u5.err "^sf-report: file: not a directory" "says so"
run u6 sf-report -o r6 --root no-such-dir hits.sfs
expect_rc 2 "--root names no folder"
has u6.err "^sf-report: --root: no-such-dir: " "says so"
run u7 sf-report -o r6 --matches no-such.tsv hits.sfs
expect_rc 2 "a --matches list that cannot be read"
has u7.err "^sf-report: no-such.tsv: " "names it"
check "no folder after usage errors" [ ! -e r6 ]
finish
