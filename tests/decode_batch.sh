#!/bin/sh
# A batch of real photos mixed with broken files: every bad file gets one
# line on stderr naming it, the good ones are all in the stream, and the
# exit status says something failed.  Grey, palette, 16-bit, alpha, CMYK
# and EXIF-rotated inputs become the same upright RGB tensors.
. "$top_srcdir/tests/lib.sh"
need_photos
M=$SF_PHOTOS_DIR/multiview
cd "$TMP" || exit 99

# Variants of one real colour photo (see make_photo_variants.c).
make_photo_variants "$M/single_squirrel_cls__squirrel_cls.jpg" . || exit 99
cp "$M/basketball__basketball1.png" grey_photo.png      # 8-bit grey PNG
cp "$M/chessroom__left01.jpg" grey_photo.jpg            # grey JPEG
cp "$M/aero__aero1.jpg" colour_photo.jpg
cp "$M/tablevideo__frame_000100.jpg" small_photo.jpg   # 320x240

# Broken inputs.
: > empty.jpg
echo "not a picture" > notes.jpg
head -c 20000 colour_photo.jpg > truncated.jpg
head -c 3000 plain.png > truncated.png
mkdir folder.jpg
good="plain.png exif6.jpg palette.png grey.png rgb16.png grey16.png alpha.png cmyk.jpg grey_photo.png grey_photo.jpg colour_photo.jpg"
bad="missing.jpg empty.jpg notes.jpg truncated.jpg truncated.png folder.jpg"
set -- plain.png missing.jpg exif6.jpg empty.jpg palette.png notes.jpg grey.png \
    truncated.jpg rgb16.png grey16.png truncated.png alpha.png folder.jpg cmyk.jpg \
    grey_photo.png grey_photo.jpg colour_photo.jpg

sf-decode --size 256 --scales 1 "$@" > batch.sfs 2> batch.err; rc=$?
cat batch.err
check "exit status 1 when some files fail (got $rc)" [ "$rc" -eq 1 ]
check "one stderr line per bad file" [ "$(wc -l < batch.err)" -eq 6 ]
for f in $bad; do
    check "$f is reported on its own line" grep -q "^sf-decode: $f: " batch.err
done
check "missing file: reason" grep -q "^sf-decode: missing.jpg: No such file or directory$" batch.err
check "empty file: reason" grep -q "^sf-decode: empty.jpg: not an image (empty file)$" batch.err
check "text file: reason" grep -q "^sf-decode: notes.jpg: not an image" batch.err
check "directory: reason" grep -q "^sf-decode: folder.jpg: is a directory$" batch.err
check "the stream is valid" sf-cat --check batch.sfs
check "the good files, in order, are in the stream" \
    [ "$(sf-cat --list batch.sfs | tr '\n' ' ')" = "$(echo $good) " ]

# Same picture through every path: compare each with plain.png.
sf-cat --npy npy --kind image batch.sfs
size_of() { sf-cat --text --kind image --key "$1" batch.sfs | cut -f6; }
for f in exif6.jpg palette.png rgb16.png alpha.png cmyk.jpg; do
    check "$f has the size of plain.png" [ "$(size_of $f)" = "$(size_of plain.png)" ]
done
echo "differences from plain.png (normalised units; one grey level is about 0.017):"
check "16-bit PNG equals the 8-bit one" compare_arrays --max-abs 0.02 npy/rgb16.png.image.0.npy npy/plain.png.image.0.npy
check "alpha is dropped, colour kept" compare_arrays --max-abs 0 npy/alpha.png.image.0.npy npy/plain.png.image.0.npy
check "EXIF orientation 6 is turned upright" compare_arrays --mean-abs 0.03 npy/exif6.jpg.image.0.npy npy/plain.png.image.0.npy
check "palette PNG is close" compare_arrays --mean-abs 0.1 npy/palette.png.image.0.npy npy/plain.png.image.0.npy
# A round trip through a print profile loses gamut (about 10 levels on
# average here); reading CMYK as RGB would be off by far more.
check "CMYK JPEG is close" compare_arrays --mean-abs 0.25 npy/cmyk.jpg.image.0.npy npy/plain.png.image.0.npy
check "16-bit grey equals 8-bit grey" compare_arrays --max-abs 0.02 npy/grey16.png.image.0.npy npy/grey.png.image.0.npy
# Grey becomes three equal channels (before normalisation): compare planes via --pixels.
sf-decode --size 256 --scales 1 --pixels grey_photo.png | sf-cat --npy px --kind pixels
check "grey photo gives an H x W x 3 pixel array" [ -s px/grey_photo.png.pixels.0.npy ]

# --no-autorotate keeps the stored orientation (the reference's behaviour).
upright=$(sf-decode --size 256 --scales 1 exif6.jpg | sf-cat --text --kind image | cut -f6)
stored=$(sf-decode --size 256 --scales 1 --no-autorotate exif6.jpg | sf-cat --text --kind image | cut -f6)
check "autorotate: upright ($upright) vs stored ($stored) swap height and width" \
    [ "$upright" = "3x$(echo "$stored" | awk -Fx '{ print $3 "x" $2 }')" ]

# The size limit is checked before decoding and fails only that file.
sf-decode --max-pixels 200000 --scales 1 colour_photo.jpg small_photo.jpg > lim.sfs 2> lim.err; rc=$?
check "--max-pixels: exit 1" [ "$rc" -eq 1 ]
check "--max-pixels: names the file and the reason" grep -q "^sf-decode: colour_photo.jpg: image too large (640x480 = 307200 pixels" lim.err
check "--max-pixels: the small file is still decoded" [ "$(sf-cat --list lim.sfs)" = small_photo.jpg ]

# File lists on stdin, newline- or NUL-separated, give the same stream.
printf '%s\n' $good | sf-decode --size 256 --scales 1 > list.sfs
check "newline list equals arguments" cmp -s list.sfs "$(printf '%s' batch.sfs)"
printf '%s\0' $good | sf-decode -0 --size 256 --scales 1 > list0.sfs
check "NUL list equals arguments" cmp -s list0.sfs batch.sfs

# A reader that goes away ends the writer quietly.
{ sf-decode --size 256 $good 2> pipe.err; echo $? > pipe.rc; } | head -c 100 > /dev/null
check "closed pipe: nothing on stderr" [ ! -s pipe.err ]
check "closed pipe: killed by SIGPIPE or exit 0 (got $(cat pipe.rc))" \
    sh -c '[ "$(cat pipe.rc)" -eq 141 ] || [ "$(cat pipe.rc)" -eq 0 ]'
# Inputs that are not regular files are read once, like files: standard
# input ("-"), a FIFO; an endless one stops at --max-bytes and the rest of
# the batch goes on.
sf-decode --scales 1 colour_photo.jpg > file.sfs || exit 99
sf-cat --kind image --npy file.npy file.sfs || exit 99
sf-decode --scales 1 - < colour_photo.jpg > stdin.sfs; rc=$?
check "-: standard input decodes (exit $rc)" [ "$rc" -eq 0 ]
check "-: the key is -" [ "$(sf-cat --list stdin.sfs)" = - ]
sf-cat --kind image --npy stdin.npy stdin.sfs || exit 99
check "-: the same tensor as the file" cmp -s file.npy/colour_photo.jpg.image.0.npy stdin.npy/-.image.0.npy
mkfifo fifo.jpg || exit 99
cat colour_photo.jpg > fifo.jpg &
timeout 60 sf-decode --scales 1 fifo.jpg > fifo.sfs; rc=$?
wait
check "a FIFO decodes, once (exit $rc)" [ "$rc" -eq 0 ]
sf-cat --kind image --npy fifo.npy fifo.sfs || exit 99
check "a FIFO: the same tensor as the file" cmp -s file.npy/colour_photo.jpg.image.0.npy fifo.npy/fifo.jpg.image.0.npy
timeout 60 sf-decode --scales 1 --max-bytes 1000000 /dev/zero small_photo.jpg > zero.sfs 2> zero.err; rc=$?
check "/dev/zero: stops at --max-bytes, exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "/dev/zero: one line naming it" [ "$(cat zero.err)" = "sf-decode: /dev/zero: larger than 1000000 bytes" ]
check "/dev/zero: the next file is decoded" [ "$(sf-cat --list zero.sfs)" = small_photo.jpg ]
sf-decode --scales 1 --max-bytes 1000 colour_photo.jpg > big.sfs 2> big.err; rc=$?
check "--max-bytes: a longer regular file fails at once (exit $rc)" [ "$rc" -eq 1 ] && grep -q "colour_photo.jpg: larger than 1000 bytes" big.err

# The memory an image needs with its pyramid is estimated from the header,
# before decoding; over --max-memory the file fails alone, none of its
# records written.  (The estimate counts libvips' threads: fixed here.)
export VIPS_CONCURRENCY=1
sf-decode --scales 2 --max-memory 10000000 colour_photo.jpg small_photo.jpg > mem.sfs 2> mem.err; rc=$?
check "--max-memory: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "--max-memory: one line naming the file and the need" [ "$(wc -l < mem.err)" -eq 1 ] &&
    grep -q "^sf-decode: colour_photo.jpg: needs about [0-9]* MiB of memory, more than --max-memory (10000000 bytes)$" mem.err
check "--max-memory: the stream is valid" sf-cat --check mem.sfs
check "--max-memory: the next file is decoded" [ "$(sf-cat --list mem.sfs)" = small_photo.jpg ]
sf-decode --scales 2 --set image.max_memory=10000000 colour_photo.jpg > key.sfs 2> key.err; rc=$?
check "image.max_memory: the same refusal (exit $rc)" [ "$rc" -eq 1 ] && cmp -s key.err mem.err
sf-decode --scales 2 --max-memory 0 colour_photo.jpg > nolimit.sfs; rc=$?
check "--max-memory 0: no limit (exit $rc)" [ "$rc" -eq 0 ]
# The default limit, 2 GiB: --size 65536 --scales 16 of a 1282x1110 photo
# would be a 20512x17760 level of 4.4 GB; it is refused at once and the
# batch goes on, here with a .npy image (8x6 pixels, a 128x96 level).
sf-decode --size 8 --scales 1 --pixels small_photo.jpg | sf-cat --npy tiny --kind pixels || exit 99
cp tiny/small_photo.jpg.pixels.0.npy tiny.npy || exit 99
cp "$M/aloe__aloeL.jpg" aloe.jpg
sf-decode --size 65536 --scales 16 aloe.jpg tiny.npy > x16.sfs 2> x16.err; rc=$?
check "default limit: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "default limit: one line" [ "$(wc -l < x16.err)" -eq 1 ] &&
    grep -q "^sf-decode: aloe.jpg: needs about [0-9]* MiB of memory, more than --max-memory (2048 MiB)$" x16.err
check "default limit: the stream is valid" sf-cat --check x16.sfs
check "default limit: the rest of the batch is decoded" [ "$(sf-cat --list x16.sfs)" = tiny.npy ]
check "default limit: the level of the next image" \
    [ "$(sf-cat --text --kind image x16.sfs | cut -f6)" = 3x96x128 ]
# Without the limit, a level too large for a stream record (2 GiB, what
# readers take) fails that image alone, before its first record.
sf-decode --max-memory 0 --size 65536 --scales 16 aloe.jpg tiny.npy > rec.sfs 2> rec.err; rc=$?
check "a level larger than a record: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "a level larger than a record: one line" [ "$(cat rec.err)" = \
    "sf-decode: aloe.jpg: scale 16 makes a 20512x17760 level of 4169 MiB, more than a stream record holds (2048 MiB)" ]
check "a level larger than a record: the stream is valid and goes on" \
    [ "$(sf-cat --check rec.sfs && sf-cat --list rec.sfs)" = tiny.npy ]
sf-decode --scales 16 --max-memory 100000 tiny.npy > npy.sfs 2> npy.err; rc=$?
check "--max-memory: a .npy image too (exit $rc)" [ "$rc" -eq 1 ] &&
    grep -q "^sf-decode: tiny.npy: needs about [0-9]* bytes of memory, more than --max-memory (100000 bytes)$" npy.err
# A name with a newline and a terminal escape in it: still one line, the
# control bytes escaped, and the batch goes on.
nl='
'
esc=$(printf '\033')
cp notes.jpg "odd${nl}name${esc}[31m.jpg" || exit 99
sf-decode --size 64 --scales 1 "odd${nl}name${esc}[31m.jpg" small_photo.jpg > odd.sfs 2> odd.err; rc=$?
check "a name with control bytes: exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "a name with control bytes: one line, escaped" [ "$(cat odd.err)" = \
    "sf-decode: odd\\nname\\x1B[31m.jpg: not an image (unknown format)" ]
check "a name with control bytes: the batch goes on" [ "$(sf-cat --list odd.sfs)" = small_photo.jpg ]
unset VIPS_CONCURRENCY
finish
