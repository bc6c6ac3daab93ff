/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* l7_bounds.h: lengths handed to helpers in bounds every verifier can see, 6.1's included. */
#ifndef NA_L7_BOUNDS_H
#define NA_L7_BOUNDS_H

#include <linux/types.h>

/*
 * n, known by the code to be in [1, max] (max a power of two), in a form the
 * verifier also knows to be in [1, max]. 6.1 learns nothing from "n != 0" on
 * a range, which is what clang makes of "n < 1", and clang drops a mask it
 * can prove useless: the empty asm hides n from clang, so the mask stays.
 */
static __always_inline __u32 na_l7_bounded(__u32 n, __u32 max)
{
	n -= 1;
	asm volatile("" : "+r"(n));
	return (n & (max - 1)) + 1;
}

#endif /* NA_L7_BOUNDS_H */
