/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb_netdev.h: service translation on the node's external interfaces, for
 * clients outside the node: a packet arriving for the frontend of a NodePort,
 * ExternalIPs or LoadBalancer service (NA_LB_F_EXTERNAL) goes to the flow's
 * backend, and the backend's replies leave with the frontend as their source.
 * No source NAT: the backend (a pod of this node) sees the real client, and
 * to_endpoint's conntrack and policy judge the flow by the client's identity
 * (Cilium's default for local backends); a backend on another node is a
 * drop for now. The flow's two halves live in na_lb_flows as lb_xlate.h
 * keeps them.
 */
#ifndef NA_LB_NETDEV_H
#define NA_LB_NETDEV_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "context.h"
#include "parse.h"
#include "fragments.h"
#include "ipcache.h"
#include "metrics.h"
#include "events.h"
#include "nat.h"
#include "lb_xlate.h"
#include "lb_reject.h"

/* Parses a TCP or UDP packet for the netdev path into ctx; 0 when it is one (ports known), -1 otherwise. */
static __always_inline int na_lb_netdev_parse(struct __sk_buff *skb, struct na_ctx *ctx, __u8 dir)
{
	ctx->dir = dir;
	ctx->len = skb->len;
	ctx->ifindex = skb->ifindex;
	if (na_parse(skb, &ctx->pkt) < 0 || ctx->pkt.kind != NA_PKT_FLOW)
		return -1;
	if (ctx->pkt.proto != NA_IPPROTO_TCP && ctx->pkt.proto != NA_IPPROTO_UDP)
		return -1;
	if (na_frag_track(&ctx->pkt) < 0)
		return -1;
	na_ctx_clock(ctx);
	return 0;
}

/*
 * Whether the backend is reached back through the interface the packet came
 * in on: another node's pod. Its answers would go to the client straight from
 * that node, without the frontend as their source, so such flows are dropped
 * (NA_DROP_LB_REMOTE_BACKEND) until they are forwarded with source NAT or DSR.
 * A global function: the 64-byte FIB query gets a stack frame of its own
 * (Linux 6.1 counts every frame of a call chain, rounded up to 32 bytes,
 * against the 512 the chain may use).
 */
__attribute__((noinline)) int na_lb_remote_backend(struct __sk_buff *skb, const struct na_lb_flow *fwd,
						   __u32 family)
{
	struct bpf_fib_lookup fib = {};
	long ret;

	/* A global function's pointer argument may be NULL as far as the verifier knows. */
	if (!fwd)
		return 0;
	fib.ifindex = skb->ifindex;
	if (family == NA_FAMILY_IPV4) {
		fib.family = NA_FAMILY_IPV4;
		__builtin_memcpy(&fib.ipv4_dst, fwd->addr, 4);
	} else {
		fib.family = NA_FAMILY_IPV6;
		__builtin_memcpy(fib.ipv6_dst, fwd->addr, 16);
	}
	ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	return (ret == BPF_FIB_LKUP_RET_SUCCESS || ret == BPF_FIB_LKUP_RET_NO_NEIGH) &&
	       fib.ifindex == skb->ifindex;
}

/*
 * from_netdev: a packet from outside to an external frontend leaves for the
 * flow's backend. Returns 1 when translated, 0 when it is no such packet
 * (left to NAT and the kernel), or a negative drop reason.
 */
static __always_inline int na_lb_from_netdev(struct __sk_buff *skb, struct na_ctx *ctx)
{
	struct na_pkt *pkt = &ctx->pkt;
	struct na_lb_service_key key = {};
	struct na_lb_service_value *svc;
	struct na_lb_flow fwd = {};
	struct na_nat_loc loc;
	int ret;

	if (na_lb_netdev_parse(skb, ctx, NA_DIR_INGRESS) < 0)
		return 0;
	__builtin_memcpy(key.addr, pkt->daddr, 16);
	key.family = pkt->family;
	key.proto = pkt->proto;
	key.port = pkt->dport;
	svc = bpf_map_lookup_elem(&na_lb_services, &key);
	if (!svc || !(svc->flags & NA_LB_F_EXTERNAL))
		return 0;
	ctx->remote_identity = na_ipcache_identity(pkt->saddr, pkt->family);
	ret = na_lb_flow_backend(ctx, &key, svc, &fwd);
	if (ret <= 0)
		return ret;
	if (na_lb_remote_backend(skb, &fwd, pkt->family))
		return -NA_DROP_LB_REMOTE_BACKEND;
	loc.l3_off = pkt->l3_off;
	loc.l4_off = pkt->l4_off;
	loc.icmp_type = 0;
	ret = na_nat_rewrite(skb, pkt, &loc, false, pkt->daddr, fwd.addr, pkt->dport, fwd.port);
	return ret < 0 ? ret : 1;
}

/*
 * to_netdev: a backend's reply to a client of an external frontend leaves
 * from the frontend. The reverse half is trusted only while the forward half
 * of the same flow still names this backend. Returns 1 when translated, 0
 * otherwise, or a negative drop reason.
 */
static __always_inline int na_lb_to_netdev(struct __sk_buff *skb, struct na_ctx *ctx)
{
	struct na_pkt *pkt = &ctx->pkt;
	struct na_lb_flow *rev, *fwd;
	struct na_ct_key rkey, fkey;
	struct na_nat_loc loc;
	__u8 addr[16];
	__be16 port;

	if (na_lb_netdev_parse(skb, ctx, NA_DIR_EGRESS) < 0)
		return 0;
	na_ct_key_fill(&rkey, pkt, NA_DIR_INGRESS, false);
	rev = bpf_map_lookup_elem(&na_lb_flows, &rkey);
	if (!rev)
		return 0;
	__builtin_memcpy(addr, rev->addr, 16);
	port = rev->port;
	__builtin_memcpy(fkey.saddr, pkt->daddr, 16);
	__builtin_memcpy(fkey.daddr, addr, 16);
	fkey.sport = pkt->dport;
	fkey.dport = port;
	fkey.proto = pkt->proto;
	fkey.family = pkt->family;
	fkey.direction = NA_DIR_EGRESS;
	fkey.pad = 0;
	fwd = bpf_map_lookup_elem(&na_lb_flows, &fkey);
	if (!fwd || fwd->port != pkt->sport || __builtin_memcmp(fwd->addr, pkt->saddr, 16) != 0)
		return 0;
	loc.l3_off = pkt->l3_off;
	loc.l4_off = pkt->l4_off;
	loc.icmp_type = 0;
	return na_nat_rewrite(skb, pkt, &loc, true, pkt->saddr, addr, pkt->sport, port) < 0 ? -NA_DROP_INVALID : 1;
}

/*
 * A drop on the netdev path: counted and reported (the client as the remote
 * end); a packet to an external frontend without backends is answered with
 * its refusal out of the interface it came in through.
 */
static __always_inline int na_lb_netdev_drop(struct __sk_buff *skb, struct na_ctx *ctx, int ret)
{
	__u16 reason = -ret;

	na_config_load(&ctx->cfg);
	na_metrics_count(reason, ctx->dir, ctx->len);
	if (ctx->cfg.flags & NA_CFG_EVENTS_DROPPED)
		na_event_emit(ctx, reason);
	if (ret != -NA_DROP_NO_SERVICE || ctx->pkt.frag == NA_FRAG_LATER)
		return TC_ACT_SHOT;
	return na_lb_reject_packet(skb, ctx->pkt.l3_off, ctx->pkt.l4_off, ctx->pkt.end,
				   NA_REJECT_OUT | ((__u32)ctx->pkt.family << 8) | ctx->pkt.proto);
}

/* What the netdev entry points return for a packet that is none of the load balancer's. */
#define NA_LB_NETDEV_PASS -1

/*
 * The load balancer's verdict at tc ingress of an external interface, or
 * NA_LB_NETDEV_PASS. Global functions, as the reject builder: the verifier
 * checks each once, and each gets its own stack beside NAT's.
 */
__attribute__((noinline)) int na_lb_netdev_ingress(struct __sk_buff *skb)
{
	struct na_ctx ctx = {};
	int ret = na_lb_from_netdev(skb, &ctx);

	if (ret < 0)
		return na_lb_netdev_drop(skb, &ctx, ret);
	return ret ? TC_ACT_OK : NA_LB_NETDEV_PASS;
}

/* The load balancer's verdict at tc egress of an external interface, or NA_LB_NETDEV_PASS. */
__attribute__((noinline)) int na_lb_netdev_egress(struct __sk_buff *skb)
{
	struct na_ctx ctx = {};
	int ret = na_lb_to_netdev(skb, &ctx);

	if (ret < 0)
		return na_lb_netdev_drop(skb, &ctx, ret);
	return ret ? TC_ACT_OK : NA_LB_NETDEV_PASS;
}

#endif /* NA_LB_NETDEV_H */
