/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* metrics.h: per-CPU packet and byte counters by verdict reason and direction. */
#ifndef NA_METRICS_H
#define NA_METRICS_H

#include "maps.h"

/* Counts one packet of len bytes in its slot; per-CPU values need no atomics. */
static __always_inline void na_metrics_count(__u16 reason, __u8 dir, __u32 len)
{
	__u32 slot = na_metrics_slot(reason, dir);
	struct na_metrics_value *v;

	v = bpf_map_lookup_elem(&na_metrics, &slot);
	if (!v)
		return;
	v->packets += 1;
	v->bytes += len;
}

#endif /* NA_METRICS_H */
