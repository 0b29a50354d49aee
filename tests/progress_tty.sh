#!/bin/sh
# Progress reports: each long program under a pseudo-terminal (script(1))
# draws "n/total images (p%), rate, time left" in place and clears it at
# the end; nothing in a pipe, with -q or --no-progress; whole lines with
# --progress off a terminal; -v lines never share the progress line; and
# what the programs write is the same with and without it.
. "$top_srcdir/tests/lib.sh"

command -v script >/dev/null 2>&1 || skip "script(1) (util-linux) is not installed"
[ "$(script -qfec 'test -t 2 && echo tty' /dev/null </dev/null 2>/dev/null | tr -d '\r')" = tty ] ||
    skip_machine "script(1) cannot open a pseudo-terminal here (no /dev/pts?)"
for p in sf-model sf-decode sf-extract sf-lit sf-codebook sf-index sf-match sf-rank; do
    command -v $p >/dev/null 2>&1 || { echo "$p is not on PATH" >&2; exit 99; }
done
cd "$TMP" || exit 99
mkdir img && cp "$top_srcdir"/examples/images/*.jpg "$top_srcdir"/examples/images/*.png img/ ||
    exit 99
nimg=$(ls img | wc -l | tr -d ' ')
SHELL=/bin/sh; export SHELL
# Whatever terminal the suite runs from (CI often says dumb); one case
# below sets TERM=dumb itself.
TERM=xterm; export TERM
ESC=$(printf '\033')
CR=$(printf '\r')

# on_tty NAME COMMAND: run the shell command with stdin, stdout and stderr on
# a pseudo-terminal; what the terminal got goes to NAME.tty, status in $rc.
on_tty() {
    n_=$1; shift
    script -qfec "$*" /dev/null </dev/null >"$n_.tty" 2>&1
    rc=$?
}
# The terminal output cut at carriage returns and newlines: one drawing a line.
draws() { tr '\r' '\n' < "$1.tty" | sed "s/$ESC\[K//g" | grep -v '^$'; }
same() { checks=$((checks + 1)); cmp -s "$1" "$2" || fail "$3: $1 and $2 differ"; }
# progress_ok NAME PROG [LABEL] UNIT TOTAL: the report counted up to
# TOTAL/TOTAL with a rate and a time left, and was cleared at the end.
progress_ok() {
    nm=$1 prog=$2 label=$3 unit=$4 total=$5
    draws "$nm" > "$nm.draws"
    has "$nm.draws" "^$prog: ${label}0/$total $unit (0%)\$" "$nm: the first line, before any work"
    has "$nm.draws" "^$prog: ${label}1/$total $unit ([0-9]*%), [0-9.]*\(/s\| s/[a-z]*\), [0-9]*:[0-9][0-9] left\$" \
        "$nm: count, rate and time left after the first"
    has "$nm.draws" "^$prog: ${label}$total/$total $unit (100%), [0-9.]*\(/s\| s/[a-z]*\), 0:00 left\$" \
        "$nm: the last count"
    checks=$((checks + 1))
    last=$(tail -c 4 "$nm.tty" | od -An -c | tr -d ' \n')
    [ "$last" = '\r033[K' ] || fail "$nm: the line is not cleared at the end (ends with '$last')"
    checks=$((checks + 1))
    bad=$(draws "$nm" | grep -v "^$prog: " | head -1)
    [ -z "$bad" ] || fail "$nm: something else on the terminal: $bad"
}

sf-model random --arch resnet18 --dim 64 --N 16 --T 1 --seed 1 -o m.sfm || exit 99
D="--size 160 --scales 1,0.7071"

# ---- references, stderr not a terminal: no progress at all ----
run dec sf-decode $D img/*
expect_rc 0 "sf-decode"
empty dec.err "sf-decode: nothing on stderr off a terminal"
mv dec.out d.sfs
run ext sf-extract -m m.sfm d.sfs
empty ext.err "sf-extract: nothing on stderr off a terminal"
mv ext.out e.sfs
run lit sf-lit -m m.sfm --global e.sfs
empty lit.err "sf-lit: nothing on stderr off a terminal"
mv lit.out l.sfs
run cb sf-codebook -k 16 --iterations 4 -o cb.sfcb l.sfs
empty cb.err "sf-codebook: nothing on stderr off a terminal"
sf-index create -C cb.sfcb x.six && run add sf-index add x.six l.sfs || exit 99
empty add.err "sf-index add: nothing on stderr off a terminal"
run match sf-match -i x.six l.sfs
empty match.err "sf-match: nothing on stderr off a terminal"
mv match.out h.sfs
run rank sf-rank -k 0 h.sfs
empty rank.err "sf-rank: nothing on stderr off a terminal"
mv rank.out r.tsv

# ---- each program on a terminal, a redraw per image (--progress=0) ----
on_tty tdec "sf-decode --progress=0 $D img/* > td.sfs"
expect_rc 0 "sf-decode on a terminal"
progress_ok tdec sf-decode "" images "$nimg"
same d.sfs td.sfs "sf-decode: the stream with progress"
on_tty text "sf-extract --progress=0 -m m.sfm d.sfs > te.sfs"
progress_ok text sf-extract "" images "$nimg"
same e.sfs te.sfs "sf-extract: the stream with progress"
# A regular file on stdin is counted ahead too.
on_tty tlit "sf-lit --progress=0 -m m.sfm --global < e.sfs > tl.sfs"
progress_ok tlit sf-lit "" images "$nimg"
same l.sfs tl.sfs "sf-lit: the stream with progress"
on_tty tcb "sf-codebook --progress=0 -k 16 --iterations 4 -o tcb.sfcb l.sfs"
progress_ok tcb sf-codebook "" images "$nimg"
progress_ok tcb sf-codebook "k-means " iterations 4
same cb.sfcb tcb.sfcb "sf-codebook: the codebook with progress"
sf-index create -C cb.sfcb tx.six || exit 99
on_tty tadd "sf-index add --progress=0 tx.six l.sfs"
progress_ok tadd sf-index "" images "$nimg"
sf-index info x.six | grep -v '^file:' > x.info
sf-index info tx.six | grep -v '^file:' > tx.info
same x.info tx.info "sf-index add: the index with progress"
on_tty tmatch "sf-match --progress=0 -i tx.six l.sfs > th.sfs"
progress_ok tmatch sf-match "" images "$nimg"
same h.sfs th.sfs "sf-match: the hits with progress"
on_tty tpw "sf-match --progress=0 --pairwise l.sfs -k 3 l.sfs > /dev/null"
progress_ok tpw sf-match "database " images "$nimg"
progress_ok tpw sf-match "" images "$nimg"
on_tty trank "sf-rank --progress=0 -k 0 h.sfs > tr.tsv"
progress_ok trank sf-rank "" images "$nimg"
same r.tsv tr.tsv "sf-rank: the ranking with progress"

# ---- by default: on a terminal, not with -q, --no-progress, nor after a pipe ----
on_tty auto "sf-decode $D img/* > ad.sfs"
draws auto > auto.draws
has auto.draws "^sf-decode: 0/$nimg images (0%)\$" "a terminal shows progress by default"
same d.sfs ad.sfs "sf-decode: the stream with default progress"
on_tty quiet "sf-decode -q $D img/* > qd.sfs"
empty quiet.tty "-q: nothing on the terminal"
same d.sfs qd.sfs "sf-decode -q: the stream"
on_tty noprog "sf-extract --no-progress -m m.sfm d.sfs > /dev/null"
empty noprog.tty "--no-progress: nothing on the terminal"
# Only the head of a pipeline reports; the others would share its line.
on_tty pipe "sf-decode $D img/* | sf-extract -m m.sfm | sf-lit -m m.sfm --global > pl.sfs"
expect_rc 0 "the pipeline on a terminal"
draws pipe > pipe.draws
has pipe.draws "^sf-decode: 0/$nimg images" "the head of the pipeline reports"
checks=$((checks + 1))
grep -q '^sf-\(extract\|lit\)' pipe.draws && fail "a stage after a pipe reported: $(grep '^sf-[el]' pipe.draws | head -1)"
same l.sfs pl.sfs "the pipeline's stream with progress"
# ... but k-means comes after the whole input was read: it reports.
on_tty kpipe "cat l.sfs | sf-codebook -k 16 --iterations 4 -o kp.sfcb"
draws kpipe > kpipe.draws
has kpipe.draws "^sf-codebook: k-means 0/4 iterations (0%)" "k-means reports after a pipe"
checks=$((checks + 1))
grep -q 'images' kpipe.draws && fail "sf-codebook reported images read from a pipe"
same cb.sfcb kp.sfcb "sf-codebook after a pipe"

# An editor's shell (TERM=dumb) knows no escapes: spaces clear the line.
on_tty dumb "TERM=dumb sf-decode --progress=0 $D img/* > /dev/null"
draws dumb > dumb.draws
has dumb.draws "^sf-decode: $nimg/$nimg images (100%)" "TERM=dumb: the report"
checks=$((checks + 1))
grep -q "$ESC" dumb.tty && fail "TERM=dumb: escape sequences"
checks=$((checks + 1))
[ -z "$(tail -c 1 dumb.tty | tr -d '\r')" ] && [ -z "$(tr '\r' '\n' < dumb.tty | tail -1 | tr -d ' ')" ] ||
    fail "TERM=dumb: the line is not blanked at the end"

# ---- -v lines and errors clear the progress line first ----
on_tty verbose "sf-decode -v --progress=0 $D img/* nosuch.jpg > vd.sfs"
expect_rc 1 "a missing file"
checks=$((checks + 1))
k=$(tr '\r' '\n' < verbose.tty | grep -c "^$ESC\[Ksf-decode: img/.*: [0-9]*x[0-9]*, 2 scales\$")
[ "$k" = "$nimg" ] || fail "-v: $k of $nimg lines drawn on a cleared line"
has verbose.tty "${ESC}\[Ksf-decode: nosuch.jpg: No such file" "an error on a cleared line"
checks=$((checks + 1))
draws verbose | grep 'images (' | grep -q 'scales\|nosuch' && fail "-v: a message shares the progress line"
has verbose.tty "${CR}sf-decode: $((nimg + 1))/$((nimg + 1)) images (100%)" "the line goes on after the messages"
same d.sfs vd.sfs "sf-decode -v: the stream"

# ---- --progress off a terminal: whole lines for a log ----
run lines sf-decode --progress $D img/*
expect_rc 0 "--progress off a terminal"
same d.sfs lines.out "the stream with --progress"
checks=$((checks + 1))
grep -q "$CR\|$ESC" lines.err && fail "--progress off a terminal: carriage returns or escapes"
has lines.err "^sf-decode: 0/$nimg images (0%)\$" "--progress: a first line"
has lines.err "^sf-decode: $nimg/$nimg images (100%), [0-9.]*\(/s\| s/image\), in [0-9]*:[0-9][0-9]\$" \
    "--progress: a last line with the total time"
sf-decode --progress=3600 $D img/* 2> lines3600.err > /dev/null
check "--progress=3600: a line at the start and one at the end, none between" \
    [ "$(wc -l < lines3600.err | tr -d ' ')" = 2 ]
sf-index create -C cb.sfcb lx.six || exit 99
run ladd sf-index add --progress lx.six l.sfs
has ladd.err "^sf-index: writing $nimg images to lx.six\$" "sf-index add: the commit, begun"
has ladd.err "^sf-index: writing $nimg images to lx.six, in [0-9]*:[0-9][0-9]\$" \
    "sf-index add: the commit, done"
run lines0 sf-decode --progress=0 -q $D img/*
check "--progress=0: a line per image, and wins over -q" \
    [ "$(wc -l < lines0.err | tr -d ' ')" = $((nimg + 2)) ]
# From a pipe the total is not known: the count, the rate and the time so far.
cat d.sfs | sf-extract --progress=0 -m m.sfm > /dev/null 2> unknown.err
has unknown.err "^sf-extract: 1 image, [0-9.]*\(/s\| s/image\), [0-9]*:[0-9][0-9] elapsed\$" \
    "an unknown total"
has unknown.err "^sf-extract: $nimg images, .*, in [0-9]*:[0-9][0-9]\$" "an unknown total: the end"
# A stream cut short cannot be counted ahead: the share comes from bytes.
head -c $(($(wc -c < d.sfs) - 1000)) d.sfs > cut.sfs
sf-extract --progress=0 -m m.sfm cut.sfs > /dev/null 2> cut.err
has cut.err "^sf-extract: 1 image ([0-9]*%), [0-9.]*\(/s\| s/image\), [0-9]*:[0-9][0-9] left\$" \
    "no count ahead: the share by bytes"
has cut.err "^sf-extract: cut.sfs: .*truncated" "no count ahead: the cut is still found"
# A list of names in a file is counted ahead.
ls img/* > list.txt
sf-decode --progress=0 $D < list.txt > /dev/null 2> list.err
has list.err "^sf-decode: 1/$nimg images" "names listed on stdin from a file"
run badp sf-decode --progress=x $D img/aero1.jpg
expect_rc 2 "--progress=x"
empty badp.out "--progress=x: nothing on stdout"
has badp.err "^sf-decode: --progress=S: expected seconds" "--progress=x: the reason"
finish
