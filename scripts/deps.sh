#!/bin/sh
# Install the Debian packages baton needs to build, test and demo, only
# when one is missing.  Runs apt-get update first on a machine that has
# never fetched the package lists.  Root runs apt-get directly; anyone
# else goes through sudo.
#
#   scripts/deps.sh            build + test + demo packages
#   scripts/deps.sh --peers    also the peer systems for `make bench-peers`
set -eu

pkgs="build-essential pkg-config clang libclang-rt-14-dev
libuv1-dev libmsgpack-dev libseccomp-dev uuid-dev nettle-dev
python3 python3-msgpack perl util-linux iproute2 squashfs-tools procps pdsh fiu-utils"

# Packaging and units (make check builds and lintians the .debs, runs
# systemd-analyze verify; issue 15).
pkgs="$pkgs debhelper dpkg-dev fakeroot lintian systemd man-db"

if [ "${1:-}" = "--peers" ]; then
	pkgs="$pkgs haproxy nginx-light golang-go golang-github-cloudflare-tableflip-dev gnuplot-nox"
fi

missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
	SUDO=""
else
	SUDO="sudo"
fi
# A machine that never fetched the lists has an empty lists directory.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
	$SUDO apt-get update -qq
fi
echo "deps.sh: installing:$missing" >&2
# shellcheck disable=SC2086
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2; then
	# Stale lists name versions the mirror no longer has: refresh once.
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >&2
fi
