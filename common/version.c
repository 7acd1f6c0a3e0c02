/*
 * version: only this file sees the version define, from a generated
 * header that changes only when `git describe` does, so a new commit
 * rebuilds one object instead of leaving stale strings in others.
 */
#include "common/version.h"
#include "version-gen.h"

const char baton_version[] = BATON_VERSION;
