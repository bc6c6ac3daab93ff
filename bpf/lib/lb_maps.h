/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* lb_maps.h: the socket load balancer's maps (layouts in nodeagent_abi.h), pinned by name by the agent. */
#ifndef NA_LB_MAPS_H
#define NA_LB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"

#ifndef NA_LB_SERVICES_MAX_ENTRIES
#define NA_LB_SERVICES_MAX_ENTRIES 65536
#endif

#ifndef NA_LB_BACKENDS_MAX_ENTRIES
#define NA_LB_BACKENDS_MAX_ENTRIES 65536
#endif

#ifndef NA_LB_REVNAT_MAX_ENTRIES
#define NA_LB_REVNAT_MAX_ENTRIES 262144
#endif

#ifndef NA_LB_AFFINITY_MAX_ENTRIES
#define NA_LB_AFFINITY_MAX_ENTRIES 65536
#endif

#ifndef NA_LB_AFFINITY_MATCH_MAX_ENTRIES
#define NA_LB_AFFINITY_MATCH_MAX_ENTRIES 65536
#endif

/* Services: frontend and slot -> the service (slot 0) or one backend slot. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NA_LB_SERVICES_MAX_ENTRIES);
	__type(key, struct na_lb_service_key);
	__type(value, struct na_lb_service_value);
} na_lb_services SEC(".maps");

/* Backends: id -> address, port and state. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NA_LB_BACKENDS_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct na_lb_backend);
} na_lb_backends SEC(".maps");

/* Reverse translation: socket cookie and backend -> the frontend the socket asked for (least recent go first). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NA_LB_REVNAT_MAX_ENTRIES);
	__type(key, struct na_lb_revnat_key);
	__type(value, struct na_lb_revnat_value);
} na_lb_revnat SEC(".maps");

/* ClientIP affinity: pod (netns cookie) and service -> its backend and last use (least recent go first). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NA_LB_AFFINITY_MAX_ENTRIES);
	__type(key, struct na_lb_affinity_key);
	__type(value, struct na_lb_affinity_value);
} na_lb_affinity SEC(".maps");

/* Backend and service -> 1 while the backend takes the service's new connections (affinity's check). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NA_LB_AFFINITY_MATCH_MAX_ENTRIES);
	__type(key, struct na_lb_aff_match_key);
	__type(value, __u8);
} na_lb_aff_match SEC(".maps");

/* Frontend ports: a bit per protocol and port some frontend serves (layout in nodeagent_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_LB_PORTS_COMPLETE + 1);
	__type(key, __u32);
	__type(value, __u64);
} na_lb_ports SEC(".maps");

/*
 * Template of one service's Maglev table: element 0 the size M, 1..M backend
 * ids. BPF_F_INNER_MAP lets each table have its own size (the kernel then
 * checks the index at run time). Sizes rather than types, as na_policy_inner.
 */
struct na_lb_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, NA_LB_MAGLEV_MAX_SIZE + 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
};

/* Maglev tables: service id -> that service's table (services without one pick backends at random). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NA_LB_SERVICES_MAX_ENTRIES);
	__type(key, __u32);
	__array(values, struct na_lb_maglev_inner);
} na_lb_maglev SEC(".maps");

#endif /* NA_LB_MAPS_H */
