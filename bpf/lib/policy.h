/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* policy.h: the L3/L4 policy decision for a flow of an endpoint. */
#ifndef NA_POLICY_H
#define NA_POLICY_H

#include <bpf/bpf_endian.h>
#include "maps.h"
#include "context.h"
#include "endpoint.h"

/*
 * The longest prefix of key among the endpoint's entries: its full-length entry from the hash when there (the
 * longest possible), else the trie's match. The hash holds full-length keys of one peer identity; the trie
 * everything else, and full-length keys too in pins of an agent that had no hash (the agent deletes a key from
 * both, so the two never disagree).
 */
static __always_inline struct na_policy_value *na_policy_lookup(void *trie, void *exact,
								const struct na_policy_key *key)
{
	struct na_policy_value *v = NULL;

	if (exact)
		v = bpf_map_lookup_elem(exact, key);
	if (!v)
		v = bpf_map_lookup_elem(trie, key);
	return v;
}

/*
 * The endpoint's entry for a full-length key from na_ptable (nodeagent_abi.h) into *value: 1 when its bucket
 * holds it, 0 when not. Each entry's meta word is read first; the rest only while its valid bit is set.
 */
static __always_inline int na_policy_table_find(__u32 index, __u32 ep_id, __u32 identity, __u32 key,
						struct na_policy_value *value)
{
	const struct na_policy_table_bucket *bucket;
	__u32 meta;
	int i;

	bucket = bpf_map_lookup_elem(&na_ptable, &index);
	if (!bucket)
		return 0;
#pragma unroll
	for (i = 0; i < NA_POLICY_TABLE_WAYS; i++) {
		meta = *(volatile const __u32 *)&bucket->entries[i].meta;
		if ((meta & (NA_POLICY_TABLE_VALID | NA_POLICY_TABLE_KEY_MASK)) != (NA_POLICY_TABLE_VALID | key))
			continue;
		if (*(volatile const __u32 *)&bucket->entries[i].identity != identity ||
		    *(volatile const __u32 *)&bucket->entries[i].ep_id != ep_id)
			continue;
		value->rule_id = *(volatile const __u32 *)&bucket->entries[i].rule_id;
		value->flags = (meta & NA_POLICY_TABLE_DENY) ? NA_POLICY_DENY : 0;
		return 1;
	}
	return 0;
}

/*
 * The endpoint's entry for a full-length key from its block in na_ptable_bits (nodeagent_abi.h), packed: 0 when
 * the key's slot holds no block of its tag or the block lacks the peer's bit (na_ptable then answers), else
 * NA_POLICY_BLOCK_FOUND | deny << 32 | rule_id. meta first, the rest only while its valid bit is set. A global
 * function, which the verifier checks once on its own: each caller sees a scalar, not the block's branches.
 */
#define NA_POLICY_BLOCK_FOUND (1ULL << 63)

__attribute__((noinline)) __u64 na_policy_block_find(__u32 ep_id, __u32 identity, __u32 key)
{
	__u32 index = na_policy_block_of(ep_id, identity, key);
	const struct na_policy_block *block;
	__u64 bits;
	__u32 meta;

	block = bpf_map_lookup_elem(&na_ptable_bits, &index);
	if (!block)
		return 0;
	meta = *(volatile const __u32 *)&block->meta;
	if ((meta & (NA_POLICY_TABLE_VALID | NA_POLICY_TABLE_KEY_MASK)) != (NA_POLICY_TABLE_VALID | key))
		return 0;
	if (*(volatile const __u32 *)&block->ep_id != ep_id ||
	    *(volatile const __u32 *)&block->group != identity >> NA_POLICY_BLOCK_GROUP_BITS)
		return 0;
	bits = *(volatile const __u64 *)&block->bits[(identity >> 6) & 3];
	if (!((bits >> (identity & 63)) & 1))
		return 0;
	return NA_POLICY_BLOCK_FOUND | (__u64)((meta & NA_POLICY_TABLE_DENY) != 0) << 32 |
	       *(volatile const __u32 *)&block->rule_id;
}

/* The block's entry, unpacked into *value: 1 when found, as na_policy_table_find. */
static __always_inline int na_policy_block_take(__u32 ep_id, __u32 identity, __u32 key,
						struct na_policy_value *value)
{
	__u64 found = na_policy_block_find(ep_id, identity, key);

	if (!(found & NA_POLICY_BLOCK_FOUND))
		return 0;
	value->rule_id = (__u32)found;
	value->flags = (found >> 32) & NA_POLICY_DENY;
	return 1;
}

/*
 * Whether a miss in bucket index of na_ptable is a miss of the endpoint's hash too: the table holds every
 * full-length key of the endpoint's hash but those of overflowed buckets, and this one is not.
 */
static __always_inline bool na_policy_table_decides(__u32 ep_id, __u32 index)
{
	const __u32 *state = bpf_map_lookup_elem(&na_ptable_ep, &ep_id);
	__u32 word = index / 64;
	const __u64 *overflow;

	if (!state || *state != NA_POLICY_TABLE_COMPLETE)
		return false;
	overflow = bpf_map_lookup_elem(&na_ptable_ovf, &word);
	return overflow && !(*overflow & (1ULL << (index % 64)));
}

/*
 * Whether some full-length key may name (dir, proto, dport): false only once na_ptable_ports is complete and the
 * port's bit is clear, so a new flow to a port no such key names skips na_ptable and the hash. Two array lookups,
 * which the verifier inlines.
 */
static __always_inline bool na_policy_port_named(__u32 bit)
{
	__u32 index = NA_POLICY_PORTS_COMPLETE;
	const __u64 *word;

	word = bpf_map_lookup_elem(&na_ptable_ports, &index);
	if (!word || !*word)
		return true;
	index = bit / 64;
	word = bpf_map_lookup_elem(&na_ptable_ports, &index);
	return !word || ((*word >> (bit % 64)) & 1);
}

/*
 * Whether some full-length key may name the peer on the port (its bit): false only once na_ptable_peers is
 * complete and one of the pair's two bits is clear. Two array lookups, both in lines the port's flows keep warm.
 */
static __always_inline bool na_policy_peer_named(__u32 port_bit, __u32 identity)
{
	__u32 first = na_policy_peer_bit(port_bit, identity, 0);
	__u64 mask = 1ULL << (first % 64) | 1ULL << (na_policy_peer_bit(port_bit, identity, 1) % 64);
	__u32 index = NA_POLICY_PEERS_COMPLETE;
	const __u64 *word;

	word = bpf_map_lookup_elem(&na_ptable_peers, &index);
	if (!word || !*word)
		return true;
	index = first / 64;
	word = bpf_map_lookup_elem(&na_ptable_peers, &index);
	return !word || (*word & mask) == mask;
}

/* Whether na_ptable or the hash may hold the full-length key of (identity, dir, proto, dport). */
static __always_inline bool na_policy_key_named(__u32 identity, __u8 dir, __u8 proto, __be16 dport)
{
	__u32 bit = na_policy_port_bit(dir, proto, bpf_ntohs(dport));

	return na_policy_port_named(bit) && na_policy_peer_named(bit, identity);
}

/*
 * Looks up (identity, dir, proto, dport) in the endpoint's policy, then
 * the same for identity 0 (any peer). Each lookup returns its longest
 * matching prefix: the peer's full-length key from its block in
 * na_ptable_bits or from na_ptable, else from
 * the endpoint's hash (not looked at when the table holds all of its keys of
 * that bucket), else the trie's match; neither the table nor the hash when no
 * full-length key names the port, or the peer on it. A deny from either wins, then an allow from
 * either. Returns 0 (allowed) or -NA_DROP_POLICY_DENY / -NA_DROP_POLICY;
 * *rule_id is the deciding entry's rule.
 */
static __always_inline int na_policy_check(__u32 ep_id, __u32 identity, __u8 dir, __u8 proto,
					   __be16 dport, __u32 *rule_id)
{
	struct na_policy_key key = {
		.prefixlen = NA_POLICY_PREFIX_PORT,
		.identity = bpf_htonl(identity),
		.direction = dir,
		.protocol = proto,
		.dport = dport,
	};
	struct na_policy_value peer = {}, *found, *any;
	__u32 bits = na_policy_table_key(dir, proto, dport);
	__u32 index = na_policy_table_bucket_of(ep_id, identity, bits);
	bool have;
	void *inner, *hash;

	inner = bpf_map_lookup_elem(&na_policy, &ep_id);
	if (!inner)
		return -NA_DROP_POLICY;  /* enforcing with no policy installed: default deny */

	have = false;
	hash = NULL;
	if (na_policy_key_named(identity, dir, proto, dport)) {
		have = na_policy_block_take(ep_id, identity, bits, &peer) ||
		       na_policy_table_find(index, ep_id, identity, bits, &peer);
		if (!have && !na_policy_table_decides(ep_id, index))
			hash = bpf_map_lookup_elem(&na_policy_exact, &ep_id);
	}
	if (!have) {
		found = na_policy_lookup(inner, hash, &key);
		if (found) {
			peer = *found;
			have = true;
		}
	}
	if (have && (peer.flags & NA_POLICY_DENY)) {
		*rule_id = peer.rule_id;
		return -NA_DROP_POLICY_DENY;
	}
	key.identity = 0;
	any = bpf_map_lookup_elem(inner, &key);  /* any-peer keys are never in the hash */
	if (any && (any->flags & NA_POLICY_DENY)) {
		*rule_id = any->rule_id;
		return -NA_DROP_POLICY_DENY;
	}
	if (have) {
		*rule_id = peer.rule_id;
		return 0;
	}
	if (any) {
		*rule_id = any->rule_id;
		return 0;
	}
	return -NA_DROP_POLICY;
}

/*
 * The endpoint's current verdict on a flow: dir and dport are the flow's own
 * (those of the packet that opened it), the peer is ctx->remote_identity.
 * Directions the endpoint does not enforce allow everything; so does ingress
 * from the node itself (identity host: kubelet probes) unless na_config says
 * NA_CFG_LOCALHOST_POLICY, like Cilium's allow-localhost=always.
 * Sets ctx->rule_id to the deciding rule (0: none).
 */
static __always_inline int na_policy_verdict(struct na_ctx *ctx, __u8 dir, __be16 dport)
{
	ctx->rule_id = 0;
	if (!na_enforces(ctx->ep_flags, dir))
		return 0;
	if (dir == NA_DIR_INGRESS && ctx->remote_identity == NA_ID_HOST &&
	    !(ctx->cfg.flags & NA_CFG_LOCALHOST_POLICY))
		return 0;
	return na_policy_check(ctx->ep_id, ctx->remote_identity, dir, ctx->pkt.proto, dport,
			       &ctx->rule_id);
}

#endif /* NA_POLICY_H */
