/*
 * mkseeds: write the fuzz seed corpus, one valid encoding of every
 * catalogue message per target.  Not built by the Makefile; run by hand
 * after adding messages:
 *
 *   cc -D_GNU_SOURCE -I. -o /tmp/mkseeds tests/fuzz/mkseeds.c \
 *       build/libbaton.a $(pkg-config --libs msgpack) && /tmp/mkseeds
 */
#include <stdio.h>
#include <stdlib.h>

#include "proto/frame.h"
#include "tests/unit/msg_fixture.h"

static int
put(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "tests/fuzz/corpus/%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n ||
	    fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

int
main(void)
{
	uint8_t *body, *frame, *typed;
	size_t i, blen, flen;
	struct msg m;

	for (i = 0; i < FIXTURE_NTYPES; i++) {
		fixture_fill(&m, fixture_types[i]);
		if (msg_encode(&m, &body, &blen) != 0)
			return 1;
		typed = malloc(blen + 2);
		typed[0] = m.type >> 8;
		typed[1] = m.type & 0xff;
		memcpy(typed + 2, body, blen);
		if (put("fuzz_msg", msg_type_name(m.type), typed, blen + 2) < 0)
			return 1;
		if (msg_type_wire(m.type)) {
			if (frame_encode(&m, 0, &frame, &flen) != 0 ||
			    put("fuzz_frame", msg_type_name(m.type), frame,
			    flen) < 0)
				return 1;
			free(frame);
		}
		free(typed);
		free(body);
	}
	return 0;
}
