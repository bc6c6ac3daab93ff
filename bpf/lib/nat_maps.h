/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* nat_maps.h: the maps and sizes of NAT (masquerading on the node's external interface). */
#ifndef NA_NAT_MAPS_H
#define NA_NAT_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "consts.h"

/* Two entries per mapping: the agent may override the size at load time. */
#ifndef NA_NAT_MAX_ENTRIES
#define NA_NAT_MAX_ENTRIES 262144
#endif

/* Cluster prefixes: destinations inside are never masqueraded. */
#ifndef NA_NAT_CLUSTER_MAX_ENTRIES
#define NA_NAT_CLUSTER_MAX_ENTRIES 256
#endif

/* Ports tried for a new mapping (the first from the tuple's hash, then random ones). */
#ifndef NA_NAT_RETRIES
#define NA_NAT_RETRIES 32
#endif

/* NAT mappings: forward half (original tuple, egress), reverse half (reply tuple, ingress). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NA_NAT_MAX_ENTRIES);
	__type(key, struct na_ct_key);
	__type(value, struct na_nat_entry);
} na_nat SEC(".maps");

/* NAT configuration written by the agent: node address, port range, on/off. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct na_nat_config);
} na_nat_config SEC(".maps");

/* Cluster CIDRs keyed like na_ipcache: sources inside are masqueraded, destinations are not. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NA_NAT_CLUSTER_MAX_ENTRIES);
	__type(key, struct na_ipcache_key);
	__type(value, __u32);
} na_nat_cluster SEC(".maps");

#endif /* NA_NAT_MAPS_H */
