#!/bin/sh
# check-layers.sh: the include rule, checked over the #include lines.
#
#   crashpoints < common < proto < transport < client < programs
#
# A file may include headers of its own folder and of any lower layer.
# Programs (supervisor, successor, ctl, tools) include nothing of one
# another.  tests/ and examples/ may include anything.  Prints TAP: one
# case per folder, each violation as a diagnostic line, and the count of
# include edges between folders.
set -u
cd "$(dirname "$0")/.."

rank() {
	case "$1" in
	crashpoints) echo 0 ;;
	common) echo 1 ;;
	proto) echo 2 ;;
	transport) echo 3 ;;
	client) echo 4 ;;
	supervisor | successor | ctl | tools) echo 5 ;;
	*) echo "" ;;
	esac
}

folders="crashpoints common proto transport client supervisor successor ctl tools"
n=0
fail=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
echo "1..$(echo $folders | wc -w)"
for f in $folders; do
	n=$((n + 1))
	bad=""
	rf=$(rank "$f")
	for src in $(git ls-files "$f/*.c" "$f/*.h" "$f/*.def" 2>/dev/null); do
		for inc in $(sed -n 's/^#include "\([a-z_]*\)\/[^"]*".*/\1/p' "$src"); do
			[ "$inc" = "$f" ] && continue
			echo "$f -> $inc" >>"$edges"
			ri=$(rank "$inc")
			if [ -z "$ri" ]; then
				bad="$bad
# $src includes $inc/, which is no layer"
			elif [ "$ri" -gt "$rf" ] || { [ "$ri" -eq 5 ] && [ "$rf" -eq 5 ]; }; then
				bad="$bad
# $src includes $inc/ (layer $ri above or beside layer $rf)"
			fi
		done
	done
	if [ -z "$bad" ]; then
		echo "ok $n - $f (layer $rf) includes only its own folder and lower layers"
	else
		echo "not ok $n - $f breaks the include rule$bad"
		fail=1
	fi
done
echo "# include edges between folders (count):"
sort "$edges" | uniq -c | sed 's/^/# /'
exit $fail
