#!/bin/sh
# bf16_map.sh [BUILDDIR]: end-to-end mAP on the multiview photos, f32 against
# bf16 (onednn), with ONE codebook (trained on the f32 features) for both:
# each precision's database is indexed and queried with its own features,
# and sf-rank --groups scores both.  Target: |mAP(bf16) - mAP(f32)| <= 0.005.
# Environment:
#   SF_BF16_MODEL  the model (default: the golden r50-fire model, random
#                  weights; the official fire.pth is what the target means)
#   SF_BF16_SIZE   image size (default 512), SF_BF16_WORDS codebook size (256)
#   SF_PHOTOS_DIR, SF_GOLDEN_DIR as for make check
set -eu
B=$(cd "${1:-.}" && pwd)
export SF_BACKEND_PATH=$B/backends/.libs PATH=$B/cmd:$PATH
P=${SF_PHOTOS_DIR:-/var/cache/sf-photos}/multiview
M=${SF_BF16_MODEL:-${SF_GOLDEN_DIR:-/work/shared/golden}/r50-fire/model.pth}
size=${SF_BF16_SIZE:-512}
words=${SF_BF16_WORDS:-256}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT; cd "$T"
echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //')"
echo "model $M, images at $size, $words words"
ls "$P"/*.jpg "$P"/*.png 2>/dev/null | sort > list
sf-decode --size "$size" < list > d.sfs
for prec in f32 bf16; do
    s=$(date +%s.%N)
    sf-extract -m "$M" --backend onednn --precision $prec < d.sfs |
        sf-lit -m "$M" --backend onednn --precision $prec --global > $prec.sfs
    echo "$prec: extraction $(echo "$(date +%s.%N) - $s" | bc) s"
done
sf-codebook -k "$words" -o cb.sfcb f32.sfs
for prec in f32 bf16; do
    # Each precision gets its own index on the same codebook.  The codebook
    # records the f32 features it was trained on, and the index refuses
    # others (provenance): bf16's are let in on purpose, the point being
    # one codebook for both.
    mismatch=
    [ $prec = f32 ] || mismatch=--allow-mismatch
    sf-index create -C cb.sfcb $prec.six && sf-index add $mismatch $prec.six $prec.sfs
    sf-match $mismatch -i $prec.six -k 0 $prec.sfs > $prec.hits
    sf-rank --groups "$P/groups.tsv" $prec.hits > $prec.eval 2>&1 || true
    echo "$prec: $(grep '^groups' $prec.eval | head -n 1)"
done
# "groups QUERIES mAP mP@1 ...", under a "# protocol queries mAP ..." header
awk 'FNR == 1 { f++ } $1 == "groups" && NF >= 3 { v[f] = $3 }
     END { d = v[2] - v[1]; printf "mAP f32 %s, bf16 %s: difference %+.4f (target |d| <= 0.005): %s\n",
           v[1], v[2], d, (d <= 0.005 && d >= -0.005) ? "met" : "NOT met" }' f32.eval bf16.eval
