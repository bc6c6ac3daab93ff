/*
 * libnl-3 (route) for the CNI plugin's rtnetlink calls, and the two things
 * around it that do not import into Swift: setns(2), which glibc declares
 * only under _GNU_SOURCE (defining that here would give glibc's types a
 * different shape than in the other C modules, which clang refuses), and
 * the IFF_* and RT_* values, which are enum members behind same-named macros.
 */
#ifndef CNETLINK_SHIM_H
#define CNETLINK_SHIM_H

#include <linux/sched.h>
#include <net/if.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/errno.h>
#include <netlink/cache.h>
#include <netlink/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/nexthop.h>

/* glibc's declaration, as <sched.h> has it under _GNU_SOURCE. */
extern int setns(int fd, int nstype);

/* Moves the calling thread into the network namespace `fd` refers to. */
static inline int cnl_setns_net(int fd)
{
	return setns(fd, CLONE_NEWNET);
}

static inline unsigned int cnl_iff_up(void)
{
	return IFF_UP;
}

static inline int cnl_rt_scope_link(void)
{
	return RT_SCOPE_LINK;
}

static inline int cnl_rt_scope_universe(void)
{
	return RT_SCOPE_UNIVERSE;
}

static inline int cnl_rt_table_main(void)
{
	return RT_TABLE_MAIN;
}

static inline int cnl_rtprot_boot(void)
{
	return RTPROT_BOOT;
}

#endif
