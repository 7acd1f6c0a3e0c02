/* clock: thin wrappers over clock_gettime in milliseconds/microseconds. */
#include <time.h>

#include "common/clock.h"

static uint64_t
ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
clock_mono_ms(void)
{
	return ms(CLOCK_MONOTONIC);
}

uint64_t
clock_wall_ms(void)
{
	return ms(CLOCK_REALTIME);
}

uint64_t
clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}
