/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* icmp.h: which ICMP(v6) errors and which neighbor discovery / MLD messages an endpoint may exchange. */
#ifndef NA_ICMP_H
#define NA_ICMP_H

#include "context.h"
#include "endpoint.h"
#include "ipcache.h"
#include "conntrack.h"

/*
 * Whether the quoted packet belongs to a live flow of this endpoint. The
 * quoted packet travelled the other way from the error (an error to the pod
 * quotes what the pod sent), so it is looked up in the opposite direction: as
 * the packet that started its flow (same tuple), or as a reply of a flow
 * started in the error's direction (reversed tuple), as na_ct_lookup would
 * have looked it up. The entry is only read: errors neither refresh a flow's
 * lifetime nor count as its packets.
 */
static __always_inline bool na_icmp_related(struct na_ctx *ctx, const struct na_pkt *inner)
{
	__u8 dir = ctx->dir == NA_DIR_EGRESS ? NA_DIR_INGRESS : NA_DIR_EGRESS;
	struct na_ct_value *ct;
	struct na_ct_key key;

	na_ct_key_fill(&key, inner, dir, false);
	ct = bpf_map_lookup_elem(&na_ct, &key);
	if (!na_ct_live(ct, ctx->now) || ct->ep_id != ctx->ep_id) {
		na_ct_key_fill(&key, inner, dir, true);
		ct = bpf_map_lookup_elem(&na_ct, &key);
		if (!na_ct_live(ct, ctx->now) || ct->ep_id != ctx->ep_id)
			return false;
	}
	ctx->rule_id = ct->rule_id;
	ctx->remote_identity = ct->src_identity;
	return true;
}

/*
 * The verdict for an ICMP(v6) error, after the endpoint and source checks: it
 * passes only when it quotes a packet of a live flow of this endpoint (RFC
 * 5927 on why blind errors are an attack surface). An endpoint never sends an
 * ICMP redirect: the node is its only router. Errors never need fragmenting
 * (at most 576 bytes in IPv4, 1280 in IPv6), so fragmented ones are refused.
 */
static __always_inline int na_icmp_error_check(struct __sk_buff *skb, struct na_ctx *ctx)
{
	struct na_pkt inner = {};
	const __u8 *remote;
	int ret;

	if (ctx->dir == NA_DIR_EGRESS && ctx->pkt.family == NA_FAMILY_IPV4 &&
	    ctx->pkt.icmp_type == NA_ICMP_REDIRECT)
		return -NA_DROP_ICMP_REDIRECT;
	if (ctx->pkt.frag != NA_FRAG_NONE)
		return -NA_DROP_FRAG_NOSUPPORT;
	ret = na_parse_quoted(skb, &ctx->pkt, &inner);
	if (ret < 0)
		return ret;
	na_ctx_clock(ctx);
	/* An error about an error, or about a later fragment, names no flow (RFC 1122 3.2.2). */
	if (inner.kind == NA_PKT_FLOW && inner.frag != NA_FRAG_LATER && na_icmp_related(ctx, &inner))
		return 0;
	/* Drop events show who sent or would have received the error. */
	remote = ctx->dir == NA_DIR_EGRESS ? ctx->pkt.daddr : ctx->pkt.saddr;
	ctx->remote_identity = na_ipcache_identity(remote, ctx->pkt.family);
	return -NA_DROP_ICMP_NO_FLOW;
}

/* ::, the source of duplicate address detection (and of MLD reports sent meanwhile). */
static __always_inline bool na_ipv6_unspecified(const __u8 *addr)
{
	const __u32 *w = (const __u32 *)addr;

	return (w[0] | w[1] | w[2] | w[3]) == 0;
}

/*
 * The verdict for neighbor discovery and MLD (RFC 4861, RFC 3810). Towards
 * the endpoint all of it passes: the node is the pod's router and answers,
 * advertises and queries. From the endpoint, what a host sends passes (router
 * and neighbor solicitations, MLD reports and dones) and what only a router
 * sends does not (advertisements, redirects, queries). The rest must come
 * from the unspecified address (duplicate address detection), a link-local
 * one or the endpoint's own, and a neighbor advertisement must be for the
 * endpoint's own address or a link-local one (the agent does not know the
 * pod's link-local address). Fragmented ND is refused as hosts refuse it
 * (RFC 6980).
 */
static __always_inline int na_nd_check(struct __sk_buff *skb, struct na_ctx *ctx)
{
	const struct na_endpoint_info *ep;
	__u32 ifindex = ctx->ifindex;
	__u32 target[4];  /* words: stack access must be aligned */
	__u8 *h;

	if (ctx->dir == NA_DIR_INGRESS)
		return 0;
	ep = bpf_map_lookup_elem(&na_endpoints, &ifindex);
	if (ep) {
		ctx->ep_id = ep->ep_id;
		ctx->ep_identity = ep->identity;
	}
	if (ctx->pkt.frag != NA_FRAG_NONE)
		return -NA_DROP_INVALID;
	switch (ctx->pkt.icmp_type) {
	case NA_ICMPV6_ROUTER_ADVERT:
		return -NA_DROP_ND_ROUTER_ADVERT;
	case NA_ICMPV6_ND_REDIRECT:
		return -NA_DROP_ICMP_REDIRECT;
	case NA_ICMPV6_MLD_QUERY:
		return -NA_DROP_MLD_QUERY;
	}
	if (!na_ipv6_unspecified(ctx->pkt.saddr) && !na_ipv6_link_local(ctx->pkt.saddr)) {
		if (!ep)
			return -NA_DROP_NO_CONFIG;
		if (!na_source_valid(ep, &ctx->pkt))
			return -NA_DROP_INVALID_SIP;
	}
	if (ctx->pkt.icmp_type != NA_ICMPV6_NEIGH_ADVERT)
		return 0;
	/* The target address follows the 4 bytes of flags after the ICMPv6 header's first 4. */
	h = na_l4_header(skb, &ctx->pkt, ctx->pkt.l4_off + 8, 16);
	if (!h)
		return -NA_DROP_INVALID;
	__builtin_memcpy(target, h, 16);
	if (na_ipv6_link_local((const __u8 *)target))
		return 0;
	if (!ep)
		return -NA_DROP_NO_CONFIG;
	if ((ep->flags & NA_EP_HAS_IPV6) && na_addr_equal((const __u8 *)target, ep->ipv6, 4))
		return 0;
	return -NA_DROP_ND_TARGET;
}

#endif /* NA_ICMP_H */
