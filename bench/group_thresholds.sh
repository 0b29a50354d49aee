#!/bin/sh
# The measurement behind sf-group's default thresholds (sf-group(1)): the
# multiview photos through a random-weight model of the official
# architecture, every photo queried against the others in each mode of
# sf-match, and sf-group's answer-key report for each.  About 4 CPU
# minutes of extraction and 4 of pairwise matching.
#
# Usage: bench/group_thresholds.sh [WORKDIR]
#   SF_BIN: directory of the sf programs (default: installed ones)
#   SF_PHOTOS_DIR: the test photos (default /var/cache/sf-photos)
set -eu
[ -z "${SF_BIN:-}" ] || PATH=$SF_BIN:$PATH
photos=${SF_PHOTOS_DIR:-/var/cache/sf-photos}/multiview
key=$photos/groups.tsv
work=${1:-$(mktemp -d)}
mkdir -p "$work" && cd "$work"
ls "$photos"/* | grep -v 'groups.tsv$' > list.txt
sf-model random -o official.sfm
sf-decode --size 512 < list.txt | sf-extract -m official.sfm |
    sf-lit -m official.sfm --global > photos.sfs
sf-codebook -q -k 1024 --iterations 10 --seed 1 -o codebook.sfcb photos.sfs
sf-index -q create -C codebook.sfcb photos.six && sf-index -q add photos.six photos.sfs
sf-match -i photos.six -k 0 photos.sfs > asmk.sfs
sf-match --global photos.sfs -k 0 photos.sfs > cosine.sfs
sf-match --pairwise photos.sfs -k 0 --no-pairs photos.sfs > matches.sfs
for mode in asmk matches cosine; do
    echo "== $mode ($work/$mode.sfs)"
    sf-group -m "$mode" --groups "$key" "$mode.sfs" | grep -v '^try'
    sf-group -m "$mode" --mutual --groups "$key" "$mode.sfs" | grep '^best' | sed 's/^/mutual /'
done
