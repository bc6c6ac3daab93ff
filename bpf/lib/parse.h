/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* parse.h: bounds-checked parsing of Ethernet, VLAN, IPv4, IPv6 and L4 headers into a tuple. */
#ifndef NA_PARSE_H
#define NA_PARSE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nodeagent_abi.h"
#include "consts.h"

/* How the verdict logic treats a parsed packet. */
enum na_pkt_kind {
	NA_PKT_FLOW = 0,        /* IP: conntrack and policy */
	NA_PKT_NON_IP = 1,      /* ARP and other ethertypes: passed */
	NA_PKT_ND = 2,          /* ICMPv6 neighbor discovery / MLD: checked by type (icmp.h) */
	NA_PKT_ICMP_ERROR = 3,  /* ICMP(v6) error: passed only for a tracked flow (icmp.h) */
};

/* Fragment position of an IP packet. */
enum na_frag_pos {
	NA_FRAG_NONE = 0,
	NA_FRAG_FIRST = 1,  /* offset 0, more fragments follow: carries the L4 header */
	NA_FRAG_LATER = 2,  /* offset > 0: no L4 header */
};

/* The parsed packet: flow tuple (ports in network order) plus what the verdict needs. */
struct na_pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 kind;       /* enum na_pkt_kind */
	__u8 tcp_flags;
	__u8 frag;       /* enum na_frag_pos */
	__u8 icmp_type;  /* ICMP(v6) type when the header was read */
	__u16 l4_off;    /* offset of the L4 header, once parsed: ICMP bodies are read from there */
	__u16 l3_off;    /* offset of the IP header: where a translation rewrites addresses */
	__u32 frag_id;
	__u32 end;       /* offset just past the IP datagram; Ethernet padding lies beyond */
};

/* A TCP SYN without ACK: a connection opening (the answer to one carries an ACK). */
static __always_inline bool na_pkt_opens_tcp(const struct na_pkt *pkt)
{
	return pkt->proto == NA_IPPROTO_TCP && (pkt->tcp_flags & (NA_TCP_SYN | NA_TCP_ACK)) == NA_TCP_SYN;
}

/*
 * Returns a pointer to len bytes at offset off of the packet, or NULL when
 * the packet is shorter. Headers outside the linear part of the skb are pulled
 * in first; that invalidates every earlier packet pointer, so callers copy
 * what they need before asking for the next header.
 */
static __always_inline void *na_header(struct __sk_buff *skb, __u32 off, __u32 len)
{
	void *data, *data_end;

	/*
	 * Without the barrier clang may test the bound on a value off was
	 * computed from (l4_off + 8 is tested as l4_off > 2040) and add the
	 * unbounded copy to the packet pointer. A verifier that does not carry
	 * the bound across that addition then sees an offset of up to 64 KiB
	 * and refuses the access: Debian 12's 6.1 and 6.12 both did (see
	 * KERNELS.md); 6.18 carries it.
	 */
	barrier_var(off);
	if (off > NA_MAX_HDR_OFF)
		return NULL;
	/*
	 * skb->data is a 32-bit context field: without the barriers clang may
	 * keep the pointer in a 32-bit register, which the verifier then sees as
	 * a plain scalar and refuses to dereference.
	 */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	barrier_var(data);
	barrier_var(data_end);
	if (data + off + len <= data_end)
		return data + off;
	if (off + len > skb->len || bpf_skb_pull_data(skb, off + len) < 0)
		return NULL;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	barrier_var(data);
	barrier_var(data_end);
	if (data + off + len > data_end)
		return NULL;
	return data + off;
}

/* Skips in-band VLAN tags: returns the L3 offset, *proto in host order; or -NA_DROP_INVALID. */
static __always_inline int na_parse_l2(struct __sk_buff *skb, __u16 *proto)
{
	__u32 off = NA_ETH_HLEN;
	__u16 *p;
	int i;

	p = na_header(skb, 12, 2);
	if (!p)
		return -NA_DROP_INVALID;
	*proto = bpf_ntohs(*p);
#pragma unroll
	for (i = 0; i < NA_VLAN_MAX_TAGS; i++) {
		if (*proto != NA_ETH_P_8021Q && *proto != NA_ETH_P_8021AD)
			break;
		/* Tag: TCI (2 bytes), then the encapsulated ethertype. */
		p = na_header(skb, off + 2, 2);
		if (!p)
			return -NA_DROP_INVALID;
		*proto = bpf_ntohs(*p);
		off += NA_VLAN_HLEN;
	}
	return off;
}

/* Classifies an ICMP message and takes the echo id as the port of its direction. */
static __always_inline void na_classify_icmp(struct na_pkt *pkt, __u8 type, __be16 id)
{
	if (pkt->family == NA_FAMILY_IPV4) {
		switch (type) {
		case NA_ICMP_ECHO:
			pkt->sport = id;
			break;
		case NA_ICMP_ECHOREPLY:
			pkt->dport = id;
			break;
		case NA_ICMP_DEST_UNREACH:
		case NA_ICMP_SOURCE_QUENCH:
		case NA_ICMP_REDIRECT:
		case NA_ICMP_TIME_EXCEEDED:
		case NA_ICMP_PARAMETERPROB:
			pkt->kind = NA_PKT_ICMP_ERROR;
			break;
		}
		return;
	}
	if (type == NA_ICMPV6_ECHO_REQUEST)
		pkt->sport = id;
	else if (type == NA_ICMPV6_ECHO_REPLY)
		pkt->dport = id;
	else if (type <= NA_ICMPV6_ERROR_MAX)
		pkt->kind = NA_PKT_ICMP_ERROR;
	else if ((type >= NA_ICMPV6_MLD_QUERY && type <= NA_ICMPV6_ND_REDIRECT) ||
		 type == NA_ICMPV6_MLD2_REPORT)
		pkt->kind = NA_PKT_ND;
}

/* The L4 header of len bytes at off, or NULL when it runs past the packet or the IP datagram. */
static __always_inline __u8 *na_l4_header(struct __sk_buff *skb, const struct na_pkt *pkt, __u32 off,
					  __u32 len)
{
	if (off + len > pkt->end)
		return NULL;
	return na_header(skb, off, len);
}

/* Reads ports (or the ICMP echo id) and TCP flags from the L4 header at off. */
static __always_inline int na_parse_l4(struct __sk_buff *skb, __u32 off, struct na_pkt *pkt)
{
	__u8 *h;

	switch (pkt->proto) {
	case NA_IPPROTO_TCP: {
		__u32 doff;

		h = na_l4_header(skb, pkt, off, 20);
		if (!h)
			return -NA_DROP_INVALID;
		pkt->sport = *(__be16 *)h;
		pkt->dport = *(__be16 *)(h + 2);
		pkt->tcp_flags = h[13];
		doff = (h[12] >> 4) * 4;
		if (doff < 20 || off + doff > pkt->end)
			return -NA_DROP_INVALID;
		break;
	}
	case NA_IPPROTO_UDP:
		h = na_l4_header(skb, pkt, off, 8);
		if (!h)
			return -NA_DROP_INVALID;
		pkt->sport = *(__be16 *)h;
		pkt->dport = *(__be16 *)(h + 2);
		break;
	case NA_IPPROTO_SCTP:
		h = na_l4_header(skb, pkt, off, 12);
		if (!h)
			return -NA_DROP_INVALID;
		pkt->sport = *(__be16 *)h;
		pkt->dport = *(__be16 *)(h + 2);
		break;
	case NA_IPPROTO_ICMP:
	case NA_IPPROTO_ICMPV6:
		if ((pkt->proto == NA_IPPROTO_ICMP) != (pkt->family == NA_FAMILY_IPV4))
			break;  /* ICMP over IPv6 or ICMPv6 over IPv4: no ports, policy decides */
		h = na_l4_header(skb, pkt, off, 8);
		if (!h)
			return -NA_DROP_INVALID;
		pkt->icmp_type = h[0];
		na_classify_icmp(pkt, h[0], *(__be16 *)(h + 4));
		break;
	}
	return 0;
}

/* Parses the IPv4 header at off; returns the L4 offset or -NA_DROP_INVALID. */
static __always_inline int na_parse_ipv4(struct __sk_buff *skb, __u32 off, struct na_pkt *pkt)
{
	__u32 hlen, tot_len;
	__u16 frag_off;
	__u8 *h;

	h = na_header(skb, off, 20);
	if (!h)
		return -NA_DROP_INVALID;
	if ((h[0] >> 4) != 4)
		return -NA_DROP_INVALID;
	hlen = (h[0] & 0x0f) * 4;
	tot_len = bpf_ntohs(*(__be16 *)(h + 2));
	frag_off = bpf_ntohs(*(__be16 *)(h + 6));
	pkt->frag_id = bpf_ntohs(*(__be16 *)(h + 4));
	pkt->proto = h[9];
	pkt->family = NA_FAMILY_IPV4;
	__builtin_memcpy(pkt->saddr, h + 12, 4);
	__builtin_memcpy(pkt->daddr, h + 16, 4);
	if (hlen < 20 || off + hlen > skb->len)
		return -NA_DROP_INVALID;
	/* tot_len 0 is legal for BIG TCP GSO packets; otherwise it covers the header and fits. */
	if (tot_len && (tot_len < hlen || off + tot_len > skb->len))
		return -NA_DROP_INVALID;
	pkt->end = tot_len ? off + tot_len : skb->len;
	if (frag_off & 0x1fff)
		pkt->frag = NA_FRAG_LATER;
	else if (frag_off & 0x2000)
		pkt->frag = NA_FRAG_FIRST;
	return off + hlen;
}

/*
 * Walks the IPv6 extension headers from off, nexthdr being the first one's
 * number: sets pkt->proto (and the fragment fields) and returns the L4 offset,
 * or -NA_DROP_INVALID when the chain runs past pkt->end or is too long.
 */
static __always_inline int na_ipv6_skip_ext(struct __sk_buff *skb, __u32 off, __u8 nexthdr,
					    struct na_pkt *pkt)
{
	__u8 *h;
	int i;

	for (i = 0; i < NA_IPV6_MAX_EXT_HDRS; i++) {
		switch (nexthdr) {
		case NA_IPPROTO_HOPOPTS:
		case NA_IPPROTO_ROUTING:
		case NA_IPPROTO_DSTOPTS:
			h = na_header(skb, off, 2);
			if (!h)
				return -NA_DROP_INVALID;
			nexthdr = h[0];
			off += (h[1] + 1) * 8;
			break;
		case NA_IPPROTO_AH:
			h = na_header(skb, off, 2);
			if (!h)
				return -NA_DROP_INVALID;
			nexthdr = h[0];
			off += (h[1] + 2) * 4;
			break;
		case NA_IPPROTO_FRAGMENT: {
			__u16 frag_off;

			h = na_header(skb, off, 8);
			if (!h)
				return -NA_DROP_INVALID;
			nexthdr = h[0];
			frag_off = bpf_ntohs(*(__be16 *)(h + 2));
			pkt->frag_id = bpf_ntohl(*(__be32 *)(h + 4));
			off += 8;
			if (frag_off & 0xfff8) {
				/* Later fragment: what follows is payload, not headers. */
				pkt->frag = NA_FRAG_LATER;
				pkt->proto = nexthdr;
				return off > pkt->end ? -NA_DROP_INVALID : off;
			}
			if (frag_off & 1)
				pkt->frag = NA_FRAG_FIRST;
			break;
		}
		default:
			/* A header length that runs past the packet is malformed too. */
			pkt->proto = nexthdr;
			return off > pkt->end ? -NA_DROP_INVALID : off;
		}
	}
	/* Still in extension headers after the walk: give up rather than guess. */
	return -NA_DROP_INVALID;
}

/* Parses IPv6 and walks its extension headers: returns the L4 offset or -NA_DROP_INVALID. */
static __always_inline int na_parse_ipv6(struct __sk_buff *skb, __u32 off, struct na_pkt *pkt)
{
	__u32 payload_len;
	__u8 nexthdr;
	__u8 *h;

	h = na_header(skb, off, 40);
	if (!h)
		return -NA_DROP_INVALID;
	if ((h[0] >> 4) != 6)
		return -NA_DROP_INVALID;
	payload_len = bpf_ntohs(*(__be16 *)(h + 4));
	nexthdr = h[6];
	pkt->family = NA_FAMILY_IPV6;
	__builtin_memcpy(pkt->saddr, h + 8, 16);
	__builtin_memcpy(pkt->daddr, h + 24, 16);
	/* payload_len 0 is a jumbogram or BIG TCP GSO packet: bounded by the skb instead. */
	if (off + 40 + payload_len > skb->len)
		return -NA_DROP_INVALID;
	pkt->end = payload_len ? off + 40 + payload_len : skb->len;
	return na_ipv6_skip_ext(skb, off + 40, nexthdr, pkt);
}

/*
 * Parses the packet into pkt. Returns 0 (pkt->kind says how to treat it) or
 * -NA_DROP_INVALID for a truncated or malformed packet.
 */
static __always_inline int na_parse(struct __sk_buff *skb, struct na_pkt *pkt)
{
	__u16 proto;
	int off;

	off = na_parse_l2(skb, &proto);
	if (off < 0)
		return off;
	pkt->l3_off = off;
	if (proto == NA_ETH_P_IP)
		off = na_parse_ipv4(skb, off, pkt);
	else if (proto == NA_ETH_P_IPV6)
		off = na_parse_ipv6(skb, off, pkt);
	else {
		pkt->kind = NA_PKT_NON_IP;
		return 0;
	}
	if (off < 0)
		return off;
	if (pkt->frag == NA_FRAG_LATER)
		return 0;
	pkt->l4_off = off;
	return na_parse_l4(skb, off, pkt);
}

/*
 * Parses the packet an ICMP(v6) error quotes (RFC 792, RFC 4443): its IP
 * header, of the error's own family, then the first 8 bytes of its L4 header,
 * which hold the ports or the echo id. The quote is cut short by design, so
 * only the error's datagram bounds it: inner->end is the outer end, and the
 * quoted lengths are not checked. A quote of a later fragment has no ports
 * (inner->frag says so). Returns 0 or -NA_DROP_INVALID when the quote is too
 * short for those headers or is not an IP packet of the right version.
 */
static __always_inline int na_parse_quoted(struct __sk_buff *skb, const struct na_pkt *outer,
					   struct na_pkt *inner)
{
	__u32 off = outer->l4_off + 8;
	__u8 *h;
	int ret;

	inner->end = outer->end;
	inner->family = outer->family;
	if (outer->family == NA_FAMILY_IPV4) {
		__u32 hlen;

		h = na_l4_header(skb, inner, off, 20);
		if (!h || (h[0] >> 4) != 4)
			return -NA_DROP_INVALID;
		hlen = (h[0] & 0x0f) * 4;
		if (bpf_ntohs(*(__be16 *)(h + 6)) & 0x1fff)
			inner->frag = NA_FRAG_LATER;
		inner->proto = h[9];
		__builtin_memcpy(inner->saddr, h + 12, 4);
		__builtin_memcpy(inner->daddr, h + 16, 4);
		if (hlen < 20)
			return -NA_DROP_INVALID;
		ret = off + hlen;
	} else {
		__u8 nexthdr;

		h = na_l4_header(skb, inner, off, 40);
		if (!h || (h[0] >> 4) != 6)
			return -NA_DROP_INVALID;
		nexthdr = h[6];
		__builtin_memcpy(inner->saddr, h + 8, 16);
		__builtin_memcpy(inner->daddr, h + 24, 16);
		ret = na_ipv6_skip_ext(skb, off + 40, nexthdr, inner);
		if (ret < 0)
			return ret;
	}
	if (inner->frag == NA_FRAG_LATER)
		return 0;
	off = ret;
	switch (inner->proto) {
	case NA_IPPROTO_TCP:
	case NA_IPPROTO_UDP:
	case NA_IPPROTO_SCTP:
		h = na_l4_header(skb, inner, off, 8);
		if (!h)
			return -NA_DROP_INVALID;
		inner->sport = *(__be16 *)h;
		inner->dport = *(__be16 *)(h + 2);
		break;
	case NA_IPPROTO_ICMP:
	case NA_IPPROTO_ICMPV6:
		if ((inner->proto == NA_IPPROTO_ICMP) != (inner->family == NA_FAMILY_IPV4))
			break;
		h = na_l4_header(skb, inner, off, 8);
		if (!h)
			return -NA_DROP_INVALID;
		inner->icmp_type = h[0];
		na_classify_icmp(inner, h[0], *(__be16 *)(h + 4));
		break;
	}
	return 0;
}

#endif /* NA_PARSE_H */
