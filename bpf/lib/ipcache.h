/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ipcache.h: resolution of a remote address to its security identity. */
#ifndef NA_IPCACHE_H
#define NA_IPCACHE_H

#include "maps.h"

/*
 * The identity of addr: its host entry in na_ipcache_host when it has one (the longest prefix, found in one hash
 * lookup), else the longest-prefix match in na_ipcache. The trie holds host entries too, so pins of an agent that
 * had no hash still resolve. Addresses nobody claimed belong to WORLD.
 */
static __always_inline __u32 na_ipcache_identity(const __u8 *addr, __u8 family)
{
	struct na_ipcache_key key = {};
	struct na_ipcache_value *v;

	key.family = family;
	if (family == NA_FAMILY_IPV4) {
		key.prefixlen = NA_IPCACHE_PREFIX_BASE + 32;
		__builtin_memcpy(key.addr, addr, 4);
	} else {
		key.prefixlen = NA_IPCACHE_PREFIX_BASE + 128;
		__builtin_memcpy(key.addr, addr, 16);
	}
	v = bpf_map_lookup_elem(&na_ipcache_host, &key);
	if (!v)
		v = bpf_map_lookup_elem(&na_ipcache, &key);
	return v ? v->identity : NA_ID_WORLD;
}

#endif /* NA_IPCACHE_H */
