/* Host port of lwIP for netpool-lwip (feature `bundled`). */
#ifndef NETPOOL_LWIP_ARCH_CC_H
#define NETPOOL_LWIP_ARCH_CC_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* lwIP's diagnostics go to a counter, never to stdout (port.c). */
void np_diag(const char *fmt, ...);
#define LWIP_PLATFORM_DIAG(x) do { np_diag x; } while (0)

/* A failed lwIP assertion is a bug: say where and stop. */
#define LWIP_PLATFORM_ASSERT(x) do { \
    fprintf(stderr, "lwIP assertion \"%s\" failed at line %d in %s\n", (x), __LINE__, __FILE__); \
    fflush(stderr); abort(); } while (0)

/* Deterministic pseudo-random numbers (seeded from Rust). */
uint32_t np_rand(void);
#define LWIP_RAND() np_rand()

#endif /* NETPOOL_LWIP_ARCH_CC_H */
