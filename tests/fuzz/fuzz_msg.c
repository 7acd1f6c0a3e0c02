/*
 * fuzz_msg: libFuzzer target for the body codec.  Input: 2 bytes of
 * message type (big-endian), then the body.  Whatever decodes must
 * re-encode, and the re-encoding must decode to an equal message that
 * encodes to the same bytes (the encoding is canonical).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b1 = NULL, *b2 = NULL;
	struct msg m1, m2;
	size_t l1, l2;
	uint16_t type;

	if (size < 2)
		return 0;
	type = (uint16_t)(data[0] << 8 | data[1]);
	if (msg_decode(type, data + 2, size - 2, &m1) != 0)
		return 0;
	(void)msg_validate(&m1, NULL);
	if (msg_encode(&m1, &b1, &l1) != 0)
		abort();	/* every decoded message is encodable */
	if (msg_decode(type, b1, l1, &m2) != 0)
		abort();
	if (!msg_equal(&m1, &m2))
		abort();
	if (msg_encode(&m2, &b2, &l2) != 0 || l1 != l2 ||
	    memcmp(b1, b2, l1) != 0)
		abort();
	msg_free(&m1);
	msg_free(&m2);
	free(b1);
	free(b2);
	return 0;
}
