/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* http_parse.h: an HTTP/1.x request head (a copy in the per-CPU scratch) read into its parts, failing closed. */
#ifndef NA_HTTP_PARSE_H
#define NA_HTTP_PARSE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "l7_maps.h"

#define NA_HEAD_MASK (NA_L7_HEAD_MAX - 1)

static __always_inline char na_http_at(const struct na_l7_scratch *s, __u32 i)
{
	return s->head[i & NA_HEAD_MASK];
}

static __always_inline char na_http_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Ends a path segment: "." and ".." segments make a path ambiguous. */
static __always_inline void na_http_segment_end(struct na_l7_scratch *s)
{
	if (!s->req.seg_other && (s->req.seg_dots == 1 || s->req.seg_dots == 2))
		s->req.reason = NA_DROP_L7_AMBIGUOUS_PATH;
}

/* One byte of the path part of the request-target. */
static __always_inline void na_http_path_byte(struct na_l7_scratch *s, __u32 i, char c)
{
	char lc = na_http_lower(c);

	if (c == '?') {
		na_http_segment_end(s);
		s->req.in_query = 1;
		return;
	}
	if (c == '/') {
		if (s->req.prev == '/')
			s->req.reason = NA_DROP_L7_AMBIGUOUS_PATH;
		if (i != s->req.target_off)
			na_http_segment_end(s);
		s->req.seg_dots = 0;
		s->req.seg_other = 0;
		return;
	}
	if ((lc == 'e' || lc == 'f') && s->req.prev == '2' && s->req.prev2 == '%')
		s->req.reason = NA_DROP_L7_AMBIGUOUS_PATH;
	if (c == '.' && !s->req.seg_other)
		s->req.seg_dots++;
	else
		s->req.seg_other = 1;
}

/* Whether [start, colon) is name (lower case, len bytes), case-insensitively: a header name, or a value. */
static __always_inline bool na_http_name_is(const struct na_l7_scratch *s, __u32 start, __u32 colon,
					    const char *name, __u32 len)
{
	if (colon - start != len)
		return false;
	for (__u32 i = 0; i < 20; i++) {
		if (i >= len)
			break;
		if (na_http_lower(na_http_at(s, start + i)) != name[i])
			return false;
	}
	return true;
}

struct na_http_trim {
	const struct na_l7_scratch *s;
	__u32 a;
	__u32 b;
};

/* bpf_loop callback: one step of trimming whitespace from both ends of [a, b). */
static long na_http_trim_step(__u32 index, void *data)
{
	struct na_http_trim *t = data;
	bool moved = false;
	char c;

	if (t->a < t->b) {
		c = na_http_at(t->s, t->a);
		if (c == ' ' || c == '\t') {
			t->a++;
			moved = true;
		}
	}
	if (t->b > t->a) {
		c = na_http_at(t->s, t->b - 1);
		if (c == ' ' || c == '\t') {
			t->b--;
			moved = true;
		}
	}
	return moved ? 0 : 1;
}

/* A header line's value without the whitespace around it (at most 16 bytes each side): [*off, *off + *len). */
static __always_inline void na_http_value(const struct na_l7_scratch *s, __u32 colon, __u32 end, __u32 *off,
					  __u32 *len)
{
	struct na_http_trim t = { .s = s, .a = colon + 1, .b = end };

	bpf_loop(16, na_http_trim_step, &t, 0);
	*off = t.a;
	*len = t.b > t.a ? t.b - t.a : 0;
}

#define NA_HTTP_HDR_HOST 1
#define NA_HTTP_HDR_CONTENT_LENGTH 2
#define NA_HTTP_HDR_TRANSFER_ENCODING 3
#define NA_HTTP_HDR_UPGRADE 4

/*
 * Which of the headers the parser acts on a line names, by its length first: one comparison per line, not one
 * per known name (the verifier explores every way each comparison can end, and they multiplied).
 */
static __always_inline __u32 na_http_header_kind(const struct na_l7_scratch *s, __u32 start, __u32 colon)
{
	switch (colon - start) {
	case 4:
		return na_http_name_is(s, start, colon, "host", 4) ? NA_HTTP_HDR_HOST : 0;
	case 14:
		return na_http_name_is(s, start, colon, "content-length", 14) ? NA_HTTP_HDR_CONTENT_LENGTH : 0;
	case 17:
		return na_http_name_is(s, start, colon, "transfer-encoding", 17) ? NA_HTTP_HDR_TRANSFER_ENCODING : 0;
	case 7:
		return na_http_name_is(s, start, colon, "upgrade", 7) ? NA_HTTP_HDR_UPGRADE : 0;
	}
	return 0;
}

/* The headers the framing and the protocol checks depend on; the others are looked at only by rules. */
static __always_inline void na_http_header(struct na_l7_scratch *s, __u32 start, __u32 colon, __u32 end)
{
	__u32 kind, off, len;

	/* Trimmed for every line, the ones no check needs too: trimming after the kind is known, in each of its
	 * branches, cost the verifier twice the instructions (327,212 against 141,628 before the trim loop). */
	na_http_value(s, colon, end, &off, &len);
	kind = na_http_header_kind(s, start, colon);
	if (!kind)
		return;
	if (kind == NA_HTTP_HDR_HOST) {
		if (s->req.has_host)
			s->req.reason = NA_DROP_L7_MALFORMED;
		s->req.has_host = 1;
		s->req.host_off = off;
		s->req.host_len = len;
	} else if (kind == NA_HTTP_HDR_CONTENT_LENGTH) {
		__u32 v = 0;

		if (s->req.has_cl || len == 0 || len > 9)
			s->req.reason = NA_DROP_L7_FRAMING;
		for (__u32 i = 0; i < 9 && i < len; i++) {
			char c = na_http_at(s, off + i);
			if (c < '0' || c > '9')
				s->req.reason = NA_DROP_L7_FRAMING;
			v = v * 10 + (c - '0');
		}
		s->req.has_cl = 1;
		s->req.content_length = v;
	} else if (kind == NA_HTTP_HDR_TRANSFER_ENCODING) {
		if (s->req.has_te)
			s->req.reason = NA_DROP_L7_FRAMING;
		s->req.has_te = 1;
		s->req.te_chunked = na_http_name_is(s, off, off + len, "chunked", 7);
	} else {
		s->req.reason = NA_DROP_L7_PROTOCOL;
	}
}

/* Whether [v, end) is "HTTP/1.0" or "HTTP/1.1" followed by CR (end is the LF). */
static __always_inline bool na_http_version_ok(const struct na_l7_scratch *s, __u32 v, __u32 end)
{
	return end - v == 9 && na_http_at(s, v) == 'H' && na_http_at(s, v + 1) == 'T' && na_http_at(s, v + 2) == 'T' &&
	       na_http_at(s, v + 3) == 'P' && na_http_at(s, v + 4) == '/' && na_http_at(s, v + 5) == '1' &&
	       na_http_at(s, v + 6) == '.' && (na_http_at(s, v + 7) == '0' || na_http_at(s, v + 7) == '1') &&
	       na_http_at(s, v + 8) == '\r';
}

/* The method is PRI: the HTTP/2 prior-knowledge preface ("PRI * HTTP/2.0"). */
static __always_inline bool na_http_is_pri(const struct na_l7_scratch *s)
{
	return s->req.method_len == 3 && na_http_at(s, 0) == 'P' && na_http_at(s, 1) == 'R' && na_http_at(s, 2) == 'I';
}

/*
 * bpf_loop callback: byte index of the head. The position is the loop's index, never a counter kept in r: the
 * verifier checks a callback until its states repeat, and a counter it knows exactly never does.
 */
static long na_http_parse_byte(__u32 index, void *data)
{
	struct na_l7_scratch *s = *(struct na_l7_scratch **)data;
	__u32 i = index;
	char c;

	/* A refusal found in the request line still reads it to its end: the flow shows the method and target. */
	if (i >= s->req.len || (s->req.reason && s->req.phase >= 2))
		return 1;
	c = na_http_at(s, i);
	switch (s->req.phase) {
	case 0:
		if (c == ' ') {
			if (i == 0)
				s->req.reason = NA_DROP_L7_MALFORMED;
			s->req.method_len = i;
			s->req.target_off = i + 1;
			s->req.phase = 1;
		} else if (c < 'A' || c > 'Z' || i >= NA_L7_EVENT_METHOD_MAX) {
			s->req.reason = NA_DROP_L7_MALFORMED;
		}
		break;
	case 1:
		if (c == ' ') {
			s->req.target_len = i - s->req.target_off;
			if (!s->req.in_query)
				na_http_segment_end(s);
			s->req.phase = 2;
			s->req.line_start = i + 1;
			break;
		}
		if (c <= ' ' || c == 0x7f) {
			s->req.reason = NA_DROP_L7_MALFORMED;
			break;
		}
		if (i == s->req.target_off && c != '/' && c != '*')
			s->req.reason = NA_DROP_L7_MALFORMED;
		if (!s->req.in_query)
			na_http_path_byte(s, i, c);
		break;
	case 2:
		if (c == '\n') {
			if (!na_http_version_ok(s, s->req.line_start, i))
				s->req.reason = na_http_is_pri(s) ? NA_DROP_L7_PROTOCOL : NA_DROP_L7_MALFORMED;
			s->req.phase = 3;
			s->req.line_start = i + 1;
			s->req.colon = 0;
		}
		break;
	default:
		if (c == ':' && !s->req.colon) {
			s->req.colon = i;
		} else if (c == '\n') {
			__u32 end = i;

			if (end == s->req.line_start || na_http_at(s, end - 1) != '\r') {
				s->req.reason = NA_DROP_L7_MALFORMED;
				break;
			}
			end--;
			if (end == s->req.line_start) {
				s->req.head_end = i + 1; /* the empty line: end of the head */
				return 1;
			}
			if (!s->req.colon || s->req.colon == s->req.line_start ||
			    s->req.lines >= NA_L7_HEADER_LINES_MAX) {
				s->req.reason = NA_DROP_L7_MALFORMED;
				break;
			}
			/* Whitespace before the colon: request smuggling territory (RFC 9112 5.1). */
			if (na_http_at(s, s->req.colon - 1) == ' ' || na_http_at(s, s->req.colon - 1) == '\t') {
				s->req.reason = NA_DROP_L7_MALFORMED;
				break;
			}
			s->line_start[s->req.lines & (NA_L7_HEADER_LINES_MAX - 1)] = s->req.line_start;
			s->colon[s->req.lines & (NA_L7_HEADER_LINES_MAX - 1)] = s->req.colon;
			s->line_end[s->req.lines & (NA_L7_HEADER_LINES_MAX - 1)] = end;
			s->req.lines++;
			na_http_header(s, s->req.line_start, s->req.colon, end);
			s->req.line_start = i + 1;
			s->req.colon = 0;
		} else if (c == 0 || (c == '\r' && i + 1 < s->req.len && na_http_at(s, i + 1) != '\n')) {
			s->req.reason = NA_DROP_L7_MALFORMED;
		}
		break;
	}
	s->req.prev2 = s->req.prev;
	s->req.prev = c;
	return 0;
}

/* Reads the head in s->head[0, s->req.len): request line, header lines, framing; sets s->req.reason on refusal. */
static __always_inline void na_http_parse(struct na_l7_scratch *s)
{
	bpf_loop(NA_L7_HEAD_MAX, na_http_parse_byte, &s, 0);
	if (s->req.reason)
		return;
	if (s->req.phase != 3) {
		s->req.reason = NA_DROP_L7_MALFORMED;
		return;
	}
	/* Only chunked, and never beside a Content-Length (RFC 9112 6.1: the pair is how requests are smuggled). */
	if (s->req.has_te && (s->req.has_cl || !s->req.te_chunked))
		s->req.reason = NA_DROP_L7_FRAMING;
}

#endif /* NA_HTTP_PARSE_H */
