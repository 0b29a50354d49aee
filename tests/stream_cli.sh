#!/bin/sh
# sf-cat and the stream in pipelines: text output, checking, concatenation,
# filters that keep image grouping valid, .npy export, errors and exit codes.
. "$top_srcdir/tests/lib.sh"

command -v sf-cat >/dev/null 2>&1 || { echo "sf-cat is not on PATH" >&2; exit 99; }
gen="$top_builddir/tests/test_stream"
$gen --write-sample basic "$TMP/basic.sfs" || exit 99
$gen --write-sample optional "$TMP/optional.sfs" || exit 99
$gen --write-sample big "$TMP/big.sfs" || exit 99
cd "$TMP" || exit 99

# same FILE DESCRIPTION: FILE equals the expected text on stdin
same() {
    cat >"$1.want"
    checks=$((checks + 1))
    cmp -s "$1" "$1.want" || { fail "$2"; diff "$1.want" "$1" >&2; }
}
tabs() { tr '|' '\t'; }

# ---- --text ----
run text sf-cat --text basic.sfs
expect_rc 0 "--text"
empty text.err "--text stderr"
tabs <<'EOF' | same text.out "--text lines"
photo.jpg|source|index=0|scale=1|i64|2|16 bytes|min=480 max=640 mean=560|-
photo.jpg|image|index=0|scale=1|f32|3x2x2|48 bytes|min=-1 max=4.5 mean=1.75|-
photo.jpg|image|index=1|scale=0.5|f32|3x1x1|12 bytes|min=1 max=3 mean=2|-
photo.jpg|local_desc|index=0|scale=1|f32|4x2|32 bytes|min=0 max=1.75 mean=0.875|-
photo.jpg|global|index=0|scale=1|f32|4|16 bytes|min=0.5 max=0.5 mean=0.5|last
dir/b c.png|source|index=0|scale=1|i64|2|16 bytes|min=10 max=20 mean=15|-
dir/b c.png|local_index|index=0|scale=1|i32|3|12 bytes|min=0 max=7 mean=4|-
dir/b c.png|strength|index=0|scale=1|f32|2|8 bytes|min=-2 max=1 mean=-0.5|-
dir/b c.png|global|index=0|scale=1|f32|2|8 bytes|min=-2 max=2 mean=0|last
x|pixels|index=0|scale=1|u8|2x2x3|12 bytes|min=0 max=11 mean=5.5|last
EOF
run stdin sf-cat -t - <basic.sfs
check "--text from stdin" cmp -s stdin.out text.out
run stdin2 sf-cat -t <basic.sfs
check "--text with no operand reads stdin" cmp -s stdin2.out text.out

# ---- --check ----
run check sf-cat --check basic.sfs optional.sfs
expect_rc 0 "--check on valid streams"
empty check.out "--check stdout"
empty check.err "--check stderr"
run checkv sf-cat -v --check basic.sfs
expect_rc 0 "--check -v"
size=$(wc -c <basic.sfs)
printf 'sf-cat: basic.sfs: 10 records, 3 images, %s bytes\n' "$size" | same checkv.err "--check -v summary"
# The skipped optional record closes the first image "a".
run checkopt sf-cat -v --check optional.sfs
printf 'sf-cat: optional.sfs: 4 records, 3 images, %s bytes\n' "$(wc -c <optional.sfs)" \
    | same checkopt.err "--check -v counts images closed by skipped records"
# An empty input never had its end record: its writer failed.
run empty sf-cat --check </dev/null
expect_rc 3 "an empty input is an incomplete stream"
empty empty.out "empty stream output"

# Damage: a payload byte of record 1 (it starts at byte 85, its payload at
# 162), then a header byte of the same record.
cp basic.sfs bad.sfs
printf '\377' | dd of=bad.sfs bs=1 seek=170 conv=notrunc 2>/dev/null
check "payload damaged" sh -c '! cmp -s basic.sfs bad.sfs'
run bad sf-cat --check bad.sfs
expect_rc 3 "--check on a damaged payload"
empty bad.out "--check on a damaged stream prints nothing on stdout"
check "checksum message" grep -Eq \
    '^sf-cat: bad\.sfs: record 1 at byte 85: checksum mismatch \(stored 0x[0-9a-f]{16}, computed 0x[0-9a-f]{16}\)$' bad.err
cp basic.sfs badh.sfs
printf '\177' | dd of=badh.sfs bs=1 seek=140 conv=notrunc 2>/dev/null
run badh sf-cat --check badh.sfs
expect_rc 3 "--check on a damaged header"
check "header checksum message" grep -q '^sf-cat: badh\.sfs: record 1 at byte 85: header checksum mismatch' badh.err
head -c 100 basic.sfs >trunc.sfs
run trunc sf-cat --check trunc.sfs
expect_rc 3 "--check on a truncated stream"
check "truncation message" grep -q '^sf-cat: trunc\.sfs: record 1 at byte 85: truncated: record header ends after 15 of 40 bytes$' trunc.err
head -c 85 basic.sfs >open.sfs
run open sf-cat --check open.sfs
check "open image message" grep -q "^sf-cat: open\.sfs: record 1 at byte 85: stream ends inside image 'photo.jpg'$" open.err

# ---- concatenation ----
cat basic.sfs optional.sfs | sf-cat --check
rc=$?; n=cat; expect_rc 0 "cat a b | sf-cat --check"
run twice sf-cat --text basic.sfs basic.sfs
check "two operands give both streams" test "$(wc -l <twice.out)" -eq 20
run copy sf-cat basic.sfs
expect_rc 0 "pass-through"
# The records are copied byte for byte; only the end record is sf-cat's own
# (68 bytes and its writer's name: "test_stream", "sf-cat").
without_end() { head -c -$((68 + $2)) "$1"; }
without_end copy.out 6 >copy.body
without_end basic.sfs 11 >basic.body
check "pass-through is byte for byte" cmp -s copy.body basic.body
check "pass-through ends with sf-cat's end record" \
    test "$(tail -c 26 copy.out | head -c 6)" = sf-cat
run both sf-cat basic.sfs basic.sfs
without_end both.out 6 >both.body
cat basic.body basic.body >both.want
check "concatenation is byte for byte" cmp -s both.body both.want
# The two end records of a concatenation close their own images.
cat basic.sfs basic.sfs | sf-cat --check
rc=$?; n=cat2; expect_rc 0 "a stream of two whole streams"
head -c -79 basic.sfs | cat - basic.sfs | sf-cat --check 2>cut.err
rc=$?; n=cut; expect_rc 3 "the first of two streams without its end"
check "a lost end is named" grep -q "the end record of 'test_stream' counts 3 images, the stream has 6" cut.err
cat basic.sfs basic.body | sf-cat --check 2>cut2.err
rc=$?; n=cut2; expect_rc 3 "the second of two streams without its end"
check "a stream cut at an image boundary is named" grep -q "stops after 3 images without its end record" cut2.err
cat basic.body | sf-cat --partial --check
rc=$?; n=partial; expect_rc 0 "--partial reads a piece of a stream"

# ---- filters keep image grouping valid ----
run key sf-cat --key photo.jpg basic.sfs
check "--key output is a stream" sf-cat --check key.out
check "--key keeps the whole image" test "$(sf-cat -t key.out | cut -f1 | sort -u)" = photo.jpg
check "--key keeps 5 records" test "$(sf-cat -t key.out | wc -l)" -eq 5
sf-cat --kind image basic.sfs >kind.out
check "--kind output passes --check" sf-cat --check kind.out
sf-cat -t kind.out | cut -f1,2,3,9 | tr '\t' '|' >kind.txt
same kind.txt "--kind image moves LAST to the last kept record" <<'EOF'
photo.jpg|image|index=0|-
photo.jpg|image|index=1|last
EOF
sf-cat --kind global --kind source basic.sfs | sf-cat -t | cut -f1,2,9 | tr '\t' '|' >kinds.txt
same kinds.txt "repeated --kind" <<'EOF'
photo.jpg|source|-
photo.jpg|global|last
dir/b c.png|source|-
dir/b c.png|global|last
EOF
sf-cat --kind global optional.sfs | sf-cat -t | cut -f1,9 | tr '\t' '|' >optkind.txt
same optkind.txt "LAST of a skipped record moves to the last kept one" <<'EOF'
a|last
a|last
b|last
EOF
sf-cat optional.sfs | sf-cat --check
rc=$?; n=optcat; expect_rc 0 "pass-through of a stream with optional records"
sf-cat --index 1 basic.sfs | sf-cat -t | cut -f1,3,9 | tr '\t' '|' >index.txt
same index.txt "--index" <<'EOF'
photo.jpg|index=1|last
EOF
run none sf-cat --kind source --key x basic.sfs
expect_rc 0 "a filter that keeps nothing"
check "nothing kept, no image written" test -z "$(sf-cat --list none.out)"
printf 'x\r\nphoto.jpg\n\nnot-there\n' >keys.txt
run keyfile sf-cat --list --key-file keys.txt basic.sfs
printf 'photo.jpg\nx\n' | same keyfile.out "--key-file"
run match sf-cat --list --match '*.png' --match 'x*' basic.sfs
printf 'dir/b c.png\nx\n' | same match.out "--match"
run list sf-cat --list basic.sfs optional.sfs
printf 'photo.jpg\ndir/b c.png\nx\na\na\nb\n' | same list.out "--list prints each image once"

# ---- --npy ----
run npy sf-cat --npy npy/out basic.sfs
expect_rc 3 "--npy into a missing parent"
run npy sf-cat --npy npy basic.sfs
expect_rc 0 "--npy"
empty npy.out "--npy stdout"
(cd npy && ls) >npy.list
same npy.list "--npy file names" <<'EOF'
dir_b_c.png.global.0.npy
dir_b_c.png.local_index.0.npy
dir_b_c.png.source.0.npy
dir_b_c.png.strength.0.npy
photo.jpg.global.0.npy
photo.jpg.image.0.npy
photo.jpg.image.1.npy
photo.jpg.local_desc.0.npy
photo.jpg.source.0.npy
x.pixels.0.npy
EOF
check "npy magic" test "$(head -c 6 npy/x.pixels.0.npy | od -An -c | tr -d ' ')" = '223NUMPY'
check "npy size (128-byte header + 12 bytes)" test "$(wc -c <npy/x.pixels.0.npy)" -eq 140
check "npy size (128-byte header + 48 bytes)" test "$(wc -c <npy/photo.jpg.image.0.npy)" -eq 176
dict="{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 3), }"
check "npy header" test "$(head -c $((10 + ${#dict})) npy/x.pixels.0.npy | tail -c ${#dict})" = "$dict"
check "npy data" test "$(tail -c 12 npy/x.pixels.0.npy | od -An -tu1 | tr -s ' \n' ' ')" = \
    " 0 1 2 3 4 5 6 7 8 9 10 11 "
if command -v python3 >/dev/null 2>&1; then
    # The header must be a Python literal with the fields NumPy reads.
    check "npy header is a Python dict" python3 -c '
import ast, struct, sys
want = {"x.pixels.0.npy": ("|u1", (2, 2, 3)), "dir_b_c.png.global.0.npy": ("<f4", (2,)),
        "photo.jpg.image.1.npy": ("<f4", (3, 1, 1))}
for name in sys.argv[1:]:
    b = open(name, "rb").read()
    n = struct.unpack("<H", b[8:10])[0]
    h = ast.literal_eval(b[10:10 + n].decode("latin1"))
    assert (10 + n) % 64 == 0 and h["fortran_order"] is False, name
    d, s = want.get(name.split("/")[-1], (h["descr"], h["shape"]))
    assert h["descr"] == d and h["shape"] == s, (name, h)
' npy/*.npy
fi

# ---- errors ----
run missing sf-cat --check nope.sfs basic.sfs
expect_rc 1 "a missing file"
printf 'sf-cat: nope.sfs: No such file or directory\n' | same missing.err "missing file message"
empty missing.out "missing file: nothing on stdout"
run missing2 sf-cat nope.sfs basic.sfs
expect_rc 1 "a missing file among others"
without_end missing2.out 6 >missing2.body
check "the other files are still copied" cmp -s missing2.body basic.body
run corrupt sf-cat bad.sfs basic.sfs
expect_rc 3 "a damaged file among others"
check "output after a damaged input has no end: it is incomplete" \
    sh -c '! sf-cat --check corrupt.out 2>/dev/null'
check "output after a damaged input is a valid piece of a stream" sf-cat --partial --check corrupt.out
# The damage is in the first image: nothing of it is written, all of the
# next file is.
check "no part of the damaged image, all of the next file" \
    test "$(sf-cat --partial -t corrupt.out | wc -l)" -eq 10
run usage sf-cat --bogus basic.sfs
expect_rc 2 "unknown option"
empty usage.out "usage error: nothing on stdout"
check "usage hint" grep -q "^Try 'sf-cat --help'.$" usage.err
run usage sf-cat --kind nope basic.sfs
expect_rc 2 "unknown kind"
run usage sf-cat --text --check basic.sfs
expect_rc 2 "two modes"
run usage sf-cat --index -1 basic.sfs
expect_rc 2 "negative index"
run usage sf-cat --key-file nope.txt basic.sfs
expect_rc 2 "missing key file"
empty usage.out "usage error: nothing on stdout"
run help sf-cat --help
expect_rc 0 "--help"
check "--help text" grep -q '^Usage: sf-cat ' help.out

# Binary output to a terminal is refused; text is not.
if command -v script >/dev/null 2>&1 && script -qec true /dev/null >/dev/null 2>&1; then
    script -qec "sf-cat basic.sfs" /dev/null >tty.out 2>&1
    rc=$?; n=tty; expect_rc 2 "binary output to a terminal"
    check "terminal refusal message" grep -q 'refusing to write a binary feature stream to a terminal' tty.out
    script -qec "sf-cat --list basic.sfs" /dev/null >tty2.out 2>&1
    rc=$?; n=tty2; expect_rc 0 "--list to a terminal"
fi

# A reader that goes away ends sf-cat quietly, SIGPIPE ignored or not.
sf-cat big.sfs 2>pipe.err | head -c 10 >/dev/null
empty pipe.err "closed pipe"
(trap '' PIPE; sf-cat big.sfs 2>pipe2.err | head -c 10 >/dev/null)
empty pipe2.err "closed pipe with SIGPIPE ignored"
(trap '' PIPE; sf-cat -t big.sfs big.sfs big.sfs 2>pipe3.err | head -c 10 >/dev/null)
empty pipe3.err "closed pipe under --text"

finish
