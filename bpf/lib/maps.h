/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* maps.h: every map the endpoint programs use, as typed BTF definitions the agent pins by name. */
#ifndef NA_MAPS_H
#define NA_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "consts.h"

/* Endpoints: host-side interface ifindex -> endpoint id, identity, addresses, enforcement. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NA_ENDPOINTS_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct na_endpoint_info);
} na_endpoints SEC(".maps");

/* The same rows by ifindex, read while valid (layout and protocol in nodeagent_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_EP_SLOTS);
	__type(key, __u32);
	__type(value, struct na_endpoint_info);
} na_ep_slots SEC(".maps");

/* ipcache: longest-prefix match from a remote address to its security identity. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NA_IPCACHE_MAX_ENTRIES);
	__type(key, struct na_ipcache_key);
	__type(value, struct na_ipcache_value);
} na_ipcache SEC(".maps");

/*
 * ipcache host entries (/32, /128) again, keyed exactly as in na_ipcache: one hash lookup answers a known peer
 * however many entries the trie holds, where the trie's walk grows with them. A host entry is always the longest
 * prefix, so a hit gives the trie's answer; the agent writes both (DatapathCore's IPCache) and refills this one
 * from the trie at start.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NA_IPCACHE_MAX_ENTRIES);
	__type(key, struct na_ipcache_key);
	__type(value, struct na_ipcache_value);
} na_ipcache_host SEC(".maps");

/* ipcache IPv4 host entries in 64-byte buckets (nodeagent_abi.h), looked at before na_ipcache_host. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_IPCACHE_V4_BUCKETS);
	__type(key, __u32);
	__type(value, struct na_ipcache_v4_bucket);
} na_ipcache_v4 SEC(".maps");

/* ipcache IPv6 host entries in 64-byte buckets (nodeagent_abi.h), looked at before na_ipcache_host. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_IPCACHE_V6_BUCKETS);
	__type(key, __u32);
	__type(value, struct na_ipcache_v6_bucket);
} na_ipcache_v6 SEC(".maps");

/*
 * Template of one endpoint's policy: (identity, direction, protocol, port)
 * prefixes -> allow/deny. Sizes rather than types: clang emits only a forward
 * declaration for types two pointers deep (values -> inner -> key), which
 * libbpf cannot size; the agent's inner maps carry no BTF either.
 */
struct na_policy_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NA_POLICY_MAX_ENTRIES);
	__uint(key_size, sizeof(struct na_policy_key));
	__uint(value_size, sizeof(struct na_policy_value));
};

/* Policy: endpoint id -> that endpoint's policy trie. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, NA_ENDPOINTS_MAX_ENTRIES);
	__type(key, __u32);
	__array(values, struct na_policy_inner);
} na_policy SEC(".maps");

/*
 * Template of one endpoint's full-length policy keys of one peer identity (identity, direction, protocol and all
 * 16 port bits: prefix NA_POLICY_PREFIX_PORT), which the agent writes here instead of into the trie: a full-length
 * key is always the longest prefix, so a hit is the trie's answer in one hash lookup, and the trie keeps what is
 * shorter (any port, port ranges, any protocol) and the any-peer keys, however many peers the policy names.
 * The agent sizes each to what it holds.
 */
struct na_policy_exact_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NA_POLICY_MAX_ENTRIES);
	__uint(key_size, sizeof(struct na_policy_key));
	__uint(value_size, sizeof(struct na_policy_value));
};

/* Every endpoint's full-length policy keys in 64-byte buckets (nodeagent_abi.h), before the hash. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_POLICY_TABLE_BUCKETS);
	__type(key, __u32);
	__type(value, struct na_policy_table_bucket);
} na_ptable SEC(".maps");

/* A bit per na_ptable bucket that a key found full: misses there go on to the hash. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_POLICY_TABLE_OVF_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} na_ptable_ovf SEC(".maps");

/* A bit per peer identity of an endpoint, key and group of 256 identities that share a verdict (nodeagent_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_POLICY_BLOCKS);
	__type(key, __u32);
	__type(value, struct na_policy_block);
} na_ptable_bits SEC(".maps");

/* A bit per direction, protocol and port some full-length key names (nodeagent_abi.h), then the complete word. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_POLICY_PORTS_COMPLETE + 1);
	__type(key, __u32);
	__type(value, __u64);
} na_ptable_ports SEC(".maps");

/* Two bits per (port, peer identity) pair some full-length key names (nodeagent_abi.h), then the complete word. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_POLICY_PEERS_COMPLETE + 1);
	__type(key, __u32);
	__type(value, __u64);
} na_ptable_peers SEC(".maps");

/* Endpoint id -> whether na_ptable holds all of its hash's keys but those of overflowed buckets. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_ENDPOINTS_MAX_ENTRIES + 1);
	__type(key, __u32);
	__type(value, __u32);
} na_ptable_ep SEC(".maps");

/* Policy, full-length keys: endpoint id -> that endpoint's hash (absent: everything is in the trie). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, NA_ENDPOINTS_MAX_ENTRIES);
	__type(key, __u32);
	__array(values, struct na_policy_exact_inner);
} na_policy_exact SEC(".maps");

#include "ct_map.h"

/* Conntrack entries created, one per-CPU counter: the agent's GC estimates how full na_ct is between sweeps. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} na_ct_created SEC(".maps");

/* Verdict counters: slot of (reason, direction) (na_metrics_slot) -> packets and bytes, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NA_METRICS_SLOTS);
	__type(key, __u32);
	__type(value, struct na_metrics_value);
} na_metrics SEC(".maps");

/* Runtime configuration written by the agent: lifetimes, event flags, sampling. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct na_config);
} na_config SEC(".maps");

/* Flow events (struct na_flow_event) for drops and sampled new allowed flows. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NA_EVENTS_BYTES);
} na_events SEC(".maps");

/* Drop event aggregation: a dropped flow -> CLOCK_MONOTONIC ns of its last drop event. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NA_DROP_AGG_MAX_ENTRIES);
	__type(key, struct na_drop_agg_key);
	__type(value, __u64);
} na_drop_agg SEC(".maps");

/* Events emitted and lost (ring buffer full), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct na_event_stats);
} na_event_stats SEC(".maps");

/* Ports of in-flight fragmented datagrams, recorded from their first fragment. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NA_FRAGS_MAX_ENTRIES);
	__type(key, struct na_frag_key);
	__type(value, struct na_frag_value);
} na_frags SEC(".maps");

#endif /* NA_MAPS_H */
