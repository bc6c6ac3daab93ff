/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* nat.h: masquerading of pod flows leaving through the external interface, and of their replies. */
#ifndef NA_NAT_H
#define NA_NAT_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nat_maps.h"
#include "maps.h"
#include "context.h"
#include "parse.h"
#include "fragments.h"
#include "endpoint.h"
#include "ipcache.h"
#include "conntrack.h"
#include "metrics.h"
#include "events.h"

/* Offsets of what a translation rewrites, and the ICMP type (only echo is translated). */
struct na_nat_loc {
	__u32 l3_off;
	__u32 l4_off;
	__u8 icmp_type;
};

/* What to do with a packet leaving the node. */
enum na_nat_action {
	NA_NAT_PASS = 0,       /* not ours to translate */
	NA_NAT_TRANSLATE = 1,  /* rewrite the source to the mapping's address and port */
};

/* Parses an IPv4 packet, keeping the header offsets; IPv6, non-IP or malformed: -1. */
static __always_inline int na_nat_parse(struct __sk_buff *skb, struct na_pkt *pkt,
					struct na_nat_loc *loc)
{
	__u16 proto;
	__u8 *type;
	int off;

	off = na_parse_l2(skb, &proto);
	if (off < 0 || proto != NA_ETH_P_IP)
		return -1;
	loc->l3_off = off;
	off = na_parse_ipv4(skb, off, pkt);
	if (off < 0)
		return -1;
	loc->l4_off = off;
	if (pkt->frag == NA_FRAG_LATER)
		return 0;
	if (na_parse_l4(skb, off, pkt) < 0)
		return -1;
	if (pkt->proto == NA_IPPROTO_ICMP) {
		type = na_header(skb, off, 1);
		if (!type)
			return -1;
		loc->icmp_type = *type;
	}
	return 0;
}

/*
 * Whether the protocol can be translated: TCP, UDP, and ICMP echo (the id
 * plays the port) in the given direction. Later fragments carry no L4 header;
 * their protocol is enough.
 */
static __always_inline bool na_nat_protocol(const struct na_pkt *pkt, const struct na_nat_loc *loc,
					    __u8 icmp_type)
{
	if (pkt->proto == NA_IPPROTO_TCP || pkt->proto == NA_IPPROTO_UDP)
		return true;
	if (pkt->proto != NA_IPPROTO_ICMP)
		return false;
	return pkt->frag == NA_FRAG_LATER || loc->icmp_type == icmp_type;
}

/* Whether an IPv4 address lies in one of the cluster CIDRs. */
static __always_inline bool na_nat_in_cluster(const __u8 *addr)
{
	struct na_ipcache_key key = {};

	key.prefixlen = NA_IPCACHE_PREFIX_BASE + 32;
	key.family = NA_FAMILY_IPV4;
	__builtin_memcpy(key.addr, addr, 4);
	return bpf_map_lookup_elem(&na_nat_cluster, &key) != NULL;
}

/* One round of a murmur3-style mix: spreads tuples over the port range. */
static __always_inline __u32 na_nat_mix(__u32 h, __u32 v)
{
	v *= 0xcc9e2d51;
	v = (v << 15) | (v >> 17);
	v *= 0x1b873593;
	h ^= v;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

/* murmur3's finalizer: every input bit reaches every output bit. */
static __always_inline __u32 na_nat_fmix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

static __always_inline __u32 na_nat_hash(const struct na_ct_key *k)
{
	__u32 h = 0x4e415400;

	h = na_nat_mix(h, *(const __u32 *)k->saddr);
	h = na_nat_mix(h, *(const __u32 *)k->daddr);
	h = na_nat_mix(h, ((__u32)k->sport << 16) | k->dport);
	h = na_nat_mix(h, k->proto);
	return na_nat_fmix(h);
}

/* The reverse half's key: the tuple of replies once the forward half's translation applied. */
static __always_inline void na_nat_reverse_key(struct na_ct_key *rkey, const struct na_ct_key *fkey,
					       const struct na_nat_entry *fwd)
{
	__builtin_memcpy(rkey->saddr, fkey->daddr, 16);
	__builtin_memcpy(rkey->daddr, fwd->addr, 16);
	rkey->sport = fkey->dport;
	rkey->dport = fwd->port;
	rkey->proto = fkey->proto;
	rkey->family = fkey->family;
	rkey->direction = NA_DIR_INGRESS;
	rkey->pad = 0;
}

/* The forward half's key, from the reverse half's key and entry. */
static __always_inline void na_nat_forward_key(struct na_ct_key *fkey, const struct na_ct_key *rkey,
					       const struct na_nat_entry *rev)
{
	__builtin_memcpy(fkey->saddr, rev->addr, 16);
	__builtin_memcpy(fkey->daddr, rkey->saddr, 16);
	fkey->sport = rev->port;
	fkey->dport = rkey->sport;
	fkey->proto = rkey->proto;
	fkey->family = rkey->family;
	fkey->direction = NA_DIR_EGRESS;
	fkey->pad = 0;
}

/* Whether an entry translates to addr:port (IPv4). */
static __always_inline bool na_nat_points_to(const struct na_nat_entry *e, const __u8 *addr,
					     __be16 port)
{
	return e->port == port && na_addr_equal(e->addr, addr, 1);
}

/* Flow state after this packet, as conntrack keeps it; a SYN on a closing flow starts over. */
static __always_inline __u32 na_nat_next_flags(const struct na_nat_entry *e,
					       const struct na_pkt *pkt, bool reply)
{
	__u32 flags = e->flags;

	if (!reply && (flags & NA_CT_CLOSING) && na_pkt_opens_tcp(pkt))
		flags &= NA_NAT_TRACKED;
	flags |= na_ct_packet_flags(pkt);
	if (reply)
		flags |= NA_CT_SEEN_REPLY;
	return flags;
}

/* Stamps the flow's state and lifetime on one half; plain stores, as conntrack does. */
static __always_inline void na_nat_stamp(struct na_nat_entry *e, __u32 flags, __u32 lifetime)
{
	if (e->flags != flags)
		e->flags = flags;
	if (e->lifetime != lifetime)
		e->lifetime = lifetime;
}

/* Records a packet on both halves of a mapping, so they share one state and one lifetime. */
static __always_inline void na_nat_refresh(const struct na_ctx *ctx, struct na_nat_entry *a,
					   struct na_nat_entry *b, bool reply)
{
	__u32 flags = na_nat_next_flags(a, &ctx->pkt, reply);
	__u32 lifetime = ctx->now + na_ct_lifetime(&ctx->cfg, ctx->pkt.proto, flags);

	na_nat_stamp(a, flags, lifetime);
	if (b)
		na_nat_stamp(b, flags, lifetime);
}

/*
 * Claims a port for the flow fkey: the reverse half is inserted with
 * BPF_NOEXIST, so a port is never handed to two flows towards the same
 * destination address, port and protocol. The first port tried comes from the
 * tuple's hash, the others are random. On success fwd holds the forward half
 * to insert; the reverse half is already in place.
 */
static __always_inline int na_nat_claim_port(const struct na_nat_config *ncfg,
					     const struct na_ct_key *fkey, struct na_nat_entry *fwd)
{
	struct na_nat_entry rev = {};
	struct na_ct_key rkey;
	__u32 range, hash, i;
	__u16 min = ncfg->port_min, max = ncfg->port_max;

	if (max < min)
		return -NA_DROP_NAT_NO_PORT;
	range = (__u32)max - min + 1;
	__builtin_memcpy(rev.addr, fkey->saddr, 16);
	rev.port = fkey->sport;
	rev.flags = fwd->flags;
	rev.created = fwd->created;
	rev.lifetime = fwd->lifetime;
	hash = na_nat_hash(fkey);
	for (i = 0; i < NA_NAT_RETRIES; i++) {
		fwd->port = bpf_htons((__u16)(min + hash % range));
		na_nat_reverse_key(&rkey, fkey, fwd);
		if (bpf_map_update_elem(&na_nat, &rkey, &rev, BPF_NOEXIST) == 0)
			return 0;
		hash = bpf_get_prandom_u32();
	}
	return -NA_DROP_NAT_NO_PORT;
}

/*
 * Creates a mapping for fkey and writes its forward half into *out; returns
 * NA_NAT_TRANSLATE or a negative drop reason. replace overwrites a forward
 * half that is no longer valid; otherwise a forward half another CPU created
 * meanwhile wins and our reverse half is withdrawn.
 */
static __always_inline int na_nat_create(const struct na_ctx *ctx, const struct na_nat_config *ncfg,
					 const struct na_ct_key *fkey, __u32 tracked, bool replace,
					 struct na_nat_entry *out)
{
	struct na_nat_entry fwd = {}, *winner;
	struct na_ct_key rkey;
	int ret;

	__builtin_memcpy(fwd.addr, ncfg->ipv4, 4);
	fwd.flags = na_ct_packet_flags(&ctx->pkt) | tracked;
	fwd.created = ctx->now;
	fwd.lifetime = ctx->now + na_ct_lifetime(&ctx->cfg, ctx->pkt.proto, fwd.flags);
	ret = na_nat_claim_port(ncfg, fkey, &fwd);
	if (ret < 0)
		return ret;
	if (bpf_map_update_elem(&na_nat, fkey, &fwd, replace ? BPF_ANY : BPF_NOEXIST) == 0) {
		*out = fwd;
		return NA_NAT_TRANSLATE;
	}
	na_nat_reverse_key(&rkey, fkey, &fwd);
	bpf_map_delete_elem(&na_nat, &rkey);
	winner = bpf_map_lookup_elem(&na_nat, fkey);
	if (!winner)
		return -NA_DROP_NAT_NO_PORT;
	*out = *winner;
	return NA_NAT_TRANSLATE;
}

/*
 * Finds or creates the mapping of a packet leaving the node from a pod.
 * A live mapping must be whole: its reverse half present and pointing back,
 * its address the configured one. A missing reverse half is put back (an LRU
 * map may evict one half alone); a mapping that cannot be made whole is
 * replaced. Flows that are replies to connections opened from outside
 * (conntrack holds them as ingress) are left alone.
 */
static __always_inline int na_nat_snat_mapping(const struct na_ctx *ctx,
					       const struct na_nat_config *ncfg,
					       struct na_nat_entry *out)
{
	struct na_nat_entry *fwd, *rev;
	struct na_ct_key fkey, rkey;
	__u32 tracked = 0;

	na_ct_key_fill(&fkey, &ctx->pkt, NA_DIR_EGRESS, false);
	fwd = bpf_map_lookup_elem(&na_nat, &fkey);
	/* Later fragments follow their first fragment's mapping; they never start or change one. */
	if (ctx->pkt.frag == NA_FRAG_LATER) {
		if (!fwd)
			return NA_NAT_PASS;
		*out = *fwd;
		return NA_NAT_TRANSLATE;
	}
	if (fwd) {
		if (!na_addr_equal(fwd->addr, ncfg->ipv4, 1))
			return na_nat_create(ctx, ncfg, &fkey, fwd->flags & NA_NAT_TRACKED, true,
					     out);
		na_nat_reverse_key(&rkey, &fkey, fwd);
		rev = bpf_map_lookup_elem(&na_nat, &rkey);
		if (!rev) {
			struct na_nat_entry copy = *fwd;

			__builtin_memcpy(copy.addr, fkey.saddr, 16);
			copy.port = fkey.sport;
			bpf_map_update_elem(&na_nat, &rkey, &copy, BPF_NOEXIST);
			rev = bpf_map_lookup_elem(&na_nat, &rkey);
		}
		if (!rev || !na_nat_points_to(rev, fkey.saddr, fkey.sport))
			return na_nat_create(ctx, ncfg, &fkey, fwd->flags & NA_NAT_TRACKED, true,
					     out);
		na_nat_refresh(ctx, fwd, rev, false);
		*out = *fwd;
		return NA_NAT_TRANSLATE;
	}
	if (bpf_map_lookup_elem(&na_ct, &fkey)) {
		tracked = NA_NAT_TRACKED;
	} else {
		na_ct_key_fill(&rkey, &ctx->pkt, NA_DIR_EGRESS, true);
		if (na_ct_live(bpf_map_lookup_elem(&na_ct, &rkey), ctx->now))
			return NA_NAT_PASS;
	}
	return na_nat_create(ctx, ncfg, &fkey, tracked, false, out);
}

/*
 * Rewrites the source or destination address and port of an IPv4 or IPv6
 * packet and fixes the IPv4 header checksum and the TCP, UDP or ICMP(v6)
 * checksum (masquerading and service translation share it). The helpers
 * update checksums incrementally and leave a CHECKSUM_PARTIAL packet's
 * pseudo-header sum correct; a UDP checksum of zero (none, IPv4 only) stays
 * zero. Later fragments only have their address rewritten: the first fragment
 * carries the L4 checksum for the whole datagram. Addresses are 16 bytes on
 * the stack (IPv4 in the first four).
 */
static __always_inline int na_nat_rewrite(struct __sk_buff *skb, const struct na_pkt *pkt,
					  const struct na_nat_loc *loc, bool source,
					  const __u8 *old_addr, const __u8 *new_addr, __be16 old_port,
					  __be16 new_port)
{
	bool v4 = pkt->family == NA_FAMILY_IPV4;
	__u32 addr_off = loc->l3_off + (v4 ? (source ? 12 : 16) : (source ? 8 : 24));
	__u32 csum_off, port_off;
	__be32 old4 = 0, new4 = 0;
	__u64 flags = 0;
	__s64 diff = 0;

	if (v4) {
		__builtin_memcpy(&old4, old_addr, 4);
		__builtin_memcpy(&new4, new_addr, 4);
		if (bpf_l3_csum_replace(skb, loc->l3_off + 10, old4, new4, 4) < 0)
			return -NA_DROP_INVALID;
		if (bpf_skb_store_bytes(skb, addr_off, &new4, 4, 0) < 0)
			return -NA_DROP_INVALID;
	} else {
		diff = bpf_csum_diff((__be32 *)old_addr, 16, (__be32 *)new_addr, 16, 0);
		if (bpf_skb_store_bytes(skb, addr_off, new_addr, 16, 0) < 0)
			return -NA_DROP_INVALID;
	}
	if (pkt->frag == NA_FRAG_LATER)
		return 0;
	switch (pkt->proto) {
	case NA_IPPROTO_TCP:
		csum_off = loc->l4_off + 16;
		port_off = loc->l4_off + (source ? 0 : 2);
		break;
	case NA_IPPROTO_UDP:
		csum_off = loc->l4_off + 6;
		port_off = loc->l4_off + (source ? 0 : 2);
		flags = BPF_F_MARK_MANGLED_0;
		break;
	case NA_IPPROTO_ICMPV6:
		/* ICMPv6 echo: the checksum covers the pseudo header; the id sits at offset 4. */
		csum_off = loc->l4_off + 2;
		port_off = loc->l4_off + 4;
		break;
	default:
		/* ICMP echo: the checksum covers no pseudo header; the id sits at offset 4. */
		csum_off = loc->l4_off + 2;
		port_off = loc->l4_off + 4;
		goto port;
	}
	if (v4) {
		if (bpf_l4_csum_replace(skb, csum_off, old4, new4, flags | BPF_F_PSEUDO_HDR | 4) < 0)
			return -NA_DROP_INVALID;
	} else if (bpf_l4_csum_replace(skb, csum_off, 0, diff, flags | BPF_F_PSEUDO_HDR) < 0) {
		return -NA_DROP_INVALID;
	}
port:
	if (old_port == new_port)
		return 0;
	if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, flags | 2) < 0)
		return -NA_DROP_INVALID;
	if (bpf_skb_store_bytes(skb, port_off, &new_port, 2, 0) < 0)
		return -NA_DROP_INVALID;
	return 0;
}

static __always_inline void na_nat_ctx_init(struct __sk_buff *skb, struct na_ctx *ctx, __u8 dir)
{
	ctx->dir = dir;
	ctx->len = skb->len;
	ctx->ifindex = skb->ifindex;
	na_ctx_clock(ctx);
	na_config_load(&ctx->cfg);
}

/* A NAT drop: counted, reported with the identities of both ends, and the packet discarded. */
static __always_inline int na_nat_drop(struct na_ctx *ctx, int ret)
{
	__u16 reason = -ret;

	na_metrics_count(reason, ctx->dir, ctx->len);
	if (ctx->cfg.flags & NA_CFG_EVENTS_DROPPED) {
		ctx->remote_identity = na_ipcache_identity(ctx->pkt.daddr, ctx->pkt.family);
		ctx->ep_identity = na_ipcache_identity(ctx->pkt.saddr, ctx->pkt.family);
		na_event_emit(ctx, reason);
	}
	return TC_ACT_SHOT;
}

/*
 * tc egress of the external interface: IPv4 TCP, UDP and ICMP echo from a
 * cluster address to an address outside the cluster (and not the node's own)
 * leave with the node's address and a port of the configured range.
 * Everything else passes untouched: the node's own traffic included.
 */
static __always_inline int na_nat_egress(struct __sk_buff *skb)
{
	const struct na_nat_config *ncfg;
	struct na_nat_entry map = {};
	struct na_nat_loc loc = {};
	struct na_ctx ctx = {};
	__u32 zero = 0;
	int ret;

	ncfg = bpf_map_lookup_elem(&na_nat_config, &zero);
	if (!ncfg || !(ncfg->flags & NA_NAT_CFG_ENABLED))
		return TC_ACT_OK;
	if (na_nat_parse(skb, &ctx.pkt, &loc) < 0 ||
	    !na_nat_protocol(&ctx.pkt, &loc, NA_ICMP_ECHO))
		return TC_ACT_OK;
	if (na_addr_equal(ctx.pkt.daddr, ncfg->ipv4, 1) || !na_nat_in_cluster(ctx.pkt.saddr) ||
	    na_nat_in_cluster(ctx.pkt.daddr))
		return TC_ACT_OK;

	/* Later fragments take their ports from the first one; without it, not ours to guess. */
	if (na_frag_track(&ctx.pkt) < 0)
		return TC_ACT_OK;
	na_nat_ctx_init(skb, &ctx, NA_DIR_EGRESS);
	ret = na_nat_snat_mapping(&ctx, ncfg, &map);
	if (ret < 0)
		return na_nat_drop(&ctx, ret);
	if (ret == NA_NAT_PASS)
		return TC_ACT_OK;
	ret = na_nat_rewrite(skb, &ctx.pkt, &loc, true, ctx.pkt.saddr, map.addr, ctx.pkt.sport,
			     map.port);
	return ret < 0 ? na_nat_drop(&ctx, ret) : TC_ACT_OK;
}

/*
 * tc ingress of the external interface: a packet to the node's address whose
 * tuple matches a reverse half goes back to the pod's address and port (the
 * kernel then routes it to the pod). A missing forward half is put back from
 * the reverse one. Packets without a mapping pass untouched: they may be the
 * node's own.
 */
static __always_inline int na_nat_ingress(struct __sk_buff *skb)
{
	const struct na_nat_config *ncfg;
	struct na_nat_entry *rev, *fwd;
	struct na_ct_key rkey, fkey;
	struct na_nat_loc loc = {};
	struct na_ctx ctx = {};
	__u8 to_addr[16] = {};
	__be16 to_port;
	__u32 zero = 0;
	int ret;

	ncfg = bpf_map_lookup_elem(&na_nat_config, &zero);
	if (!ncfg || !(ncfg->flags & NA_NAT_CFG_ENABLED))
		return TC_ACT_OK;
	if (na_nat_parse(skb, &ctx.pkt, &loc) < 0 ||
	    !na_nat_protocol(&ctx.pkt, &loc, NA_ICMP_ECHOREPLY))
		return TC_ACT_OK;
	if (!na_addr_equal(ctx.pkt.daddr, ncfg->ipv4, 1) || na_frag_track(&ctx.pkt) < 0)
		return TC_ACT_OK;

	na_ct_key_fill(&rkey, &ctx.pkt, NA_DIR_INGRESS, false);
	rev = bpf_map_lookup_elem(&na_nat, &rkey);
	if (!rev)
		return TC_ACT_OK;
	na_nat_ctx_init(skb, &ctx, NA_DIR_INGRESS);
	__builtin_memcpy(to_addr, rev->addr, 4);
	to_port = rev->port;

	na_nat_forward_key(&fkey, &rkey, rev);
	fwd = bpf_map_lookup_elem(&na_nat, &fkey);
	if (!fwd) {
		struct na_nat_entry copy = *rev;

		__builtin_memcpy(copy.addr, rkey.daddr, 16);
		copy.port = rkey.dport;
		bpf_map_update_elem(&na_nat, &fkey, &copy, BPF_NOEXIST);
		fwd = bpf_map_lookup_elem(&na_nat, &fkey);
	}
	/* A reverse half the flow has moved away from still translates, but is left to expire. */
	if (fwd && na_nat_points_to(fwd, rkey.daddr, rkey.dport))
		na_nat_refresh(&ctx, rev, fwd, true);

	ret = na_nat_rewrite(skb, &ctx.pkt, &loc, false, ctx.pkt.daddr, to_addr, ctx.pkt.dport,
			     to_port);
	return ret < 0 ? na_nat_drop(&ctx, ret) : TC_ACT_OK;
}

#endif /* NA_NAT_H */
