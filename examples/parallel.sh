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
#                temporary directory, removed); run again with the same DIR,
#                only the photos that are new or changed (by content,
#                xxHash) are extracted, the others' features are reused
#
# Prints the ranking of every photo, `query<TAB>rank<TAB>key<TAB>score`, keys
# being the paths relative to PHOTOS.  $DECODE_FLAGS, $EXTRACT_FLAGS and
# $LIT_FLAGS add options to sf-decode, sf-extract and sf-lit (default: the
# official settings, one thread per job); $PARALLEL adds options to
# parallel, e.g. PARALLEL=-j4 for 4 jobs per host instead of one per core.
# The remote hosts need sf on the PATH of a non-interactive ssh login; the
# photos are copied to them and removed after.  Any file name works but for
# those with a tab or a newline (skipped with a message).  A photo that fails
# (a broken file) is named on stderr and left out, the others go on, and the
# exit status is 1; with -o DIR it is not tried again until its content
# changes.
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

find . ! -path '*/.*' -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \
    -o -iname '*.tif' -o -iname '*.tiff' -o -iname '*.webp' \) -print0 |
    tr '\n\t\0' '\001\001\n' | sed 's|^\./||' | LC_ALL=C sort > "$dir/found.list"
status=0
if grep -q "$(printf '\001')" "$dir/found.list"; then
    grep "$(printf '\001')" "$dir/found.list" | tr '\001' '?' | while IFS= read -r p; do
        echo "parallel.sh: $p: a name with a tab or a newline: skipped" >&2; done
    status=1
fi
# Each photo with the XXH64 of its content: what was extracted from the same
# content under the same name by an earlier run in DIR is not done again,
# and neither is what failed on it.
grep -v "$(printf '\001')" "$dir/found.list" | while IFS= read -r p; do
    printf '%s\t%s\n' "$p" "$(xxhsum -H1 < "$p" | cut -d' ' -f1)"
done > "$dir/photos.tsv"
touch "$dir/done.tsv" "$dir/failed.tsv"
[ -s "$dir/all.sfs" ] || : > "$dir/done.tsv"
awk -F '\t' -v d="$dir" '
    FILENAME == ARGV[1] { done[$0] = 1; next }
    FILENAME == ARGV[2] { failed[$0] = 1; next }
    ($0 in done) { print $1 > (d "/reuse.list"); next }
    ($0 in failed) { print > (d "/skip.tsv"); next }
    { print $1 > (d "/todo.list") }' "$dir/done.tsv" "$dir/failed.tsv" "$dir/photos.tsv"
touch "$dir/reuse.list" "$dir/skip.tsv" "$dir/todo.list"
: > "$dir/new.sfs"
if [ -s "$dir/reuse.list" ]; then
    sf-cat --key-file "$dir/reuse.list" "$dir/all.sfs" > "$dir/new.sfs"
fi
# Keys are the paths relative to PHOTOS: each job decodes from there.  On
# a remote host that is parallel's scratch directory (--wd ...), which also
# takes this machine's jobs, so those go back to PHOTOS.  parallel quotes
# {}, and -- keeps a name with a leading dash a name.
job="[ \"\$PARALLEL_SSHLOGIN\" != : ] || cd $(q "$photos");"
job="$job sf-decode -q ${DECODE_FLAGS:-} -- {} | sf-extract -q -m $(q "$model") ${EXTRACT_FLAGS:---threads 1}"
job="$job | sf-lit -q -m $(q "$model") ${LIT_FLAGS:---threads 1}"
remote=
for h in $(echo "$hosts" | tr , ' '); do
    [ "${h#*/}" = : ] || remote="--wd ... --transferfile {} --cleanup"
done
# --keep-order: the features in list order, so that the output is too.  A
# job that fails does not stop the others: what came back is checked below.
if [ -s "$dir/todo.list" ]; then
    pst=0
    # shellcheck disable=SC2086
    parallel -S "$hosts" $remote --keep-order -a "$dir/todo.list" "$job" >> "$dir/new.sfs" || pst=$?
    [ "$pst" -le 101 ] || { echo "parallel.sh: parallel failed (exit status $pst)" >&2; exit 3; }
fi
mv "$dir/new.sfs" "$dir/all.sfs"
# sf-cat escapes backslashes in keys; the other escapes cannot occur here.
sf-cat --list "$dir/all.sfs" | sed 's/\\\\/\\/g' | LC_ALL=C sort > "$dir/photos.list"
awk -F '\t' -v d="$dir" 'FILENAME == ARGV[1] { got[$0] = 1; next }
    ($1 in got) { print > (d "/done.tsv.new"); next }
    { print > (d "/failed.tsv.new") }' "$dir/photos.list" "$dir/photos.tsv"
touch "$dir/done.tsv.new" "$dir/failed.tsv.new"
mv "$dir/done.tsv.new" "$dir/done.tsv"
cut -f1 "$dir/failed.tsv.new" | while IFS= read -r p; do
    if grep -qxF "$p" "$dir/todo.list"; then
        echo "parallel.sh: $p: no features (see the errors above); left out until it changes" >&2
    else
        echo "parallel.sh: $p: failed before and unchanged: left out" >&2
    fi
done
[ ! -s "$dir/failed.tsv.new" ] || status=1
mv "$dir/failed.tsv.new" "$dir/failed.tsv"
rm -f "$dir/reuse.list" "$dir/skip.tsv" "$dir/todo.list" "$dir/found.list"
[ -s "$dir/photos.list" ] || { echo "parallel.sh: no photo gave features" >&2; exit 1; }

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
exit "$status"
