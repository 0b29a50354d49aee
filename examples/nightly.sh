#!/bin/sh
# Update a photo index every night from cron: runs photos.mk (next to this
# script), appends what it did to a log, one timestamped line each, and
# prints nothing unless something went wrong, as cron likes: cron mails
# whatever a job prints.  The log names every photo added, replaced,
# removed, failed or skipped (failed before and unchanged: tried again once
# it changes), and ends with a count of each.  A photo that fails does not
# stop the others; it is mailed about once, the night it first fails.
#
#   nightly.sh [-l LOG] [-L LOCK] [MAKE ARGUMENT]...
#
#   -l LOG    the log (default: $SF_NIGHTLY_LOG, else INDEX.log)
#   -L LOCK   the lock file that keeps two runs apart (default INDEX.lock)
#   MAKE ARGUMENTS: photos.mk's variables (PHOTOS=, MODEL=, INDEX=... see
#   there) and make options such as -j4.
#
# Exit status: 0 done; 1 done, but some photos failed (named in the log);
# 75 another run still holds the lock, so this one did nothing (the next run
# catches up); else photos.mk failed, see the log.
# The index is written with --no-wait: if some other program is writing it,
# the run fails at once rather than hang, and the next run catches up.
#
# crontab -e (cron's PATH is short: name where sf is; SF_BIN works too):
#   PATH=/usr/local/bin:/usr/bin:/bin
#   30 3 * * * /usr/local/share/doc/sf/examples/nightly.sh -l $HOME/photos.log PHOTOS=$HOME/Pictures MODEL=$HOME/fire.pth INDEX=$HOME/photos.six
set -eu
here=$(cd "$(dirname "$0")" && pwd)
log=${SF_NIGHTLY_LOG:-}
lock=
while getopts l:L: opt; do
    case $opt in
    l) log=$OPTARG ;;
    L) lock=$OPTARG ;;
    *) echo "usage: nightly.sh [-l LOG] [-L LOCK] [MAKE ARGUMENT]..." >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
index=photos.six
for a; do
    case $a in INDEX=*) index=${a#INDEX=} ;; esac
done
: "${log:=$index.log}" "${lock:=$index.lock}"

stamp() {
    while IFS= read -r line; do
        printf '%s %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$line"
    done >> "$log"
}
say() { printf '%s\n' "$*" | stamp; }

# The lock lasts as long as this script: fd 9 stays open until it exits.
exec 9>> "$lock"
if ! flock -n 9; then
    say "another run holds $lock: nothing done"
    echo "nightly.sh: another run holds $lock: nothing done" >&2
    exit 75
fi
say "start: $*"
start=$(date +%s)
# make's output goes to the log as it comes; its status comes back on fd 3.
# Each line also goes to a copy of this run's output, to count them.
run=$(mktemp) || exit 3
trap 'rm -f "$run"' EXIT
rc=$({ { s=0; make -f "$here/photos.mk" WRITE_FLAGS=--no-wait "$@" 2>&1 || s=$?
         echo $s >&3; } | tee "$run" | stamp; } 3>&1)
count() { grep -c "^$1	" "$run" || true; }
summary="added $(count add), replaced $(count replace), removed $(count remove),"
summary="$summary failed $(count fail), skipped $(count skip)"
failed=$(count fail)
# sf-search prints the photos' lines only once the index is updated: fail
# lines mean the others were indexed, only those photos failed.
if [ "$rc" -ne 0 ] && [ "$failed" -gt 0 ]; then
    say "done in $(($(date +%s) - start)) s: $summary"
    echo "nightly.sh: $failed photos failed (the others are indexed; each is tried again once it changes), see $log" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    say "failed: make exit status $rc"
    echo "nightly.sh: the update failed (make exit status $rc), see $log" >&2
    exit "$rc"
fi
say "done in $(($(date +%s) - start)) s: $summary"
