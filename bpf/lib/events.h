/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* events.h: flow events into the na_events ring buffer, with emitted/lost accounting. */
#ifndef NA_EVENTS_H
#define NA_EVENTS_H

#include "context.h"

static __always_inline void na_event_account(bool lost)
{
	struct na_event_stats *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&na_event_stats, &zero);
	if (!s)
		return;
	if (lost)
		s->lost += 1;
	else
		s->emitted += 1;
}

/*
 * How the reader learns of a new record. A drop wakes it at once: drops are what people watch for. Allowed flows,
 * which a busy node produces by the ten thousand per second, wake it only once an eighth of the ring is waiting;
 * otherwise the reader collects them on its next timed poll (at most 100 ms later). Waking the reader for every
 * record cost more CPU than decoding it.
 */
static __always_inline __u64 na_event_wakeup(__u16 reason)
{
	if (reason)
		return 0;
	if (bpf_ringbuf_query(&na_events, BPF_RB_AVAIL_DATA) >=
	    bpf_ringbuf_query(&na_events, BPF_RB_RING_SIZE) / 8)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* Writes one na_flow_event for the packet's verdict; a full ring buffer counts as lost. */
static __always_inline void na_event_emit(const struct na_ctx *ctx, __u16 reason)
{
	const struct na_pkt *pkt = &ctx->pkt;
	struct na_flow_event *e;

	e = bpf_ringbuf_reserve(&na_events, sizeof(*e), 0);
	if (!e) {
		na_event_account(true);
		return;
	}
	e->timestamp_ns = bpf_ktime_get_ns();  /* precise: ctx->now_ns is at tick resolution */
	__builtin_memcpy(e->saddr, pkt->saddr, 16);
	__builtin_memcpy(e->daddr, pkt->daddr, 16);
	e->sport = pkt->sport;
	e->dport = pkt->dport;
	e->proto = pkt->proto;
	e->family = pkt->family;
	e->direction = ctx->dir;
	e->verdict = reason ? NA_VERDICT_DROPPED : NA_VERDICT_FORWARDED;
	e->reason = reason;
	e->kind = NA_EVENT_L34;
	e->ep_id = ctx->ep_id;
	if (ctx->dir == NA_DIR_EGRESS) {
		e->src_identity = ctx->ep_identity;
		e->dst_identity = ctx->remote_identity;
	} else {
		e->src_identity = ctx->remote_identity;
		e->dst_identity = ctx->ep_identity;
	}
	e->rule_id = ctx->rule_id;
	e->ifindex = ctx->ifindex;
	e->length = ctx->len;
	bpf_ringbuf_submit(e, na_event_wakeup(reason));
	na_event_account(false);
}

/*
 * Whether a drop gets a flow event: always with no interval, else only the
 * first drop of its flow (5-tuple, direction, reason, endpoint) in each
 * interval, as Cilium's monitor aggregation does, so a flood of denied
 * packets costs one ring-buffer record per flow and interval. The metrics
 * count every packet regardless. Two CPUs racing on a new flow may both
 * report it: the bound is per CPU, not exact.
 */
static __always_inline bool na_drop_event_due(const struct na_ctx *ctx, __u16 reason)
{
	const struct na_pkt *pkt = &ctx->pkt;
	struct na_drop_agg_key key;
	__u64 now, *last;

	if (!ctx->cfg.drop_interval_ns)
		return true;
	__builtin_memcpy(key.saddr, pkt->saddr, 16);
	__builtin_memcpy(key.daddr, pkt->daddr, 16);
	key.sport = pkt->sport;
	key.dport = pkt->dport;
	key.proto = pkt->proto;
	key.family = pkt->family;
	key.direction = ctx->dir;
	key.pad = 0;
	key.reason = reason;
	key.pad2 = 0;
	key.ep_id = ctx->ep_id;
	now = ctx->now_ns ? ctx->now_ns : bpf_ktime_get_coarse_ns();  /* one clock for every drop of the map */
	last = bpf_map_lookup_elem(&na_drop_agg, &key);
	if (last) {
		if (now - *last < ctx->cfg.drop_interval_ns)
			return false;
		*last = now;
		return true;
	}
	bpf_map_update_elem(&na_drop_agg, &key, &now, BPF_ANY);
	return true;
}

/* Whether an allowed new flow is reported: NA_CFG_EVENTS_ALLOWED, 1 in sample_rate. */
static __always_inline bool na_event_sampled(const struct na_cfg *cfg)
{
	if (!(cfg->flags & NA_CFG_EVENTS_ALLOWED))
		return false;
	return cfg->sample_rate <= 1 || bpf_get_prandom_u32() % cfg->sample_rate == 0;
}

#endif /* NA_EVENTS_H */
