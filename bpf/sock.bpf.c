// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sock.bpf.c: socket load balancing for pods, attached to a cgroup v2
 * directory. A TCP connect or UDP send to a service's frontend goes straight
 * to a backend (no per-packet NAT: policy, conntrack and flows see the
 * backend), and UDP replies and getpeername show the frontend again.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "nodeagent_abi.h"
#include "lb_maps.h"
#include "sock_lb.h"

SEC("cgroup/connect4")
int na_sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, NA_FAMILY_IPV4);
}

SEC("cgroup/connect6")
int na_sock6_connect(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, NA_FAMILY_IPV6);
}

SEC("cgroup/sendmsg4")
int na_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, NA_FAMILY_IPV4);
}

SEC("cgroup/sendmsg6")
int na_sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, NA_FAMILY_IPV6);
}

SEC("cgroup/recvmsg4")
int na_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, NA_FAMILY_IPV4);
}

SEC("cgroup/recvmsg6")
int na_sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, NA_FAMILY_IPV6);
}

SEC("cgroup/getpeername4")
int na_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, NA_FAMILY_IPV4);
}

SEC("cgroup/getpeername6")
int na_sock6_getpeername(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, NA_FAMILY_IPV6);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
