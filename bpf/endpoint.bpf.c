// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * endpoint.bpf.c: L3/L4 policy enforcement for one endpoint (pod), attached
 * with tc to the host side of its veth. Packets from the endpoint arrive on
 * the host veth's ingress hook (from_endpoint), packets to it leave through
 * its egress hook (to_endpoint). The node's external interfaces carry
 * to_netdev and from_netdev, which masquerade pod traffic leaving the
 * cluster (nat.h) and translate services for clients outside (lb_netdev.h);
 * they live in this object to share its maps. Packets a pod
 * sends to a service frontend are translated to a backend on the way
 * (lb_xlate.h), and the replies back to the frontend; a frontend without
 * backends answers with a refusal (lb_reject.h).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "consts.h"
#include "maps.h"
#include "lb_maps.h"
#include "config.h"
#include "context.h"
#include "parse.h"
#include "fragments.h"
#include "endpoint.h"
#include "ipcache.h"
#include "policy.h"
#include "conntrack.h"
#include "metrics.h"
#include "events.h"
#include "icmp.h"
#include "nat.h"
#include "lb_xlate.h"
#include "lb_reject.h"
#include "lb_netdev.h"
#include "local_delivery.h"

/*
 * Whether from_endpoint may hand an allowed packet to deliver_local, from what
 * na_handle left in skb->cb: conntrack's answer plus one (0: none, the packet
 * never got there) and the matched entry's flags. A new flow, a packet of a flow the
 * endpoint opened, or a reply in a flow deliver_local opened (NA_CT_DIRECT) may;
 * a reply in a flow the node's stack delivered goes back through the stack,
 * whose netfilter NAT may have to give it the address its client sent to.
 */
static __always_inline bool na_onward(const struct __sk_buff *skb)
{
	__u32 ct = skb->cb[0];

	if (ct == NA_CT_NEW + 1 || ct == NA_CT_ESTABLISHED + 1)
		return true;
	return ct == NA_CT_REPLY + 1 && (skb->cb[1] & NA_CT_DIRECT);
}

/*
 * Counts the verdict, reports drops (once per flow and interval) and sampled
 * new flows, turns the reason into a tc action.
 */
static __always_inline int na_finish(const struct na_ctx *ctx, int ret, bool new_flow)
{
	__u16 reason = ret < 0 ? -ret : NA_REASON_FORWARDED;

	na_metrics_count(reason, ctx->dir, ctx->len);
	if (reason) {
		if ((ctx->cfg.flags & NA_CFG_EVENTS_DROPPED) && na_drop_event_due(ctx, reason))
			na_event_emit(ctx, reason);
		return TC_ACT_SHOT;
	}
	if (new_flow && na_event_sampled(&ctx->cfg))
		na_event_emit(ctx, reason);
	return TC_ACT_OK;
}

/*
 * The verdict for a tracked packet: an allowed one to the endpoint first
 * gets a service frontend back as its source when it is a backend's reply;
 * one from the endpoint takes the hairpin rewrites when it reaches itself.
 */
static __always_inline int na_deliver(struct __sk_buff *skb, struct na_ctx *ctx, int ret,
				      bool new_flow)
{
	if (ret == 0 && ctx->dir == NA_DIR_INGRESS)
		ret = na_lb_xlate_from_backend(skb, ctx);
	else if (ret == 0)
		ret = na_lb_hairpin_egress(skb, ctx);
	return na_finish(ctx, ret, new_flow && ret == 0);
}

/*
 * A packet service translation refused: counted and reported as any drop,
 * then answered when no backend takes it (the client fails at once).
 */
static __always_inline int na_lb_refused(struct __sk_buff *skb, const struct na_ctx *ctx, int ret)
{
	int verdict = na_finish(ctx, ret, false);

	return ret == -NA_DROP_NO_SERVICE ? na_lb_reject(skb, &ctx->pkt) : verdict;
}

/*
 * The verdict for a packet in direction dir: pass non-IP, check neighbor
 * discovery by type, drop malformed, unknown-interface and spoofed packets,
 * pass ICMP errors about tracked flows only, translate a packet the endpoint
 * sends to a service frontend to a backend, then conntrack (which re-checks
 * flows whose endpoint's policy changed), then policy for new flows (by the
 * remote address's identity), which are tracked once allowed. An allowed
 * reply from a service backend gets the frontend back as its source. ifindex:
 * the endpoint's host-side interface (the packet's own, except in deliver_local);
 * direct: deliver_local decides the packet (a new flow's entry is marked so).
 * now_ns: the coarse clock when the caller read it already (deliver_local),
 * 0 when na_handle reads it itself.
 *
 * A packet from the endpoint leaves what conntrack said of it in skb->cb
 * (na_onward, which from_endpoint clears first): stores to the context, which
 * the verifier does not track, so they add no states to this function.
 */
static __always_inline int na_handle(struct __sk_buff *skb, __u8 dir, __u32 ifindex, bool direct,
				     __u64 now_ns)
{
	const struct na_endpoint_info *ep;
	struct na_ctx ctx = {};
	const __u8 *remote;
	int ret;

	ctx.dir = dir;
	ctx.direct = direct;
	ctx.len = skb->len;
	ctx.ifindex = ifindex;
	na_config_load(&ctx.cfg);

	ret = na_parse(skb, &ctx.pkt);
	if (ret < 0)
		return na_finish(&ctx, ret, false);
	if (ctx.pkt.kind == NA_PKT_NON_IP)
		return na_finish(&ctx, 0, false);
	if (ctx.pkt.kind == NA_PKT_ND)
		return na_finish(&ctx, na_nd_check(skb, &ctx), false);

	ep = na_endpoint_row(ifindex);
	if (!ep)
		return na_finish(&ctx, -NA_DROP_NO_CONFIG, false);
	/*
	 * The row is read here only: the rest of the verdict works on the copy
	 * in ctx, so the verifier need not follow a row from na_ep_slots and one
	 * from na_endpoints through it as two kinds of pointer.
	 */
	ctx.ep_id = ep->ep_id;
	ctx.ep_identity = ep->identity;
	ctx.ep_flags = (__u8)ep->flags;
	ctx.ep_revision = ep->policy_revision;
	if (dir == NA_DIR_EGRESS && !na_source_valid(ep, &ctx.pkt))
		return na_finish(&ctx, -NA_DROP_INVALID_SIP, false);

	ret = na_frag_track(&ctx.pkt);
	if (ret < 0)
		return na_finish(&ctx, ret, false);
	if (ctx.pkt.kind == NA_PKT_ICMP_ERROR)
		return na_finish(&ctx, na_icmp_error_check(skb, &ctx), false);

	/*
	 * The clock is read only for packets that reach service translation and
	 * conntrack (events read it on their own).
	 */
	na_ctx_clock_at(&ctx, now_ns ? now_ns : bpf_ktime_get_coarse_ns());
	if (dir == NA_DIR_EGRESS) {
		ret = na_lb_xlate_to_backend(skb, &ctx);
		if (ret < 0)
			return na_lb_refused(skb, &ctx, ret);
	}
	/*
	 * Established and reply packets need no identity: resolve it only for new
	 * flows, and for flows whose endpoint's policy changed since (re-checked).
	 */
	ret = na_ct_lookup(&ctx);
	if (ret != NA_CT_NEW) {
		if (dir == NA_DIR_EGRESS) {
			skb->cb[0] = ret + 1;
			skb->cb[1] = ctx.ct_flags;
		}
		return na_deliver(skb, &ctx, ret < 0 ? ret : 0, false);
	}
	remote = dir == NA_DIR_EGRESS ? ctx.pkt.daddr : ctx.pkt.saddr;
	ctx.remote_identity = na_ipcache_identity(remote, ctx.pkt.family);

	/* A pod reaching itself through a service (lb_xlate.h): a pod's traffic to itself is always allowed. */
	if (dir == NA_DIR_INGRESS && na_lb_hairpin_addr(ctx.pkt.saddr, ctx.pkt.family)) {
		ctx.remote_identity = ctx.ep_identity;
		ctx.rule_id = 0;
		ret = 0;
	} else {
		ret = na_policy_verdict(&ctx, dir, ctx.pkt.dport);
	}
	if (ret < 0)
		return na_finish(&ctx, ret, false);
	if (dir == NA_DIR_EGRESS)
		skb->cb[0] = NA_CT_NEW + 1;
	ret = na_ct_create(&ctx);
	return na_deliver(skb, &ctx, ret, ret == 0);
}

/*
 * Packets the endpoint sends (tc ingress of its host-side veth). One its
 * policy let out goes on to deliver_local (local_delivery.h) unless it is a
 * reply the node's stack must see (na_handle); the tail call returns here only
 * when the slot is empty.
 */
SEC("tc")
int from_endpoint(struct __sk_buff *skb)
{
	int ret;

	skb->cb[0] = 0;
	ret = na_handle(skb, NA_DIR_EGRESS, skb->ifindex, false, 0);
	if (ret == TC_ACT_OK && na_onward(skb))
		bpf_tail_call(skb, &na_local_prog, 0);
	return ret;
}

/* Packets sent to the endpoint (tc egress of its host-side veth). */
SEC("tc")
int to_endpoint(struct __sk_buff *skb)
{
	return na_handle(skb, NA_DIR_INGRESS, skb->ifindex, false, 0);
}

/*
 * A packet from_endpoint let out, when it is for another endpoint of this
 * node: that endpoint's ingress verdict, then straight into its pod
 * (local_delivery.h). Any other packet goes on to the node's stack. One
 * clock read serves the routing answers' period and conntrack.
 */
SEC("tc")
int deliver_local(struct __sk_buff *skb)
{
	__u64 now_ns = bpf_ktime_get_coarse_ns();
	__u32 ifindex = na_local_route(skb, now_ns);
	int ret;

	if (!ifindex)
		return TC_ACT_OK;
	ret = na_handle(skb, NA_DIR_INGRESS, ifindex, true, now_ns);
	if (ret != TC_ACT_OK)
		return ret;
	return na_local_forward(skb, ifindex);
}

/* NAT's halves of the netdev programs, functions of their own: each has its own stack beside the load balancer's. */
__attribute__((noinline)) int na_netdev_nat_egress(struct __sk_buff *skb)
{
	return na_nat_egress(skb);
}

__attribute__((noinline)) int na_netdev_nat_ingress(struct __sk_buff *skb)
{
	return na_nat_ingress(skb);
}

/*
 * Packets leaving the node through an external interface (tc egress): replies
 * of a service's backend to a client outside get the frontend back as their
 * source (lb_netdev.h); source NAT for the rest.
 */
SEC("tc")
int to_netdev(struct __sk_buff *skb)
{
	int ret = na_lb_netdev_egress(skb);

	return ret == NA_LB_NETDEV_PASS ? na_netdev_nat_egress(skb) : ret;
}

/*
 * Packets arriving on an external interface (tc ingress): to a NodePort,
 * external or load balancer frontend, translated to a backend (lb_netdev.h);
 * otherwise the replies of masqueraded flows.
 */
SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	int ret = na_lb_netdev_ingress(skb);

	return ret == NA_LB_NETDEV_PASS ? na_netdev_nat_ingress(skb) : ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
