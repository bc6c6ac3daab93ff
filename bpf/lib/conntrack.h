/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * conntrack.h: flow state lookup, update and creation in na_ct, with lifetimes
 * from na_config, and the re-check of a flow against policy that changed since
 * it was allowed.
 */
#ifndef NA_CONNTRACK_H
#define NA_CONNTRACK_H

#include "context.h"
#include "ipcache.h"
#include "policy.h"

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

/*
 * Records a packet on a live entry: state, lifetime, counters. A packet in
 * the entry's own direction says whether the flow is a service's now (UDP
 * may reuse a tuple with and without the service while the entry lives).
 */
static __always_inline void na_ct_touch(struct na_ct_value *ct, struct na_ctx *ctx, bool reply)
{
	__u32 flags = ct->flags;
	__u32 next = flags | na_ct_packet_flags(&ctx->pkt);
	__u32 lifetime;

	if (reply)
		next |= NA_CT_SEEN_REPLY;
	else
		next = (next & ~NA_CT_SERVICE) | (ctx->lb_xlated ? NA_CT_SERVICE : 0);
	ctx->ct_flags = next;
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
 * A flow allowed under an older policy generation of the endpoint: evaluated
 * again against the policy of the direction that opened it (a reply is judged
 * by its request's direction and destination port), so revoking an allow or
 * adding a deny cuts established connections, in both directions of traffic.
 * Still allowed, the entry moves to the current generation; denied, the entry
 * stays as it was (neither refreshed nor moved), so every later packet of the
 * flow, either way, is re-checked and dropped until the entry expires or policy
 * allows the flow again. Deleting it instead would let the peer's next packet
 * open a new flow in the other direction, which that direction's policy may
 * allow, and revive the connection.
 */
static __always_inline int na_ct_recheck(struct na_ctx *ctx, struct na_ct_value *ct, bool reply)
{
	const struct na_pkt *pkt = &ctx->pkt;
	__u8 dir = ctx->dir;
	__be16 dport = pkt->dport;
	const __u8 *remote;
	int ret;

	remote = dir == NA_DIR_EGRESS ? pkt->daddr : pkt->saddr;
	ctx->remote_identity = na_ipcache_identity(remote, pkt->family);
	if (reply) {
		dir = dir == NA_DIR_EGRESS ? NA_DIR_INGRESS : NA_DIR_EGRESS;
		dport = pkt->sport;
	}
	ret = na_policy_verdict(ctx, dir, dport);
	if (ret < 0)
		return ret;
	ct->src_identity = ctx->remote_identity;
	ct->rule_id = ctx->rule_id;
	ct->policy_revision = ctx->ep_revision;
	return 0;
}

/* Internal to na_ct_lookup: no live entry under the key tried. */
#define NA_CT_MISS 3

/*
 * Looks up one of the packet's two keys: its own tuple and direction
 * (reply false) or the reversed tuple in the other direction (reply true),
 * updating the entry it finds. A SYN on a closing entry of its own direction
 * is a new connection reusing the tuple: NA_CT_NEW, so policy is evaluated
 * again. An entry from an older policy generation of the endpoint is
 * re-checked first; a flow policy no longer allows returns the drop reason.
 */
static __always_inline int na_ct_find(struct na_ctx *ctx, bool reply)
{
	const struct na_pkt *pkt = &ctx->pkt;
	struct na_ct_value *ct;
	struct na_ct_key key;
	int ret;

	na_ct_key_fill(&key, pkt, ctx->dir, reply);
	ct = bpf_map_lookup_elem(&na_ct, &key);
	if (!na_ct_live(ct, ctx->now))
		return NA_CT_MISS;
	if (!reply && (ct->flags & NA_CT_CLOSING) && na_pkt_opens_tcp(pkt))
		return NA_CT_NEW;
	if (ct->policy_revision != ctx->ep_revision) {
		ret = na_ct_recheck(ctx, ct, reply);
		if (ret < 0)
			return ret;
	}
	ctx->rule_id = ct->rule_id;
	na_ct_touch(ct, ctx, reply);
	return reply ? NA_CT_REPLY : NA_CT_ESTABLISHED;
}

/*
 * Whether the packet is more likely a reply than part of a flow it started:
 * from the lower port to the higher (a server's well-known port to a client's
 * ephemeral one), and not a SYN opening a connection. Only the order of the
 * two lookups depends on it.
 */
static __always_inline bool na_ct_reply_likely(const struct na_pkt *pkt)
{
	if (pkt->proto != NA_IPPROTO_TCP && pkt->proto != NA_IPPROTO_UDP)
		return false;
	if (na_pkt_opens_tcp(pkt))
		return false;
	return bpf_ntohs(pkt->sport) < bpf_ntohs(pkt->dport);
}

/*
 * Looks the packet up as part of a flow it started (same tuple, same
 * direction) or as a reply (reversed tuple, other direction); see na_ct_find.
 * The key the ports make likelier is tried first, so most replies cost one
 * lookup. Only when both a flow and its reverse are tracked (a simultaneous
 * open) does the order decide which entry the packet belongs to.
 *
 * A SYN without ACK is never a reply (the answer to a SYN carries an ACK), so
 * it is looked up as a flow of its own only: a new connection costs one cold
 * lookup rather than two. Its reverse is tracked only in a simultaneous open,
 * whose second SYN then goes to policy like any new connection (the handshake
 * still completes, through the SYN-ACK, which is a reply), or when a tuple is
 * reused in the other direction, which must not pass as a reply.
 */
static __always_inline int na_ct_lookup(struct na_ctx *ctx)
{
	const struct na_pkt *pkt = &ctx->pkt;
	bool reply = na_ct_reply_likely(pkt);
	int ret;

	ret = na_ct_find(ctx, reply);
	if (ret == NA_CT_MISS && !na_pkt_opens_tcp(pkt))
		ret = na_ct_find(ctx, !reply);
	return ret == NA_CT_MISS ? NA_CT_NEW : ret;
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

/*
 * Creates the entry of a new flow the endpoint's policy allows. An entry still
 * under the tuple (expired or closing: a client reusing a port, as every client
 * opening connections fast does) is rewritten in place: replacing it through
 * the map would take a node from the LRU and give the old one back, both on
 * cold memory, for every such connection. It is looked up again here, in a
 * bucket the first lookup just read, rather than carried from that lookup
 * through policy, where one more pointer to track cost 6.1's verifier a
 * quarter more states.
 */
static __always_inline int na_ct_create(const struct na_ctx *ctx)
{
	struct na_ct_value ct = {}, *stale;
	struct na_ct_key key;

	ct.flags = na_ct_packet_flags(&ctx->pkt) | (ctx->lb_xlated ? NA_CT_SERVICE : 0) |
		   (ctx->direct ? NA_CT_DIRECT : 0);
	ct.lifetime = ctx->now + na_ct_lifetime(&ctx->cfg, ctx->pkt.proto, ct.flags);
	ct.ep_id = ctx->ep_id;
	ct.src_identity = ctx->remote_identity;
	ct.rule_id = ctx->rule_id;
	ct.created = ctx->now;
	ct.policy_revision = ctx->ep_revision;
	ct.packets = 1;
	ct.bytes = ctx->len;
	na_ct_key_fill(&key, &ctx->pkt, ctx->dir, false);
	stale = bpf_map_lookup_elem(&na_ct, &key);
	if (stale)
		*stale = ct;
	else if (bpf_map_update_elem(&na_ct, &key, &ct, BPF_ANY) < 0)
		return -NA_DROP_CT_CREATE_FAILED;
	na_ct_count_created();
	return 0;
}

#endif /* NA_CONNTRACK_H */
