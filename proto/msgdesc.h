/*
 * msgdesc: the descriptor tables generated from messages.def, shared by
 * the parts of the codec (msg.c: tables, names, encode, compare;
 * msgdecode.c: the strict reader and free; msgcheck.c: validation).  Not
 * for use outside proto/.
 */
#ifndef BATON_MSGDESC_H
#define BATON_MSGDESC_H

#include <stddef.h>
#include <stdint.h>

/* Types at or above this are on-disk records, never wire frames. */
#define MSG_TYPE_DISK_MIN	96

enum kind {
	K_U16, K_U32, K_U64, K_OU64, K_OPTU64, K_BOOL, K_STR, K_NSTR, K_BIN,
	K_STRARR, K_NSLIST
};

struct field {
	const char *key;
	size_t keylen;
	size_t off;		/* offset inside the union member */
	enum kind kind;
};

struct desc {
	uint16_t type;
	const char *name;
	const struct field *(*fields)(size_t *ret_n);
};

/* The descriptor of a catalogue type, or NULL. */
const struct desc *msg_desc_of(uint16_t type);

#endif
