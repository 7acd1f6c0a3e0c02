/* clock: monotonic and wall time in milliseconds. */
#ifndef BATON_CLOCK_H
#define BATON_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ms(void);	/* CLOCK_MONOTONIC */
uint64_t clock_mono_us(void);
uint64_t clock_wall_ms(void);	/* CLOCK_REALTIME, ms since the epoch */

#endif
