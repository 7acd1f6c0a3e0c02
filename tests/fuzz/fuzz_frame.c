/*
 * fuzz_frame: libFuzzer target for the frame header decoder and the body
 * decoder of whatever type the header names.  Input: 16 header bytes,
 * then the body.  A header that decodes must re-encode to the same
 * bytes; a body that decodes must validate or fail cleanly and free.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_header h;
	uint8_t again[FRAME_HEADER_SIZE];
	struct msg m;
	size_t len;

	if (size < FRAME_HEADER_SIZE)
		return 0;
	if (frame_header_decode(data, &h) != 0)
		return 0;
	frame_header_encode(&h, again);
	if (memcmp(again, data, FRAME_HEADER_SIZE) != 0)
		abort();
	/* Decode what is there, up to the length the header claims. */
	len = size - FRAME_HEADER_SIZE;
	if (len > h.body_len)
		len = h.body_len;
	if (msg_decode(h.type, data + FRAME_HEADER_SIZE, len, &m) == 0) {
		(void)msg_validate(&m, NULL);
		msg_free(&m);
	}
	return 0;
}
