/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* conntrack.h: flow state lookup, update and creation in na_ct, with lifetimes from na_config. */
#ifndef NA_CONNTRACK_H
#define NA_CONNTRACK_H

#include "context.h"

enum na_ct_status {
	NA_CT_NEW = 0,          /* no live entry: policy decides */
	NA_CT_ESTABLISHED = 1,  /* entry for this tuple and direction */
	NA_CT_REPLY = 2,        /* entry for the reversed tuple in the other direction */
};

static __always_inline void na_ct_key_fill(struct na_ct_key *key, const struct na_pkt *pkt,
					   __u8 dir, bool reverse)
{
	if (reverse) {
		__builtin_memcpy(key->saddr, pkt->daddr, 16);
		__builtin_memcpy(key->daddr, pkt->saddr, 16);
		key->sport = pkt->dport;
		key->dport = pkt->sport;
		key->direction = dir == NA_DIR_EGRESS ? NA_DIR_INGRESS : NA_DIR_EGRESS;
	} else {
		__builtin_memcpy(key->saddr, pkt->saddr, 16);
		__builtin_memcpy(key->daddr, pkt->daddr, 16);
		key->sport = pkt->sport;
		key->dport = pkt->dport;
		key->direction = dir;
	}
	key->proto = pkt->proto;
	key->family = pkt->family;
	key->pad = 0;
}

/* Flags of a TCP entry past its handshake. */
#define NA_CT_ESTABLISHED_FLAGS (NA_CT_SEEN_NON_SYN | NA_CT_SEEN_REPLY)

/* Lifetime in seconds for an entry in the given state. */
static __always_inline __u32 na_ct_lifetime(const struct na_cfg *cfg, __u8 proto, __u32 flags)
{
	if (proto != NA_IPPROTO_TCP)
		return cfg->lifetime_nontcp;
	if (flags & NA_CT_CLOSING)
		return cfg->lifetime_closing;
	if ((flags & NA_CT_ESTABLISHED_FLAGS) == NA_CT_ESTABLISHED_FLAGS)
		return cfg->lifetime_tcp;
	return cfg->lifetime_syn;
}

/* State flags a packet adds to its entry. */
static __always_inline __u32 na_ct_packet_flags(const struct na_pkt *pkt)
{
	__u32 flags = 0;

	if (pkt->proto != NA_IPPROTO_TCP)
		return 0;
	if (!(pkt->tcp_flags & NA_TCP_SYN))
		flags |= NA_CT_SEEN_NON_SYN;
	if (pkt->tcp_flags & (NA_TCP_FIN | NA_TCP_RST))
		flags |= NA_CT_CLOSING;
	return flags;
}

/* Records a packet on a live entry: state, lifetime, counters. */
static __always_inline void na_ct_touch(struct na_ct_value *ct, const struct na_ctx *ctx,
					bool reply)
{
	__u32 flags = ct->flags;
	__u32 next = flags | na_ct_packet_flags(&ctx->pkt);
	__u32 lifetime;

	if (reply)
		next |= NA_CT_SEEN_REPLY;
	/* Plain stores: a lost race only delays a state change to the next packet. */
	if (next != flags)
		ct->flags = next;
	lifetime = ctx->now + na_ct_lifetime(&ctx->cfg, ctx->pkt.proto, next);
	if (ct->lifetime != lifetime)
		ct->lifetime = lifetime;
	__sync_fetch_and_add(&ct->packets, 1);
	__sync_fetch_and_add(&ct->bytes, ctx->len);
}

/* A present entry whose lifetime has passed is as good as absent (GC has not reached it yet). */
static __always_inline bool na_ct_live(const struct na_ct_value *ct, __u32 now)
{
	return ct && ct->lifetime >= now;
}

/*
 * Looks the packet up as part of a flow it started (same tuple, same
 * direction) or as a reply (reversed tuple, other direction), updating the
 * entry it finds. A SYN on a closing entry is a new connection reusing the
 * tuple: it reports NA_CT_NEW so policy is evaluated again.
 */
static __always_inline int na_ct_lookup(struct na_ctx *ctx)
{
	const struct na_pkt *pkt = &ctx->pkt;
	struct na_ct_value *ct;
	struct na_ct_key key;

	na_ct_key_fill(&key, pkt, ctx->dir, false);
	ct = bpf_map_lookup_elem(&na_ct, &key);
	if (na_ct_live(ct, ctx->now)) {
		if (pkt->proto == NA_IPPROTO_TCP && (ct->flags & NA_CT_CLOSING) &&
		    (pkt->tcp_flags & (NA_TCP_SYN | NA_TCP_ACK)) == NA_TCP_SYN)
			return NA_CT_NEW;
		ctx->rule_id = ct->rule_id;
		na_ct_touch(ct, ctx, false);
		return NA_CT_ESTABLISHED;
	}
	na_ct_key_fill(&key, pkt, ctx->dir, true);
	ct = bpf_map_lookup_elem(&na_ct, &key);
	if (na_ct_live(ct, ctx->now)) {
		ctx->rule_id = ct->rule_id;
		na_ct_touch(ct, ctx, true);
		return NA_CT_REPLY;
	}
	return NA_CT_NEW;
}

/* Counts a created entry; the slot is this CPU's own, so a plain increment is enough. */
static __always_inline void na_ct_count_created(void)
{
	__u32 zero = 0;
	__u64 *created;

	created = bpf_map_lookup_elem(&na_ct_created, &zero);
	if (created)
		*created += 1;
}

/* Creates (or replaces an expired or closing) entry for an allowed new flow. */
static __always_inline int na_ct_create(const struct na_ctx *ctx)
{
	struct na_ct_value ct = {};
	struct na_ct_key key;

	na_ct_key_fill(&key, &ctx->pkt, ctx->dir, false);
	ct.flags = na_ct_packet_flags(&ctx->pkt);
	ct.lifetime = ctx->now + na_ct_lifetime(&ctx->cfg, ctx->pkt.proto, ct.flags);
	ct.ep_id = ctx->ep_id;
	ct.src_identity = ctx->remote_identity;
	ct.rule_id = ctx->rule_id;
	ct.created = ctx->now;
	ct.packets = 1;
	ct.bytes = ctx->len;
	if (bpf_map_update_elem(&na_ct, &key, &ct, BPF_ANY) < 0)
		return -NA_DROP_CT_CREATE_FAILED;
	na_ct_count_created();
	return 0;
}

#endif /* NA_CONNTRACK_H */
