/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* metrics.h: per-CPU packet and byte counters by verdict reason and direction. */
#ifndef NA_METRICS_H
#define NA_METRICS_H

#include "maps.h"

/* Counts one packet of len bytes; per-CPU values need no atomics. */
static __always_inline void na_metrics_count(__u16 reason, __u8 dir, __u32 len)
{
	struct na_metrics_key key = { .reason = reason, .direction = dir };
	struct na_metrics_value init = { .packets = 1, .bytes = len };
	struct na_metrics_value *v;

	v = bpf_map_lookup_elem(&na_metrics, &key);
	if (!v) {
		if (bpf_map_update_elem(&na_metrics, &key, &init, BPF_NOEXIST) == 0)
			return;
		/* Another CPU created the key in between: count on our slot of it. */
		v = bpf_map_lookup_elem(&na_metrics, &key);
		if (!v)
			return;
	}
	v->packets += 1;
	v->bytes += len;
}

#endif /* NA_METRICS_H */
