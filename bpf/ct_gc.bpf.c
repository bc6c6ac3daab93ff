// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ct_gc.bpf.c: the conntrack sweep, in the kernel. The agent runs na_ct_sweep with BPF_PROG_TEST_RUN on its own
 * na_ct (reused by descriptor): every entry is visited where it lies and the expired ones are deleted there,
 * instead of every entry being copied out to user space and the expired ones sent back in batches. Entries of
 * endpoints that are gone are only counted: the agent confirms the endpoint is still gone after the walk before
 * deleting them (one created meanwhile may already own entries).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "ct_map.h"

/* The endpoint ids live when the sweep started, written by the agent before each run. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct na_ct_gc_owners);
} na_ct_gc_owners SEC(".maps");

struct na_ct_gc_walk {
	struct na_ct_sweep_args *args;
	const struct na_ct_gc_owners *owners;
};

static __always_inline bool na_ct_gc_owned(const struct na_ct_gc_owners *owners, __u32 id)
{
	if (id >= NA_CT_GC_OWNER_IDS)
		return false;
	return owners->bits[(id / 8) & (NA_CT_GC_OWNER_IDS / 8 - 1)] & (1 << (id % 8));
}

static long na_ct_gc_visit(void *map, struct na_ct_key *key, struct na_ct_value *value, struct na_ct_gc_walk *w)
{
	struct na_ct_sweep_args *a = w->args;

	a->scanned++;
	if (value->lifetime < a->now) {
		if (bpf_map_delete_elem(map, key) == 0)
			a->expired++;
		else
			a->delete_failed++;
	} else if (w->owners && !na_ct_gc_owned(w->owners, value->ep_id)) {
		a->suspects++;
	}
	return 0;
}

SEC("syscall")
int na_ct_sweep(struct na_ct_sweep_args *ctx)
{
	struct na_ct_sweep_args a = { .now = ctx->now, .check_owners = ctx->check_owners };
	struct na_ct_gc_walk w = { .args = &a };
	__u32 zero = 0;

	if (a.check_owners)
		w.owners = bpf_map_lookup_elem(&na_ct_gc_owners, &zero);
	bpf_for_each_map_elem(&na_ct, na_ct_gc_visit, &w, 0);
	ctx->scanned = a.scanned;
	ctx->expired = a.expired;
	ctx->suspects = a.suspects;
	ctx->delete_failed = a.delete_failed;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
