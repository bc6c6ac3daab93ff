// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7.bpf.c: HTTP/1.x policy decided in the kernel, per request, before the
 * server application reads it. A sockops program at the agent's cgroup v2
 * root enrolls server sockets whose local address and port have HTTP rules
 * (na_l7_ports) into na_l7_socks; the stream parser attached to that sockhash
 * frames each connection's bytes into request heads and body pieces, and the
 * stream verdict decides every head against the port's ruleset. A refused
 * head becomes a 403 sent back on the same socket, and the connection's later
 * bytes are dropped.
 *
 * How the kernel behaves here (checked on 6.18 before this was written):
 * - The parser sees each message's skb from the start of the segment the
 *   message began in, not from the message: strparser keeps the offset in its
 *   control block, out of the program's reach. A pipelined second request in
 *   the same segment was framed from the first one's bytes. The verdict
 *   therefore records how many bytes followed each message, and the parser's
 *   next call derives the next message's offset from the skb's length
 *   (struct na_l7_conn).
 * - A redirected message leaves as [offset, offset + full_len) of its skb;
 *   growing it with bpf_skb_change_tail does not lengthen what is sent, so
 *   the 403 is written over the refused bytes (l7_deny.h).
 * - bpf_sk_redirect_hash to the message's own socket without BPF_F_INGRESS
 *   sends it back to the client, and SK_DROP keeps it from the application.
 * - The answer goes out as soon as the request is decided: behind pipelined
 *   requests the server has not answered yet it overtakes their answers. And
 *   a socket still in the accept queue has nothing to send it with yet: its
 *   403 is lost (the client sees no answer, the request never reaches the
 *   server either way).
 * - An enrolled socket's blocking read can fail with EAGAIN: with a stream
 *   parser, tcp_bpf_recvmsg_parser wakes for bytes strparser has not framed
 *   yet and finds its queue empty. Servers on non-blocking sockets (epoll)
 *   read again; a blocking reader without a timeout takes it as an error.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "nodeagent_abi.h"
#include "l7_maps.h"
#include "l7_bounds.h"
#include "ipcache.h"
#include "http_frame.h"
#include "http_parse.h"
#include "l7_rules.h"
#include "l7_deny.h"
#include "l7_events.h"

#define NA_AF_INET 2
#define NA_AF_INET6 10

/* Reads a sockops address into bytes; an IPv4-mapped IPv6 address counts as IPv4. */
static __always_inline __u8 na_l7_sockops_addr(__u32 family, __u32 ip4, __u32 w0, __u32 w1, __u32 w2, __u32 w3,
						__u8 *out)
{
	if (family == NA_AF_INET) {
		__builtin_memcpy(out, &ip4, 4);
		return NA_FAMILY_IPV4;
	}
	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
		__builtin_memcpy(out, &w3, 4);
		return NA_FAMILY_IPV4;
	}
	__builtin_memcpy(out, &w0, 4);
	__builtin_memcpy(out + 4, &w1, 4);
	__builtin_memcpy(out + 8, &w2, 4);
	__builtin_memcpy(out + 12, &w3, 4);
	return NA_FAMILY_IPV6;
}

static __always_inline struct na_l7_port_value *na_l7_port_of(const struct na_l7_conn *conn)
{
	struct na_l7_port_key key = {};

	__builtin_memcpy(key.addr, conn->local, 16);
	key.port = conn->local_port;
	key.family = conn->family;
	return bpf_map_lookup_elem(&na_l7_ports, &key);
}

/* Refuses the current message: the 403 back to the client (or nothing, when it cannot fit), later bytes dropped. */
static __always_inline int na_l7_refuse(struct __sk_buff *skb, struct na_l7_conn *conn, __u64 *cookie,
					const struct na_l7_port_value *port, __u32 peer, const struct na_l7_scratch *s,
					__u16 reason, __u32 off, __u32 len)
{
	conn->phase = NA_L7_PHASE_DENIED;
	na_l7_emit(conn, port, peer, s, reason, 255, 0, len);
	if (!na_l7_write_403(skb, off, len))
		return SK_DROP;
	return bpf_sk_redirect_hash(skb, &na_l7_socks, cookie, 0);
}

SEC("sockops")
int na_l7_sockops(struct bpf_sock_ops *skops)
{
	struct na_l7_conn conn = {};
	struct na_l7_port_key key = {};
	__u64 cookie;
	__u32 family;

	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	family = skops->family;
	if (family != NA_AF_INET && family != NA_AF_INET6)
		return 1;
	conn.family = na_l7_sockops_addr(family, skops->local_ip4, skops->local_ip6[0], skops->local_ip6[1],
					  skops->local_ip6[2], skops->local_ip6[3], conn.local);
	na_l7_sockops_addr(family, skops->remote_ip4, skops->remote_ip6[0], skops->remote_ip6[1],
			   skops->remote_ip6[2], skops->remote_ip6[3], conn.remote);
	conn.local_port = bpf_htons((__u16)skops->local_port);
	/* remote_port holds the port in network byte order in its upper half on little-endian machines. */
	conn.remote_port = bpf_htons((__u16)(bpf_ntohl(skops->remote_port) & 0xffff));
	__builtin_memcpy(key.addr, conn.local, 16);
	key.port = conn.local_port;
	key.family = conn.family;
	if (!bpf_map_lookup_elem(&na_l7_ports, &key))
		return 1;
	conn.fresh = 1;
	cookie = bpf_get_socket_cookie(skops);
	if (bpf_map_update_elem(&na_l7_conns, &cookie, &conn, BPF_ANY) < 0)
		return 1;
	bpf_sock_hash_update(skops, &na_l7_socks, &cookie, BPF_NOEXIST);
	return 1;
}

SEC("sk_skb/stream_parser")
int na_l7_parser(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct na_l7_conn *conn;

	conn = bpf_map_lookup_elem(&na_l7_conns, &cookie);
	if (!conn)
		return skb->len;
	return na_http_frame(skb, conn);
}

SEC("sk_skb/stream_verdict")
int na_l7_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct na_l7_scratch *s;
	struct na_l7_port_value *port;
	struct na_l7_conn *conn;
	__u32 off, len, n, zero = 0, peer, index, rule_id;
	__u16 pending;

	conn = bpf_map_lookup_elem(&na_l7_conns, &cookie);
	if (!conn)
		return SK_DROP;
	off = conn->msg_off;
	len = conn->msg_len;
	pending = conn->pending;
	conn->fresh = 1;
	conn->leftover = skb->len > off + len ? skb->len - off - len : 0;

	if (conn->phase == NA_L7_PHASE_DENIED) {
		na_metrics_count(NA_DROP_L7_CONN_DENIED, NA_DIR_INGRESS, len);
		return SK_DROP;
	}
	port = na_l7_port_of(conn);
	peer = na_ipcache_identity(conn->remote, conn->family);
	if (pending)
		return na_l7_refuse(skb, conn, &cookie, port, peer, NULL, pending, off, len);

	switch (conn->phase) {
	case NA_L7_PHASE_BODY:
	case NA_L7_PHASE_CHUNK_DATA:
		conn->body_left = conn->body_left > len ? conn->body_left - len : 0;
		if (!conn->body_left)
			conn->phase = conn->phase == NA_L7_PHASE_BODY ? NA_L7_PHASE_HEAD : NA_L7_PHASE_CHUNK_END;
		return SK_PASS;
	case NA_L7_PHASE_CHUNK_SIZE:
		conn->body_left = conn->chunk;
		conn->phase = conn->chunk ? NA_L7_PHASE_CHUNK_DATA : NA_L7_PHASE_TRAILER;
		return SK_PASS;
	case NA_L7_PHASE_CHUNK_END:
		conn->phase = NA_L7_PHASE_CHUNK_SIZE;
		return SK_PASS;
	case NA_L7_PHASE_TRAILER:
		conn->phase = NA_L7_PHASE_HEAD;
		return SK_PASS;
	}

	s = bpf_map_lookup_elem(&na_l7_scratch, &zero);
	if (!s || len == 0 || len > NA_L7_HEAD_MAX)
		return na_l7_refuse(skb, conn, &cookie, port, peer, NULL, NA_DROP_L7_HEAD_TOO_LARGE, off, len);
	n = na_l7_bounded(len, NA_L7_HEAD_MAX);
	if (bpf_skb_load_bytes(skb, off, s->head, n) < 0)
		return na_l7_refuse(skb, conn, &cookie, port, peer, NULL, NA_DROP_L7_MALFORMED, off, len);
	__builtin_memset(&s->req, 0, sizeof(s->req));
	s->req.len = len;
	na_http_parse(s);
	if (s->req.reason)
		return na_l7_refuse(skb, conn, &cookie, port, peer, s, s->req.reason, off, len);
	/* The port lost its HTTP rules while the connection was open: L3/L4 policy alone decides now. */
	if (!port) {
		index = 255;
		rule_id = 0;
	} else if (!na_l7_allows(s, port->ruleset, peer, &index, &rule_id)) {
		return na_l7_refuse(skb, conn, &cookie, port, peer, s, NA_DROP_L7_POLICY, off, len);
	}
	if (s->req.te_chunked) {
		conn->phase = NA_L7_PHASE_CHUNK_SIZE;
	} else if (s->req.has_cl && s->req.content_length) {
		conn->phase = NA_L7_PHASE_BODY;
		conn->body_left = s->req.content_length;
	}
	na_l7_emit(conn, port, peer, s, 0, index, rule_id, len);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
