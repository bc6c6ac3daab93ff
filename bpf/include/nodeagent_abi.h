/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nodeagent_abi.h: every map key, map value, event record and code that both
 * the BPF programs and the agent read. It is the single definition of the
 * kernel/user ABI: the agent imports it through the CNodeABI module, so a
 * layout cannot drift between the two sides.
 */
#ifndef NODEAGENT_ABI_H
#define NODEAGENT_ABI_H

#include <linux/types.h>

/* Reserved security identities, numbered as Cilium numbers them. */
enum na_reserved_identity {
	NA_ID_UNKNOWN = 0,
	NA_ID_HOST = 1,
	NA_ID_WORLD = 2,
	NA_ID_UNMANAGED = 3,
	NA_ID_HEALTH = 4,
	NA_ID_INIT = 5,
	NA_ID_REMOTE_NODE = 6,
	NA_ID_KUBE_APISERVER = 7,
	NA_ID_INGRESS = 8,
	NA_ID_WORLD_IPV4 = 9,
	NA_ID_WORLD_IPV6 = 10,
};

/* First identity the node-local allocator hands out for label sets. */
#define NA_ID_ALLOC_MIN 256
/* Identities of CIDR prefixes live above this bit, as in Cilium. */
#define NA_ID_LOCAL_CIDR_BASE (1U << 24)

/* Direction from the endpoint's point of view. */
enum na_direction {
	NA_DIR_INGRESS = 0, /* towards the endpoint (tc egress of the host veth) */
	NA_DIR_EGRESS = 1,  /* from the endpoint (tc ingress of the host veth) */
};

/*
 * Verdict reasons. 0 means forwarded; every drop has a specific reason, with
 * Cilium's number where Cilium has the same reason. Programs return the
 * negated code internally (e.g. -NA_DROP_POLICY) and record the positive one.
 * 136-140 are ours: Cilium has no such reasons (its nearest, 176 "forbidden
 * ICMPv6 message", covers its host firewall), and uses 136-145 for others.
 */
enum na_reason {
	NA_REASON_FORWARDED = 0,
	NA_DROP_INVALID_SIP = 132,       /* source address is not the endpoint's */
	NA_DROP_POLICY = 133,            /* no rule allows it: default deny */
	NA_DROP_INVALID = 134,           /* truncated or malformed headers */
	NA_DROP_ICMP_NO_FLOW = 136,      /* ICMP(v6) error quoting no live flow of the endpoint */
	NA_DROP_ICMP_REDIRECT = 137,     /* ICMP or ICMPv6 redirect sent by the endpoint */
	NA_DROP_ND_ROUTER_ADVERT = 138,  /* router advertisement sent by the endpoint */
	NA_DROP_ND_TARGET = 139,         /* neighbor advertisement for an address not the endpoint's */
	NA_DROP_MLD_QUERY = 140,         /* MLD query sent by the endpoint: only routers query */
	NA_DROP_CT_CREATE_FAILED = 155,  /* conntrack map full */
	NA_DROP_FRAG_NOSUPPORT = 157,    /* non-first IP fragment without state */
	NA_DROP_NO_SERVICE = 158,        /* to a service frontend without a backend taking new flows */
	NA_DROP_NO_CONFIG = 165,         /* interface has no endpoint: fail closed */
	NA_DROP_NAT_NO_MAPPING = 167,    /* reply to a masqueraded flow without mapping */
	NA_DROP_POLICY_DENY = 181,       /* an explicit deny rule matched */
	NA_DROP_NAT_NO_PORT = 200,       /* no free port in the NAT range */
	/* HTTP requests refused by the L7 verdict (na_l7_*): ours, Cilium decides HTTP in a proxy. */
	NA_DROP_L7_POLICY = 230,         /* no HTTP rule allows the request */
	NA_DROP_L7_MALFORMED = 231,      /* request line or header not HTTP/1.x */
	NA_DROP_L7_HEAD_TOO_LARGE = 232, /* request head over the limit */
	NA_DROP_L7_PROTOCOL = 233,       /* HTTP/2, TLS or an upgrade on a port with HTTP rules */
	NA_DROP_L7_AMBIGUOUS_PATH = 234, /* dot segments, encoded dots or slashes, duplicate slashes */
	NA_DROP_L7_FRAMING = 235,        /* unsupported Transfer-Encoding, or it together with Content-Length */
	NA_DROP_L7_CONN_DENIED = 236,    /* bytes after a refused request on the same connection */
	/* Ours: Cilium forwards such a flow to the other node (SNAT or DSR). */
	NA_DROP_LB_REMOTE_BACKEND = 245, /* a client outside to a service backend on another node: not forwarded yet */
};

/* Address families as carried in keys (same values as AF_INET / AF_INET6). */
#define NA_FAMILY_IPV4 2
#define NA_FAMILY_IPV6 10

/*
 * ipcache: LPM trie from IP prefix to security identity. prefixlen counts the
 * bits after it: 8 (family) + 24 (pad) + the address prefix, so lookups for a
 * family never match another family's prefixes. IPv4 uses addr[0..3].
 */
struct na_ipcache_key {
	__u32 prefixlen;
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

#define NA_IPCACHE_PREFIX_BASE 32

struct na_ipcache_value {
	__u32 identity;
	__u32 flags;
};

/*
 * na_ipcache_v4: the IPv4 host entries of na_ipcache_host again, in 64-byte buckets of
 * NA_IPCACHE_V4_WAYS entries that an address's hash picks (na_ipcache_v4_bucket_of),
 * so a known peer costs the datapath one bucket where a hash lookup reads
 * its bucket and then its element. (An array map's values start 56 bytes into a
 * cache line on 6.18, so each bucket spans two lines; aligned buckets measured no
 * faster, BENCHMARKS.md §2.) An entry counts only while
 * NA_IPCACHE_V4_VALID is set in its identity word, which programs read before
 * the address. A withdrawn entry keeps NA_IPCACHE_V4_STALE until an RCU grace
 * period has passed, and is not reused before. Addresses a full bucket has no
 * room for are in na_ipcache_host only, where programs look on a miss.
 */
#define NA_IPCACHE_V4_BUCKET_BITS 16
#define NA_IPCACHE_V4_BUCKETS (1U << NA_IPCACHE_V4_BUCKET_BITS)
#define NA_IPCACHE_V4_WAYS 8
#define NA_IPCACHE_V4_VALID (1U << 31)
#define NA_IPCACHE_V4_STALE (1U << 30)
/* Identities at or above it are not kept in the table (none are: identities are 24-bit, local CIDR ones 1 << 24). */
#define NA_IPCACHE_V4_IDENTITY_MASK (NA_IPCACHE_V4_STALE - 1)

struct na_ipcache_v4_entry {
	__u32 identity;  /* with NA_IPCACHE_V4_VALID or NA_IPCACHE_V4_STALE */
	__u32 addr;      /* the address's four bytes in packet order, loaded as the CPU loads them */
};

struct na_ipcache_v4_bucket {
	struct na_ipcache_v4_entry entries[NA_IPCACHE_V4_WAYS];
};

/* The bucket of an address (its four bytes as na_ipcache_v4_entry.addr holds them): Fibonacci hashing. */
static inline __u32 na_ipcache_v4_bucket_of(__u32 addr)
{
	return (addr * 0x9E3779B1U) >> (32 - NA_IPCACHE_V4_BUCKET_BITS);
}

/*
 * na_ipcache_v6: the IPv6 host entries of na_ipcache_host again, three to a 64-byte bucket that
 * na_ipcache_v6_bucket_of picks; in every other way as na_ipcache_v4 (the same valid and stale bits in the identity
 * word, read before the address; an address a full bucket has no room for is in na_ipcache_host only).
 */
#define NA_IPCACHE_V6_BUCKET_BITS 16
#define NA_IPCACHE_V6_BUCKETS (1U << NA_IPCACHE_V6_BUCKET_BITS)
#define NA_IPCACHE_V6_WAYS 3

struct na_ipcache_v6_entry {
	__u32 identity;  /* with NA_IPCACHE_V4_VALID or NA_IPCACHE_V4_STALE */
	__u32 addr[4];   /* the address's sixteen bytes in packet order, as four words loaded as the CPU loads them */
};

struct na_ipcache_v6_bucket {
	struct na_ipcache_v6_entry entries[NA_IPCACHE_V6_WAYS];
	__u32 pad;
};

/* The finish of the tables' multiply-xorshift hashes: every input bit reaches the top bits the buckets take. */
static inline __u32 na_hash_mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x7FEB352DU;
	return h ^ (h >> 15);
}

/* The bucket of an address (its four words as na_ipcache_v6_entry.addr holds them): a multiply-xorshift mix. */
static inline __u32 na_ipcache_v6_bucket_of(__u32 a0, __u32 a1, __u32 a2, __u32 a3)
{
	__u32 h = a0 * 0x9E3779B1U ^ a1 * 0x85EBCA77U ^ a2 * 0xC2B2AE3DU ^ a3 * 0x27D4EB2FU;

	return na_hash_mix32(h) >> (32 - NA_IPCACHE_V6_BUCKET_BITS);
}

/* na_endpoint_info.flags */
#define NA_EP_ENFORCE_INGRESS (1U << 0)
#define NA_EP_ENFORCE_EGRESS (1U << 1)
#define NA_EP_HAS_IPV4 (1U << 2)
#define NA_EP_HAS_IPV6 (1U << 3)
#define NA_EP_SLOT_VALID (1U << 31)  /* na_ep_slots only: the slot holds the interface's row */

/*
 * na_ep_slots: the rows of na_endpoints again, in an array indexed by
 * ifindex (below NA_EP_SLOTS), whose lookup the verifier inlines where a hash
 * lookup is a function call. A slot counts only while NA_EP_SLOT_VALID is set;
 * otherwise, and for higher ifindexes, the programs read na_endpoints. An
 * array element is rewritten in place, not swapped as a hash element is, so
 * the agent never changes a slot a packet may be reading: it clears the bit
 * (a one-byte change) before the row changes in na_endpoints, lets an RCU
 * grace period pass, then writes the new row and sets the bit again.
 */
#define NA_EP_SLOTS 65536

/*
 * Endpoint table keyed by the ifindex of the host-side interface.
 * policy_revision is the endpoint's policy generation: it moves (never back)
 * when its enforcement flags change or its policy map changes in a way that
 * can refuse a flow it allowed (an entry removed or changed, a deny entry
 * added; allow entries of new keys leave it), and conntrack entries remember
 * the generation they were allowed under.
 */
struct na_endpoint_info {
	__u32 ep_id;
	__u32 identity;
	__u32 flags;
	__u32 policy_revision;
	__u8 ipv4[4];
	__u8 ipv6[16];
};

/*
 * na_local_routes (local_delivery.h): a per-CPU cache of the node's routing answers for packets deliver_local
 * handed to another endpoint, in NA_LOCAL_ROUTE_SLOTS slots an answer's (destination, incoming interface) hash
 * picks. A slot answers only within the clock period it was written in (bpf_ktime_get_coarse_ns() >> 30, about a
 * second) and while the endpoint row of out_ifindex still has ep_id; family 0 never answers.
 */
#define NA_LOCAL_ROUTE_BITS 8
#define NA_LOCAL_ROUTE_SLOTS (1U << NA_LOCAL_ROUTE_BITS)
#define NA_LOCAL_ROUTE_PERIOD_SHIFT 30

struct na_local_route {
	__u32 dst[4];       /* destination address in packet order (IPv4: dst[0]) */
	__u32 in_ifindex;   /* the interface the packet came in on */
	__u32 out_ifindex;  /* the endpoint's host-side interface the node routes it to */
	__u32 ep_id;        /* the endpoint behind out_ifindex when the answer was written */
	__u32 period;       /* clock period of the answer */
	__u32 mtu;          /* out_ifindex's MTU */
	__u8 family;        /* AF_INET, AF_INET6; 0: empty */
	__u8 pad[3];
	__u8 smac[6];       /* out_ifindex's MAC */
	__u8 dmac[6];       /* the destination's MAC, from the node's neighbor table */
};

/*
 * Per-endpoint policy map (inner map of the policy hash-of-maps, keyed by
 * endpoint id): an LPM trie. prefixlen covers identity and direction (40
 * bits), then protocol (8 bits), then 0-16 bits of the destination port, so a
 * port range is a set of prefixes and "any protocol" is prefix 40.
 * Identity 0 in a key means any peer.
 */
struct na_policy_key {
	__u32 prefixlen;
	__u32 identity;  /* network byte order, so the trie orders by it */
	__u8 direction;  /* enum na_direction */
	__u8 protocol;   /* IPPROTO_*, meaningful from prefixlen 48 */
	__be16 dport;    /* meaningful from prefixlen 56 */
};

#define NA_POLICY_PREFIX_FULL 40   /* identity + direction */
#define NA_POLICY_PREFIX_PROTO 48  /* ... + protocol */
#define NA_POLICY_PREFIX_PORT 64   /* ... + all 16 port bits */

/* na_policy_value.flags */
#define NA_POLICY_DENY (1U << 0)

struct na_policy_value {
	__u32 rule_id;  /* agent's number for the rule that produced the entry */
	__u32 flags;
};

/*
 * na_ptable: the full-length keys of every endpoint's policy hash (na_policy_exact) again, four to a
 * 64-byte bucket that na_policy_table_bucket_of picks, so a new peer's verdict costs one bucket where a hash
 * lookup reads a bucket and then an element. As in na_ipcache_v4, an entry counts only while
 * NA_POLICY_TABLE_VALID is set in its first word, which programs read before the rest; a withdrawn entry stays
 * NA_POLICY_TABLE_STALE until an RCU grace period has passed. A key a full bucket has no room for stays in the
 * hash only, and its bucket's bit in na_ptable_ovf is set. A miss goes on to the hash when that bit is set, or
 * when na_ptable_ep does not say the endpoint is NA_POLICY_TABLE_COMPLETE (while the agent restores, every key
 * of every hash is in the table or in an overflowed bucket's hash).
 */
#define NA_POLICY_TABLE_BUCKET_BITS 17
#define NA_POLICY_TABLE_BUCKETS (1U << NA_POLICY_TABLE_BUCKET_BITS)
#define NA_POLICY_TABLE_WAYS 4
#define NA_POLICY_TABLE_VALID (1U << 31)
#define NA_POLICY_TABLE_STALE (1U << 30)
#define NA_POLICY_TABLE_DENY (1U << 29)
/* The key part of meta: direction in bit 24, protocol in bits 16-23, the port's two bytes as the packet has them. */
#define NA_POLICY_TABLE_KEY_MASK 0x1FFFFFFU

/* na_ptable_ep values: unknown (a miss goes on to the hash), or complete. */
#define NA_POLICY_TABLE_UNKNOWN 0
#define NA_POLICY_TABLE_COMPLETE 1
/* na_ptable_ovf: a bit per bucket, 64 to an element. */
#define NA_POLICY_TABLE_OVF_WORDS (NA_POLICY_TABLE_BUCKETS / 64)

/*
 * na_ptable_ports: a bit per direction, protocol and port (host order) that some endpoint's full-length key names,
 * in na_ptable or in its hash, so that a new flow to a port no such key names reads neither: ranges and any-peer
 * keys are in the trie, which is asked as before. A bit is set before the first key that names it is written and
 * cleared after the last such key is gone: when the agent rebuilds the map at start, or refreshes the bits of
 * withdrawn keys while no policy write runs. Word NA_POLICY_PORTS_COMPLETE is nonzero once the map
 * holds the bit of every key the maps hold; until then (a map new on this node, an agent restoring) every port
 * counts as named.
 */
#define NA_POLICY_PORTS_WORDS 8192  /* 2 directions x 4 protocol classes x 65,536 ports, 64 to a word */
#define NA_POLICY_PORTS_COMPLETE NA_POLICY_PORTS_WORDS

/* A port's bit in na_ptable_ports: TCP, UDP and SCTP have their own 65,536; every other protocol shares a fourth. */
static inline __u32 na_policy_port_bit(__u8 direction, __u8 protocol, __u16 port)
{
	__u32 class = protocol == 6 ? 0 : protocol == 17 ? 1 : protocol == 132 ? 2 : 3;

	return (__u32)(direction & 1) << 18 | class << 16 | port;
}

/*
 * na_ptable_peers: a Bloom filter of the (port, peer identity) pairs that full-length keys name, in na_ptable or
 * in a hash, so that a new flow from or to a peer no such key names on a named port skips both as well: a denied
 * peer costs its ipcache line alone. Each port (its na_ptable_ports bit) has a line of 8 words, shared with the
 * ports whose bits hash to it; each pair two bits of one word of its port's line, which a filter read finds in the
 * same cache line as the port's other peers. As in na_ptable_ports, bits are set before the first key that names
 * the pair is written and cleared after the last such key is gone (a rebuild, or a refresh of the lines of
 * withdrawn keys), and word
 * NA_POLICY_PEERS_COMPLETE is nonzero once the map holds the bits of every key; until then every pair counts as
 * named. A pair whose bits are set may still have no key (bits of other pairs): then the table and the hash say so.
 */
#define NA_POLICY_PEERS_LINE_BITS 13
#define NA_POLICY_PEERS_WORDS (8U << NA_POLICY_PEERS_LINE_BITS)  /* 8,192 lines of 8 words: 512 KiB */
#define NA_POLICY_PEERS_COMPLETE NA_POLICY_PEERS_WORDS

/* A port's line in na_ptable_peers (its na_ptable_ports bit's top bits after a Fibonacci multiply). */
static inline __u32 na_policy_peer_line(__u32 port_bit)
{
	return (port_bit * 0x9E3779B1U) >> (32 - NA_POLICY_PEERS_LINE_BITS);
}

/*
 * Bit `which` (0 or 1) of a pair in na_ptable_peers: in the port's line, the word and both bits from the pair mixed
 * (a multiply-xorshift finalizer). Both bits are in one word.
 */
static inline __u32 na_policy_peer_bit(__u32 port_bit, __u32 identity, __u32 which)
{
	__u32 line = na_policy_peer_line(port_bit);
	__u32 h = na_hash_mix32(identity * 0x85EBCA77U ^ port_bit * 0xC2B2AE3DU);

	return (line * 8 + (h & 7)) * 64 + ((h >> (3 + 6 * (which & 1))) & 63);
}

struct na_policy_table_entry {
	__u32 meta;      /* NA_POLICY_TABLE_VALID / _STALE / _DENY and na_policy_table_key */
	__u32 identity;  /* the peer's, host order */
	__u32 ep_id;
	__u32 rule_id;
};

struct na_policy_table_bucket {
	struct na_policy_table_entry entries[NA_POLICY_TABLE_WAYS];
};

/* The key part of an entry's meta word; dport as in na_policy_key (network order, loaded as the CPU loads it). */
static inline __u32 na_policy_table_key(__u8 direction, __u8 protocol, __u16 dport)
{
	return (__u32)(direction & 1) << 24 | (__u32)protocol << 16 | dport;
}

/* The bucket of a key: its three parts mixed (a multiply-xorshift finalizer), then the top bits. */
static inline __u32 na_policy_table_bucket_of(__u32 ep_id, __u32 identity, __u32 key)
{
	__u32 h = identity * 0x9E3779B1U ^ ep_id * 0x85EBCA77U ^ key * 0xC2B2AE3DU;

	return na_hash_mix32(h) >> (32 - NA_POLICY_TABLE_BUCKET_BITS);
}

/*
 * na_ptable_bits: a bit per peer identity for the keys of one endpoint, key (na_policy_table_key) and group of
 * 256 identities (identity >> 8) that share a rule and a verdict, in one 64-byte block read before na_ptable: a
 * new flow of any of the group's peers finds its verdict in a line the group's other peers keep warm, where the
 * table's bucket is one line per peer. A set bit says the endpoint's hash holds the key with the block's rule and
 * verdict (set after the key is written, cleared before it leaves or changes); a clear bit says nothing, and the
 * lookup goes on to na_ptable. meta is an na_policy_table_entry's (VALID, STALE, DENY and the key), read first;
 * the rest only while VALID is set. A block's bits change in place; its tag never does: a block is withdrawn
 * (STALE) when its last bit clears, and its slot serves another tag only after an RCU grace period.
 *
 * Slots come in pages of 64: an endpoint and key's groups of 16,384 identities share a page, each group in the slot
 * its number picks there (rotated by the page's hash, so the pages' other tags take other slots). A tag whose slot
 * holds another is left to na_ptable.
 */
#define NA_POLICY_BLOCK_PAGE_BITS 9
#define NA_POLICY_BLOCKS (64U << NA_POLICY_BLOCK_PAGE_BITS)
#define NA_POLICY_BLOCK_GROUP_BITS 8

struct na_policy_block {
	__u32 meta;     /* as na_policy_table_entry's */
	__u32 ep_id;
	__u32 group;    /* identity >> NA_POLICY_BLOCK_GROUP_BITS */
	__u32 rule_id;
	__u64 bits[4];  /* bit identity & 255: bits[(identity >> 6) & 3], bit identity & 63 */
	__u64 pad[2];
};

/* The slot of a key's block in na_ptable_bits. */
static inline __u32 na_policy_block_of(__u32 ep_id, __u32 identity, __u32 key)
{
	__u32 h = na_hash_mix32((identity >> 14) * 0x9E3779B1U ^ ep_id * 0x85EBCA77U ^ key * 0xC2B2AE3DU);

	return (h >> (32 - NA_POLICY_BLOCK_PAGE_BITS)) << 6 | (((identity >> NA_POLICY_BLOCK_GROUP_BITS) + h) & 63);
}

/* Conntrack key: a 5-tuple as seen at the enforcement point plus direction. */
struct na_ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 direction;  /* enum na_direction of the packet that created it */
	__u8 pad;
};

/*
 * na_ct_value.flags. A TCP entry counts as established (long lifetime) once
 * it has seen a packet without SYN in either direction and a reply; it is
 * closing (short lifetime) from the first FIN or RST on.
 */
#define NA_CT_SEEN_NON_SYN (1U << 0)
#define NA_CT_CLOSING (1U << 1)
#define NA_CT_SEEN_REPLY (1U << 2)
#define NA_CT_NAT (1U << 3)
/* The flow's latest packet from the pod went to a service frontend (lb_xlate.h): replies get the frontend back. */
#define NA_CT_SERVICE (1U << 4)
/*
 * An ingress entry whose opening packet deliver_local handed to the pod (local_delivery.h): its replies may go
 * the same way. Replies of a flow the node's stack delivered take the stack back, where its netfilter NAT (a
 * kube-proxy ClusterIP, a hostPort) gives them the address their client sent to.
 */
#define NA_CT_DIRECT (1U << 5)

struct na_ct_value {
	__u32 lifetime;      /* absolute expiry, CLOCK_MONOTONIC seconds */
	__u32 ep_id;         /* endpoint that owns the entry */
	__u32 src_identity;  /* remote identity when the entry was created */
	__u32 rule_id;       /* rule that allowed it (0: not enforced) */
	__u32 flags;
	__u32 created;       /* CLOCK_MONOTONIC seconds */
	__u32 policy_revision;  /* endpoint's policy generation the flow was last allowed under */
	__u32 pad;
	__u64 packets;
	__u64 bytes;
};

/*
 * The conntrack sweep's arguments and results (ct_gc.bpf.c, run by the agent with BPF_PROG_TEST_RUN): entries whose
 * lifetime is before now are deleted in the kernel. With check_owners set, entries whose endpoint has no bit in
 * na_ct_gc_owners (the agent's live endpoints when the sweep started) are counted as suspects, for the agent to
 * confirm and delete.
 */
struct na_ct_sweep_args {
	__u32 now;           /* CLOCK_MONOTONIC seconds */
	__u32 check_owners;
	__u64 scanned;
	__u64 expired;       /* deleted */
	__u64 suspects;      /* alive, owned by an endpoint not in the owners bitmap (or with an id beyond it) */
	__u64 delete_failed; /* expired, but already gone when deleted (the datapath or a flush raced the sweep) */
};

#define NA_CT_GC_OWNER_IDS 65536 /* endpoint ids the owners bitmap covers: 0 to 65535 */

struct na_ct_gc_owners {
	__u8 bits[NA_CT_GC_OWNER_IDS / 8]; /* bit (id % 8) of byte (id / 8): endpoint id is live */
};

/*
 * Runtime configuration, one element of an array map written by the agent.
 * A lifetime of 0 means the default (8000/60/10/60 s as in Cilium). An element
 * that is all zero (never written) means defaults with drop events on; once
 * any lifetime or flag is set, flags are taken as written.
 */
#define NA_CFG_EVENTS_ALLOWED (1U << 0)  /* emit a flow event for allowed new flows */
#define NA_CFG_EVENTS_DROPPED (1U << 1)  /* emit flow events for drops */
#define NA_CFG_LOCALHOST_POLICY (1U << 2)  /* the node's traffic meets ingress policy */

struct na_config {
	__u32 ct_lifetime_tcp;      /* established TCP, seconds */
	__u32 ct_lifetime_syn;      /* TCP before the handshake completes */
	__u32 ct_lifetime_closing;  /* TCP after FIN or RST */
	__u32 ct_lifetime_nontcp;   /* UDP, ICMP, others */
	__u32 flags;
	__u32 allowed_sample_rate;  /* 1 in N allowed new flows produces an event */
	__u32 ct_pressure_pct;      /* signal GC when a sweep-worthy fraction is reached */
	__u32 drop_event_interval_ms;  /* one drop event per flow and reason per interval; 0: all */
};

/*
 * Metrics: per-CPU packet and byte counters in an array, one slot per
 * (reason, direction): counting a packet indexes an array where a hash keyed
 * by the pair had to hash and compare on every packet. Every reason is below
 * NA_METRICS_REASONS; a slot that never counted anything stays zero.
 */
#define NA_METRICS_REASONS 256
#define NA_METRICS_SLOTS (2 * NA_METRICS_REASONS)

/* A (reason, direction) pair, as the readers name a slot. */
struct na_metrics_key {
	__u16 reason;    /* enum na_reason */
	__u8 direction;  /* enum na_direction */
	__u8 pad;
};

static inline __u32 na_metrics_slot(__u16 reason, __u8 direction)
{
	return (__u32)(direction & 1) * NA_METRICS_REASONS + (reason % NA_METRICS_REASONS);
}

static inline struct na_metrics_key na_metrics_key_of_slot(__u32 slot)
{
	struct na_metrics_key key = {
		.reason = (__u16)(slot % NA_METRICS_REASONS),
		.direction = (__u8)(slot / NA_METRICS_REASONS),
	};

	return key;
}

struct na_metrics_value {
	__u64 packets;
	__u64 bytes;
};

/* Flow event verdicts. */
enum na_verdict {
	NA_VERDICT_FORWARDED = 0,
	NA_VERDICT_DROPPED = 1,
};

/* Flow event records: an L3/L4 verdict, or an HTTP request decision (na_l7_event). */
enum na_event_kind {
	NA_EVENT_L34 = 0,
	NA_EVENT_L7_HTTP = 1,
};

/* Ring-buffer record for one verdict. */
struct na_flow_event {
	__u64 timestamp_ns;  /* CLOCK_MONOTONIC */
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 direction;
	__u8 verdict;         /* enum na_verdict */
	__u16 reason;         /* enum na_reason */
	__u16 kind;           /* enum na_event_kind: which record this header starts */
	__u32 ep_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id;
	__u32 ifindex;
	__u32 length;
};

/*
 * Drop event aggregation: one LRU entry per dropped flow (5-tuple, direction,
 * reason, endpoint) holding when its last drop event was written.
 */
struct na_drop_agg_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 direction;
	__u8 pad;
	__u16 reason;  /* enum na_reason */
	__u16 pad2;
	__u32 ep_id;
};

/*
 * Flow event accounting, one per-CPU element: events written to the ring
 * buffer, and events lost because the ring buffer was full.
 */
struct na_event_stats {
	__u64 emitted;
	__u64 lost;
};

/*
 * IP fragment tracking: the first fragment of a datagram records its ports,
 * so later fragments (which carry no L4 header) get the same verdict path.
 * IPv4 uses the 16-bit id in the low bits of id.
 */
struct na_frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

struct na_frag_value {
	__be16 sport;
	__be16 dport;
	__u8 kind;  /* how the first fragment was classified (datapath-internal) */
	__u8 pad[3];
};

/*
 * NAT (masquerading of pod traffic leaving the node). A mapping has two
 * entries in na_nat, both keyed by struct na_ct_key: the forward half under
 * the original tuple with direction NA_DIR_EGRESS (the same key as the flow's
 * conntrack entry), and the reverse half under the tuple replies carry after
 * translation, with direction NA_DIR_INGRESS. Both halves carry the flow's
 * state and lifetime; they are created and deleted together.
 */
#define NA_NAT_TRACKED (1U << 8)  /* the flow had an endpoint conntrack entry when mapped */

struct na_nat_entry {
	__u8 addr[16];   /* forward half: translated source; reverse half: original source */
	__be16 port;     /* the port (ICMP echo id) that goes with addr */
	__u16 pad;
	__u32 flags;     /* the flow's NA_CT_* state flags, and NA_NAT_TRACKED */
	__u32 created;   /* CLOCK_MONOTONIC seconds */
	__u32 lifetime;  /* absolute expiry, CLOCK_MONOTONIC seconds */
};

/* na_nat_config.flags */
#define NA_NAT_CFG_ENABLED (1U << 0)

/* NAT configuration, one element of an array map written by the agent. */
struct na_nat_config {
	__u32 flags;      /* NA_NAT_CFG_*; all zero (never written) means NAT is off */
	__u8 ipv4[4];     /* node address masqueraded flows leave with */
	__u16 port_min;   /* first port of the range, host order */
	__u16 port_max;   /* last port of the range (inclusive), host order */
	__u32 ifindex;    /* the external interface the programs are attached to */
};

/*
 * Socket load balancing (sock.bpf.c, cgroup connect/sendmsg/recvmsg/
 * getpeername hooks). na_lb_services maps a frontend and a slot to slot 0, the
 * service, or to a backend slot holding a backend id; na_lb_backends maps the
 * id to the backend's address. Backend slots come in two banks (slot numbers
 * with and without NA_LB_SLOT_BANK1): the agent writes a new set into the bank
 * not in use, then flips slot 0 in one element update, so no lookup ever sees
 * a half-written set. Within a bank, slots 1..count hold the backends taking
 * new connections, each in as many slots as its weight asks (weights divided
 * by their greatest common divisor, scaled down when they exceed a bank), so a
 * random slot picks them in proportion to their weights; slots
 * count+1..count+inactive hold, once each, the ones that only keep theirs.
 * Addresses are 16 bytes (IPv4 in the first four), ports in network order.
 */
struct na_lb_service_key {
	__u8 addr[16];   /* the frontend */
	__u8 family;     /* NA_FAMILY_* */
	__u8 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	__be16 port;
	__u16 slot;      /* 0: the service; otherwise a backend slot of a bank */
	__u16 pad;
};

/* Slot numbers of bank 1 carry this bit; bank 0's slots are 1..NA_LB_MAX_BACKENDS. */
#define NA_LB_SLOT_BANK1 0x8000
/* Backends one service can hold (both states together): what one bank has room for. */
#define NA_LB_MAX_BACKENDS 0x7fff

/* na_lb_service_value.flags (slot 0) */
#define NA_LB_F_BANK1 (1U << 0)  /* the backend slots in use are bank 1's */
#define NA_LB_F_EXTERNAL (1U << 1)  /* NodePort, ExternalIPs, LoadBalancer: also for traffic from outside */

struct na_lb_service_value {
	__u32 backend_id;        /* backend slots: the backend */
	__u32 service_id;        /* slot 0: the API's id, also the reverse translation's */
	__u32 affinity_timeout;  /* slot 0: ClientIP affinity in seconds, 0 for none (see na_lb_affinity) */
	__u16 count;             /* slot 0: slots of the backends taking new connections */
	__u16 inactive;          /* slot 0: backends after them that keep only their connections */
	__u16 position;          /* backend slots: the backend's place in the service's list */
	__u16 flags;             /* slot 0: NA_LB_F_* */
};

/*
 * na_lb_ports: the ports some frontend serves, one bit per protocol and port,
 * so that from_endpoint looks a packet up in na_lb_services only when its
 * destination port is one of them. Bit (port % 64) of word
 * NA_LB_PORT_WORD(proto, port) is set while a TCP (UDP) frontend has that port
 * (host order). Word NA_LB_PORTS_COMPLETE is nonzero once the agent has written
 * the bit of every frontend the maps hold; until then (a map new on this node)
 * every packet is looked up, as if each bit were set.
 */
#define NA_LB_PORT_WORDS 1024  /* 65,536 ports in 64-bit words */
#define NA_LB_PORT_WORD(proto, port) (((proto) == 17 /* UDP */ ? NA_LB_PORT_WORDS : 0) + ((port) >> 6))
#define NA_LB_PORTS_COMPLETE (2 * NA_LB_PORT_WORDS)

/* A backend's state, numbered in the order of the API's names. */
enum na_lb_backend_state {
	NA_LB_BACKEND_ACTIVE = 0,
	NA_LB_BACKEND_TERMINATING = 1,
	NA_LB_BACKEND_QUARANTINED = 2,
	NA_LB_BACKEND_MAINTENANCE = 3,
};

/* na_lb_backends: backend id -> where connections go. */
struct na_lb_backend {
	__u8 addr[16];
	__u8 family;     /* NA_FAMILY_*, the frontend's */
	__u8 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	__be16 port;
	__u8 state;      /* enum na_lb_backend_state */
	__u8 pad;
	__u16 weight;    /* the API's weight (0 takes no new connections); the slots apply it */
};

/*
 * na_lb_revnat (LRU): a socket (its cookie) and the backend it was sent to ->
 * the frontend it asked for, so recvmsg and getpeername show the service.
 */
struct na_lb_revnat_key {
	__u64 cookie;
	__u8 addr[16];   /* the backend */
	__u8 family;
	__u8 pad;
	__be16 port;
	__u32 pad2;
};

struct na_lb_revnat_value {
	__u8 addr[16];   /* the frontend */
	__u8 family;
	__u8 pad;
	__be16 port;
	__u32 service_id;
};

/*
 * na_lb_affinity (LRU): ClientIP session affinity. A connect does not know its
 * source address yet, so the client is its network namespace (its cookie, one
 * per pod): a pod and a service -> the backend it was sent to and when. A pod
 * connecting again within the service's affinity_timeout gets the same backend
 * while na_lb_aff_match says it still takes the service's new connections.
 */
struct na_lb_affinity_key {
	__u64 netns_cookie;  /* bpf_get_netns_cookie */
	__u32 service_id;
	__u32 pad;
};

struct na_lb_affinity_value {
	__u32 backend_id;
	__u32 last_used;     /* CLOCK_MONOTONIC seconds of the last connect through it */
};

/*
 * na_lb_aff_ip (LRU): ClientIP session affinity where a packet is translated
 * (lb_xlate.h: pods outside the cgroup root, clients outside the node): the
 * client is its source address, as in Cilium's per-packet path. A client
 * address and a service -> the backend and when, checked as na_lb_affinity's.
 */
struct na_lb_aff_ip_key {
	__u8 addr[16];       /* the client; IPv4 in the first four bytes */
	__u32 service_id;
	__u8 family;
	__u8 pad[3];
};

/*
 * na_lb_aff_match: a backend and a service -> 1 while the backend takes
 * the service's new connections (active, weight above 0). Written by the agent
 * with each backend set: slots alone cannot answer "is it still a backend of
 * this service" without a walk over them, and backend entries are shared by
 * every service listing the same address. (Short for "affinity match": the
 * kernel keeps 15 characters of a map's name.)
 */
struct na_lb_aff_match_key {
	__u32 backend_id;
	__u32 service_id;
};

/*
 * Per-packet service translation in the endpoint programs (lb_xlate.h), for
 * traffic that passed no socket hook. from_endpoint rewrites a packet to a
 * frontend (na_lb_services) to a backend before conntrack and policy, which
 * therefore see the backend; to_endpoint rewrites the source of the replies
 * back to the frontend once they are allowed. A flow's backend lives in
 * na_lb_flows (LRU), two entries keyed by struct na_ct_key as na_nat's are:
 * the forward half under the tuple the pod sent (to the frontend, direction
 * NA_DIR_EGRESS) holds the backend, the reverse half under the tuple of the
 * replies (from the backend, direction NA_DIR_INGRESS) holds the frontend.
 * Later packets of the flow keep the backend while its id still names that
 * address and port and the frontend is still the same service; otherwise a
 * new one is chosen. The flow's conntrack entry (under the translated tuple)
 * carries NA_CT_SERVICE while the pod's packets on that tuple are translated,
 * and only replies matching such an entry are translated back: a reverse half
 * the LRU still holds after the flow ended never touches a later flow that
 * reuses the tuple without the service. A packet to a frontend with no backend
 * taking new flows counts as a drop with NA_DROP_NO_SERVICE and is answered
 * with a refusal (lb_reject.h).
 */
struct na_lb_flow {
	__u8 addr[16];       /* forward half: the backend; reverse half: the frontend */
	__be16 port;         /* the port that goes with addr */
	__u16 pad;
	__u32 backend_id;    /* the backend's id in na_lb_backends */
	__u32 service_id;    /* the service's id (na_lb_service_value.service_id) */
	__u32 pad2;
};

/*
 * Maglev consistent hashing (na_lb_maglev, a hash of maps): service id -> an
 * array of __u32 whose element 0 holds the table size M (a prime) and
 * elements 1..M the backend id of each table position. A new flow of a
 * service with a table takes the backend at 1 + hash(5-tuple) % M; services
 * without one pick a random backend slot. The agent builds a new array for
 * every change and installs it with one update of the outer map, so a lookup
 * sees the old table or the new one, never a mix.
 */
#define NA_LB_MAGLEV_SIZE_INDEX 0
/* The largest table size M the agent writes (a prime). */
#define NA_LB_MAGLEV_MAX_SIZE 131071

/*
 * L7 HTTP enforcement in the kernel. The sockops program (cgroup v2 root)
 * enrolls every server socket whose local address and port have an entry in
 * na_l7_ports into na_l7_socks (a sockhash keyed by the socket cookie). The
 * sk_skb stream parser frames the byte stream into HTTP/1.x requests (head,
 * then body by Content-Length or chunks) and the stream verdict decides each
 * head before the application can read it: a request passes if the peer is
 * unrestricted on the port or some rule in its rule mask matches; otherwise
 * the head is rewritten into a 403 sent back on the same socket and every
 * later byte of the connection is dropped.
 *
 * Rules are grouped in rulesets (one per endpoint port with HTTP rules). The
 * agent writes a new ruleset under a fresh id (its peers, rules and DFA
 * states) and then flips the port's entry to it, so a request sees the old
 * ruleset or the new one, never a mix; the old id's entries are then removed.
 */
#define NA_L7_MAX_RULES 64            /* rules per ruleset: bits of na_l7_peer_value.rules */
#define NA_L7_MAX_HEADER_REQS 4       /* header requirements per rule */
#define NA_L7_HEADER_NAME_MAX 64
#define NA_L7_HEADER_VALUE_MAX 128
#define NA_L7_HEAD_MAX 16384          /* request head limit (bytes, request line included) */
#define NA_L7_HOLD_MAX_ENTRIES 4096   /* connections with an unfinished head held at once */
#define NA_L7_DFA_MAX_STATES 16384    /* na_l7_dfa entries; state 0 is the dead state */
#define NA_L7_EVENT_METHOD_MAX 16
#define NA_L7_EVENT_PATH_MAX 128
#define NA_L7_EVENT_HOST_MAX 64

/* na_l7_ports (hash): an endpoint's address and TCP port with HTTP rules -> its ruleset. */
struct na_l7_port_key {
	__u8 addr[16];   /* IPv4 in the first 4 bytes, rest zero */
	__be16 port;
	__u8 family;     /* NA_FAMILY_IPV4 / NA_FAMILY_IPV6 */
	__u8 pad;
};

struct na_l7_port_value {
	__u32 ruleset;
	__u32 ep_id;
	__u32 ep_identity;
	__u16 dfa_base;   /* the ruleset's DFA states are na_l7_dfa[dfa_base, dfa_base + dfa_count): */
	__u16 dfa_count;  /* a restarted agent learns what is in use from this map alone */
};

/*
 * na_l7_peers (hash): which rules apply to requests from a peer identity.
 * Identity 0 is any peer; a request's rules are the union of its identity's
 * entry and identity 0's. A peer without either entry is refused (L4 policy
 * normally drops it first). NA_L7_PEER_UNRESTRICTED: some allow rule without
 * HTTP rules covers this peer on the port, so every request passes.
 */
#define NA_L7_PEER_UNRESTRICTED (1U << 0)

struct na_l7_peer_key {
	__u32 ruleset;
	__u32 identity;
};

struct na_l7_peer_value {
	__u64 rules;   /* bit i: rule i of the ruleset applies */
	__u32 flags;
	__u32 pad;
};

/* A header requirement: present (NA_L7_HDR_VALUE unset) or present with exactly this value. */
#define NA_L7_HDR_VALUE (1U << 0)

struct na_l7_header_req {
	__u8 name_len;
	__u8 value_len;
	__u8 flags;
	__u8 pad;
	char name[NA_L7_HEADER_NAME_MAX];    /* lower case; compared case-insensitively */
	char value[NA_L7_HEADER_VALUE_MAX];  /* compared exactly */
};

/*
 * na_l7_rules (hash) keyed by ruleset and rule index. Each regex is a DFA in
 * na_l7_dfa named by its start state; 0 means the field is not constrained.
 * The whole value must walk to an accepting state.
 */
struct na_l7_rule_key {
	__u32 ruleset;
	__u32 index;
};

struct na_l7_rule {
	__u32 rule_id;      /* the policy rule's number, reported in flows */
	__u16 method_dfa;
	__u16 path_dfa;
	__u16 host_dfa;
	__u8 header_count;
	__u8 pad;
	struct na_l7_header_req headers[NA_L7_MAX_HEADER_REQS];
};

/* na_l7_dfa (array): one DFA state per element; next[byte] is the following state (0: dead). */
#define NA_L7_DFA_ACCEPT (1U << 0)

struct na_l7_dfa_state {
	__u16 next[256];
	__u16 flags;
	__u16 pad;
};

/* Ring-buffer record for one HTTP request decision: flow.kind is NA_EVENT_L7_HTTP. */
struct na_l7_event {
	struct na_flow_event flow;  /* direction ingress, the server endpoint's view */
	__u16 method_len;           /* bytes used in method/path/host (values longer are cut) */
	__u16 path_len;
	__u16 host_len;
	__u8 rule_index;            /* the matching rule, 255 when none */
	__u8 pad;
	char method[NA_L7_EVENT_METHOD_MAX];
	char path[NA_L7_EVENT_PATH_MAX];
	char host[NA_L7_EVENT_HOST_MAX];
};

#endif /* NODEAGENT_ABI_H */
