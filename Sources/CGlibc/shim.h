/* glibc interfaces Swift's Glibc module does not import. */
#ifndef NODEAGENT_CGLIBC_SHIM_H
#define NODEAGENT_CGLIBC_SHIM_H

#include <malloc.h>

/* Caps how many malloc arenas the process may create; returns 1 on success (mallopt's convention). */
static inline int cglibc_limit_malloc_arenas(int arenas)
{
	return mallopt(M_ARENA_MAX, arenas);
}

/* Returns the heap's free pages to the kernel (malloc_trim(0)); 1 if any were released. */
static inline int cglibc_release_free_heap(void)
{
	return malloc_trim(0);
}

#endif
