/*
 * test_handoff_table: the supervisor's handoff state machine is a table
 * of states x events with every cell written out.  Walk all of it.
 */
#include <string.h>

#include "supervisor/handoff.h"
#include "tests/lib/tap.h"

TEST(every_cell_defined)
{
	unsigned st, ev, cells = 0;

	for (st = 0; st < handoff_nstates(); st++)
		for (ev = 0; ev < handoff_nevents(); ev++) {
			check(handoff_cell_defined(st, ev), "cell %s x %s is empty",
			    handoff_state_name(st), handoff_event_name(ev));
			cells++;
		}
	tap_diag("%u states x %u events = %u cells", handoff_nstates(),
	    handoff_nevents(), cells);
	check(cells >= 100, "a real table (%u cells)", cells);
}

TEST(names_unique_and_bounded)
{
	unsigned i, j;

	for (i = 0; i < handoff_nstates(); i++) {
		require(handoff_state_name(i), "state %u named", i);
		for (j = 0; j < i; j++)
			check(strcmp(handoff_state_name(i),
			    handoff_state_name(j)) != 0, "state names unique");
	}
	for (i = 0; i < handoff_nevents(); i++) {
		require(handoff_event_name(i), "event %u named", i);
		for (j = 0; j < i; j++)
			check(strcmp(handoff_event_name(i),
			    handoff_event_name(j)) != 0, "event names unique");
	}
	check(handoff_state_name(handoff_nstates()) == NULL, "past the end");
	check(handoff_event_name(handoff_nevents()) == NULL, "past the end");
	check(!handoff_cell_defined(handoff_nstates(), 0), "out of range");
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
