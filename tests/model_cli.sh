#!/bin/sh
# sf-model: info on the golden checkpoints (tensor values checked against
# the raw storage bytes that unzip extracts), random -> info -> convert ->
# info keeping the checksum, check on damaged files, usage errors.
. "$top_srcdir/tests/lib.sh"

command -v sf-model >/dev/null 2>&1 || { echo "sf-model is not on PATH" >&2; exit 99; }
need_golden
r18=$SF_GOLDEN_DIR/r18-small/model.pth
r50=$SF_GOLDEN_DIR/r50-fire/model.pth
cd "$TMP" || exit 99

field() { sed -n "s/^$1: //p" "$2"; }

# ---- info on the golden models (numbers from their manifest.yaml) ----
run r18 sf-model info "$r18"
expect_rc 0 "info r18-small"
check "r18: architecture" [ "$(field architecture r18.out)" = resnet18 ]
check "r18: model_num_parameters" [ "$(field parameters r18.out)" = 3071488 ]
check "r18: lit" [ "$(field lit r18.out)" = "T 3, N 32, dim 256" ]
check "r18: reduction" [ "$(field reduction r18.out)" = 64 ]
check "r18: image size" [ "$(field image_size r18.out)" = 256 ]
check "r18: scales" [ "$(field scales r18.out)" = "2 1.414 1 0.707 0.5 0.353 0.25" ]
check "r18: checksum is 16 hex digits" grep -Eq '^checksum: [0-9a-f]{16}$' r18.out
check "info writes nothing on stderr" [ ! -s r18.err ]
run r50 sf-model info "$r50"
expect_rc 0 "info r50-fire"
check "r50: architecture" [ "$(field architecture r50.out)" = resnet50 ]
check "r50: model_num_parameters" [ "$(field parameters r50.out)" = 13138624 ]
check "r50: lit" [ "$(field lit r50.out)" = "T 6, N 256, dim 1024" ]
check "r50: backbone channels" [ "$(field backbone_channels r50.out)" = 1024 ]

# ---- tensor values against the raw storages ----
# Storage keys from the checkpoints' pickles (python3 -m pickletools):
# features.0.weight -> data/0, dim_reduction.weight -> data/90,
# lit.templates_init -> data/92, lit.mlp.2.bias -> data/105.
run tensors sf-model info --tensors "$r18"
expect_rc 0 "info --tensors"
check "--tensors lists every tensor" [ "$(grep -c ' min ' tensors.out)" -eq "$(field tensors r18.out)" ]
if command -v unzip >/dev/null 2>&1 && command -v od >/dev/null 2>&1; then
    for pair in features.0.weight:0 dim_reduction.weight:90 lit.templates_init:92 lit.mlp.2.bias:105; do
        name=${pair%%:*} key=${pair#*:}
        want=$(unzip -p "$r18" "model/data/$key" | od -An -v -t f4 |
            awk '{ for (i = 1; i <= NF; i++) { v = $i + 0; if (n == 0 || v < lo) lo = v;
                   if (n == 0 || v > hi) hi = v; s += v; n++ } }
                 END { printf "min %.6g max %.6g mean %.6g\n", lo, hi, s / n }')
        got=$(awk -v t="$name" '$1 == t { printf "min %.6g max %.6g mean %.6g\n", $4, $6, $8 }' tensors.out)
        checks=$((checks + 1))
        [ -n "$want" ] && [ "$want" = "$got" ] || fail "$name: raw storage gives '$want', sf-model '$got'"
    done
fi

# ---- random -> info -> convert -> info ----
run random sf-model random --arch resnet18 --T 2 --N 8 --dim 16 --reduction 8 --seed 3 -o a.sfm
expect_rc 0 "random"
check "random writes nothing on stdout" [ ! -s random.out ]
run a sf-model info a.sfm
expect_rc 0 "info on the random model"
check "random: architecture" [ "$(field architecture a.out)" = resnet18 ]
check "random: lit" [ "$(field lit a.out)" = "T 2, N 8, dim 16" ]
run conv sf-model convert a.sfm -o b.sfm
expect_rc 0 "convert native -> native"
run b sf-model info b.sfm
check "convert keeps the checksum" [ "$(field checksum a.out)" = "$(field checksum b.out)" ]
check "native conversion is byte-identical" cmp -s a.sfm b.sfm
cp a.sfm inplace.sfm
run inplace sf-model convert inplace.sfm -o inplace.sfm
expect_rc 0 "convert onto its own input"
check "converting in place keeps the file" cmp -s a.sfm inplace.sfm
run nodir sf-model random --arch resnet18 -o no-such-dir/x.sfm
expect_rc 3 "random into a missing directory"
check "write failure named" grep -q '^sf-model: no-such-dir/x.sfm: ' nodir.err
sf-model random --arch resnet18 --T 2 --N 8 --dim 16 --reduction 8 --seed 3 -o c.sfm
check "same seed, same file" cmp -s a.sfm c.sfm
sf-model random --arch resnet18 --T 2 --N 8 --dim 16 --reduction 8 --seed 4 -o d.sfm
run d sf-model info d.sfm
check "another seed, another checksum" [ "$(field checksum a.out)" != "$(field checksum d.out)" ]
run conv18 sf-model convert "$r18" -o r18.sfm
expect_rc 0 "convert r18 .pth -> native"
run r18n sf-model info r18.sfm
check "native r18 keeps the checksum" [ "$(field checksum r18.out)" = "$(field checksum r18n.out)" ]
check "native r18 keeps the parameter count" [ "$(field parameters r18n.out)" = 3071488 ]
run defaults sf-model random -o official.sfm
expect_rc 0 "random with the official defaults"
run off sf-model info official.sfm
check "official defaults: resnet50" [ "$(field architecture off.out)" = resnet50 ]
check "official defaults: parameter count of r50-fire" [ "$(field parameters off.out)" = 13138624 ]

# ---- check ----
run ok sf-model check "$r18" r18.sfm a.sfm
expect_rc 0 "check on good models"
check "check is silent on success" [ ! -s ok.out ] && [ ! -s ok.err ]
head -c 5000000 "$r18" > cut.pth
run cut sf-model check cut.pth
expect_rc 1 "check on a truncated checkpoint"
check "check: nothing on stdout" [ ! -s cut.out ]
check "check: one line" [ "$(wc -l < cut.err)" -eq 1 ]
check "check: the line names the file" grep -q '^sf-model: cut.pth: ' cut.err
head -c 100000 r18.sfm > cut.sfm
run cut2 sf-model check cut.sfm "$r18" cut.pth
expect_rc 1 "check goes on after a bad model"
check "check: a line per bad model" [ "$(wc -l < cut2.err)" -eq 2 ]
run missing sf-model info no-such.pth
expect_rc 1 "info on a missing file"
check "missing file named" grep -q '^sf-model: no-such.pth: ' missing.err

# ---- help, version, usage errors ----
version=$(sed -n 's/^AC_INIT(\[sf\], \[\([^]]*\)\].*/\1/p' "$top_srcdir/configure.ac")
run help sf-model --help
expect_rc 0 "--help"
check "--help starts with Usage" grep -q '^Usage: sf-model ' help.out
for c in info check convert random; do
    check "--help lists $c" grep -q "^  $c " help.out
done
run version sf-model --version
check "--version" [ "$(cat version.out)" = "sf-model (sf) $version" ]
for args in "" "frobnicate" "info" "check" "convert a.sfm" "convert -o x.sfm" \
    "random" "random -o x.sfm extra" "info --arch resnet18 a.sfm" "check --tensors a.sfm" \
    "random --T 0 -o x.sfm" "random --arch vgg16 -o x.sfm" "info --no-such-option a.sfm"; do
    # shellcheck disable=SC2086
    run usage sf-model $args
    expect_rc 2 "sf-model $args"
    check "sf-model $args: nothing on stdout" [ ! -s usage.out ]
    check "sf-model $args: suggests --help" grep -q "^Try 'sf-model --help'.$" usage.err
done
check "no output file left by a refused random" [ ! -e x.sfm ]
finish
