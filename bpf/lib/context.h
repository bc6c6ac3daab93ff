/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* context.h: the per-packet state the verdict steps share, from parsing to the final count. */
#ifndef NA_CONTEXT_H
#define NA_CONTEXT_H

#include "config.h"
#include "parse.h"

struct na_ctx {
	struct na_pkt pkt;
	struct na_cfg cfg;
	__u64 now_ns;           /* CLOCK_MONOTONIC, read before conntrack; 0 until then */
	__u32 now;              /* the same in seconds, the unit of conntrack lifetimes */
	__u32 ifindex;
	__u32 len;              /* skb->len */
	__u32 ep_id;            /* 0 until the endpoint is known */
	__u32 ep_identity;
	__u32 remote_identity;  /* 0 until resolved */
	__u32 rule_id;          /* policy rule that decided, 0 when none */
	__u32 ct_flags;         /* the matched conntrack entry's flags after this packet, 0 when none */
	__u8 dir;               /* enum na_direction */
	__u8 lb_xlated;         /* from_endpoint took it from a service frontend to a backend */
};

#endif /* NA_CONTEXT_H */
