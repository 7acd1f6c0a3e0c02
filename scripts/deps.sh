#!/bin/sh
# Install the Debian packages baton needs, only when one is missing.
# Runs apt-get update first on a machine that has never fetched the
# package lists.  Root runs apt-get directly; anyone else goes through
# sudo.
#
#   scripts/deps.sh            what building needs (make, make demo)
#   scripts/deps.sh --check    also what the tests need (make check):
#                              clang for the fuzzers, python for the
#                              cross-check, pdsh, clustershell and
#                              openssh for the rollout tests, fiu, ...
#   scripts/deps.sh --peers    also the peer systems for `make bench-peers`
#   scripts/deps.sh --list [--check | --peers]
#                              print the packages instead (tests/deps_split.sh)
set -eu

list=""
if [ "${1:-}" = "--list" ]; then
	list=1
	shift
fi

# Building: the compiler and the libraries baton links.
build="build-essential pkg-config
libuv1-dev libmsgpack-dev libseccomp-dev uuid-dev nettle-dev libjansson-dev"
# Testing: sanitizer runtime for clang's fuzzers, the msgpack cross-check,
# namespaces and uenv images, pdsh and nodeset for rollout, a local sshd
# for the ssh rollout test, fault injection; packaging and units (make check
# builds and lintians the .debs, runs systemd-analyze verify).
check="clang libclang-rt-14-dev python3 python3-msgpack perl util-linux
iproute2 squashfs-tools procps pdsh clustershell openssh-server
openssh-client fiu-utils
debhelper dpkg-dev fakeroot lintian systemd man-db"
peers="haproxy nginx-light golang-go golang-github-cloudflare-tableflip-dev
gnuplot-nox"

case "${1:-}" in
"") pkgs="$build" ;;
--check) pkgs="$build $check" ;;
--peers) pkgs="$build $check $peers" ;;
*) echo "usage: scripts/deps.sh [--list] [--check | --peers]" >&2; exit 64 ;;
esac
if [ -n "$list" ]; then
	# shellcheck disable=SC2086
	printf '%s\n' $pkgs
	exit 0
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
