/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* endpoint.h: the endpoint behind an interface and the source-address check for its traffic. */
#ifndef NA_ENDPOINT_H
#define NA_ENDPOINT_H

#include "maps.h"
#include "parse.h"

static __always_inline bool na_addr_equal(const __u8 *a, const __u8 *b, int words)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 diff = 0;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++)
		if (i < words)
			diff |= x[i] ^ y[i];
	return diff == 0;
}

/* fe80::/10: addresses every interface has, used by neighbor discovery and router traffic. */
static __always_inline bool na_ipv6_link_local(const __u8 *addr)
{
	return addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80;
}

/*
 * Whether a packet leaving the endpoint carries one of its own addresses as
 * source. An address family the endpoint has no address of never matches.
 */
static __always_inline bool na_source_valid(const struct na_endpoint_info *ep,
					    const struct na_pkt *pkt)
{
	if (pkt->family == NA_FAMILY_IPV4)
		return (ep->flags & NA_EP_HAS_IPV4) && na_addr_equal(pkt->saddr, ep->ipv4, 1);
	if (na_ipv6_link_local(pkt->saddr))
		return true;
	return (ep->flags & NA_EP_HAS_IPV6) && na_addr_equal(pkt->saddr, ep->ipv6, 4);
}

/*
 * The endpoint row of the host-side interface ifindex: its na_ep_slots slot
 * while valid (an inlined array lookup), na_endpoints otherwise.
 */
static __always_inline const struct na_endpoint_info *na_endpoint_row(__u32 ifindex)
{
	const struct na_endpoint_info *ep;

	ep = bpf_map_lookup_elem(&na_ep_slots, &ifindex);
	if (ep && (ep->flags & NA_EP_SLOT_VALID))
		return ep;
	return bpf_map_lookup_elem(&na_endpoints, &ifindex);
}

/* Whether an endpoint with these NA_EP_* flags enforces policy in direction dir. */
static __always_inline bool na_enforces(__u32 flags, __u8 dir)
{
	return flags & (dir == NA_DIR_EGRESS ? NA_EP_ENFORCE_EGRESS : NA_EP_ENFORCE_INGRESS);
}

#endif /* NA_ENDPOINT_H */
