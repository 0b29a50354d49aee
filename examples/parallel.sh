#!/bin/sh
# Spread the extraction of a photo folder over several hosts with GNU
# parallel, index the features as shards, search every photo in every shard
# and merge the rankings: what one index holding everything would give
# (shards merge exactly when the indexes use no idf, the default).
#
#   parallel.sh -m MODEL [-S HOSTS] [-n SHARDS] [-C CODEBOOK] [-k TOP] [-o DIR] PHOTOS
#
#   -m MODEL     FIRe checkpoint (default $SF_MODEL), at the same path on
#                every host
#   -S HOSTS     parallel's --sshlogin list (default $SF_HOSTS, else ':',
#                this machine only), e.g. 8/alpha,beta,:
#   -n SHARDS    how many shard indexes (default: one per host)
#   -C CODEBOOK  the codebook (default: train one on the features, with
#                $CODEBOOK_FLAGS)
#   -k TOP       results per photo (default 10)
#   -o DIR       keep the features, shards and hits here (default: a
#                temporary directory, removed)
#
# Prints the ranking of every photo, `query<TAB>rank<TAB>key<TAB>score`, keys
# being the paths relative to PHOTOS.  $DECODE_FLAGS, $EXTRACT_FLAGS and
# $LIT_FLAGS add options to sf-decode, sf-extract and sf-lit (default: the
# official settings, one thread per job); $PARALLEL adds options to
# parallel, e.g. PARALLEL=-j4 for 4 jobs per host instead of one per core.
# The remote hosts need sf on the PATH of a non-interactive ssh login; the
# photos are copied to them and removed after.  File names with newlines
# are not supported.
#
# Each job is one whole file.  `parallel --pipe --recstart '#SF-REC'` would
# also split a stream, but between records, not images: a job could get
# half of an image's records.  That is only right for streams whose images
# are single records (sf-decode --scales 1 without --pixels, say), and
# per-file jobs need no splitting anyway.
set -eu
[ -z "${SF_BIN:-}" ] || PATH=$SF_BIN:$PATH
model=${SF_MODEL:-} hosts=${SF_HOSTS:-:} shards='' codebook='' top=10 dir=''
usage() { echo "usage: parallel.sh -m MODEL [-S HOSTS] [-n SHARDS] [-C CODEBOOK] [-k TOP] [-o DIR] PHOTOS" >&2; exit 2; }
while getopts m:S:n:C:k:o: opt; do
    case $opt in
    m) model=$OPTARG ;; S) hosts=$OPTARG ;; n) shards=$OPTARG ;;
    C) codebook=$OPTARG ;; k) top=$OPTARG ;; o) dir=$OPTARG ;; *) usage ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -ne 1 ] || [ -z "$model" ]; then usage; fi
: "${shards:=$(echo "$hosts" | tr ',' '\n' | grep -c .)}"
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
# q WORD: WORD quoted for the shell
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
model=$(abs "$model")
[ -z "$codebook" ] || codebook=$(abs "$codebook")
if [ -n "$dir" ]; then
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
else
    dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT INT TERM
fi
photos=$(cd "$1" && pwd)
cd "$photos"

# Keys are the paths relative to PHOTOS: each job decodes from there.  On
# a remote host that is parallel's scratch directory (--wd ...), which also
# takes this machine's jobs, so those go back to PHOTOS.
find . ! -path '*/.*' -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \
    -o -iname '*.tif' -o -iname '*.tiff' -o -iname '*.webp' \) |
    sed 's|^\./||' | LC_ALL=C sort > "$dir/photos.list"
job="[ \"\$PARALLEL_SSHLOGIN\" != : ] || cd $(q "$photos");"
job="$job sf-decode -q ${DECODE_FLAGS:-} {} | sf-extract -q -m $(q "$model") ${EXTRACT_FLAGS:---threads 1}"
job="$job | sf-lit -q -m $(q "$model") ${LIT_FLAGS:---threads 1}"
remote=
for h in $(echo "$hosts" | tr , ' '); do
    [ "${h#*/}" = : ] || remote="--wd ... --transferfile {} --cleanup"
done
# --keep-order: the features in list order, so that the output is too.
# shellcheck disable=SC2086
parallel -S "$hosts" $remote --keep-order --halt now,fail=1 -a "$dir/photos.list" "$job" > "$dir/all.sfs"
# A job's exit status is sf-lit's: check that every photo came back.
sf-cat --list "$dir/all.sfs" | LC_ALL=C sort | cmp -s - "$dir/photos.list" || {
    echo "parallel.sh: some photos have no features (see the errors above)" >&2; exit 1; }

if [ -z "$codebook" ]; then
    codebook=$dir/codebook.sfcb
    # shellcheck disable=SC2086
    sf-codebook -q ${CODEBOOK_FLAGS:-} -o "$codebook" "$dir/all.sfs"
fi
# Shard i takes every SHARDS-th photo; on a real cluster each shard would
# live, and be searched, on its own host.
i=1
while [ "$i" -le "$shards" ]; do
    awk -v n="$shards" -v i="$i" 'NR % n == i % n' "$dir/photos.list" > "$dir/shard$i.list"
    sf-cat --key-file "$dir/shard$i.list" "$dir/all.sfs" > "$dir/shard$i.sfs"
    rm -f "$dir/shard$i.six"
    sf-index create -q -C "$codebook" "$dir/shard$i.six"
    sf-index add -q "$dir/shard$i.six" "$dir/shard$i.sfs"
    sf-match -q -i "$dir/shard$i.six" -k "$top" "$dir/all.sfs" > "$dir/hits$i.sfs"
    i=$((i + 1))
done
# sf-rank merges the hits of each query from all the shards.
set --
i=1
while [ "$i" -le "$shards" ]; do set -- "$@" "$dir/hits$i.sfs"; i=$((i + 1)); done
sf-rank -k "$top" "$@"
