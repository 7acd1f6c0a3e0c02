/* jsonout: writing JSON values for --json output. */
#ifndef BATON_JSONOUT_H
#define BATON_JSONOUT_H

#include <stdio.h>

/* s as a JSON string (escaped), or null when s is NULL. */
void json_put_str(FILE *f, const char *s);

#endif
