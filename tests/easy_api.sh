#!/bin/sh
# The high-level API (sf_easy.h) gives the pipeline's numbers: the
# features of every example photo, from a file and from memory, equal
# sf-decode | sf-extract | sf-lit --global's records bit for bit, and its
# queries equal sf-match -i | sf-rank line for line.  Then the installed
# library: sf.pc names no directory the public headers do not need, and
# examples/embed.c builds against the installed headers and library with
# pkg-config alone, runs, and prints what the five programs print; a
# broken photo fails alone, features of another model are refused.
. "$top_srcdir/tests/lib.sh"
cd "$TMP" || exit 99
mkdir photos && cp "$top_srcdir"/examples/images/*.jpg "$top_srcdir"/examples/images/*.png photos/ || exit 99
ls photos/* > list.txt
count=$(wc -l < list.txt | tr -d ' ')
cat > preset.yaml <<'EOF'
image:
  size: 320
  scales: [1.0, 0.7071]
features:
  global: true
EOF

# Threads that wait without spinning, as the programs set them for
# themselves (sf_cli_prefer_passive_threads): the machine may be shared.
OMP_WAIT_POLICY=PASSIVE; export OMP_WAIT_POLICY
# The programs' choice of backend; the API's comes from its options.
unset SF_BACKEND
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 1 -o small.sfm || exit 99
sf-model random --arch resnet18 --dim 256 --N 64 --T 2 --seed 2 -o other.sfm || exit 99
sf-decode -c preset.yaml < list.txt | sf-extract -m small.sfm -c preset.yaml |
    sf-lit -m small.sfm -c preset.yaml > photos.sfs || exit 99
check "the pipeline's features of all $count photos" [ "$(sf-cat --list photos.sfs | wc -l)" = "$count" ]

# ---- features: the API against the pipeline ----
run compare easy_compare -c preset.yaml small.sfm photos.sfs
expect_rc 0 "API features equal the pipeline's"
check "every photo compared, from file and memory ($(cat compare.err | head -3))" \
    [ "$(grep -c '^same ' compare.out)" = "$count" ]
# Extractors in threads at the same time give the same numbers.
run threads easy_compare -j 2 -c preset.yaml small.sfm photos.sfs
expect_rc 0 "two extractors in two threads"
check "two threads compared every photo" [ "$(grep -c '^same ' threads.out)" = "$((2 * count))" ]
# The reference backend too, as the programs would run it (one photo:
# it is slow).
head -1 list.txt > one.txt
sf-decode -c preset.yaml < one.txt | sf-extract -m small.sfm -c preset.yaml --backend reference |
    sf-lit -m small.sfm -c preset.yaml --backend reference > photos_ref.sfs
run compare_ref easy_compare -b reference -c preset.yaml small.sfm photos_ref.sfs
expect_rc 0 "reference backend: API features equal the pipeline's"
# The comparison can fail: other settings give other numbers.
printf 'image:\n  size: 256\n  scales: [1.0, 0.7071]\n' > other.yaml
run differ easy_compare -c other.yaml small.sfm photos.sfs
expect_rc 1 "other settings: the comparison fails"
has differ.err 'local_desc differs\|bytes in the stream' "the difference is named"
run nomodel easy_compare -c preset.yaml no-such-model.sfm photos.sfs
expect_rc 3 "a missing model"
has nomodel.err 'no-such-model.sfm' "the message names the model"

# ---- the index, as the programs build and search it ----
sf-codebook -q -k 32 --iterations 5 --seed 1 -o words.sfcb photos.sfs || exit 99
sf-index -q create -C words.sfcb photos.six && sf-index -q add photos.six photos.sfs || exit 99
sf-match -i photos.six -k 5 photos.sfs | sf-rank -k 5 > pipeline.tsv
check "pipeline ranking ($(wc -l < pipeline.tsv) lines)" [ "$(wc -l < pipeline.tsv)" -eq $((5 * count)) ]
# Every query's hits, keys and scores, bit for bit.
sf-match -i photos.six -k 0 photos.sfs > hits.sfs
run hits easy_compare -c preset.yaml -q photos.six -H hits.sfs small.sfm photos.sfs
expect_rc 0 "API hits equal sf-match's, bit for bit"
check "every photo's hits compared" [ "$(grep -c '^same ' hits.out)" = "$count" ]

# ---- what the API refuses ----
run errors easy_compare -e -c preset.yaml small.sfm photos.six photos/left.jpg
expect_rc 0 "the API's answers to wrong input ($(grep -A1 '^FAIL' errors.out | head -4))"
check "error cases run" [ "$(grep -c '^ok: ' errors.out)" -ge 30 ]

# ---- the installed library ----
make=${MAKE:-make}
# A make of its own, not a part of the one running the tests.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $make -s -C "$top_builddir" DESTDIR="$TMP/inst" \
    install-libLTLIBRARIES install-sfincludeHEADERS install-pkgconfigDATA install-man \
    > install.log 2>&1 || { cat install.log; fail "make install DESTDIR=$TMP/inst"; finish; exit 1; }
pc=$(find "$TMP/inst" -name sf.pc | head -1)
check "sf.pc installed" [ -n "$pc" ]
PKG_CONFIG_PATH=$(dirname "$pc"); PKG_CONFIG_SYSROOT_DIR=$TMP/inst
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
pkg-config --cflags sf > cflags.txt 2>&1
check "--cflags: the installed include directory only ($(cat cflags.txt))" \
    sh -c 'set -- $(cat cflags.txt); [ $# -eq 1 ] && case $1 in -I"$0"*/include/sf) true ;; *) false ;; esac' "$TMP/inst"
check "--cflags: no GLib or libvips directory" sh -c '! grep -q "glib\|vips" cflags.txt'
pkg-config --libs sf > libs.txt
check "--libs: libsf only ($(cat libs.txt))" sh -c 'set -- $(cat libs.txt); [ $# -eq 2 ] && [ "$2" = -lsf ]'
pkg-config --static --libs sf > static.txt
for l in -lsf -lvips -lglib-2.0 -lyaml -lxxhash -ldnnl; do
    check "--static --libs names $l" grep -q -- "$l\( \|$\)" static.txt
done
for page in libsf.3 sf_easy.3 sf_extractor_open.3 sf_finder_query.3; do
    check "man page $page installed" [ -n "$(find "$TMP/inst" -path "*/man3/$page")" ]
done

# embed.c with nothing but what pkg-config says (and this build's
# warning and sanitizer flags, which the library was built with).
run cc ${CC:-cc} ${SF_CFLAGS:-} -o embed "$top_srcdir/examples/embed.c" \
    $(pkg-config --cflags --libs sf) ${SF_LDFLAGS:-}
expect_rc 0 "embed.c compiles against the installed library"
libdir=$(dirname "$(dirname "$pc")")
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; export LD_LIBRARY_PATH
check "embed uses the installed libsf" sh -c "ldd ./embed | grep -q '$libdir/libsf.so'"
run embed ./embed -c preset.yaml -k 5 small.sfm photos.six $(cat list.txt)
expect_rc 0 "embed"
check "embed prints the pipeline's ranking ($(diff embed.out pipeline.tsv | head -3))" \
    cmp -s embed.out pipeline.tsv
empty embed.err "embed: stderr"
run embed_mem ./embed -m -c preset.yaml -k 5 small.sfm photos.six $(cat list.txt)
check "embed from memory: the same" cmp -s embed_mem.out pipeline.tsv
# All hits, as sf-match -k 0.
sf-match -i photos.six -k 0 photos.sfs | sf-rank -k 0 > all.tsv
run embed_all ./embed -c preset.yaml -k 0 small.sfm photos.six $(cat list.txt)
check "embed -k 0: every image, as sf-match -k 0" cmp -s embed_all.out all.tsv

# The example of sf_easy(3), as the page shows it.
awk '/^\.SH EXAMPLE/ { e = 1 } e && /^\.RE$/ { exit } e && p { print } e && /^\.RS$/ { p = 1 }' \
    "$top_srcdir/man/sf_easy.3" | sed 's/\\e/\\/g' > search.c
run cc_man ${CC:-cc} ${SF_CFLAGS:-} -o search search.c $(pkg-config --cflags --libs sf) ${SF_LDFLAGS:-}
expect_rc 0 "the example of sf_easy(3) compiles"
first=$(head -1 list.txt)
run search ./search small.sfm photos.six "$first" preset.yaml
expect_rc 0 "the example of sf_easy(3) runs"
awk -F'\t' -v q="$first" '$1 == q && $2 <= 10 { print $3 }' all.tsv > search.want
check "sf_easy(3)'s example finds the pipeline's images" sh -c 'cut -f1 search.out | cmp -s - search.want'

# A broken photo fails alone: named on stderr, the others answered.
printf 'not a photo\n' > broken.jpg
last=$(tail -1 list.txt)
run broken ./embed -c preset.yaml -k 5 small.sfm photos.six "$first" broken.jpg "$last"
expect_rc 1 "a broken photo: exit 1"
has broken.err '^embed: broken.jpg' "the broken photo is named"
check "one line on stderr" [ "$(wc -l < broken.err)" -eq 1 ]
grep -e "^$first	" -e "^$last	" pipeline.tsv > two.tsv
check "the other photos are answered" cmp -s broken.out two.tsv
# Features of another model are refused by the index.
run other ./embed -c preset.yaml -k 5 other.sfm photos.six "$first"
expect_rc 1 "another model's features: exit 1"
has other.err 'features made as' "another model's features are refused"
empty other.out "another model: no hits"
run noindex ./embed -c preset.yaml small.sfm no-such.six "$first"
expect_rc 3 "a missing index"
has noindex.err 'no-such.six' "the message names the index"
finish
