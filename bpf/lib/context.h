/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* context.h: the per-packet state the verdict steps share, from parsing to the final count. */
#ifndef NA_CONTEXT_H
#define NA_CONTEXT_H

#include "config.h"
#include "parse.h"

struct na_ctx {
	struct na_pkt pkt;
	struct na_cfg cfg;
	__u64 now_ns;           /* CLOCK_MONOTONIC_COARSE, read before conntrack (na_ctx_clock); 0 until then */
	__u32 now;              /* the same in seconds, the unit of conntrack lifetimes */
	__u32 ifindex;
	__u32 len;              /* skb->len */
	__u32 ep_id;            /* 0 until the endpoint is known */
	__u32 ep_identity;
	__u32 ep_revision;      /* the endpoint row's policy_revision */
	__u32 remote_identity;  /* 0 until resolved */
	__u32 rule_id;          /* policy rule that decided, 0 when none */
	__u32 ct_flags;         /* the matched conntrack entry's flags after this packet, 0 when none */
	__u8 dir;               /* enum na_direction */
	__u8 lb_xlated;         /* from_endpoint took it from a service frontend to a backend */
	__u8 direct;            /* deliver_local decides it (local_delivery.h): a new flow's entry gets NA_CT_DIRECT */
	__u8 ep_flags;          /* the endpoint row's NA_EP_* flags (all in the low byte but NA_EP_SLOT_VALID) */
};

/*
 * Reads the clock of conntrack, NAT, affinity and drop aggregation: CLOCK_MONOTONIC
 * at tick resolution (bpf_ktime_get_coarse_ns, Linux 5.11), the clock the agent
 * compares lifetimes with (MonotonicClock). Lifetimes count whole seconds, and
 * the precise clock cost a quarter of an established packet's time; flow events
 * still carry a precise timestamp of their own. na_ctx_clock_at takes a reading
 * of that clock the caller made for this packet already.
 */
static __always_inline void na_ctx_clock_at(struct na_ctx *ctx, __u64 now_ns)
{
	ctx->now_ns = now_ns;
	ctx->now = now_ns / NA_NSEC_PER_SEC;
}

static __always_inline void na_ctx_clock(struct na_ctx *ctx)
{
	na_ctx_clock_at(ctx, bpf_ktime_get_coarse_ns());
}

#endif /* NA_CONTEXT_H */
