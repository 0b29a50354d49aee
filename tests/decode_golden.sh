#!/bin/sh
# sf-decode on the golden photo: the same sizes as the reference's Pillow
# thumbnail (plain and query crop), tensors that differ from the
# reference's only by resampling.
. "$top_srcdir/tests/lib.sh"
need_golden
G=$SF_GOLDEN_DIR/r18-small
cp "$G/input.jpg" "$TMP/input.jpg"
cd "$TMP" || exit 99

# Shapes as the manifest records them ("- name: thumb" ... "shape: [H, W, 3]").
shape_of() {
    awk -v want="$1" '
        $1 == "-" && $2 == "name:" { name = $3; n = 0; inshape = 0; next }
        name == want && $1 == "shape:" { inshape = 1; next }
        name == want && inshape && $1 == "-" { dims[n++] = $2; next }
        name == want && inshape { exit }
        END { print dims[0] "x" dims[1] }' "$G/manifest.yaml"
}
thumb=$(shape_of thumb)
crop=$(shape_of crop_thumb)
check "manifest gives the thumb shape ($thumb)" [ "$thumb" = 160x256 ]

# crop_case.bbx_x1y1x2y2 from the manifest.
box=$(awk '/^crop_case:/ { c = 1; next } c && /bbx_x1y1x2y2:/ { b = 1; next }
           c && b && $1 == "-" { v = v (v == "" ? "" : ",") $2; next }
           c && b { print v; exit }' "$G/manifest.yaml")
check "manifest gives the crop box ($box)" [ "$box" = 101,47,434,311 ]

sf-decode --size 256 input.jpg > full.sfs
check "decode succeeds" [ $? -eq 0 ]
got=$(sf-cat --text --kind image --index 2 full.sfs | cut -f6)
check "scale 1.0 tensor is 3x$thumb (got $got)" [ "$got" = "3x$thumb" ]
sf-cat --npy npy --kind image --index 2 full.sfs
echo "tensor vs golden input.f32:"
check "tensor differs from input.f32 only by resampling" \
    compare_arrays --max-abs 0.25 --mean-abs 0.01 npy/input.jpg.image.2.npy "$G/input.f32"

sf-decode --size 256 --crop "$box" --scales 1 input.jpg > crop.sfs
got=$(sf-cat --text --kind image crop.sfs | cut -f6)
check "crop tensor is 3x$crop (got $got)" [ "$got" = "3x$crop" ]
sf-cat --npy cnpy --kind image crop.sfs
echo "crop tensor vs golden crop_input.f32:"
check "crop tensor differs from crop_input.f32 only by resampling" \
    compare_arrays --max-abs 0.25 --mean-abs 0.01 cnpy/input.jpg.image.0.npy "$G/crop_input.f32"

# The seven pyramid levels have the reference's sizes (scales_table).
levels=$(sf-cat --text --kind image full.sfs | cut -f6 | tr '\n' ' ')
want=$(awk '/^scales_table:/ { t = 1; next } t && /^[a-z]/ { exit }
            t && /resized_hw:/ { r = 1; n = 0; next }
            t && r && $1 == "-" { d[n++] = $2; if (n == 2) { printf "3x%sx%s ", d[0], d[1]; r = 0 } }' "$G/manifest.yaml")
check "pyramid sizes equal scales_table ($want)" [ "$levels" = "$want" ]
finish
