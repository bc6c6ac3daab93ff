/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* lb_slots.h: the one way to pick a random backend of a service, and to trust an affinity entry, for the socket
 * hooks and the tc path alike. */
#ifndef NA_LB_SLOTS_H
#define NA_LB_SLOTS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "lb_maps.h"

/*
 * A random backend slot of the bank `svc` (slot 0 of the frontend under
 * `key`) names, among its `count` slots taking new connections (a backend
 * holds as many as its weight asks): the backend, its id in *id, or NULL when
 * the slot or backend went meanwhile (a set swapped in). svc->count must not
 * be 0. Leaves key->slot at the slot read.
 */
static __always_inline struct na_lb_backend *lb_random_backend(struct na_lb_service_key *key,
								const struct na_lb_service_value *svc, __u32 *id)
{
	struct na_lb_service_value *slot;
	__u16 base = (svc->flags & NA_LB_F_BANK1) ? NA_LB_SLOT_BANK1 : 0;

	key->slot = base + 1 + (__u16)(bpf_get_prandom_u32() % svc->count);
	slot = bpf_map_lookup_elem(&na_lb_services, key);
	if (!slot)
		return NULL;
	*id = slot->backend_id;
	return bpf_map_lookup_elem(&na_lb_backends, id);
}

/*
 * The backend an affinity entry names, while it still takes the service's
 * new connections (na_lb_aff_match): affinity never outlives a backend's
 * removal or drain. NULL: pick anew.
 */
static __always_inline struct na_lb_backend *lb_affinity_check(__u32 backend_id, __u32 service_id)
{
	struct na_lb_aff_match_key mkey = {};

	mkey.backend_id = backend_id;
	mkey.service_id = service_id;
	if (!bpf_map_lookup_elem(&na_lb_aff_match, &mkey))
		return NULL;
	return bpf_map_lookup_elem(&na_lb_backends, &mkey.backend_id);
}

#endif /* NA_LB_SLOTS_H */
