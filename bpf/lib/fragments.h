/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* fragments.h: carries the ports of an IP datagram's first fragment over to its later fragments. */
#ifndef NA_FRAGMENTS_H
#define NA_FRAGMENTS_H

#include "parse.h"
#include "maps.h"

/*
 * First fragments record their ports; later fragments take them from there,
 * or are dropped with NA_DROP_FRAG_NOSUPPORT when the first one was not seen
 * (reordered, or evicted): without ports neither conntrack nor policy can
 * decide. Entries age out of the LRU map.
 */
static __always_inline int na_frag_track(struct na_pkt *pkt)
{
	struct na_frag_value *v;
	struct na_frag_key key = {};

	if (pkt->frag == NA_FRAG_NONE)
		return 0;
	__builtin_memcpy(key.saddr, pkt->saddr, 16);
	__builtin_memcpy(key.daddr, pkt->daddr, 16);
	key.id = pkt->frag_id;
	key.proto = pkt->proto;
	key.family = pkt->family;
	if (pkt->frag == NA_FRAG_FIRST) {
		struct na_frag_value first = {
			.sport = pkt->sport,
			.dport = pkt->dport,
			.kind = pkt->kind,
		};

		/* Best effort: a failed insert only costs the later fragments. */
		bpf_map_update_elem(&na_frags, &key, &first, BPF_ANY);
		return 0;
	}
	v = bpf_map_lookup_elem(&na_frags, &key);
	if (!v)
		return -NA_DROP_FRAG_NOSUPPORT;
	pkt->sport = v->sport;
	pkt->dport = v->dport;
	pkt->kind = v->kind;
	return 0;
}

#endif /* NA_FRAGMENTS_H */
