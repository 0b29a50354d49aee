#!/bin/sh
# The formats users feed in give the same tensor as a lossless PNG of the
# same photo, up to each format's own loss.
. "$top_srcdir/tests/lib.sh"
need_photos
cd "$TMP" || exit 99
make_photo_variants "$SF_PHOTOS_DIR/multiview/single_butterfly__butterfly.jpg" . || exit 99
set -- plain.png photo.tif photo.jpg photo.webp photo.gif anim.gif
[ -f photo.avif ] && set -- "$@" photo.avif || echo "note: this libvips cannot write AVIF; not tested"
sf-decode --size 300 --scales 1 "$@" > formats.sfs 2> formats.err; rc=$?
cat formats.err
check "every format decodes (exit $rc)" [ "$rc" -eq 0 ]
check "one image per file" [ "$(sf-cat --list formats.sfs | wc -l)" -eq $# ]
sf-cat --npy npy --kind image formats.sfs
ref=npy/plain.png.image.0.npy
want=$(sf-cat --text --kind image --key plain.png formats.sfs | cut -f6)
for f in "$@"; do
    got=$(sf-cat --text --kind image --key "$f" formats.sfs | cut -f6)
    check "$f: size $got equals $want" [ "$got" = "$want" ]
done
echo "differences from plain.png (normalised units; one grey level is about 0.017):"
check "TIFF is lossless" compare_arrays --max-abs 0 npy/photo.tif.image.0.npy "$ref"
check "JPEG q90 is close" compare_arrays --mean-abs 0.05 npy/photo.jpg.image.0.npy "$ref"
check "WebP is close" compare_arrays --mean-abs 0.08 npy/photo.webp.image.0.npy "$ref"
check "GIF (256 colours) is close" compare_arrays --mean-abs 0.15 npy/photo.gif.image.0.npy "$ref"
check "animated GIF: the first frame" compare_arrays --max-abs 0 npy/anim.gif.image.0.npy npy/photo.gif.image.0.npy
[ ! -f photo.avif ] || check "AVIF is close" compare_arrays --mean-abs 0.1 npy/photo.avif.image.0.npy "$ref"
finish
