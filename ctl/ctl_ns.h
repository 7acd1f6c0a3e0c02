/*
 * ctl_ns: `batonctl ns list|create|run|release` (SPEC §8), a thin command line
 * over nsclient against <root>/run/pact/handoff.sock.
 */
#ifndef BATON_CTL_NS_H
#define BATON_CTL_NS_H

/*
 * argv[0] is "ns".  Returns the exit code: 0 ok, 1 the provider said no
 * (or the command failed), 64 usage, 69 provider unavailable; for `run`,
 * the command's exit status (128+signal when killed).
 */
int ctl_ns_main(const char *root, int argc, char **argv);

#endif
