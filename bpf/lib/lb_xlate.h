/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_xlate.h: per-packet service translation in the endpoint programs, for
 * traffic no socket hook translated (design and map layouts in
 * nodeagent_abi.h): frontend to backend for what a pod sends, backend to
 * frontend for the replies it receives. ClientIP affinity keys on the
 * client's address (na_lb_aff_ip).
 */
#ifndef NA_LB_XLATE_H
#define NA_LB_XLATE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "lb_maps.h"
#include "lb_slots.h"
#include "context.h"
#include "conntrack.h"
#include "nat.h"

#ifndef NA_LB_FLOWS_MAX_ENTRIES
#define NA_LB_FLOWS_MAX_ENTRIES 262144
#endif

/* Translated flows: both halves of each, keyed as conntrack keys them (least recent go first). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NA_LB_FLOWS_MAX_ENTRIES);
	__type(key, struct na_ct_key);
	__type(value, struct na_lb_flow);
} na_lb_flows SEC(".maps");

#ifndef NA_LB_AFF_IP_MAX_ENTRIES
#define NA_LB_AFF_IP_MAX_ENTRIES 65536
#endif

/* ClientIP affinity of translated flows: a client address and a service -> the backend and its last use. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NA_LB_AFF_IP_MAX_ENTRIES);
	__type(key, struct na_lb_aff_ip_key);
	__type(value, struct na_lb_affinity_value);
} na_lb_aff_ip SEC(".maps");

/* The flow's hash for Maglev: the whole 5-tuple, both address families. */
static __always_inline __u32 na_lb_hash(const struct na_pkt *pkt)
{
	const __u32 *s = (const __u32 *)pkt->saddr, *d = (const __u32 *)pkt->daddr;
	__u32 h = 0x4e414c42;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		h = na_nat_mix(h, s[i]);
		h = na_nat_mix(h, d[i]);
	}
	h = na_nat_mix(h, ((__u32)pkt->sport << 16) | pkt->dport);
	h = na_nat_mix(h, pkt->proto);
	return na_nat_fmix(h);
}

/*
 * The backend the client had for the service within its ClientIP affinity
 * timeout, when that backend still takes new connections (its last use
 * becomes now); NULL otherwise. akey is left filled, for recording a new choice.
 */
static __always_inline struct na_lb_backend *na_lb_affinity_ip(const struct na_ctx *ctx,
							    const struct na_lb_service_value *svc,
							    struct na_lb_aff_ip_key *akey, __u32 *id)
{
	struct na_lb_affinity_value *aval;
	struct na_lb_backend *backend;

	__builtin_memcpy(akey->addr, ctx->pkt.saddr, 16);
	akey->service_id = svc->service_id;
	akey->family = ctx->pkt.family;
	aval = bpf_map_lookup_elem(&na_lb_aff_ip, akey);
	if (!aval || ctx->now - aval->last_used > svc->affinity_timeout)
		return NULL;
	backend = lb_affinity_check(aval->backend_id, svc->service_id);
	if (!backend)
		return NULL;
	*id = aval->backend_id;
	aval->last_used = ctx->now;
	return backend;
}

/*
 * The backend for a new flow of the service whose slot 0 is svc (read under
 * key): its Maglev table's entry for the flow's hash when it has a table and
 * the entry names a backend (a table is replaced just after a new backend set
 * is switched in, so it may briefly name one already gone), a random slot of
 * the bank in use otherwise. Sets *id; NULL: none.
 */
static __always_inline struct na_lb_backend *na_lb_select(struct na_lb_service_key *key,
							  const struct na_lb_service_value *svc,
							  const struct na_pkt *pkt, __u32 *id)
{
	struct na_lb_backend *backend;
	__u32 index, *size, *entry;
	void *table;

	table = bpf_map_lookup_elem(&na_lb_maglev, &svc->service_id);
	if (table) {
		index = NA_LB_MAGLEV_SIZE_INDEX;
		size = bpf_map_lookup_elem(table, &index);
		if (size && *size) {
			index = 1 + na_lb_hash(pkt) % *size;
			entry = bpf_map_lookup_elem(table, &index);
			if (entry) {
				*id = *entry;
				backend = bpf_map_lookup_elem(&na_lb_backends, id);
				if (backend)
					return backend;
			}
		}
	}
	backend = lb_random_backend(key, svc, id);
	key->slot = 0;
	return backend;
}

/* Whether a flow's backend is still where the flow goes: its id names the same address and port. */
static __always_inline bool na_lb_flow_valid(const struct na_lb_flow *flow, __u32 service_id)
{
	struct na_lb_backend *backend;

	if (flow->service_id != service_id)
		return false;
	backend = bpf_map_lookup_elem(&na_lb_backends, &flow->backend_id);
	return backend && backend->port == flow->port &&
	       __builtin_memcmp(backend->addr, flow->addr, 16) == 0;
}

/* The reverse half's key: the tuple of the replies, from the backend to the pod. */
static __always_inline void na_lb_reverse_key(struct na_ct_key *rkey, const struct na_pkt *pkt,
					      const struct na_lb_flow *fwd)
{
	__builtin_memcpy(rkey->saddr, fwd->addr, 16);
	__builtin_memcpy(rkey->daddr, pkt->saddr, 16);
	rkey->sport = fwd->port;
	rkey->dport = pkt->sport;
	rkey->proto = pkt->proto;
	rkey->family = pkt->family;
	rkey->direction = NA_DIR_INGRESS;
	rkey->pad = 0;
}

/*
 * The backend of the flow a packet to a frontend belongs to: the one its
 * forward half names while valid, a newly chosen one otherwise (both halves
 * written). A reverse half the LRU evicted alone is put back. Returns 1 with
 * *fwd set, 0 when the packet is left alone, or a negative drop reason.
 */
static __always_inline int na_lb_flow_backend(struct na_ctx *ctx, struct na_lb_service_key *key,
					      const struct na_lb_service_value *svc,
					      struct na_lb_flow *fwd)
{
	const struct na_pkt *pkt = &ctx->pkt;
	struct na_lb_affinity_value aval = {};
	struct na_lb_flow rev = {}, *known;
	struct na_lb_aff_ip_key akey = {};
	struct na_lb_backend *backend = NULL;
	struct na_ct_key fkey, rkey;
	__u32 id = 0;

	na_ct_key_fill(&fkey, pkt, NA_DIR_EGRESS, false);
	known = bpf_map_lookup_elem(&na_lb_flows, &fkey);
	if (known && na_lb_flow_valid(known, svc->service_id)) {
		*fwd = *known;
		na_lb_reverse_key(&rkey, pkt, fwd);
		if (bpf_map_lookup_elem(&na_lb_flows, &rkey))
			return 1;
		goto reverse;
	}
	/* A later fragment has no header to rewrite the port of: its first fragment chose. */
	if (pkt->frag == NA_FRAG_LATER)
		return 0;
	if (svc->count == 0)
		return -NA_DROP_NO_SERVICE;
	if (svc->affinity_timeout)
		backend = na_lb_affinity_ip(ctx, svc, &akey, &id);
	if (!backend) {
		backend = na_lb_select(key, svc, pkt, &id);
		if (!backend)
			return -NA_DROP_NO_SERVICE;
		if (svc->affinity_timeout) {
			aval.backend_id = id;
			aval.last_used = ctx->now;
			bpf_map_update_elem(&na_lb_aff_ip, &akey, &aval, BPF_ANY);
		}
	}
	__builtin_memcpy(fwd->addr, backend->addr, 16);
	fwd->port = backend->port;
	fwd->backend_id = id;
	fwd->service_id = svc->service_id;
	bpf_map_update_elem(&na_lb_flows, &fkey, fwd, BPF_ANY);
	na_lb_reverse_key(&rkey, pkt, fwd);
reverse:
	__builtin_memcpy(rev.addr, pkt->daddr, 16);
	rev.port = pkt->dport;
	rev.backend_id = fwd->backend_id;
	rev.service_id = fwd->service_id;
	/* Best effort, as the forward half: without it replies keep the backend's address. */
	bpf_map_update_elem(&na_lb_flows, &rkey, &rev, BPF_ANY);
	return 1;
}

/*
 * Whether some frontend may serve the packet's protocol and destination port:
 * false only once na_lb_ports is complete and the port's bit is clear, so most
 * packets (replies to a client's ephemeral port, traffic to ports no service
 * has) skip the lookup in na_lb_services. Two array lookups, which the
 * verifier inlines.
 */
static __always_inline bool na_lb_port_served(__u8 proto, __be16 port)
{
	__u32 index = NA_LB_PORTS_COMPLETE;
	__u16 p = bpf_ntohs(port);
	__u64 *word;

	word = bpf_map_lookup_elem(&na_lb_ports, &index);
	if (!word || !*word)
		return true;
	index = NA_LB_PORT_WORD(proto, p);
	word = bpf_map_lookup_elem(&na_lb_ports, &index);
	return !word || ((*word >> (p & 63)) & 1);
}

/*
 * Whether the packet answers a flow opened towards the pod: a frontend may be
 * a real address (a node's), and a pod's reply to a client there whose port
 * happens to be the service's stays the reply it is.
 */
static __always_inline bool na_lb_is_reply(const struct na_ctx *ctx)
{
	struct na_ct_key rkey;

	na_ct_key_fill(&rkey, &ctx->pkt, NA_DIR_EGRESS, true);
	return na_ct_live(bpf_map_lookup_elem(&na_ct, &rkey), ctx->now);
}

/*
 * from_endpoint: a TCP or UDP packet to a service frontend leaves for the
 * flow's backend. The packet and ctx->pkt both get the backend's address and
 * port, so conntrack, policy and flow events see the backend. Returns 0 or a
 * negative drop reason.
 */
static __always_inline int na_lb_xlate_to_backend(struct __sk_buff *skb, struct na_ctx *ctx)
{
	struct na_pkt *pkt = &ctx->pkt;
	struct na_lb_service_key key = {};
	struct na_lb_service_value *svc;
	struct na_lb_flow fwd = {};
	struct na_nat_loc loc;
	int ret;

	if (pkt->proto != NA_IPPROTO_TCP && pkt->proto != NA_IPPROTO_UDP)
		return 0;
	if (!na_lb_port_served(pkt->proto, pkt->dport))
		return 0;
	__builtin_memcpy(key.addr, pkt->daddr, 16);
	key.family = pkt->family;
	key.proto = pkt->proto;
	key.port = pkt->dport;
	svc = bpf_map_lookup_elem(&na_lb_services, &key);
	if (!svc || na_lb_is_reply(ctx))
		return 0;
	ret = na_lb_flow_backend(ctx, &key, svc, &fwd);
	if (ret <= 0)
		return ret;
	loc.l3_off = pkt->l3_off;
	loc.l4_off = pkt->l4_off;
	loc.icmp_type = 0;
	ret = na_nat_rewrite(skb, pkt, &loc, false, pkt->daddr, fwd.addr, pkt->dport, fwd.port);
	if (ret < 0)
		return ret;
	__builtin_memcpy(pkt->daddr, fwd.addr, 16);
	pkt->dport = fwd.port;
	ctx->lb_xlated = 1;
	return 0;
}

/*
 * to_endpoint, once the packet is allowed: a reply matching the conntrack
 * entry of a flow the pod sent to a frontend (NA_CT_SERVICE) comes from the
 * frontend. ctx->pkt keeps the backend (what conntrack and the flow event
 * saw). Returns 0 or a negative drop reason.
 */
static __always_inline int na_lb_xlate_from_backend(struct __sk_buff *skb, struct na_ctx *ctx)
{
	struct na_pkt *pkt = &ctx->pkt;
	struct na_lb_flow *rev;
	struct na_nat_loc loc;
	struct na_ct_key rkey;
	__u8 addr[16];
	__be16 port;

	if (!(ctx->ct_flags & NA_CT_SERVICE))
		return 0;
	na_ct_key_fill(&rkey, pkt, NA_DIR_INGRESS, false);
	rev = bpf_map_lookup_elem(&na_lb_flows, &rkey);
	if (!rev)
		return 0;
	__builtin_memcpy(addr, rev->addr, 16);
	port = rev->port;
	loc.l3_off = pkt->l3_off;
	loc.l4_off = pkt->l4_off;
	loc.icmp_type = 0;
	return na_nat_rewrite(skb, pkt, &loc, true, pkt->saddr, addr, pkt->sport, port);
}

/*
 * Hairpin: a pod whose flow to a frontend was sent to itself. Its answer to
 * its own address would never leave the pod, so the flow's packets reach it
 * from NA_LB_HAIRPIN_IPV4 (Cilium's IPv4 service loopback address, link-local:
 * only this node can send from it) and its answers to that address come out,
 * where they go back to the pod's address and to_endpoint gives them the
 * frontend back as any backend's reply. IPv4 only.
 */
#define NA_LB_HAIRPIN_IPV4 0xa9fe2a01  /* 169.254.42.1 */

static __always_inline bool na_lb_hairpin_addr(const __u8 *addr, __u8 family)
{
	__be32 a;

	__builtin_memcpy(&a, addr, 4);
	return family == NA_FAMILY_IPV4 && a == bpf_htonl(NA_LB_HAIRPIN_IPV4);
}

/*
 * from_endpoint, once the packet is allowed: a translated packet to the pod's
 * own address leaves from the hairpin address, and the pod's answer to the
 * hairpin address goes back to the pod's own (ports unchanged). ctx->pkt
 * keeps what conntrack and the flow event saw. Returns 0 or a negative drop
 * reason.
 */
static __always_inline int na_lb_hairpin_egress(struct __sk_buff *skb, const struct na_ctx *ctx)
{
	const struct na_pkt *pkt = &ctx->pkt;
	__u8 from[16] = {}, to[16] = {};
	struct na_nat_loc loc;
	__be32 hairpin = bpf_htonl(NA_LB_HAIRPIN_IPV4);
	bool source;

	if (pkt->family != NA_FAMILY_IPV4)
		return 0;
	if (ctx->lb_xlated && na_addr_equal(pkt->saddr, pkt->daddr, 1)) {
		source = true;
		__builtin_memcpy(from, pkt->saddr, 4);
		__builtin_memcpy(to, &hairpin, 4);
	} else if (na_lb_hairpin_addr(pkt->daddr, pkt->family)) {
		source = false;
		__builtin_memcpy(from, pkt->daddr, 4);
		__builtin_memcpy(to, pkt->saddr, 4);
	} else {
		return 0;
	}
	loc.l3_off = pkt->l3_off;
	loc.l4_off = pkt->l4_off;
	loc.icmp_type = 0;
	return na_nat_rewrite(skb, pkt, &loc, source, from, to, 0, 0);
}

#endif /* NA_LB_XLATE_H */
