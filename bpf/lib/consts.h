/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* consts.h: map sizes, parser limits and default lifetimes, each overridable with -D. */
#ifndef NA_CONSTS_H
#define NA_CONSTS_H

#include <stdbool.h>

#ifndef NA_ENDPOINTS_MAX_ENTRIES
#define NA_ENDPOINTS_MAX_ENTRIES 65535
#endif

#ifndef NA_IPCACHE_MAX_ENTRIES
#define NA_IPCACHE_MAX_ENTRIES 512000
#endif

/* Entries of the policy inner-map template (the kernel accepts inner maps of other sizes). */
#ifndef NA_POLICY_MAX_ENTRIES
#define NA_POLICY_MAX_ENTRIES 16384
#endif

#ifndef NA_CT_MAX_ENTRIES
#define NA_CT_MAX_ENTRIES 524288
#endif

#ifndef NA_FRAGS_MAX_ENTRIES
#define NA_FRAGS_MAX_ENTRIES 8192
#endif

/* Dropped flows whose last drop event time is remembered (least recently dropped go first). */
#ifndef NA_DROP_AGG_MAX_ENTRIES
#define NA_DROP_AGG_MAX_ENTRIES 16384
#endif

/* Ring buffer size in bytes: a power of two and a multiple of the page size. */
#ifndef NA_EVENTS_BYTES
#define NA_EVENTS_BYTES (1 << 20)
#endif

/* IPv6 extension headers walked before giving up on the packet as malformed. */
#ifndef NA_IPV6_MAX_EXT_HDRS
#define NA_IPV6_MAX_EXT_HDRS 8
#endif

/* In-band VLAN tags skipped (802.1Q and 802.1ad). */
#ifndef NA_VLAN_MAX_TAGS
#define NA_VLAN_MAX_TAGS 2
#endif

/* Deepest header offset read; keeps packet-pointer arithmetic bounded for the verifier. */
#ifndef NA_MAX_HDR_OFF
#define NA_MAX_HDR_OFF 2048
#endif

/* Conntrack lifetimes in seconds when na_config leaves them 0 (Cilium's defaults). */
#define NA_CT_DEFAULT_LIFETIME_TCP 8000
#define NA_CT_DEFAULT_LIFETIME_SYN 60
#define NA_CT_DEFAULT_LIFETIME_CLOSING 10
#define NA_CT_DEFAULT_LIFETIME_NONTCP 60

#define NA_NSEC_PER_SEC 1000000000ULL
#define NA_NSEC_PER_MSEC 1000000ULL

/* Ethertypes (host order). */
#define NA_ETH_P_IP 0x0800
#define NA_ETH_P_IPV6 0x86DD
#define NA_ETH_P_8021Q 0x8100
#define NA_ETH_P_8021AD 0x88A8
#define NA_ETH_HLEN 14
#define NA_VLAN_HLEN 4

/* IP protocol and IPv6 next-header numbers. */
#define NA_IPPROTO_HOPOPTS 0
#define NA_IPPROTO_ICMP 1
#define NA_IPPROTO_TCP 6
#define NA_IPPROTO_UDP 17
#define NA_IPPROTO_ROUTING 43
#define NA_IPPROTO_FRAGMENT 44
#define NA_IPPROTO_ESP 50
#define NA_IPPROTO_AH 51
#define NA_IPPROTO_ICMPV6 58
#define NA_IPPROTO_NONE 59
#define NA_IPPROTO_DSTOPTS 60
#define NA_IPPROTO_SCTP 132

/* ICMP types. */
#define NA_ICMP_ECHOREPLY 0
#define NA_ICMP_DEST_UNREACH 3
#define NA_ICMP_PORT_UNREACH 3      /* its code for a closed port */
#define NA_ICMP_SOURCE_QUENCH 4
#define NA_ICMP_REDIRECT 5
#define NA_ICMP_ECHO 8
#define NA_ICMP_TIME_EXCEEDED 11
#define NA_ICMP_PARAMETERPROB 12

/* ICMPv6 types. */
#define NA_ICMPV6_DEST_UNREACH 1
#define NA_ICMPV6_PORT_UNREACH 4    /* its code for a closed port */
#define NA_ICMPV6_ERROR_MAX 127     /* types 0-127 are errors */
#define NA_ICMPV6_ECHO_REQUEST 128
#define NA_ICMPV6_ECHO_REPLY 129
#define NA_ICMPV6_MLD_QUERY 130     /* 130-137: MLD, router/neighbor discovery, redirect */
#define NA_ICMPV6_ROUTER_ADVERT 134
#define NA_ICMPV6_NEIGH_ADVERT 136
#define NA_ICMPV6_ND_REDIRECT 137
#define NA_ICMPV6_MLD2_REPORT 143

/* TCP flag bits in byte 13 of the header. */
#define NA_TCP_FIN 0x01
#define NA_TCP_SYN 0x02
#define NA_TCP_RST 0x04
#define NA_TCP_ACK 0x10

#endif /* NA_CONSTS_H */
