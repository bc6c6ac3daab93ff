/*
 * libnl-3 (route) for the rtnetlink calls of the Netlink module, the
 * sock_diag structures (raw NETLINK_SOCK_DIAG, which libnl has no API for), and the
 * things around it that do not import into Swift: setns(2), which glibc
 * declares only under _GNU_SOURCE (defining that here would give glibc's
 * types a different shape than in the other C modules, which clang refuses),
 * the IFF_* and RT_* values, which are enum members behind same-named macros,
 * and an error callback, which Swift cannot hand to libnl with its context.
 */
#ifndef CNETLINK_SHIM_H
#define CNETLINK_SHIM_H

#include <linux/sched.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
#include <netlink/netlink.h>
#include <netlink/errno.h>
#include <netlink/cache.h>
#include <netlink/attr.h>
#include <netlink/handlers.h>
#include <netlink/socket.h>
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

/*
 * The kernel's own answer to the last request it refused. libnl folds every
 * errno it has no code for (ENETUNREACH, EHOSTUNREACH, ...) into NLE_FAILURE,
 * "Unspecific failure", and drops the extended ack message.
 */
struct cnl_kernel_error {
	int error;		/* a positive errno, 0 when the kernel refused nothing */
	char message[256];	/* NLMSGERR_ATTR_MSG, empty when the kernel sent none */
};

/*
 * Records the error and its extended ack message, then stops as libnl's
 * default handler would (the caller still gets -nl_syserr2nlerr(error)).
 * libnl hands over the payload of the NLMSG_ERROR message; its header sits
 * right before it. The attributes follow the echoed request, which is only
 * its header when the kernel capped it (linux/netlink.h, NLM_F_ACK_TLVS).
 */
static inline int cnl_record_error(struct sockaddr_nl *who, struct nlmsgerr *err, void *arg)
{
	struct cnl_kernel_error *slot = arg;
	struct nlmsghdr *hdr = (struct nlmsghdr *)((char *)err - NLMSG_HDRLEN);
	size_t offset = sizeof(*err);
	struct nlattr *attrs, *attr;
	int len, rem;

	(void)who;
	slot->error = -err->error;
	slot->message[0] = '\0';
	if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS) || err->msg.nlmsg_len < NLMSG_HDRLEN)
		return NL_STOP;
	if (!(hdr->nlmsg_flags & NLM_F_CAPPED))
		offset += err->msg.nlmsg_len - NLMSG_HDRLEN;
	offset = NLMSG_ALIGN(offset);
	if (hdr->nlmsg_len <= NLMSG_HDRLEN + offset)
		return NL_STOP;
	attrs = (struct nlattr *)((char *)err + offset);
	len = (int)(hdr->nlmsg_len - NLMSG_HDRLEN - offset);
	nla_for_each_attr(attr, attrs, len, rem) {
		if (nla_type(attr) == NLMSGERR_ATTR_MSG) {
			nla_strlcpy(slot->message, attr, sizeof(slot->message));
			break;
		}
	}
	return NL_STOP;
}

/*
 * Asks the kernel for extended acks (a socket that cannot have them still
 * reports the errno) and records every refusal in `slot`, which must outlive
 * the socket.
 */
static inline int cnl_record_errors(struct nl_sock *sk, struct cnl_kernel_error *slot)
{
	int one = 1;

	(void)setsockopt(nl_socket_get_fd(sk), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	return nl_socket_modify_err_cb(sk, NL_CB_CUSTOM, cnl_record_error, slot);
}

#endif
