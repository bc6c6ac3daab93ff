/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ct_map.h: the conntrack table, apart from the other maps because the conntrack sweep (ct_gc.bpf.c) declares it
 * too: the sweep reuses the agent's map by descriptor and creates no other map of the endpoint programs.
 */
#ifndef NA_CT_MAP_H
#define NA_CT_MAP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "consts.h"

/* Conntrack: 5-tuple and direction of the first packet -> flow state, lifetime and counters. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NA_CT_MAX_ENTRIES);
	__type(key, struct na_ct_key);
	__type(value, struct na_ct_value);
} na_ct SEC(".maps");

#endif /* NA_CT_MAP_H */
