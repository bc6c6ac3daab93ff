/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ipcache.h: resolution of a remote address to its security identity. */
#ifndef NA_IPCACHE_H
#define NA_IPCACHE_H

#include "maps.h"

/*
 * The identity of an IPv4 host entry in na_ipcache_v4 (nodeagent_abi.h), or 0 when its bucket has none for addr:
 * the eight entries of one 64-byte bucket. Each entry's identity word is read before its address, so an entry counts
 * only with the address written before its valid bit was set.
 */
static __always_inline __u32 na_ipcache_v4_identity(const __u8 *addr)
{
	const struct na_ipcache_v4_bucket *bucket;
	__u32 a, index, identity;
	int i;

	__builtin_memcpy(&a, addr, 4);
	index = na_ipcache_v4_bucket_of(a);
	bucket = bpf_map_lookup_elem(&na_ipcache_v4, &index);
	if (!bucket)
		return 0;
#pragma unroll
	for (i = 0; i < NA_IPCACHE_V4_WAYS; i++) {
		identity = *(volatile const __u32 *)&bucket->entries[i].identity;
		if (!(identity & NA_IPCACHE_V4_VALID))
			continue;
		if (*(volatile const __u32 *)&bucket->entries[i].addr == a)
			return identity & NA_IPCACHE_V4_IDENTITY_MASK;
	}
	return 0;
}

/*
 * The identity of an IPv6 host entry in na_ipcache_v6 (nodeagent_abi.h), or 0 when its bucket has none for the
 * address (its four words as na_ipcache_v6_entry.addr holds them): the three entries of one 64-byte bucket, each
 * identity word read before its address, as in na_ipcache_v4. A global function, which the verifier checks once on
 * its own and its callers as one call returning a number: inlined, its paths multiplied from_endpoint's by half
 * again on Linux 6.1 (818,382 instructions against 533,112; 640,975 as a call).
 */
__attribute__((noinline)) __u32 na_ipcache_v6_identity(__u32 a0, __u32 a1, __u32 a2, __u32 a3)
{
	const struct na_ipcache_v6_bucket *bucket;
	__u32 index, identity;
	int i;

	index = na_ipcache_v6_bucket_of(a0, a1, a2, a3);
	bucket = bpf_map_lookup_elem(&na_ipcache_v6, &index);
	if (!bucket)
		return 0;
#pragma unroll
	for (i = 0; i < NA_IPCACHE_V6_WAYS; i++) {
		identity = *(volatile const __u32 *)&bucket->entries[i].identity;
		if (!(identity & NA_IPCACHE_V4_VALID))
			continue;
		if (*(volatile const __u32 *)&bucket->entries[i].addr[3] == a3 &&
		    *(volatile const __u32 *)&bucket->entries[i].addr[2] == a2 &&
		    *(volatile const __u32 *)&bucket->entries[i].addr[1] == a1 &&
		    *(volatile const __u32 *)&bucket->entries[i].addr[0] == a0)
			return identity & NA_IPCACHE_V4_IDENTITY_MASK;
	}
	return 0;
}

/*
 * The identity of addr: a host entry from na_ipcache_v4 or na_ipcache_v6 when its bucket holds it; else its host
 * entry in na_ipcache_host when it has one (the longest prefix, found in one hash lookup), else the longest-prefix
 * match in na_ipcache. The trie holds host entries too, so pins of an agent that had no hash still resolve.
 * Addresses nobody claimed belong to WORLD.
 */
static __always_inline __u32 na_ipcache_identity(const __u8 *addr, __u8 family)
{
	struct na_ipcache_key key = {};
	struct na_ipcache_value *v;

	key.family = family;
	if (family == NA_FAMILY_IPV4) {
		__u32 identity = na_ipcache_v4_identity(addr);

		if (identity)
			return identity;
		key.prefixlen = NA_IPCACHE_PREFIX_BASE + 32;
		__builtin_memcpy(key.addr, addr, 4);
	} else {
		__u32 a0, a1, a2, a3, identity;

		__builtin_memcpy(&a0, addr, 4);
		__builtin_memcpy(&a1, addr + 4, 4);
		__builtin_memcpy(&a2, addr + 8, 4);
		__builtin_memcpy(&a3, addr + 12, 4);
		identity = na_ipcache_v6_identity(a0, a1, a2, a3);
		if (identity)
			return identity;
		key.prefixlen = NA_IPCACHE_PREFIX_BASE + 128;
		__builtin_memcpy(key.addr, addr, 16);
	}
	v = bpf_map_lookup_elem(&na_ipcache_host, &key);
	if (!v)
		v = bpf_map_lookup_elem(&na_ipcache, &key);
	return v ? v->identity : NA_ID_WORLD;
}

#endif /* NA_IPCACHE_H */
