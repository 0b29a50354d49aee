#!/bin/sh
# Model < preset < flags: sf-decode -m takes the image size from the
# checkpoint (the golden r18-small says 256 pixels, 100 super-features),
# a preset or --size overrides it; sf-lit keeps the model's number of
# super-features unless told otherwise, also with examples/fire.yaml.
. "$top_srcdir/tests/lib.sh"
need_golden
cd "$TMP" || exit 99
model=$SF_GOLDEN_DIR/r18-small/model.pth
photo=$SF_GOLDEN_DIR/r18-small/input.jpg
fire=$top_srcdir/examples/fire.yaml
# the width and height of the scale-1 level
level() { sf-cat --text --kind image "$1" | awk -F '\t' '$4 == "scale=1" { print $6 }'; }
sf-decode "$photo" > plain.sfs
src=$(sf-cat --text --kind source plain.sfs | sed 's/.*min=\([0-9]*\) max=\([0-9]*\).*/\2/')
check "the golden photo is larger than 256 ($src)" [ "$src" -gt 256 ]
sf-decode -m "$model" "$photo" > m.sfs
check "-m: the model's 256 pixels ($(level m.sfs))" [ "$(level m.sfs | tr x '\n' | sort -n | tail -1)" = 256 ]
printf 'compute:\n  model: %s\n' "$model" > withmodel.yaml
sf-decode --config withmodel.yaml "$photo" > c.sfs
check "compute.model in a preset does the same" [ "$(level c.sfs)" = "$(level m.sfs)" ]
sf-decode --config "$fire" -m "$model" "$photo" > f.sfs
check "examples/fire.yaml leaves the size to the model" [ "$(level f.sfs)" = "$(level m.sfs)" ]
printf 'image:\n  size: 200\n' > p200.yaml
sf-decode --config p200.yaml -m "$model" "$photo" > p.sfs
check "a preset's size wins over the model's" [ "$(level p.sfs | tr x '\n' | sort -n | tail -1)" = 200 ]
sf-decode --config p200.yaml -m "$model" --size 128 "$photo" > s.sfs
check "--size wins over the preset" [ "$(level s.sfs | tr x '\n' | sort -n | tail -1)" = 128 ]
run nomodel sf-decode -m nosuch.pth "$photo"
expect_rc 3 "-m with a missing model"
empty nomodel.out "-m with a missing model: stdout"
has nomodel.err "nosuch.pth" "-m with a missing model: named"
check "without a model: 1024, never enlarged" cmp -s plain.sfs "$(sf-decode --size 1024 "$photo" > k.sfs; echo k.sfs)"
check "-C: keys stay as given" [ "$(cd / && sf-decode -C "$SF_GOLDEN_DIR/r18-small" -m "$model" input.jpg | sf-cat --list)" = input.jpg ]

# features kept: the model's 100 with fire.yaml, a preset's number wins
sf-decode -q -m "$model" --set image.scales=1 "$photo" | sf-extract -q -m "$model" > x.sfs
n_desc() { sf-cat --text --kind local_desc "$1" | awk -F '\t' '{ split($6, s, "x"); print s[1] }'; }
sf-lit -q -m "$model" --config "$fire" x.sfs > l.sfs
check "fire.yaml keeps the model's 100 super-features ($(n_desc l.sfs))" [ "$(n_desc l.sfs)" -le 100 ]
sf-lit -q -m "$model" --set features.keep=7 x.sfs > l7.sfs
check "features.keep 7 wins ($(n_desc l7.sfs))" [ "$(n_desc l7.sfs)" = 7 ]
check "sf-codebook --plan: 10 images of the model's 100" [ "$(sf-codebook --plan 10 -m "$model")" = "$(printf '16\t1000')" ]
run plan sf-codebook --plan 10 -m "$model" -k 2000
expect_rc 1 "--plan with a -k too big"
has plan.err "the largest codebook they can train has 1000 words" "--plan: the largest k"
finish
