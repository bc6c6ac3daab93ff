/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * local_delivery.h: a packet from one endpoint to another endpoint of this node, handed by the datapath straight
 * into the destination pod (Cilium's BPF host routing) instead of through the node's IP stack.
 *
 * from_endpoint, once the source's policy let a packet out, tail-calls deliver_local through na_local_prog.
 * That program asks the node's routing table where the packet would go (bpf_fib_lookup, its answers for endpoints
 * kept per CPU for about a second in na_local_routes); when the answer is another
 * endpoint's host-side interface, it decides the destination's ingress policy as to_endpoint would, then does what
 * forwarding would have done (TTL or hop limit down by one, the node's MAC as source and the pod's as destination)
 * and puts the packet on the pod's side of that veth (bpf_redirect_peer). The node's IP stack, its netfilter
 * hooks and the host side's egress hook never see it, and a packet costs one program run instead of two.
 *
 * Everything else returns to the node's stack unchanged: an empty slot (the agent's `host-routing: kernel`), a
 * destination that is not an endpoint, no neighbor entry yet (the stack resolves it), fragments, the last hop of
 * a TTL, VLAN tags, IPv6 neighbor discovery, link-local and multicast destinations, a packet for another MAC,
 * one larger than the destination's MTU. Those take the path they took before: the node's routing, then
 * to_endpoint. So does a reply in a flow whose opening packet the node's stack delivered (from_endpoint never
 * hands it over): that stack's netfilter may have translated the request (a kube-proxy ClusterIP, a hostPort) and
 * must see the reply to translate it back. Flows deliver_local opened carry NA_CT_DIRECT.
 */
#ifndef NA_LOCAL_DELIVERY_H
#define NA_LOCAL_DELIVERY_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "maps.h"
#include "endpoint.h"

#define NA_AF_INET 2
#define NA_AF_INET6 10
#define NA_PACKET_HOST 0
#define NA_IPV4_FRAG_BITS 0x3fff  /* more-fragments flag and offset, host order */

/* Slot 0: deliver_local, or empty when the node's stack delivers between endpoints. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} na_local_prog SEC(".maps");

/* One routing question per CPU: 64 bytes a stack already at the verifier's limit has no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_fib_lookup);
} na_local_fib SEC(".maps");

/*
 * The routing answers of the last clock period for endpoints (nodeagent_abi.h): every packet between two pods asks
 * the same question, and the FIB's trie walk and neighbor lookup cost several times a slot's read. Kept per
 * (destination, incoming interface): a pod sends from its own addresses only (from_endpoint drops the rest), so
 * for policy routing by source the incoming interface stands for the source. Routing by TOS or port between pods
 * of one node would see one packet's answer serve the others of the period: such a node runs `host-routing: kernel`.
 * A changed route, neighbor or MTU takes effect within the period; a deleted or replaced endpoint at once (its row).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NA_LOCAL_ROUTE_SLOTS);
	__type(key, __u32);
	__type(value, struct na_local_route);
} na_local_routes SEC(".maps");

/* Fills the routing question from an IPv4 header at NA_ETH_HLEN; false when forwarding would not apply. */
static __always_inline bool na_local_fib_ipv4(struct __sk_buff *skb, struct bpf_fib_lookup *fib)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u8 *ip = data + NA_ETH_HLEN;

	if ((void *)(ip + 20) > end || (ip[0] >> 4) != 4)
		return false;
	if (((ip[6] << 8) | ip[7]) & NA_IPV4_FRAG_BITS || ip[8] <= 1)
		return false;
	fib->family = NA_AF_INET;
	fib->tos = ip[1];
	fib->l4_protocol = ip[9];
	fib->ipv4_src = *(__be32 *)(ip + 12);
	fib->ipv4_dst = *(__be32 *)(ip + 16);
	return true;
}

/* The same from an IPv6 header: its next header must be the transport (no fragments), not neighbor discovery. */
static __always_inline bool na_local_fib_ipv6(struct __sk_buff *skb, struct bpf_fib_lookup *fib)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u8 *ip = data + NA_ETH_HLEN;
	__u8 next;
	int i;

	if ((void *)(ip + 41) > end || (ip[0] >> 4) != 6 || ip[7] <= 1)
		return false;
	/* Multicast (ff00::/8) and link-local (fe80::/10) destinations stay on their link. */
	if (ip[24] == 0xff || (ip[24] == 0xfe && (ip[25] & 0xc0) == 0x80))
		return false;
	next = ip[6];
	if (next == NA_IPPROTO_ICMPV6 && ip[40] >= NA_ICMPV6_MLD_QUERY)
		return false;
	if (next != NA_IPPROTO_TCP && next != NA_IPPROTO_UDP && next != NA_IPPROTO_ICMPV6 &&
	    next != NA_IPPROTO_SCTP)
		return false;
	fib->family = NA_AF_INET6;
	fib->flowinfo = *(__be32 *)ip & bpf_htonl(0x0fffffff);
	fib->l4_protocol = next;
#pragma unroll
	for (i = 0; i < 4; i++) {
		fib->ipv6_src[i] = *(__u32 *)(ip + 8 + 4 * i);
		fib->ipv6_dst[i] = *(__u32 *)(ip + 24 + 4 * i);
	}
	return true;
}

/* The slot of the question's destination and incoming interface: a Fibonacci hash of their words. */
static __always_inline __u32 na_local_route_slot(const struct bpf_fib_lookup *fib, __u32 in_ifindex)
{
	__u32 h = in_ifindex;

	if (fib->family == NA_AF_INET)
		h ^= fib->ipv4_dst;
	else
		h ^= fib->ipv6_dst[0] ^ fib->ipv6_dst[1] ^ fib->ipv6_dst[2] ^ fib->ipv6_dst[3];
	return (h * 0x9E3779B1U) >> (32 - NA_LOCAL_ROUTE_BITS);
}

static __always_inline bool na_local_route_same_dst(const struct na_local_route *r, const struct bpf_fib_lookup *fib)
{
	/* ipv4_dst is ipv6_dst[0] */
	return r->family == fib->family &&
	       na_addr_equal((const __u8 *)r->dst, (const __u8 *)fib->ipv6_dst, fib->family == NA_AF_INET ? 1 : 4);
}

/*
 * Whether slot r answers the question in fib for this packet: same destination and incoming interface, same clock
 * period, the endpoint still behind the interface, and the packet forwardable at the MTU as the helper would judge
 * it (is_skb_forwardable: the MTU plus an Ethernet header and a VLAN tag, or any length for GSO).
 */
static __always_inline bool na_local_route_answers(const struct __sk_buff *skb, const struct na_local_route *r,
						   const struct bpf_fib_lookup *fib, __u32 period)
{
	const struct na_endpoint_info *ep;

	if (r->period != period || r->in_ifindex != skb->ifindex || !na_local_route_same_dst(r, fib))
		return false;
	if (skb->len > r->mtu + NA_ETH_HLEN + NA_VLAN_HLEN && !skb->gso_size)
		return false;
	ep = na_endpoint_row(r->out_ifindex);
	return ep && ep->ep_id == r->ep_id;
}

/*
 * Keeps a successful answer in slot r when it carries the interface's MTU (the helper gives it back since
 * Linux 5.12); ep: the row of the endpoint the answer names. Any other answer leaves the slot as it was, for the
 * question it holds. dst: the question's destination, which the helper overwrites with a route's gateway.
 */
static __always_inline void na_local_route_keep(struct na_local_route *r, const struct bpf_fib_lookup *fib,
						const struct na_endpoint_info *ep, const __u32 *dst, __u32 in_ifindex,
						__u32 period)
{
	if (!fib->mtu_result)
		return;
	__builtin_memcpy(r->dst, dst, 16);
	r->in_ifindex = in_ifindex;
	r->out_ifindex = fib->ifindex;
	r->ep_id = ep->ep_id;
	r->period = period;
	r->mtu = fib->mtu_result;
	__builtin_memcpy(r->smac, fib->smac, 6);
	__builtin_memcpy(r->dmac, fib->dmac, 6);
	r->family = fib->family;
}

/*
 * The endpoint interface the node would forward this packet out of, other than the one it came in on, with the
 * routing answer's MACs left in na_local_fib for na_local_forward; 0 when forwarding does not apply (see the top
 * of this file) or the interface is not an endpoint's. The answer comes from na_local_routes while its slot
 * answers the question, from bpf_fib_lookup otherwise. now_ns: the coarse clock, which picks the period.
 *
 * A global function: the verifier checks it once, on its own.
 */
__attribute__((noinline)) int na_local_route(struct __sk_buff *skb, __u64 now_ns)
{
	const struct na_endpoint_info *ep;
	struct na_local_route *r;
	struct bpf_fib_lookup *fib;
	__u32 zero = 0, slot, period, dst[4];
	bool ok;

	if (skb->pkt_type != NA_PACKET_HOST || skb->vlan_present)
		return 0;
	fib = bpf_map_lookup_elem(&na_local_fib, &zero);
	if (!fib)
		return 0;
	__builtin_memset(fib, 0, sizeof(*fib));
	if (skb->protocol == bpf_htons(NA_ETH_P_IP))
		ok = na_local_fib_ipv4(skb, fib);
	else if (skb->protocol == bpf_htons(NA_ETH_P_IPV6))
		ok = na_local_fib_ipv6(skb, fib);
	else
		ok = false;
	if (!ok)
		return 0;
	period = now_ns >> NA_LOCAL_ROUTE_PERIOD_SHIFT;
	slot = na_local_route_slot(fib, skb->ifindex);
	r = bpf_map_lookup_elem(&na_local_routes, &slot);
	if (!r)
		return 0;
	if (na_local_route_answers(skb, r, fib, period)) {
		__builtin_memcpy(fib->smac, r->smac, 6);
		__builtin_memcpy(fib->dmac, r->dmac, 6);
		return r->out_ifindex;
	}
	__builtin_memcpy(dst, fib->ipv6_dst, 16);  /* ipv4_dst is ipv6_dst[0] */
	/* tot_len 0: the helper checks the packet against the MTU of the interface it finds, GSO aware. */
	fib->ifindex = skb->ifindex;
	if (bpf_fib_lookup(skb, fib, sizeof(*fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	if (fib->ifindex == skb->ifindex)
		return 0;
	ep = na_endpoint_row(fib->ifindex);
	if (!ep)
		return 0;
	na_local_route_keep(r, fib, ep, dst, skb->ifindex, period);
	return fib->ifindex;
}

/*
 * Forwards an allowed packet to the endpoint behind host-side interface ifindex, as the node would have: the MACs
 * of na_local_route's answer, one hop off its TTL (hop limit), then onto the veth's pod side. Written in place, as
 * the kernel's ip_decrease_ttl does: the header is in the linear data (na_local_route read it there) and the
 * helpers' copies cost more than the write. A global function, as na_local_route.
 */
__attribute__((noinline)) int na_local_forward(struct __sk_buff *skb, __u32 ifindex)
{
	__u8 *data = (__u8 *)(long)skb->data, *ip = data + NA_ETH_HLEN;
	const struct bpf_fib_lookup *fib;
	__u32 zero = 0, check;

	fib = bpf_map_lookup_elem(&na_local_fib, &zero);
	/* Never so (na_local_route read further), but the node's stack and to_endpoint could still deliver it. */
	if (!fib || (void *)(ip + 20) > (void *)(long)skb->data_end)
		return TC_ACT_OK;
	__builtin_memcpy(data, fib->dmac, 6);
	__builtin_memcpy(data + 6, fib->smac, 6);
	if (skb->protocol == bpf_htons(NA_ETH_P_IP)) {
		/* TTL is the high byte of its 16-bit word of the header: the checksum gains what it loses. */
		check = *(__u16 *)(ip + 10) + bpf_htons(0x0100);
		*(__u16 *)(ip + 10) = check + (check >= 0xffff);
		ip[8]--;
	} else {
		ip[7]--;
	}
	return bpf_redirect_peer(ifindex, 0);
}

#endif /* NA_LOCAL_DELIVERY_H */
