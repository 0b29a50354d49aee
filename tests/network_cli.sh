#!/bin/sh
# sf-decode | sf-extract | sf-lit on the golden models with every backend,
# fed the golden input.f32 (as .npy), against the reference's arrays; and
# the programs' error handling.
. "$top_srcdir/tests/lib.sh"
need_golden
cd "$TMP" || exit 99

# raw_to_npy "3, 160, 256" IN OUT: a float32 .npy header (format 1.0) + data.
raw_to_npy() {
    dict="{'descr': '<f4', 'fortran_order': False, 'shape': ($1), }"
    total=$(( (10 + ${#dict} + 1 + 63) / 64 * 64 ))
    hlen=$((total - 10))
    pad=$((total - 10 - ${#dict} - 1))
    { printf '\223NUMPY\001\000'
      printf "\\$(printf '%03o' $((hlen % 256)))\\$(printf '%03o' $((hlen / 256)))"
      printf '%s' "$dict"; printf "%${pad}s" ''; printf '\n'
      cat "$2"; } > "$3"
}

for set in r18-small:160:256 r50-fire:120:192; do
    name=${set%%:*}; hw=${set#*:}; h=${hw%%:*}; w=${hw#*:}
    G=$SF_GOLDEN_DIR/$name
    raw_to_npy "3, $h, $w" "$G/input.f32" "$name.npy"
    for backend in reference onednn; do
        [ "$backend" = reference ] && tol=1e-4 || tol=1e-3
        out=$name.$backend
        sf-decode "$name.npy" |
            sf-extract -m "$G/model.pth" --backend $backend |
            sf-lit -m "$G/model.pth" --backend $backend --global --attention --strength \
                --superfeatures --reduced > "$out.sfs" 2> "$out.err"
        check "$name/$backend: pipeline runs ($(cat "$out.err"))" [ ! -s "$out.err" ]
        check "$name/$backend: output is a valid stream" sf-cat --check "$out.sfs"
        rm -rf "$out"; sf-cat --npy "$out" "$out.sfs"
        k=$name.npy
        echo "$name, $backend backend (bound $tol):"
        for i in 0 1 2 3 4 5 6; do
            [ -f "$out/$k.superfeatures.$i.npy" ] || { fail "$name/$backend: no scale $i"; continue; }
            nd=$(sf-cat --text --kind superfeatures --index $i "$out.sfs" | cut -f6)
            nr=$(sf-cat --text --kind reduced --index $i "$out.sfs" | cut -f6)
            check "$name/$backend s$i templates" compare_arrays --rel $tol --transpose "$(echo $nd | tr x ,)" \
                "$out/$k.superfeatures.$i.npy" "$G/s${i}_templates.f32"
            check "$name/$backend s$i attention" compare_arrays --rel $tol "$out/$k.attention.$i.npy" "$G/s${i}_attn.f32"
            check "$name/$backend s$i strength" compare_arrays --rel $tol "$out/$k.strength.$i.npy" "$G/s${i}_strength.f32"
            check "$name/$backend s$i reduced" compare_arrays --rel $tol --transpose "$(echo $nr | tr x ,)" \
                "$out/$k.reduced.$i.npy" "$G/s${i}_reduced.f32"
        done
        # Selected features: same strengths (as sorted sets; test_network
        # checks the (scale, index) keys), and the global descriptor.
        check "$name/$backend local strengths" compare_arrays --rel $tol --sorted \
            "$out/$k.local_strength.0.npy" "$G/local_strength.f32"
        check "$name/$backend global descriptor" compare_arrays --min-cosine 0.9999 \
            "$out/$k.global.0.npy" "$G/global.f32"
    done
    # Switching the backend changes nothing but speed (the selections may
    # swap near-ties at the boundary: test_network checks the keys).
    check "$name: both backends select features of the same strengths" \
        compare_arrays --rel 1e-3 --sorted "$name.onednn/$name.npy.local_strength.0.npy" \
        "$name.reference/$name.npy.local_strength.0.npy"
    check "$name: both backends give the same global descriptor" \
        compare_arrays --min-cosine 0.9999 "$name.onednn/$name.npy.global.0.npy" \
        "$name.reference/$name.npy.global.0.npy"
done

# The backbone stages of r18 at scale 1 (sf-extract --stage).
G=$SF_GOLDEN_DIR/r18-small
for stage in conv1 pool layer1 layer2 layer3; do
    sf-decode --scales 1 r18-small.npy | sf-extract -m "$G/model.pth" --backend reference --stage $stage |
        sf-cat --npy st.$stage --kind feature_map
    check "stage $stage" compare_arrays --rel 1e-4 st.$stage/r18-small.npy.feature_map.0.npy "$G/stage_$stage.f32"
done

# A very thin image (2 x 300, and 4 x 600 at scale 2) goes through both
# backends alike: later stages can then be larger than early ones.
head -c 7200 "$G/input.f32" > thin.f32
raw_to_npy "3, 2, 300" thin.f32 thin.npy
for backend in reference onednn; do
    sf-decode --scales 1,2 thin.npy | sf-extract -m "$G/model.pth" --backend $backend |
        sf-lit -m "$G/model.pth" --backend $backend --global > thin.$backend.sfs
    check "thin image through $backend" sf-cat --check thin.$backend.sfs
    sf-cat --npy thin.$backend --kind global thin.$backend.sfs
done
check "thin image: both backends agree" compare_arrays --min-cosine 0.9999 \
    thin.onednn/thin.npy.global.0.npy thin.reference/thin.npy.global.0.npy

# Errors: no model, a missing model, a missing backend, a bad stream.
sf-extract < /dev/null > out 2> err; rc=$?
check "no model: exit 2" [ "$rc" -eq 2 ]
check "no model: says so" grep -q "^sf-extract: no model" err
sf-extract -m nosuch.pth < /dev/null > out 2> err; rc=$?
check "missing model: exit 3 and names the file" sh -c "[ $rc -eq 3 ] && grep -q 'nosuch.pth' err"
sf-lit -m "$G/model.pth" --backend nosuch < /dev/null > out 2> err; rc=$?
check "missing backend: exit 3" [ "$rc" -eq 3 ]
check "missing backend: names it" grep -q "no backend named 'nosuch'" err
sf-extract -m "$G/model.pth" --backend reference --precision bf16 < /dev/null > out 2> err; rc=$?
check "bf16: the reference backend refuses it, not silently run as f32" \
    sh -c "[ $rc -eq 3 ] && grep -q 'backend reference has no bfloat16 path' err && [ ! -s out ]"
printf 'compute:\n  precision: bf16\n' > bf16.yaml
sf-extract -m "$G/model.pth" --backend reference -c bf16.yaml < /dev/null > out 2> err; rc=$?
check "bf16: compute.precision in a preset asks for it too" \
    sh -c "[ $rc -eq 3 ] && grep -q 'no bfloat16 path' err"
sf-extract -m "$G/model.pth" --backend reference -c bf16.yaml --precision f32 < /dev/null > out 2> err; rc=$?
check "bf16: --precision f32 wins over the preset" \
    sh -c "! grep -q bfloat16 err && grep -q 'empty input' err"
sf-extract -m "$G/model.pth" --precision f16 < /dev/null > out 2> err; rc=$?
check "--precision f16: usage error" sh -c "[ $rc -eq 2 ] && grep -q 'expected f32 or bf16' err"
# oneDNN's view of the CPU, capped below AVX512-BF16: a clear refusal.
DNNL_MAX_CPU_ISA=AVX512_CORE sf-extract -m "$G/model.pth" --backend onednn --precision bf16 \
    < /dev/null > out 2> err; rc=$?
check "bf16 without AVX512-BF16: refused with the reason" \
    sh -c "[ $rc -eq 3 ] && grep -q 'needs a CPU with AVX512-BF16' err"
if grep -q avx512_bf16 /proc/cpuinfo 2>/dev/null; then
    sf-decode r18-small.npy > r18.sfs
    G=$SF_GOLDEN_DIR/r18-small
    sf-extract -m "$G/model.pth" --backend onednn --precision bf16 < r18.sfs > bf16.sfs 2> err &&
        sf-lit -m "$G/model.pth" --backend onednn --precision bf16 --global < bf16.sfs > bf16.lit 2>> err
    rc=$?
    check "bf16 runs with onednn here" sh -c "[ $rc -eq 0 ] && [ -s bf16.lit ] && [ ! -s err ]"
fi
sf-extract --backend list > list 2> err
check "--backend list shows both backends" sh -c "grep -q '^reference	usable' list && grep -q '^onednn	' list"
printf 'garbage' | sf-extract -m "$G/model.pth" --backend reference > out 2> err; rc=$?
check "bad stream: exit 3 with the reason" sh -c "[ $rc -eq 3 ] && grep -q 'sf-extract: <stdin>: record 0' err"
finish
