/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* http_frame.h: framing an HTTP/1.x byte stream into heads and body pieces, one message at a time. */
#ifndef NA_HTTP_FRAME_H
#define NA_HTTP_FRAME_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "l7_maps.h"
#include "l7_bounds.h"

#define NA_HTTP_SCAN_CHUNK 64

struct na_http_scan {
	struct __sk_buff *skb;
	__u32 base;   /* msg_off: where the message starts in the skb */
	__u32 pos;    /* next head byte to scan, relative to base */
	__u32 end;    /* head bytes available, relative to base */
	__u32 found;  /* head length once CRLF CRLF is seen, else 0 */
	__u32 n;      /* bytes in buf */
	__u8 match;
	char buf[NA_HTTP_SCAN_CHUNK];
};

/* One step of the CRLF CRLF search: 1 "\r", 2 "\r\n", 3 "\r\n\r", 4 done. */
static __always_inline __u8 na_http_crlf_step(__u8 match, char c)
{
	if (c == '\r')
		return match == 2 ? 3 : 1;
	if (c == '\n')
		return match == 1 ? 2 : (match == 3 ? 4 : 0);
	return 0;
}

/* bpf_loop callback: one byte of the chunk in buf. */
static long na_http_scan_byte(__u32 index, void *data)
{
	struct na_http_scan *s = data;

	if (index >= s->n)
		return 1;
	s->match = na_http_crlf_step(s->match, s->buf[index & (NA_HTTP_SCAN_CHUNK - 1)]);
	if (s->match == 4) {
		s->found = s->pos + index + 1;
		return 1;
	}
	return 0;
}

/*
 * bpf_loop callback: loads the next chunk of up to 64 bytes and scans it; stops at the end of the head or of the
 * data. Loops in loops keep the verifier's work small: it checks each callback once.
 */
static long na_http_scan_chunk(__u32 index, void *data)
{
	struct na_http_scan *s = data;
	__u32 n = s->end - s->pos;

	if (s->pos >= s->end)
		return 1;
	if (n > NA_HTTP_SCAN_CHUNK)
		n = NA_HTTP_SCAN_CHUNK;
	n = na_l7_bounded(n, NA_HTTP_SCAN_CHUNK);
	if (bpf_skb_load_bytes(s->skb, s->base + s->pos, s->buf, n) < 0)
		return 1;
	s->n = n;
	bpf_loop(NA_HTTP_SCAN_CHUNK, na_http_scan_byte, s, 0);
	if (s->found)
		return 1;
	s->pos += n;
	return 0;
}

#define NA_HTTP_CHUNK_LINE_MAX 32  /* a chunk-size line, extensions and CRLF included */

static __always_inline int na_http_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

struct na_http_chunk_scan {
	struct na_l7_conn *conn;
	__u32 n;        /* bytes in line */
	int result;     /* the line's length once its CRLF is seen, -1 when it is not one, 0 while unknown */
	char line[NA_HTTP_CHUNK_LINE_MAX];
};

/*
 * bpf_loop callback: byte index of a chunk-size line. Everything that changes
 * from one byte to the next is in the connection (map memory): the size in
 * conn->chunk, whether an extension began in conn->match. Before 6.7 the
 * verifier checks a callback as if it ran once, and takes out the branches
 * that one run cannot reach: a digit count kept here would be 0 to it, and a
 * line of digits would never end.
 */
static long na_http_chunk_byte(__u32 index, void *data)
{
	struct na_http_chunk_scan *c = data;
	char a, b;
	int v;

	if (index + 1 >= c->n || index + 1 >= NA_HTTP_CHUNK_LINE_MAX)
		return 1;
	a = c->line[index & (NA_HTTP_CHUNK_LINE_MAX - 1)];
	b = c->line[(index + 1) & (NA_HTTP_CHUNK_LINE_MAX - 1)];
	/* Every byte before this one was a digit or in an extension after at least one: index > 0 is a size. */
	if (a == '\r' && b == '\n') {
		c->result = index ? index + 2 : -1;
		return 1;
	}
	if (c->conn->match)
		return 0;
	if (a == ';') {
		if (!index) {
			c->result = -1;
			return 1;
		}
		c->conn->match = 1;
		return 0;
	}
	v = na_http_hex(a);
	/* Outside an extension, index is the number of digits before this one. */
	if (v < 0 || index >= 7) {
		c->result = -1;
		return 1;
	}
	c->conn->chunk = c->conn->chunk * 16 + v;
	return 0;
}

/*
 * A chunk-size line: hex digits, optional extensions after ';', CRLF. Its
 * length once complete (conn->chunk set to the size), 0 while incomplete, or
 * -1 when it is not one (or longer than 32 bytes, or the size over 256 MiB).
 */
static __always_inline int na_http_chunk_line(struct __sk_buff *skb, struct na_l7_conn *conn, __u32 avail)
{
	struct na_http_chunk_scan c = { .conn = conn };
	__u32 n = avail < NA_HTTP_CHUNK_LINE_MAX ? avail : NA_HTTP_CHUNK_LINE_MAX;

	if (n < 1)
		return 0;
	n = na_l7_bounded(n, NA_HTTP_CHUNK_LINE_MAX);
	if (bpf_skb_load_bytes(skb, conn->msg_off, c.line, n) < 0)
		return 0;
	c.n = n;
	conn->chunk = 0;
	conn->match = 0;
	bpf_loop(NA_HTTP_CHUNK_LINE_MAX, na_http_chunk_byte, &c, 0);
	if (c.result)
		return c.result;
	return n < NA_HTTP_CHUNK_LINE_MAX ? 0 : -1;
}

/*
 * Returns the length of the message that starts at conn->msg_off in the skb
 * (a request head, a piece of body, a chunk-size line or its CRLF, the
 * trailers, or what a refused connection sends), or 0 while it is incomplete:
 * its bytes are then held and the scan goes on where it stopped once the next
 * skb puts them back in front (conn->fresh stays clear until a message is
 * complete). A function of its own: its scan buffers then take no room on
 * the stack of the calls that decide a head (6.1 allows 512 bytes for a
 * whole chain of calls, callbacks included).
 */
static __noinline int na_http_frame(struct __sk_buff *skb, struct na_l7_conn *conn)
{
	struct na_http_scan scan = {};
	__u32 avail;
	__u8 first;

	if (conn->fresh) {
		conn->scanned = 0;
		/* Trailers end at an empty line, which may be the first: as if a head's CRLF had just been seen. */
		conn->match = conn->phase == NA_L7_PHASE_TRAILER ? 2 : 0;
		conn->pending = 0;
		conn->fresh = 0;
	}
	if (skb->len <= conn->msg_off)
		return 0;
	avail = skb->len - conn->msg_off;

	switch (conn->phase) {
	case NA_L7_PHASE_DENIED:
		goto whole;
	case NA_L7_PHASE_BODY:
	case NA_L7_PHASE_CHUNK_DATA:
		conn->msg_len = avail < conn->body_left ? avail : conn->body_left;
		return conn->msg_len;
	case NA_L7_PHASE_CHUNK_SIZE: {
		int len = na_http_chunk_line(skb, conn, avail);

		if (len < 0) {
			conn->pending = NA_DROP_L7_FRAMING;
			goto whole;
		}
		conn->msg_len = len;
		return len;
	}
	case NA_L7_PHASE_CHUNK_END: {
		char crlf[2];

		if (avail < 2)
			return 0;
		if (bpf_skb_load_bytes(skb, conn->msg_off, crlf, 2) < 0)
			return 0;
		if (crlf[0] != '\r' || crlf[1] != '\n') {
			conn->pending = NA_DROP_L7_FRAMING;
			goto whole;
		}
		conn->msg_len = 2;
		return 2;
	}
	}

	if (conn->phase == NA_L7_PHASE_HEAD && conn->scanned == 0) {
		if (bpf_skb_load_bytes(skb, conn->msg_off, &first, 1) < 0)
			return 0;
		/* A TLS record (ClientHello) or anything but a method token: refused before waiting for a head. */
		if (first == 0x16) {
			conn->pending = NA_DROP_L7_PROTOCOL;
			goto whole;
		}
		if (first < 'A' || first > 'Z') {
			conn->pending = NA_DROP_L7_MALFORMED;
			goto whole;
		}
	}

	scan.skb = skb;
	scan.base = conn->msg_off;
	scan.pos = conn->scanned;
	scan.end = avail < NA_L7_HEAD_MAX ? avail : NA_L7_HEAD_MAX;
	scan.match = conn->match;
	bpf_loop(NA_L7_HEAD_MAX / NA_HTTP_SCAN_CHUNK + 1, na_http_scan_chunk, &scan, 0);
	if (scan.found) {
		conn->msg_len = scan.found;
		return scan.found;
	}
	conn->scanned = scan.pos;
	conn->match = scan.match;
	if (avail < NA_L7_HEAD_MAX)
		return 0;
	conn->pending = NA_DROP_L7_HEAD_TOO_LARGE;
whole:
	/* Refused: at most one head's worth, which the verdict overwrites with the answer. */
	conn->msg_len = avail < NA_L7_HEAD_MAX ? avail : NA_L7_HEAD_MAX;
	return conn->msg_len;
}

#endif /* NA_HTTP_FRAME_H */
