#ifndef CMALLOC_SHIM_H
#define CMALLOC_SHIM_H
/* glibc's malloc tuning: Swift's Glibc module leaves malloc.h out, so mallopt is reached here. */
#if defined(__linux__)
#include <malloc.h>
#endif

/* Caps the number of glibc malloc arenas at `count` (mallopt's 1 on success); 0 where the C
   library has no such setting (musl, Darwin). */
static inline int cmalloc_limit_arenas(int count) {
#if defined(M_ARENA_MAX)
    return mallopt(M_ARENA_MAX, count);
#else
    (void)count;
    return 0;
#endif
}
#endif
