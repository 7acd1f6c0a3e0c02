#!/bin/sh
# Bounded fuzz run inside `make check`: every decoder target for
# FUZZ_SECONDS (default 20) each.  Prints TAP through scripts/fuzz.sh.
exec "$(dirname "$0")/../scripts/fuzz.sh" "${BATON_FUZZ_BIN:-build-fuzz}" "${FUZZ_SECONDS:-20}"
