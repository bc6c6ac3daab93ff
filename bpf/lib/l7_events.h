/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* l7_events.h: one na_l7_event per HTTP request decision, and the counters by reason. */
#ifndef NA_L7_EVENTS_H
#define NA_L7_EVENTS_H

#include "events.h"
#include "metrics.h"
#include "http_parse.h"
#include "l7_bounds.h"

/*
 * Copies [off, off + len) of the head, which starts at base in the skb, cut
 * to max bytes (a power of two); returns the bytes copied. One helper call
 * rather than a loop over the scratch copy: the verifier checks a loop's every
 * step at every place a decision is reported.
 */
static __always_inline __u16 na_l7_copy(struct __sk_buff *skb, char *dst, __u32 max, __u32 base, __u32 off,
					__u32 len)
{
	__u32 n = len < max ? len : max;

	if (n == 0)
		return 0;
	n = na_l7_bounded(n, max);
	if (bpf_skb_load_bytes(skb, base + off, dst, n) < 0)
		return 0;
	return n;
}

/*
 * Reports a decision: s is nil for bytes refused before any head could be read (the reason says why); else the
 * head it read is at conn->msg_off in the skb.
 */
static __always_inline void na_l7_emit(struct __sk_buff *skb, const struct na_l7_conn *conn,
				       const struct na_l7_port_value *port, __u32 peer, const struct na_l7_scratch *s,
				       __u16 reason, __u32 rule_index, __u32 rule_id, __u32 len)
{
	struct na_l7_event *e;

	na_metrics_count(reason, NA_DIR_INGRESS, len);
	e = bpf_ringbuf_reserve(&na_events, sizeof(*e), 0);
	if (!e) {
		na_event_account(true);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->flow.timestamp_ns = bpf_ktime_get_ns();
	__builtin_memcpy(e->flow.saddr, conn->remote, 16);
	__builtin_memcpy(e->flow.daddr, conn->local, 16);
	e->flow.sport = conn->remote_port;
	e->flow.dport = conn->local_port;
	e->flow.proto = IPPROTO_TCP;
	e->flow.family = conn->family;
	e->flow.direction = NA_DIR_INGRESS;
	e->flow.verdict = reason ? NA_VERDICT_DROPPED : NA_VERDICT_FORWARDED;
	e->flow.reason = reason;
	e->flow.kind = NA_EVENT_L7_HTTP;
	e->flow.ep_id = port ? port->ep_id : 0;
	e->flow.src_identity = peer;
	e->flow.dst_identity = port ? port->ep_identity : 0;
	e->flow.rule_id = rule_id;
	e->flow.length = len;
	e->rule_index = rule_index;
	if (s && s->req.method_len) {
		__u32 base = conn->msg_off;

		e->method_len = na_l7_copy(skb, e->method, NA_L7_EVENT_METHOD_MAX, base, 0, s->req.method_len);
		e->path_len = na_l7_copy(skb, e->path, NA_L7_EVENT_PATH_MAX, base, s->req.target_off, s->req.target_len);
		if (s->req.has_host)
			e->host_len = na_l7_copy(skb, e->host, NA_L7_EVENT_HOST_MAX, base, s->req.host_off,
						 s->req.host_len);
	}
	bpf_ringbuf_submit(e, na_event_wakeup(reason));
	na_event_account(false);
}

#endif /* NA_L7_EVENTS_H */
