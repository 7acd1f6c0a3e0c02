/*
 * fuzz_nsstate: libFuzzer target for the allocation table's decoder
 * (nsstate_decode over proto/mpread).  Whatever decodes must encode, the
 * encoding must decode, and that must encode to the same bytes (the
 * encoding is canonical).  Seeds (corpus/fuzz_nsstate/): tables written
 * by nsstate_encode, with and without uenv images, pid namespaces and
 * an event log.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "successor/nsstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ns_table t1, t2;
	uint8_t *b1 = NULL, *b2 = NULL;
	size_t l1, l2;

	if (nsstate_decode(data, size, &t1) != 0)
		return 0;
	if (nsstate_encode(&t1, &b1, &l1) != 0)
		abort();	/* every decoded table is encodable */
	if (nsstate_decode(b1, l1, &t2) != 0 || t2.n != t1.n ||
	    t2.seq != t1.seq || t2.generation != t1.generation)
		abort();
	if (nsstate_encode(&t2, &b2, &l2) != 0 || l1 != l2 ||
	    memcmp(b1, b2, l1) != 0)
		abort();
	nsstate_clear(&t1);
	nsstate_clear(&t2);
	free(b1);
	free(b2);
	return 0;
}
