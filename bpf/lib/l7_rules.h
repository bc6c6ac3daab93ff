/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* l7_rules.h: whether a parsed request matches a ruleset: DFA walks and header requirements. */
#ifndef NA_L7_RULES_H
#define NA_L7_RULES_H

#include "http_parse.h"

struct na_l7_walk {
	const struct na_l7_scratch *s;
	__u32 off;
	__u32 len;
	__u32 state;
};

static long na_l7_walk_byte(__u32 index, void *data)
{
	struct na_l7_walk *w = data;
	struct na_l7_dfa_state *st;
	__u8 c;

	if (index >= w->len || w->state == 0)
		return 1;
	st = bpf_map_lookup_elem(&na_l7_dfa, &w->state);
	if (!st) {
		w->state = 0;
		return 1;
	}
	c = (__u8)na_http_at(w->s, w->off + index);
	w->state = st->next[c];
	return 0;
}

/* Whether the DFA starting at state start accepts the whole of [off, off + len); start 0: unconstrained. */
static __always_inline bool na_l7_dfa_accepts(const struct na_l7_scratch *s, __u32 start, __u32 off, __u32 len)
{
	struct na_l7_walk w = { .s = s, .off = off, .len = len, .state = start };
	struct na_l7_dfa_state *st;

	if (!start)
		return true;
	bpf_loop(NA_L7_HEAD_MAX, na_l7_walk_byte, &w, 0);
	if (!w.state)
		return false;
	st = bpf_map_lookup_elem(&na_l7_dfa, &w.state);
	return st && (st->flags & NA_L7_DFA_ACCEPT);
}

struct na_l7_header_search {
	const struct na_l7_scratch *s;
	const struct na_l7_header_req *req;
	__u32 off;    /* the bytes compared: the line's name, then its value */
	bool differs;
	bool found;
};

/* bpf_loop callbacks: byte index of the name (case-insensitively), of the value (exactly). */
static long na_l7_name_byte(__u32 index, void *data)
{
	struct na_l7_header_search *h = data;

	if (na_http_lower(na_http_at(h->s, h->off + index)) != h->req->name[index & (NA_L7_HEADER_NAME_MAX - 1)]) {
		h->differs = true;
		return 1;
	}
	return 0;
}

static long na_l7_value_byte(__u32 index, void *data)
{
	struct na_l7_header_search *h = data;

	if (na_http_at(h->s, h->off + index) != h->req->value[index & (NA_L7_HEADER_VALUE_MAX - 1)]) {
		h->differs = true;
		return 1;
	}
	return 0;
}

/* bpf_loop callback over recorded header lines: the requirement's name (and value) on line index. */
static long na_l7_header_line(__u32 index, void *data)
{
	struct na_l7_header_search *h = data;
	const struct na_l7_scratch *s = h->s;
	const struct na_l7_header_req *req = h->req;
	__u32 i = index & (NA_L7_HEADER_LINES_MAX - 1);
	__u32 start, colon, end, off, len;

	if (index >= s->req.lines)
		return 1;
	start = s->line_start[i];
	colon = s->colon[i];
	end = s->line_end[i];
	if (colon - start != req->name_len || req->name_len > NA_L7_HEADER_NAME_MAX)
		return 0;
	h->off = start;
	h->differs = false;
	bpf_loop(req->name_len, na_l7_name_byte, h, 0);
	if (h->differs)
		return 0;
	if (!(req->flags & NA_L7_HDR_VALUE)) {
		h->found = true;
		return 1;
	}
	na_http_value(s, colon, end, &off, &len);
	if (len != req->value_len || len > NA_L7_HEADER_VALUE_MAX)
		return 0;
	h->off = off;
	bpf_loop(len, na_l7_value_byte, h, 0);
	if (h->differs)
		return 0;
	h->found = true;
	return 1;
}

static __always_inline bool na_l7_header_present(const struct na_l7_scratch *s, const struct na_l7_header_req *req)
{
	struct na_l7_header_search h = { .s = s, .req = req };

	bpf_loop(NA_L7_HEADER_LINES_MAX, na_l7_header_line, &h, 0);
	return h.found;
}

struct na_l7_header_reqs {
	const struct na_l7_scratch *s;
	const struct na_l7_rule *rule;
	bool missing;
};

/* bpf_loop callback over a rule's header requirements: one loop the verifier checks once, not once per requirement. */
static long na_l7_header_req(__u32 index, void *data)
{
	struct na_l7_header_reqs *r = data;

	if (index >= r->rule->header_count || index >= NA_L7_MAX_HEADER_REQS)
		return 1;
	if (!na_l7_header_present(r->s, &r->rule->headers[index & (NA_L7_MAX_HEADER_REQS - 1)])) {
		r->missing = true;
		return 1;
	}
	return 0;
}

static __always_inline bool na_l7_rule_matches(const struct na_l7_scratch *s, const struct na_l7_rule *rule)
{
	if (!na_l7_dfa_accepts(s, rule->method_dfa, 0, s->req.method_len))
		return false;
	if (!na_l7_dfa_accepts(s, rule->path_dfa, s->req.target_off, s->req.target_len))
		return false;
	if (rule->host_dfa && !s->req.has_host)
		return false;
	if (!na_l7_dfa_accepts(s, rule->host_dfa, s->req.host_off, s->req.host_len))
		return false;
	struct na_l7_header_reqs r = { .s = s, .rule = rule };

	if (rule->header_count)
		bpf_loop(NA_L7_MAX_HEADER_REQS, na_l7_header_req, &r, 0);
	return !r.missing;
}

struct na_l7_rule_search {
	const struct na_l7_scratch *s;
	__u32 ruleset;
	__u64 mask;
	__u32 index;    /* the matching rule, 255 when none */
	__u32 rule_id;
};

static long na_l7_rule_try(__u32 index, void *data)
{
	struct na_l7_rule_search *m = data;
	struct na_l7_rule_key key = { .ruleset = m->ruleset, .index = index };
	struct na_l7_rule *rule;

	if (index >= NA_L7_MAX_RULES)
		return 1;
	if (!(m->mask & (1ULL << index)))
		return 0;
	rule = bpf_map_lookup_elem(&na_l7_rules, &key);
	if (!rule || !na_l7_rule_matches(m->s, rule))
		return 0;
	m->index = index;
	m->rule_id = rule->rule_id;
	return 1;
}

/*
 * Decides a parsed request against the ruleset for a peer: true when the
 * peer is unrestricted or one of its rules matches (*index, *rule_id say
 * which; 255 and 0 when unrestricted).
 */
static __always_inline bool na_l7_allows(const struct na_l7_scratch *s, __u32 ruleset, __u32 identity,
					 __u32 *index, __u32 *rule_id)
{
	struct na_l7_peer_key key = { .ruleset = ruleset, .identity = identity };
	struct na_l7_rule_search m = { .s = s, .ruleset = ruleset, .index = 255 };
	struct na_l7_peer_value *peer;

	*index = 255;
	*rule_id = 0;
	peer = bpf_map_lookup_elem(&na_l7_peers, &key);
	if (peer) {
		if (peer->flags & NA_L7_PEER_UNRESTRICTED)
			return true;
		m.mask |= peer->rules;
	}
	key.identity = 0;
	peer = bpf_map_lookup_elem(&na_l7_peers, &key);
	if (peer) {
		if (peer->flags & NA_L7_PEER_UNRESTRICTED)
			return true;
		m.mask |= peer->rules;
	}
	if (!m.mask)
		return false;
	bpf_loop(NA_L7_MAX_RULES, na_l7_rule_try, &m, 0);
	*index = m.index;
	*rule_id = m.rule_id;
	return m.index != 255;
}

#endif /* NA_L7_RULES_H */
