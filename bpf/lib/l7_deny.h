/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* l7_deny.h: a refused request's bytes rewritten in place into the 403 the client reads. */
#ifndef NA_L7_DENY_H
#define NA_L7_DENY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "l7_bounds.h"

/*
 * The answer takes the place of the refused bytes at their length: the kernel
 * counts a redirected skb's length as read by the application (copied_seq),
 * and an answer of another length would leave the connection with bytes it
 * takes for unread (it then closes with a reset, perhaps before the answer
 * left). So each answer is a head written at the start and a tail at the end,
 * and the space in between is spaces where HTTP allows any number of them:
 * optional whitespace after the last header value (RFC 9110 5.5), or the
 * reason phrase itself (RFC 9112 4).
 *
 * The longest answer that fits is sent, from the full one down to a status
 * line alone:
 * - 80 bytes and more (every curl or browser request): Content-Length 15,
 *   Connection: close and the body "Access denied\r\n";
 * - 61 to 79: the same without Connection: close (the connection closes all
 *   the same);
 * - 45 to 60, and 35 to 44: an empty body by Content-Length;
 * - 17 to 34: a status line and nothing else, the body ending with the
 *   connection (RFC 9112 6.3), which the agent closes after a refusal. The
 *   shortest well-formed request head ("GET / HTTP/1.1\r\n\r\n") is 18 bytes.
 * A shorter refused message gets no answer, only the closed connection.
 */
#define NA_L7_ANSWER(name, head_text, tail_text)                  \
	static const char name##_head[] = head_text;               \
	static const char name##_tail[] = tail_text;
NA_L7_ANSWER(na_l7_403_full, "HTTP/1.1 403 Forbidden\r\nContent-Length: 15\r\nConnection: close",
	     "\r\n\r\nAccess denied\r\n")
NA_L7_ANSWER(na_l7_403_body, "HTTP/1.1 403 Forbidden\r\nContent-Length: 15", "\r\n\r\nAccess denied\r\n")
NA_L7_ANSWER(na_l7_403_empty, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0", "\r\n\r\n")
NA_L7_ANSWER(na_l7_403_terse, "HTTP/1.1 403 \r\nContent-Length:0", "\r\n\r\n")
NA_L7_ANSWER(na_l7_403_line, "HTTP/1.1 403 ", "\r\n\r\n")
#undef NA_L7_ANSWER

static const char na_l7_spaces[256] = { [0 ... 255] = ' ' };

/* The longest skb an answer is written over: 64 KiB, what TCP receive offload makes at most. */
#define NA_L7_ANSWER_MAX 65536

/* The length of an answer, its head and tail without their terminating NULs. */
#define NA_L7_ANSWER_LEN(name) (sizeof(name##_head) - 1 + sizeof(name##_tail) - 1)
#define NA_L7_403_LEN NA_L7_ANSWER_LEN(na_l7_403_full)
#define NA_L7_403_MIN_LEN NA_L7_ANSWER_LEN(na_l7_403_line)

struct na_l7_pad {
	struct __sk_buff *skb;
	__u32 off;
	__u32 end;
	bool failed;
};

/*
 * bpf_loop callback: spaces over the index-th 256 bytes from p->off. The
 * position comes from the index, which the verifier does not know, rather
 * than from a counter it would know exactly at every step (and check each).
 */
static long na_l7_pad_chunk(__u32 index, void *data)
{
	struct na_l7_pad *p = data;
	__u32 at = p->off + index * sizeof(na_l7_spaces), n;

	if (index >= NA_L7_ANSWER_MAX / sizeof(na_l7_spaces) || at >= p->end)
		return 1;
	n = p->end - at;
	if (n > sizeof(na_l7_spaces))
		n = sizeof(na_l7_spaces);
	n = na_l7_bounded(n, sizeof(na_l7_spaces));
	if (bpf_skb_store_bytes(p->skb, at, na_l7_spaces, n, 0) < 0) {
		p->failed = true;
		return 1;
	}
	return 0;
}

/* Writes an answer's head and tail over [off, off + len), true when both went in. */
#define NA_L7_WRITE_ENDS(skb, off, len, name)                                                                   \
	(bpf_skb_store_bytes(skb, off, name##_head, sizeof(name##_head) - 1, 0) == 0 &&                          \
	 bpf_skb_store_bytes(skb, (off) + (len) - (sizeof(name##_tail) - 1), name##_tail, sizeof(name##_tail) - 1, \
			     0) == 0)

/* Writes answer name's ends over the message, noting whether they went in and how long they are. */
#define NA_L7_WRITE_ANSWER(name)                                        \
	do {                                                            \
		written = NA_L7_WRITE_ENDS(skb, off, len, name);        \
		head_len = sizeof(name##_head) - 1;                     \
		tail_len = sizeof(name##_tail) - 1;                     \
	} while (0)

/*
 * Overwrites the message [off, off + len) with the longest 403 that fits.
 * False when the message is too short for any answer (under 17 bytes) or a
 * write failed: the caller drops it instead.
 */
static __always_inline bool na_l7_write_403(struct __sk_buff *skb, __u32 off, __u32 len)
{
	struct na_l7_pad pad = { .skb = skb };
	__u32 head_len, tail_len;
	bool written;

	if (len > NA_L7_ANSWER_MAX || len < NA_L7_403_MIN_LEN)
		return false;
	if (len >= NA_L7_403_LEN)
		NA_L7_WRITE_ANSWER(na_l7_403_full);
	else if (len >= NA_L7_ANSWER_LEN(na_l7_403_body))
		NA_L7_WRITE_ANSWER(na_l7_403_body);
	else if (len >= NA_L7_ANSWER_LEN(na_l7_403_empty))
		NA_L7_WRITE_ANSWER(na_l7_403_empty);
	else if (len >= NA_L7_ANSWER_LEN(na_l7_403_terse))
		NA_L7_WRITE_ANSWER(na_l7_403_terse);
	else
		NA_L7_WRITE_ANSWER(na_l7_403_line);
	if (!written)
		return false;
	pad.off = off + head_len;
	pad.end = off + len - tail_len;
	bpf_loop(NA_L7_ANSWER_MAX / sizeof(na_l7_spaces), na_l7_pad_chunk, &pad, 0);
	return !pad.failed;
}

#endif /* NA_L7_DENY_H */
