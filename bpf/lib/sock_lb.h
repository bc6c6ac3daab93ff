/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* sock_lb.h: backend selection and address rewriting for the socket load balancer's cgroup hooks. */
#ifndef NA_SOCK_LB_H
#define NA_SOCK_LB_H

#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "consts.h"
#include "lb_maps.h"
#include "lb_slots.h"

/* What a cgroup sock_addr program returns: 1 lets the call go on, 0 fails it (EPERM unless a retval is set). */
#define NA_SYS_PROCEED 1
#define NA_SYS_REJECT 0

/* Lookups of one selection: a set swapped between reading slot 0 and its slot is read again, once more. */
#define NA_LB_SELECT_TRIES 2

/* The destination (or, for recvmsg and getpeername, the peer) of a sock_addr call, as map keys hold it. */
static __always_inline void sock_addr_read(struct bpf_sock_addr *ctx, __u8 family, __u8 addr[16], __be16 *port)
{
	__u32 word;

	__builtin_memset(addr, 0, 16);
	if (family == NA_FAMILY_IPV4) {
		word = ctx->user_ip4;
		__builtin_memcpy(addr, &word, 4);
	} else {
		/* The context allows only 4-byte loads of user_ip6. */
		word = ctx->user_ip6[0];
		__builtin_memcpy(addr, &word, 4);
		word = ctx->user_ip6[1];
		__builtin_memcpy(addr + 4, &word, 4);
		word = ctx->user_ip6[2];
		__builtin_memcpy(addr + 8, &word, 4);
		word = ctx->user_ip6[3];
		__builtin_memcpy(addr + 12, &word, 4);
	}
	*port = (__be16)ctx->user_port;
}

static __always_inline void sock_addr_write(struct bpf_sock_addr *ctx, __u8 family, const __u8 addr[16], __be16 port)
{
	__u32 word;

	if (family == NA_FAMILY_IPV4) {
		__builtin_memcpy(&word, addr, 4);
		ctx->user_ip4 = word;
	} else {
		__builtin_memcpy(&word, addr, 4);
		ctx->user_ip6[0] = word;
		__builtin_memcpy(&word, addr + 4, 4);
		ctx->user_ip6[1] = word;
		__builtin_memcpy(&word, addr + 8, 4);
		ctx->user_ip6[2] = word;
		__builtin_memcpy(&word, addr + 12, 4);
		ctx->user_ip6[3] = word;
	}
	ctx->user_port = (__u32)port;
}

/*
 * The backend a pod was sent to within the service's affinity timeout, when it
 * still takes the service's new connections (na_lb_aff_match); its last
 * use becomes now. NULL: pick anew.
 */
static __always_inline struct na_lb_backend *lb_affinity_backend(const struct na_lb_affinity_key *akey, __u32 timeout,
								 __u32 now)
{
	struct na_lb_affinity_value *aval;
	struct na_lb_backend *backend;

	aval = bpf_map_lookup_elem(&na_lb_affinity, akey);
	if (!aval || now - aval->last_used > timeout)
		return NULL;
	backend = lb_affinity_check(aval->backend_id, akey->service_id);
	if (!backend)
		return NULL;
	/* Racing connects of one pod write the same or a newer second: a plain store is enough. */
	aval->last_used = now;
	return backend;
}

/*
 * Picks a backend taking new connections for the service under `key` (slot
 * 0): with ClientIP affinity the one this pod had, else a random slot (slots
 * repeat backends by weight). Returns 1 with *backend and *service_id set, 0
 * when the address is no service's, or -ECONNREFUSED when the service has no
 * such backend.
 */
static __always_inline int lb_select(struct bpf_sock_addr *ctx, struct na_lb_service_key *key,
				     struct na_lb_backend **backend, __u32 *service_id)
{
	struct na_lb_affinity_key akey = {};
	struct na_lb_affinity_value aval = {};
	struct na_lb_service_value *svc;
	struct na_lb_backend *found;
	__u32 timeout, now = 0, id = 0;
	int try;

#pragma unroll
	for (try = 0; try < NA_LB_SELECT_TRIES; try++) {
		key->slot = 0;
		svc = bpf_map_lookup_elem(&na_lb_services, key);
		if (!svc)
			return 0;
		if (svc->count == 0)
			return -ECONNREFUSED;
		*service_id = svc->service_id;
		timeout = svc->affinity_timeout;
		if (timeout) {
			now = (__u32)(bpf_ktime_get_ns() / NA_NSEC_PER_SEC);
			akey.netns_cookie = bpf_get_netns_cookie(ctx);
			akey.service_id = *service_id;
			found = lb_affinity_backend(&akey, timeout, now);
			if (found) {
				*backend = found;
				return 1;
			}
		}
		found = lb_random_backend(key, svc, &id);
		if (!found)
			continue;
		if (timeout) {
			aval.backend_id = id;
			aval.last_used = now;
			bpf_map_update_elem(&na_lb_affinity, &akey, &aval, BPF_ANY);
		}
		*backend = found;
		return 1;
	}
	return -ECONNREFUSED;
}

/*
 * Connect and sendmsg: a destination that is a service's frontend becomes one
 * of its backends, and the socket remembers the frontend for the replies. A
 * service without backends fails the call at once with ECONNREFUSED
 * (bpf_set_retval, Linux 5.18), where a plain rejection would read EPERM.
 */
static __always_inline int sock_xlate_fwd(struct bpf_sock_addr *ctx, __u8 family)
{
	struct na_lb_service_key key = {};
	struct na_lb_revnat_key rkey = {};
	struct na_lb_revnat_value rval = {};
	struct na_lb_revnat_value *known;
	struct na_lb_backend *backend = NULL;
	__u32 service_id = 0;
	/* The context allows only full-width loads of protocol. */
	__u32 proto = ctx->protocol;
	int ret;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return NA_SYS_PROCEED;
	key.family = family;
	key.proto = (__u8)proto;
	sock_addr_read(ctx, family, key.addr, &key.port);
	ret = lb_select(ctx, &key, &backend, &service_id);
	if (ret == 0)
		return NA_SYS_PROCEED;
	if (ret < 0 || !backend) {
		bpf_set_retval(-ECONNREFUSED);
		return NA_SYS_REJECT;
	}

	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.family = family;
	__builtin_memcpy(rkey.addr, backend->addr, 16);
	rkey.port = backend->port;
	__builtin_memcpy(rval.addr, key.addr, 16);
	rval.family = family;
	rval.port = key.port;
	rval.service_id = service_id;
	/* Unconnected UDP passes here for every datagram: write only what changed. */
	known = bpf_map_lookup_elem(&na_lb_revnat, &rkey);
	if (!known || known->service_id != service_id || known->port != rval.port ||
	    __builtin_memcmp(known->addr, rval.addr, 16) != 0)
		bpf_map_update_elem(&na_lb_revnat, &rkey, &rval, BPF_ANY);

	sock_addr_write(ctx, family, backend->addr, backend->port);
	return NA_SYS_PROCEED;
}

/*
 * Recvmsg and getpeername: a peer that is a backend this socket was sent to
 * through a service that still exists reads as the service's frontend.
 */
static __always_inline int sock_xlate_rev(struct bpf_sock_addr *ctx, __u8 family)
{
	struct na_lb_revnat_key rkey = {};
	struct na_lb_service_key key = {};
	struct na_lb_revnat_value *rval;
	struct na_lb_service_value *svc;
	__u32 proto = ctx->protocol;

	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.family = family;
	sock_addr_read(ctx, family, rkey.addr, &rkey.port);
	rval = bpf_map_lookup_elem(&na_lb_revnat, &rkey);
	if (!rval)
		return NA_SYS_PROCEED;
	__builtin_memcpy(key.addr, rval->addr, 16);
	key.family = family;
	key.proto = (__u8)proto;
	key.port = rval->port;
	svc = bpf_map_lookup_elem(&na_lb_services, &key);
	if (!svc || svc->service_id != rval->service_id) {
		bpf_map_delete_elem(&na_lb_revnat, &rkey);
		return NA_SYS_PROCEED;
	}
	sock_addr_write(ctx, family, rval->addr, rval->port);
	return NA_SYS_PROCEED;
}

#endif /* NA_SOCK_LB_H */
