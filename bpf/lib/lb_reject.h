/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_reject.h: the answer to a packet a pod sends to a service frontend with
 * no backend taking new flows, so that its client fails at once instead of
 * retrying into a timeout (Cilium's service-no-backend-response: reject): a
 * TCP RST, or an ICMP(v6) port unreachable for UDP, built over the packet
 * and handed straight back to the pod. Either ends a connect() or a connected
 * socket's next call with ECONNREFUSED, as the socket hooks (sock_lb.h) fail
 * them.
 */
#ifndef NA_LB_REJECT_H
#define NA_LB_REJECT_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nodeagent_abi.h"
#include "consts.h"
#include "parse.h"

/* In na_lb_reject_packet's kind: the packet came in from outside and its answer goes back out. */
#define NA_REJECT_OUT (1U << 16)

/* The most of the refused datagram an ICMP error quotes: its IP headers and the 8 bytes of its UDP header. */
#define NA_REJECT_QUOTE_MAX 124
#define NA_REJECT_TTL 64

struct na_rej_ipv4 {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct na_rej_ipv6 {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* What the TCP and ICMP(v6) checksums of IPv6 cover before their own header (RFC 8200 8.1). */
struct na_rej_pseudo6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__be32 len;
	__u8 zero[3];
	__u8 next;
};

struct na_rej_pseudo4 {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

struct na_rej_tcp {
	__be16 sport;
	__be16 dport;
	__be32 seq;
	__be32 ack;
	__u8 doff;   /* data offset in the high nibble */
	__u8 flags;
	__be16 window;
	__u16 check;
	__be16 urg;
};

/* Destination unreachable: type, code, checksum and 4 unused bytes, then the quote. */
struct na_rej_icmp {
	__u8 type;
	__u8 code;
	__u16 check;
	__be32 unused;
};

/* The two addresses of the refused packet, 16 bytes each (IPv4 in the first four). */
struct na_rej_addrs {
	__u8 src[16];
	__u8 dst[16];
};

/*
 * Where the answer is put together: from_endpoint leaves too little of the
 * 512 bytes of stack a program and its calls share.
 */
struct na_rej_scratch {
	struct na_rej_addrs a;
	union {
		struct na_rej_ipv4 ip4;
		struct na_rej_ipv6 ip6;
	};
	union {
		struct na_rej_pseudo4 p4;
		struct na_rej_pseudo6 p6;
	};
	struct na_rej_tcp in;
	struct na_rej_tcp out;
	struct na_rej_icmp icmp;
	__u8 mac[12];
	__u8 quote[NA_REJECT_QUOTE_MAX];
	/* The arguments, kept here rather than in registers the helper calls would make the compiler spill. */
	__u32 l4_off;
	__u32 end;
	__u32 kind;
};

/* One answer's scratch space per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct na_rej_scratch);
} na_lb_rej_buf SEC(".maps");

static __always_inline __u16 na_rej_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/*
 * Writes the reply's IP header at l3_off, from the frontend back to the pod:
 * payload bytes of protocol proto follow it. Returns the sum of the reply's
 * pseudo header for the L4 checksum (IPv6 only: ICMP's covers none), or a
 * negative value on failure.
 */
static __always_inline __s64 na_rej_ip(struct __sk_buff *skb, __u32 l3_off, bool v4,
				       struct na_rej_scratch *s, __u8 proto, __u16 payload)
{
	if (v4) {
		__builtin_memset(&s->ip4, 0, sizeof(s->ip4));
		s->ip4.ver_ihl = 0x45;
		s->ip4.tot_len = bpf_htons(sizeof(s->ip4) + payload);
		s->ip4.ttl = NA_REJECT_TTL;
		s->ip4.protocol = proto;
		__builtin_memcpy(&s->ip4.saddr, s->a.dst, 4);
		__builtin_memcpy(&s->ip4.daddr, s->a.src, 4);
		s->ip4.check = na_rej_fold(bpf_csum_diff(NULL, 0, (__be32 *)&s->ip4, sizeof(s->ip4), 0));
		if (bpf_skb_store_bytes(skb, l3_off, &s->ip4, sizeof(s->ip4), BPF_F_RECOMPUTE_CSUM) < 0)
			return -1;
		if (proto != NA_IPPROTO_TCP)
			return 0;
		__builtin_memset(&s->p4, 0, sizeof(s->p4));
		__builtin_memcpy(&s->p4.saddr, s->a.dst, 4);
		__builtin_memcpy(&s->p4.daddr, s->a.src, 4);
		s->p4.proto = proto;
		s->p4.len = bpf_htons(payload);
		return bpf_csum_diff(NULL, 0, (__be32 *)&s->p4, sizeof(s->p4), 0);
	}
	__builtin_memset(&s->ip6, 0, sizeof(s->ip6));
	s->ip6.ver_tc_flow = bpf_htonl(6U << 28);
	s->ip6.payload_len = bpf_htons(payload);
	s->ip6.nexthdr = proto;
	s->ip6.hop_limit = NA_REJECT_TTL;
	__builtin_memcpy(s->ip6.saddr, s->a.dst, 16);
	__builtin_memcpy(s->ip6.daddr, s->a.src, 16);
	if (bpf_skb_store_bytes(skb, l3_off, &s->ip6, sizeof(s->ip6), BPF_F_RECOMPUTE_CSUM) < 0)
		return -1;
	__builtin_memset(&s->p6, 0, sizeof(s->p6));
	__builtin_memcpy(s->p6.saddr, s->a.dst, 16);
	__builtin_memcpy(s->p6.daddr, s->a.src, 16);
	s->p6.len = bpf_htonl(payload);
	s->p6.next = proto;
	return bpf_csum_diff(NULL, 0, (__be32 *)&s->p6, sizeof(s->p6), 0);
}

/*
 * The RST for a TCP segment (RFC 9293 3.10.7.1): one acknowledging the
 * segment when it carried no ACK (a SYN: what connect() waits on), one at
 * the sequence number it acknowledged otherwise; never one for a RST. Only a
 * segment whose TCP header follows the base IP header is answered, so a
 * CHECKSUM_PARTIAL packet's checksum location stays where the reply has it.
 */
static __always_inline int na_rej_tcp(struct __sk_buff *skb, __u32 l3_off, struct na_rej_scratch *s)
{
	bool v4 = ((s->kind >> 8) & 0xff) == NA_FAMILY_IPV4;
	__u32 iplen = v4 ? sizeof(struct na_rej_ipv4) : sizeof(struct na_rej_ipv6);
	__u32 l4_off = s->l4_off;
	struct na_rej_tcp *in = &s->in, *out = &s->out;
	__u32 seglen;
	__s64 sum;

	if (l4_off != l3_off + iplen || bpf_skb_load_bytes(skb, l4_off, in, sizeof(*in)) < 0)
		return -1;
	if (in->flags & NA_TCP_RST)
		return -1;
	__builtin_memset(out, 0, sizeof(*out));
	out->sport = in->dport;
	out->dport = in->sport;
	out->doff = (sizeof(*out) / 4) << 4;
	if (in->flags & NA_TCP_ACK) {
		out->seq = in->ack;
		out->flags = NA_TCP_RST;
	} else {
		seglen = s->end - l4_off - (in->doff >> 4) * 4;
		seglen += (in->flags & NA_TCP_SYN ? 1 : 0) + (in->flags & NA_TCP_FIN ? 1 : 0);
		out->ack = bpf_htonl(bpf_ntohl(in->seq) + seglen);
		out->flags = NA_TCP_RST | NA_TCP_ACK;
	}
	if (bpf_skb_change_tail(skb, l4_off + sizeof(*out), 0) < 0)
		return -1;
	sum = na_rej_ip(skb, l3_off, v4, s, NA_IPPROTO_TCP, sizeof(*out));
	if (sum < 0)
		return -1;
	out->check = na_rej_fold(bpf_csum_diff(NULL, 0, (__be32 *)out, sizeof(*out), sum));
	return bpf_skb_store_bytes(skb, l4_off, out, sizeof(*out), BPF_F_RECOMPUTE_CSUM);
}

/*
 * The port unreachable for a UDP datagram, quoting its IP headers and UDP
 * header: what the client's kernel needs to find the socket (RFC 1122
 * 3.2.2, RFC 4443 3.1). The frame is grown or cut to the reply's length.
 */
static __always_inline int na_rej_udp(struct __sk_buff *skb, __u32 l3_off, struct na_rej_scratch *s)
{
	bool v4 = ((s->kind >> 8) & 0xff) == NA_FAMILY_IPV4;
	__u32 iplen = v4 ? sizeof(struct na_rej_ipv4) : sizeof(struct na_rej_ipv6);
	struct na_rej_icmp *icmp = &s->icmp;
	__u32 len = s->l4_off - l3_off + 8;
	__s64 sum;

	/* Separate tests, so the verifier sees both bounds of the length the helpers take. */
	if (len > NA_REJECT_QUOTE_MAX)
		return -1;
	barrier_var(len);
	if (len < sizeof(struct na_rej_ipv4) + 8 || (len & 3))
		return -1;
	if (bpf_skb_load_bytes(skb, l3_off, s->quote, len) < 0)
		return -1;
	if (bpf_skb_change_tail(skb, l3_off + iplen + sizeof(*icmp) + len, 0) < 0)
		return -1;
	sum = na_rej_ip(skb, l3_off, v4, s, v4 ? NA_IPPROTO_ICMP : NA_IPPROTO_ICMPV6, sizeof(*icmp) + len);
	if (sum < 0)
		return -1;
	__builtin_memset(icmp, 0, sizeof(*icmp));
	icmp->type = v4 ? NA_ICMP_DEST_UNREACH : NA_ICMPV6_DEST_UNREACH;
	icmp->code = v4 ? NA_ICMP_PORT_UNREACH : NA_ICMPV6_PORT_UNREACH;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, sizeof(*icmp), sum);
	icmp->check = na_rej_fold(bpf_csum_diff(NULL, 0, (__be32 *)s->quote, len, sum));
	if (bpf_skb_store_bytes(skb, l3_off + iplen, icmp, sizeof(*icmp), BPF_F_RECOMPUTE_CSUM) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, l3_off + iplen + sizeof(*icmp), s->quote, len, BPF_F_RECOMPUTE_CSUM);
}

/*
 * Turns the refused packet (family and protocol in kind: family << 8 |
 * protocol) into its answer and sends that back out of the pod's veth into
 * the pod (bpf_redirect_peer: the host side's peer, from its tc ingress), so
 * to_endpoint never judges it; with NA_REJECT_OUT in kind (a packet from
 * outside, lb_netdev.h), back out of the interface it came in through. A GSO packet, one with VLAN tags or one the
 * answer cannot be built for is only dropped.
 *
 * A global function: the verifier checks it once, on its own, instead of in
 * every state of from_endpoint that reaches it.
 */
__attribute__((noinline)) int na_lb_reject_packet(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off,
						  __u32 end, __u32 kind)
{
	bool v4 = ((kind >> 8) & 0xff) == NA_FAMILY_IPV4;
	struct na_rej_scratch *s;
	__u32 zero = 0;
	__u8 mac;
	int ret, i;

	s = bpf_map_lookup_elem(&na_lb_rej_buf, &zero);
	if (!s || l3_off != NA_ETH_HLEN || skb->gso_size)
		return TC_ACT_SHOT;
	s->l4_off = l4_off;
	s->end = end;
	s->kind = kind;
	if (bpf_skb_load_bytes(skb, 0, s->mac, sizeof(s->mac)) < 0)
		return TC_ACT_SHOT;
	__builtin_memset(&s->a, 0, sizeof(s->a));
	/*
	 * The IP header is at NA_ETH_HLEN: a constant, like the arguments kept in
	 * s, keeps this stack small (from_endpoint's and this function's together
	 * must fit in 512 bytes).
	 */
	if (v4)
		ret = bpf_skb_load_bytes(skb, NA_ETH_HLEN + 12, s->a.src, 4) |
		      bpf_skb_load_bytes(skb, NA_ETH_HLEN + 16, s->a.dst, 4);
	else
		ret = bpf_skb_load_bytes(skb, NA_ETH_HLEN + 8, &s->a, sizeof(s->a));
	if (ret < 0)
		return TC_ACT_SHOT;
	if ((s->kind & 0xff) == NA_IPPROTO_TCP)
		ret = na_rej_tcp(skb, NA_ETH_HLEN, s);
	else
		ret = na_rej_udp(skb, NA_ETH_HLEN, s);
	if (ret < 0)
		return TC_ACT_SHOT;
#pragma unroll
	for (i = 0; i < 6; i++) {
		mac = s->mac[i];
		s->mac[i] = s->mac[6 + i];
		s->mac[6 + i] = mac;
	}
	if (bpf_skb_store_bytes(skb, 0, s->mac, sizeof(s->mac), 0) < 0)
		return TC_ACT_SHOT;
	if (s->kind & NA_REJECT_OUT)
		return bpf_redirect(skb->ifindex, 0);
	return bpf_redirect_peer(skb->ifindex, 0);
}

/*
 * The verdict for a packet refused for want of a backend: answered when it
 * starts or belongs to a TCP or UDP flow (whole, or a first fragment: the
 * quote needs only its headers), dropped otherwise.
 */
static __always_inline int na_lb_reject(struct __sk_buff *skb, const struct na_pkt *pkt)
{
	if (pkt->frag == NA_FRAG_LATER)
		return TC_ACT_SHOT;
	return na_lb_reject_packet(skb, pkt->l3_off, pkt->l4_off, pkt->end,
				   ((__u32)pkt->family << 8) | pkt->proto);
}

#endif /* NA_LB_REJECT_H */
