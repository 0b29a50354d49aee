#!/bin/sh
# Install what building and testing sf needs on Debian 12 (when run as root
# and something is missing), then generate ./configure.
set -e
cd "$(dirname "$0")"
# man-db: every --help points to a man page, and a minimal Debian has no man.
PACKAGES="build-essential autoconf automake libtool pkg-config
  libvips-dev libdnnl-dev libxxhash-dev libyaml-dev clang xxhash parallel man-db"
missing=
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap.sh: missing Debian packages:$missing (run as root, or apt-get install them)" >&2
        exit 1
    fi
    echo "bootstrap.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
autoreconf --install --force >/dev/null 2>&1 || autoreconf --install --force
echo "bootstrap.sh: ready; now ./configure && make"
