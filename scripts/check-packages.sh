#!/bin/sh
# The Debian packages, end to end (TAP, run by `make check` and `make
# packages`): build baton, libbaton-nsclient0 and libbaton-nsclient-dev
# with dpkg-buildpackage from a copy of the tree, run lintian, unpack them
# into a scratch root (dpkg -x; nothing is installed on the machine), run
# the installed binaries, check the library exports only nsclient_*, build
# examples/nsclient-example.c against the installed library through
# pkg-config and run it against the installed daemons, and run
# systemd-analyze verify on the installed units.
#   BATON_PKG_KEEP=1 keeps the scratch directory.
set -u
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
diag() { sed 's/^/# /'; }
t() { desc=$1; shift; if "$@"; then ok "$desc"; else notok "$desc"; fi; }

echo "1..12"
top=$(cd "$(dirname "$0")/.." && pwd)
for tool in dpkg-buildpackage lintian systemd-analyze pkg-config; do
	if ! command -v "$tool" >/dev/null; then
		echo "1..0 # SKIP $tool missing (scripts/deps.sh)"
		exit 0
	fi
done
T=$(mktemp -d /tmp/baton-pkg.XXXXXX)
sup=""
cleanup() {
	[ -n "$sup" ] && kill "$sup" 2>/dev/null && wait "$sup" 2>/dev/null
	[ -d "$T/run-root/run/pact/ns" ] && umount -l "$T/run-root/run/pact/ns" 2>/dev/null
	[ -n "${BATON_PKG_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

# 1: build from a copy (tracked and new files), never in the work tree.
mkdir -p "$T/src"
(cd "$top" && git ls-files -co --exclude-standard -z 2>/dev/null |
    xargs -0 tar -cf - 2>/dev/null) | tar -C "$T/src" -xf -
start=$(date +%s)
if (cd "$T/src" && env -u WERROR -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    -u VERSION DEB_BUILD_OPTIONS="parallel=2 nocheck" \
    dpkg-buildpackage -us -uc -b >"$T/build.log" 2>&1); then
	ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - start)) s)"
else
	notok "dpkg-buildpackage -us -uc -b"
	tail -40 "$T/build.log" | diag
	exit 1
fi
debs=$(ls "$T"/*.deb)
for d in $debs; do
	echo "$(basename "$d"):"
	dpkg-deb -c "$d" | awk '{print "  " $1 " " $6 ($7 ? " " $7 " " $8 : "")}'
done | diag
grep -E -- ' -o build/obj/client/nsclient.o |-o build/baton-agent ' \
    "$T/build.log" | head -2 | diag

# 2: lintian, errors fail (warnings and info are printed).
changes=$(ls "$T"/*.changes)
lintian --info --display-info --pedantic "$changes" >"$T/lintian.log" 2>&1
diag <"$T/lintian.log"
t "lintian: no errors ($(grep -c '^E:' "$T/lintian.log") E, $(grep -c '^W:' "$T/lintian.log") W)" \
    sh -c "! grep -q '^E:' '$T/lintian.log'"

# 3: hardening, no -Werror in the release build.
t "release build: FORTIFY, stack protector, RELRO+BIND_NOW, no -Werror" sh -c \
    "grep -q -- '-D_FORTIFY_SOURCE' '$T/build.log' &&
     grep -q -- '-fstack-protector' '$T/build.log' &&
     grep -q -- '-z,now' '$T/build.log' &&
     ! grep -Eq -- '-Werror( |\$)' '$T/build.log'"

# 4: unpack into a scratch root.
R=$T/root
mkdir -p "$R"
for d in $debs; do dpkg -x "$d" "$R"; done
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
L=$R/usr/lib/$ma
t "scratch root: daemons, batonctl, library, header, .pc, units, man pages" \
    test -x "$R/usr/sbin/baton-supervisor" -a -x "$R/usr/sbin/baton-agent" \
    -a -x "$R/usr/bin/batonctl" -a -f "$L/libbaton-nsclient.so.0" \
    -a -L "$L/libbaton-nsclient.so" -a -f "$R/usr/include/baton/nsclient.h" \
    -a -f "$L/pkgconfig/baton-nsclient.pc" \
    -a -f "$R/lib/systemd/system/baton-supervisor.service" \
    -a -f "$R/lib/systemd/system/baton.socket" \
    -a -f "$R/usr/share/man/man8/baton-agent.8.gz"

# 5: the installed binaries run.
ver=$(sed -n '1s/.*(\(.*\)).*/\1/p' "$top/debian/changelog")
out=$("$R/usr/sbin/baton-supervisor" --version && "$R/usr/sbin/baton-agent" \
    --version && "$R/usr/bin/batonctl" --version)
echo "$out" | diag
t "installed binaries --version say $ver (= VERSION, = debian/changelog)" sh -c \
    "[ \$(echo '$out' | grep -c ' $ver\$') -eq 3 ] &&
     [ \"\$(cat '$top/VERSION')\" = '$ver' ]"

# 6: the library's soname and exports.
soname=$(readelf -d "$L/libbaton-nsclient.so.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
others=$(nm -D --defined-only "$L/libbaton-nsclient.so.0" |
    awk '$3 !~ /^nsclient_/ && $3 != "BATON_NSCLIENT_0" {print $3}')
nexp=$(nm -D --defined-only "$L/libbaton-nsclient.so.0" | grep -c ' nsclient_')
echo "soname $soname, $nexp nsclient_* symbols exported, others: ${others:-none}" | diag
t "libbaton-nsclient.so.0: soname, only nsclient_* exported (no log_init)" \
    test "$soname" = libbaton-nsclient.so.0 -a -z "$others" -a "$nexp" -gt 10

# 7: pkg-config, and the header from C++.
export PKG_CONFIG_SYSROOT_DIR=$R PKG_CONFIG_LIBDIR=$L/pkgconfig
flags=$(pkg-config --cflags --libs baton-nsclient)
echo "pkg-config: $flags ($(pkg-config --modversion baton-nsclient))" | diag
t "<baton/nsclient.h> compiles as C++ (extern \"C\")" sh -c \
    "echo '#include <baton/nsclient.h>
int main() { return nsclient_kind_parse(\"pid\"); }' |
     g++ -x c++ -o '$T/cxx' - $flags"

# 8: the example, built against the installed library.
# shellcheck disable=SC2086
t "examples/nsclient-example.c builds through pkg-config" \
    cc -Wall -Wextra -Werror -o "$T/nsclient-example" \
    "$top/examples/nsclient-example.c" $flags

# 9-10: the installed daemons serve the example.
if [ "$(id -u)" != 0 ]; then
	ok "# SKIP not root: the daemons need namespaces"
	ok "# SKIP not root"
else
	mkdir -p "$T/run-root"
	"$R/usr/sbin/baton-supervisor" --root "$T/run-root" \
	    >"$T/supervisor.log" 2>&1 &
	sup=$!
	i=0
	while [ ! -S "$T/run-root/run/pact/handoff.sock" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	"$R/usr/bin/batonctl" --root "$T/run-root" status >"$T/status.log" 2>&1
	rc=$?
	diag <"$T/status.log"
	t "the installed supervisor starts the installed agent" test $rc = 0
	LD_LIBRARY_PATH=$L "$T/nsclient-example" \
	    "$T/run-root/run/pact/handoff.sock" >"$T/example.log" 2>&1
	rc=$?
	diag <"$T/example.log"
	t "the example creates, uses and releases an allocation" test $rc = 0
	kill "$sup"
	wait "$sup"
	sup=""
fi

# 11: the units, as installed (paths into the scratch root so the
# executables exist; man pages from it too).  No systemd as PID 1 needed.
mkdir -p "$T/units"
for u in baton-supervisor.service baton.socket; do
	sed "s|/usr/|$R/usr/|g" "$R/lib/systemd/system/$u" >"$T/units/$u"
done
(cd "$T/units" && MANPATH=$R/usr/share/man systemd-analyze verify \
    ./baton-supervisor.service ./baton.socket) >"$T/verify.log" 2>&1
rc=$?
diag <"$T/verify.log"
t "systemd-analyze verify baton-supervisor.service baton.socket" test $rc = 0

# 12: dependencies as dpkg-shlibdeps found them.
dep=$(dpkg-deb -f "$T"/baton_*.deb Depends)
echo "baton Depends: $dep" | diag
t "baton depends on libuv1, libseccomp2, libmsgpack" sh -c \
    "echo '$dep' | grep -q libuv1 && echo '$dep' | grep -q libseccomp2"
[ $fails -eq 0 ]
