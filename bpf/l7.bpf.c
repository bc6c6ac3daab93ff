// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * l7.bpf.c: HTTP/1.x policy decided in the kernel, per request, before the
 * server application reads it. A sockops program at the agent's cgroup v2
 * root enrolls server sockets whose local address and port have HTTP rules
 * (na_l7_ports) into na_l7_socks; the stream verdict attached to that
 * sockhash alone (the kernel's verdict-only mode: no stream parser) sees each
 * skb as it arrives, frames the requests in it and decides every head against
 * the port's ruleset. A refused head becomes a 403 sent back on the same
 * socket, and the connection's later bytes are dropped.
 *
 * Why no stream parser: strparser frames bytes in the softirq only while the
 * application does not hold the socket, and otherwise leaves them to a kernel
 * worker the request then waits for (about one keep-alive request in eight
 * under load). The verdict-only mode reads every skb as it arrives.
 *
 * How the kernel behaves here (checked on 6.18):
 * - A passed or redirected skb is delivered as [0, skb->len) after the
 *   program's changes: bytes put in front with bpf_skb_change_head, or cut at
 *   the end with bpf_skb_change_tail, are what the application or the client
 *   reads.
 * - The kernel counts a dropped or redirected skb's length, and what the
 *   application reads of a passed one, as read (copied_seq). Every byte that
 *   arrived must be counted once: a held skb is emptied before it is dropped
 *   (its bytes count when they pass), and a 403 is written over the refused
 *   bytes at their length, never resized.
 * - So an skb with allowed requests and then a refused one passes only the
 *   allowed bytes, and the refused one gets no answer: the 403 would reach the
 *   client before the answers to the requests in front of it. The connection
 *   is closed instead (the agent destroys it), as for any refusal. The same
 *   holds for a refused request in a later skb while the server has written
 *   nothing since bytes last passed to it (its socket's write_seq, read
 *   through bpf_skc_to_tcp_sock): the request in front is not answered yet.
 * - A message not complete at the end of an skb is held in na_l7_hold and the
 *   skb's copy of it dropped; the next skb gets it back in front.
 * - bpf_sk_redirect_hash to the message's own socket without BPF_F_INGRESS
 *   sends it back to the client, and SK_DROP keeps it from the application.
 * - A socket still in the accept queue has nothing to send a 403 with yet: it
 *   is lost (the client sees no answer, the request never reaches the server
 *   either way).
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
/* Messages one skb may carry: at least 2 bytes each (a chunk's CRLF), and an skb is at most 64 KiB. */
#define NA_L7_SKB_STEPS_MAX 32768

/* Reads a socket's address, as program contexts give it, into bytes; an IPv4-mapped IPv6 address counts as IPv4. */
static __always_inline __u8 na_l7_socket_addr(__u32 family, __u32 ip4, __u32 w0, __u32 w1, __u32 w2, __u32 w3,
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

/*
 * Fills a new connection's state (conn, zeroed) with its socket's addresses
 * and ports, read from a program context that names them alike (struct
 * bpf_sock_ops in sockops, struct __sk_buff in the verdict); false for a
 * family other than IPv4 and IPv6. local_port is in host order; remote_port
 * holds the port in network byte order in its upper half on little-endian
 * machines. A macro: the two contexts are different types, and their fields
 * must be read from the context itself.
 */
#define NA_L7_CONN_OF(ctx, conn)                                                                                      \
	({                                                                                                            \
		__u32 family_ = (ctx)->family;                                                                        \
		bool known_ = family_ == NA_AF_INET || family_ == NA_AF_INET6;                                        \
		if (known_) {                                                                                         \
			(conn)->family = na_l7_socket_addr(family_, (ctx)->local_ip4, (ctx)->local_ip6[0],         \
							    (ctx)->local_ip6[1], (ctx)->local_ip6[2],         \
							    (ctx)->local_ip6[3], (conn)->local);              \
			na_l7_socket_addr(family_, (ctx)->remote_ip4, (ctx)->remote_ip6[0], (ctx)->remote_ip6[1],  \
					   (ctx)->remote_ip6[2], (ctx)->remote_ip6[3], (conn)->remote);               \
			(conn)->local_port = bpf_htons((__u16)(ctx)->local_port);                                    \
			(conn)->remote_port = bpf_htons((__u16)(bpf_ntohl((ctx)->remote_port) & 0xffff));           \
			(conn)->fresh = 1;                                                                            \
		}                                                                                                     \
		known_;                                                                                               \
	})

static __always_inline struct na_l7_port_value *na_l7_port_of(const struct na_l7_conn *conn)
{
	struct na_l7_port_key key = {};

	__builtin_memcpy(key.addr, conn->local, 16);
	key.port = conn->local_port;
	key.family = conn->family;
	return bpf_map_lookup_elem(&na_l7_ports, &key);
}

/* The connection's peer identity, from the ipcache. A function of its own, as the others the verdict calls
 * outside its walk: what they keep on the stack then counts only on their own chains of calls. */
static __noinline __u32 na_l7_peer(const struct na_l7_conn *conn)
{
	return na_ipcache_identity(conn->remote, conn->family);
}

/* Deletes whatever a closing connection still held. */
static __noinline void na_l7_forget_held(__u64 cookie)
{
	for (__u32 piece = 0; piece < NA_L7_HOLD_PIECES; piece++) {
		struct na_l7_hold_key key = { .cookie = cookie, .piece = piece };

		bpf_map_delete_elem(&na_l7_hold, &key);
	}
}

SEC("sockops")
int na_l7_sockops(struct bpf_sock_ops *skops)
{
	struct na_l7_conn conn = {};
	__u64 cookie;

	cookie = bpf_get_socket_cookie(skops);
	if (skops->op == BPF_SOCK_OPS_STATE_CB) {
		/*
		 * A closed connection leaves nothing behind: what it held of a message,
		 * and its state. Left to the LRU, the state of closed connections
		 * filled na_l7_conns within seconds at a connection per request, and
		 * every new connection then evicted some entry, at times a live one.
		 */
		if (skops->args[1] == BPF_TCP_CLOSE) {
			struct na_l7_conn *held = bpf_map_lookup_elem(&na_l7_conns, &cookie);

			if (held && held->held)
				na_l7_forget_held(cookie);
			if (held)
				bpf_map_delete_elem(&na_l7_conns, &cookie);
		}
		return 1;
	}
	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (!NA_L7_CONN_OF(skops, &conn) || !na_l7_port_of(&conn))
		return 1;
	if (bpf_map_update_elem(&na_l7_conns, &cookie, &conn, BPF_ANY) < 0)
		return 1;
	if (bpf_sock_hash_update(skops, &na_l7_socks, &cookie, BPF_NOEXIST) == 0)
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	return 1;
}

/* What walking one skb's messages ended with. */
enum na_l7_skb_end {
	NA_L7_SKB_MORE = 0,    /* the walk was cut short (more messages than it may take) */
	NA_L7_SKB_DONE = 1,    /* every byte belongs to an allowed message */
	NA_L7_SKB_HOLD = 2,    /* the message at msg_off is incomplete: hold [msg_off, skb->len) */
	NA_L7_SKB_REFUSE = 3,  /* the message at msg_off is refused (its decision already reported) */
};

/*
 * The walk over one skb's messages. Where it is and how it ended live in the
 * connection (map memory, unknown to the verifier) rather than here: the
 * verifier checks a bpf_loop callback until its states repeat, and values it
 * knows exactly never do.
 */
struct na_l7_skb_walk {
	struct __sk_buff *skb;
	struct na_l7_conn *conn;  /* msg_off: where the message being framed starts */
	__u32 peer;
};

/* Ends the walk at the message at conn->msg_off, refused (its decision reported): every later byte is dropped. */
static __always_inline long na_l7_skb_refused(struct na_l7_conn *conn)
{
	conn->phase = NA_L7_PHASE_DENIED;
	conn->walk_end = NA_L7_SKB_REFUSE;
	return 1;
}

/* Parses the head in the scratch; on its own for the same reason as na_l7_peer. */
static __noinline void na_l7_parse(struct na_l7_scratch *s)
{
	na_http_parse(s);
}

/* What na_l7_decide_head returns when a head read in one pass cannot be decided that way. */
#define NA_L7_UNDECIDED (-1)

/*
 * The most bytes one pass over a new head reads: more than nearly every
 * request head is, little enough that a large body behind it in the skb is
 * not copied for nothing.
 */
#define NA_L7_ONE_PASS_MAX 4096

/*
 * Decides a request head at conn->msg_off in the skb: 0 when some rule allows
 * it (the connection then expects its body), else the reason it is refused
 * for. Either way the decision is reported.
 *
 * framed: the framing found the head, conn->msg_len bytes. Else the head is
 * a new one at the start of what the skb has left, not framed yet, and is
 * read in one pass: the parse, which reads it byte by byte anyway, finds
 * where it ends, and the framing's own scan for that is saved. That pass
 * decides only a head the parse accepts whole within the bytes it read; it
 * returns NA_L7_UNDECIDED, having reported nothing and changed nothing of the
 * connection, for anything else (a head not complete in this skb, longer than
 * NA_L7_ONE_PASS_MAX, or malformed), which the framing then takes, so that a
 * refusal and its reason never depend on how the bytes were segmented. An
 * accepted head ends at the first CRLF CRLF, where the framing's scan would
 * have ended it: the request line holds no CR or LF, and every header line
 * ends in CRLF.
 *
 * A global function: the verifier checks it once, on its own, rather than at
 * every place and in every state the walk over an skb reaches it.
 */
__noinline int na_l7_decide_head(struct __sk_buff *skb, __u32 peer, __u32 framed)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct na_l7_port_value *port = NULL;
	struct na_l7_scratch *s;
	struct na_l7_conn *conn;
	__u32 len, n, zero = 0, rule_index, rule_id;

	conn = bpf_map_lookup_elem(&na_l7_conns, &cookie);
	if (!conn)
		return NA_DROP_L7_MALFORMED;
	s = bpf_map_lookup_elem(&na_l7_scratch, &zero);
	if (framed) {
		len = conn->msg_len;
		port = na_l7_port_of(conn);
		if (!s || len == 0 || len > NA_L7_HEAD_MAX) {
			na_l7_emit(skb, conn, port, peer, NULL, NA_DROP_L7_HEAD_TOO_LARGE, 255, 0, len);
			return NA_DROP_L7_HEAD_TOO_LARGE;
		}
	} else {
		if (!s || conn->msg_off >= skb->len)
			return NA_L7_UNDECIDED;
		len = skb->len - conn->msg_off;
		if (len > NA_L7_ONE_PASS_MAX)
			len = NA_L7_ONE_PASS_MAX;
	}
	n = na_l7_bounded(len, NA_L7_HEAD_MAX);
	if (bpf_skb_load_bytes(skb, conn->msg_off, s->head, n) < 0) {
		if (!framed)
			return NA_L7_UNDECIDED;
		na_l7_emit(skb, conn, port, peer, NULL, NA_DROP_L7_MALFORMED, 255, 0, len);
		return NA_DROP_L7_MALFORMED;
	}
	__builtin_memset(&s->req, 0, sizeof(s->req));
	s->req.len = len;
	na_l7_parse(s);
	if (!framed) {
		if (s->req.reason || !s->req.head_end)
			return NA_L7_UNDECIDED;
		len = s->req.head_end;
		s->req.len = len;
		conn->msg_len = len;
		port = na_l7_port_of(conn);
	} else if (s->req.reason) {
		na_l7_emit(skb, conn, port, peer, s, s->req.reason, 255, 0, len);
		return s->req.reason;
	}
	/* The port lost its HTTP rules while the connection was open: L3/L4 policy alone decides now. */
	if (!port) {
		rule_index = 255;
		rule_id = 0;
	} else if (!na_l7_allows(s, port->ruleset, peer, &rule_index, &rule_id)) {
		na_l7_emit(skb, conn, port, peer, s, NA_DROP_L7_POLICY, 255, 0, len);
		return NA_DROP_L7_POLICY;
	}
	if (s->req.te_chunked) {
		conn->phase = NA_L7_PHASE_CHUNK_SIZE;
	} else if (s->req.has_cl && s->req.content_length) {
		conn->phase = NA_L7_PHASE_BODY;
		conn->body_left = s->req.content_length;
	}
	na_l7_emit(skb, conn, port, peer, s, 0, rule_index, rule_id, len);
	return 0;
}

/* bpf_loop callback: frames and decides the next message of the skb. */
static long na_l7_skb_step(__u32 index, void *data)
{
	struct na_l7_skb_walk *w = data;
	struct __sk_buff *skb = w->skb;
	struct na_l7_conn *conn = w->conn;
	__u32 len;
	int framed;

	if (conn->msg_off >= skb->len) {
		conn->walk_end = NA_L7_SKB_DONE;
		return 1;
	}
	/* A new head: read in one pass where it can be (na_l7_decide_head says when). */
	if (conn->fresh && conn->phase == NA_L7_PHASE_HEAD) {
		framed = na_l7_decide_head(skb, w->peer, 0);
		if (framed != NA_L7_UNDECIDED) {
			if (framed)
				return na_l7_skb_refused(conn);
			conn->msg_off += conn->msg_len;
			return 0;
		}
	}
	framed = na_http_frame(skb, conn);
	if (framed <= 0) {
		conn->walk_end = NA_L7_SKB_HOLD;
		return 1;
	}
	len = framed;
	conn->fresh = 1;
	if (conn->pending) {
		na_l7_emit(skb, conn, na_l7_port_of(conn), w->peer, NULL, conn->pending, 255, 0, len);
		return na_l7_skb_refused(conn);
	}

	switch (conn->phase) {
	case NA_L7_PHASE_BODY:
	case NA_L7_PHASE_CHUNK_DATA:
		conn->body_left = conn->body_left > len ? conn->body_left - len : 0;
		if (!conn->body_left)
			conn->phase = conn->phase == NA_L7_PHASE_BODY ? NA_L7_PHASE_HEAD : NA_L7_PHASE_CHUNK_END;
		conn->msg_off += len;
		return 0;
	case NA_L7_PHASE_CHUNK_SIZE:
		conn->body_left = conn->chunk;
		conn->phase = conn->chunk ? NA_L7_PHASE_CHUNK_DATA : NA_L7_PHASE_TRAILER;
		conn->msg_off += len;
		return 0;
	case NA_L7_PHASE_CHUNK_END:
		conn->phase = NA_L7_PHASE_CHUNK_SIZE;
		conn->msg_off += len;
		return 0;
	case NA_L7_PHASE_TRAILER:
		conn->phase = NA_L7_PHASE_HEAD;
		conn->msg_off += len;
		return 0;
	}

	conn->msg_len = len;
	if (na_l7_decide_head(skb, w->peer, 1))
		return na_l7_skb_refused(conn);
	conn->msg_off += len;
	return 0;
}

/* Refuses what this skb brings before anything of it was framed: nothing passes, nothing more will. */
static __always_inline int na_l7_refuse_skb(struct __sk_buff *skb, struct na_l7_conn *conn, __u32 peer, __u16 reason,
					    __u32 len)
{
	conn->phase = NA_L7_PHASE_DENIED;
	na_l7_emit(skb, conn, na_l7_port_of(conn), peer, NULL, reason, 255, 0, len);
	return SK_DROP;
}

/* The most bpf_skb_adjust_room takes off an sk_skb's front in one call. */
#define NA_L7_PULL_MAX 4095

/*
 * Empties an skb of at most NA_L7_HEAD_MAX bytes, pulling its bytes off the
 * front (bpf_skb_change_tail refuses lengths below the headers' offsets). The
 * kernel counts a dropped skb's length as read by the application
 * (copied_seq): emptied, a held skb counts nothing when dropped, and its bytes
 * count once, when they pass.
 */
static __always_inline bool na_l7_empty(struct __sk_buff *skb)
{
	for (int i = 0; i < NA_L7_HEAD_MAX / NA_L7_PULL_MAX + 1; i++) {
		__u32 n = skb->len;

		if (n == 0)
			return true;
		if (bpf_skb_adjust_room(skb, -(__s32)(n > NA_L7_PULL_MAX ? NA_L7_PULL_MAX : n), 0, 0) < 0)
			return false;
	}
	return skb->len == 0;
}

/* One piece of held bytes: [piece * NA_L7_HOLD_PIECE, ...) of the n held, at base in the skb. */
struct na_l7_hold_walk {
	struct __sk_buff *skb;
	__u64 cookie;
	__u32 base;
	__u32 n;
	bool failed;
};

static __always_inline __u32 na_l7_piece_len(const struct na_l7_hold_walk *h, __u32 at)
{
	__u32 len = h->n - at;

	return na_l7_bounded(len > NA_L7_HOLD_PIECE ? NA_L7_HOLD_PIECE : len, 4096);
}

/* bpf_loop callback: writes piece index of the held bytes back into the skb, and forgets it. */
static long na_l7_unhold_piece(__u32 index, void *data)
{
	struct na_l7_hold_walk *h = data;
	struct na_l7_hold_key key = { .cookie = h->cookie, .piece = index };
	__u32 at = index * NA_L7_HOLD_PIECE, len;
	char *piece;

	if (index >= NA_L7_HOLD_PIECES || at >= h->n)
		return 1;
	len = na_l7_piece_len(h, at);
	piece = bpf_map_lookup_elem(&na_l7_hold, &key);
	if (!piece || len > NA_L7_HOLD_PIECE || bpf_skb_store_bytes(h->skb, h->base + at, piece, len, 0) < 0)
		h->failed = true;
	bpf_map_delete_elem(&na_l7_hold, &key);
	return h->failed;
}

/* bpf_loop callback: keeps piece index of the bytes to hold. */
static long na_l7_hold_piece(__u32 index, void *data)
{
	struct na_l7_hold_walk *h = data;
	struct na_l7_hold_key key = { .cookie = h->cookie, .piece = index };
	struct na_l7_scratch *s;
	__u32 at = index * NA_L7_HOLD_PIECE, len, zero = 0;

	if (index >= NA_L7_HOLD_PIECES || at >= h->n)
		return 1;
	len = na_l7_piece_len(h, at);
	s = bpf_map_lookup_elem(&na_l7_scratch, &zero);
	if (!s || len > NA_L7_HOLD_PIECE || bpf_skb_load_bytes(h->skb, h->base + at, s->head, len) < 0 ||
	    bpf_map_update_elem(&na_l7_hold, &key, s->head, BPF_ANY) < 0) {
		h->failed = true;
		return 1;
	}
	return 0;
}

/*
 * Puts the connection's held bytes back in front of the skb. False when they
 * cannot be (gone, or the skb cannot grow by them): the head is then too large
 * for the kernel to hold.
 */
static __noinline bool na_l7_unhold(struct __sk_buff *skb, struct na_l7_conn *conn, __u64 *cookie)
{
	struct na_l7_hold_walk h = { .skb = skb, .cookie = *cookie, .n = conn->held };

	conn->held = 0;
	if (h.n < 1 || h.n > NA_L7_HEAD_MAX || bpf_skb_change_head(skb, h.n, 0) < 0)
		h.failed = true;
	/* Every piece is deleted, even once one failed. */
	bpf_loop(NA_L7_HOLD_PIECES, na_l7_unhold_piece, &h, 0);
	return !h.failed;
}

/* Holds [off, skb->len), an incomplete message, until the next skb. False when it cannot be held. */
static __noinline bool na_l7_hold_rest(struct __sk_buff *skb, struct na_l7_conn *conn, __u64 *cookie,
					    __u32 off)
{
	struct na_l7_hold_walk h = { .skb = skb, .cookie = *cookie, .base = off };

	if (off >= skb->len || skb->len - off > NA_L7_HEAD_MAX)
		return false;
	h.n = skb->len - off;
	bpf_loop(NA_L7_HOLD_PIECES, na_l7_hold_piece, &h, 0);
	if (h.failed)
		return false;
	conn->held = h.n;
	return true;
}

/* The part of the kernel's tcp_sock the verdict reads, placed by CO-RE from the kernel's BTF. */
struct tcp_sock {
	__u32 write_seq;
} __attribute__((preserve_access_index));

/* How far the server application has written on the skb's connection (its socket's write_seq); 0 unknown. */
static __always_inline __u32 na_l7_written(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct tcp_sock *tp;

	if (!sk)
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	return tp ? tp->write_seq : 0;
}

/* Bytes of the skb pass to the server: what it has written by now marks where its answers to them start. */
static __always_inline int na_l7_pass(struct __sk_buff *skb, struct na_l7_conn *conn)
{
	conn->passed = 1;
	conn->written_at = na_l7_written(skb);
	return SK_PASS;
}

/*
 * Whether a 403 sent now could reach the client ahead of an answer: some bytes
 * passed to the server, and it has written nothing since (or what it wrote
 * cannot be read), so its answer to them is still to come.
 */
static __always_inline bool na_l7_answer_pending(struct __sk_buff *skb, struct na_l7_conn *conn)
{
	__u32 written;

	if (!conn->passed)
		return false;
	written = na_l7_written(skb);
	return written == 0 || written == conn->written_at;
}

/*
 * The skb, nothing of which passed, becomes the 403 back to the client: the
 * longest answer that fits in its bytes, padded to their length, never resized
 * (l7_deny.h says why).
 */
static __noinline int na_l7_answer(struct __sk_buff *skb, __u64 *cookie)
{
	if (!na_l7_write_403(skb, 0, skb->len))
		return SK_DROP;
	return bpf_sk_redirect_hash(skb, &na_l7_socks, cookie, 0);
}

/*
 * Makes an enrolled connection's state anew from the skb's socket, when it
 * has none: the LRU let it go (more connections open at once than the map
 * holds). It starts where a new connection starts, at a head: bytes in the
 * middle of a body then do not read as one, and the connection is refused,
 * which is failing closed, where dropping them would leave it hanging.
 */
static __always_inline void na_l7_conn_again(struct __sk_buff *skb, __u64 *cookie)
{
	struct na_l7_conn conn = {};

	if (NA_L7_CONN_OF(skb, &conn))
		bpf_map_update_elem(&na_l7_conns, cookie, &conn, BPF_NOEXIST);
}

SEC("sk_skb/stream_verdict")
int na_l7_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct na_l7_skb_walk w = { .skb = skb };
	struct na_l7_conn *conn;
	__u32 off;

	conn = bpf_map_lookup_elem(&na_l7_conns, &cookie);
	if (!conn) {
		na_l7_conn_again(skb, &cookie);
		conn = bpf_map_lookup_elem(&na_l7_conns, &cookie);
		if (!conn)
			return SK_DROP;
	}
	if (conn->phase == NA_L7_PHASE_DENIED) {
		na_metrics_count(NA_DROP_L7_CONN_DENIED, NA_DIR_INGRESS, skb->len);
		return SK_DROP;
	}
	w.conn = conn;
	w.peer = na_l7_peer(conn);
	if (conn->held) {
		/* A head this skb cannot finish within the limit: refused, and this skb carries the answer. */
		if (conn->held + skb->len > NA_L7_HEAD_MAX) {
			na_l7_forget_held(cookie);
			conn->held = 0;
			na_l7_refuse_skb(skb, conn, w.peer, NA_DROP_L7_HEAD_TOO_LARGE, skb->len);
			return na_l7_answer(skb, &cookie);
		}
		if (!na_l7_unhold(skb, conn, &cookie))
			return na_l7_refuse_skb(skb, conn, w.peer, NA_DROP_L7_HEAD_TOO_LARGE, skb->len);
	}

	conn->msg_off = 0;
	conn->walk_end = NA_L7_SKB_MORE;
	bpf_loop(NA_L7_SKB_STEPS_MAX, na_l7_skb_step, &w, 0);
	off = conn->msg_off;
	switch (conn->walk_end) {
	case NA_L7_SKB_DONE:
		return na_l7_pass(skb, conn);
	case NA_L7_SKB_HOLD:
		if (!na_l7_hold_rest(skb, conn, &cookie, off))
			return na_l7_refuse_skb(skb, conn, w.peer, NA_DROP_L7_HEAD_TOO_LARGE, skb->len);
		/* Nothing of this skb passes now: emptied before the drop (na_l7_empty says why). */
		if (off == 0)
			return na_l7_empty(skb) ? SK_DROP : na_l7_refuse_skb(skb, conn, w.peer, NA_DROP_L7_FRAMING, 0);
		/* The allowed messages in front pass; the held bytes come back with the next skb. */
		if (bpf_skb_change_tail(skb, off, 0) < 0) {
			na_l7_forget_held(cookie);
			conn->held = 0;
			return na_l7_refuse_skb(skb, conn, w.peer, NA_DROP_L7_FRAMING, skb->len);
		}
		return na_l7_pass(skb, conn);
	case NA_L7_SKB_REFUSE:
		if (off > 0) {
			/* Behind allowed requests not answered yet: they pass, the refused one gets no answer. */
			return bpf_skb_change_tail(skb, off, 0) < 0 ? SK_DROP : SK_PASS;
		}
		/* Behind a request of an earlier skb the server has not answered yet: no answer either. */
		if (na_l7_answer_pending(skb, conn))
			return SK_DROP;
		return na_l7_answer(skb, &cookie);
	}
	return na_l7_refuse_skb(skb, conn, w.peer, NA_DROP_L7_FRAMING, skb->len);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
