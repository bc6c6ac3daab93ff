/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* l7_deny.h: a refused request's bytes rewritten in place into the 403 the client reads. */
#ifndef NA_L7_DENY_H
#define NA_L7_DENY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "l7_bounds.h"

/*
 * The answer must fill the refused message exactly: strparser hands the
 * redirected skb to the socket as [offset, offset + full_len) of the message
 * it framed, whatever bpf_skb_change_tail did to the skb (checked on 6.18: a
 * 22-byte request rewritten into an 80-byte answer reached the client as its
 * first 22 bytes). So the status line and headers are written at the start,
 * the end of the head and the body at the end, and the space in between is
 * optional whitespace after the last header value (RFC 9110 5.5).
 */
static const char na_l7_403_head[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 15\r\nConnection: close";
static const char na_l7_403_tail[] = "\r\n\r\nAccess denied\r\n";
/* For requests too short to hold the full answer: no body, so it fits in 45 bytes. */
static const char na_l7_403_short_head[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0";
static const char na_l7_403_short_tail[] = "\r\n\r\n";
static const char na_l7_spaces[256] = { [0 ... 255] = ' ' };

#define NA_L7_403_LEN (sizeof(na_l7_403_head) - 1 + sizeof(na_l7_403_tail) - 1)
#define NA_L7_403_SHORT_LEN (sizeof(na_l7_403_short_head) - 1 + sizeof(na_l7_403_short_tail) - 1)

struct na_l7_pad {
	struct __sk_buff *skb;
	__u32 off;
	__u32 end;
	bool failed;
};

static long na_l7_pad_chunk(__u32 index, void *data)
{
	struct na_l7_pad *p = data;
	__u32 n = p->end - p->off;

	if (p->off >= p->end)
		return 1;
	if (n > sizeof(na_l7_spaces))
		n = sizeof(na_l7_spaces);
	n = na_l7_bounded(n, sizeof(na_l7_spaces));
	if (bpf_skb_store_bytes(p->skb, p->off, na_l7_spaces, n, 0) < 0) {
		p->failed = true;
		return 1;
	}
	p->off += n;
	return 0;
}

/*
 * Overwrites the message [off, off + len) with the 403. False when the
 * message is too short for any answer (under 45 bytes) or a write failed:
 * the caller drops it instead.
 */
static __always_inline bool na_l7_write_403(struct __sk_buff *skb, __u32 off, __u32 len)
{
	struct na_l7_pad pad = { .skb = skb };
	const char *head = na_l7_403_head, *tail = na_l7_403_tail;
	__u32 head_len = sizeof(na_l7_403_head) - 1, tail_len = sizeof(na_l7_403_tail) - 1;

	if (len > NA_L7_HEAD_MAX)
		return false;
	if (len < NA_L7_403_LEN) {
		if (len < NA_L7_403_SHORT_LEN)
			return false;
		if (bpf_skb_store_bytes(skb, off, na_l7_403_short_head, sizeof(na_l7_403_short_head) - 1, 0) < 0)
			return false;
		if (bpf_skb_store_bytes(skb, off + len - (sizeof(na_l7_403_short_tail) - 1), na_l7_403_short_tail,
					sizeof(na_l7_403_short_tail) - 1, 0) < 0)
			return false;
		head_len = sizeof(na_l7_403_short_head) - 1;
		tail_len = sizeof(na_l7_403_short_tail) - 1;
	} else {
		if (bpf_skb_store_bytes(skb, off, head, head_len, 0) < 0)
			return false;
		if (bpf_skb_store_bytes(skb, off + len - tail_len, tail, tail_len, 0) < 0)
			return false;
	}
	pad.off = off + head_len;
	pad.end = off + len - tail_len;
	bpf_loop(NA_L7_HEAD_MAX / sizeof(na_l7_spaces) + 1, na_l7_pad_chunk, &pad, 0);
	return !pad.failed;
}

#endif /* NA_L7_DENY_H */
