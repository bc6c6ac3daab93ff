/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* l7_maps.h: the L7 HTTP maps (layouts in nodeagent_abi.h) and the per-connection framing state. */
#ifndef NA_L7_MAPS_H
#define NA_L7_MAPS_H

#include "maps.h"

#ifndef NA_L7_PORTS_MAX_ENTRIES
#define NA_L7_PORTS_MAX_ENTRIES 4096
#endif
#ifndef NA_L7_PEERS_MAX_ENTRIES
#define NA_L7_PEERS_MAX_ENTRIES 65536
#endif
#ifndef NA_L7_RULES_MAX_ENTRIES
#define NA_L7_RULES_MAX_ENTRIES 16384
#endif
#ifndef NA_L7_SOCKS_MAX_ENTRIES
#define NA_L7_SOCKS_MAX_ENTRIES 65536
#endif
#define NA_L7_HEADER_LINES_MAX 64  /* header lines of one request head the verdict looks at */

/* Where a connection's byte stream stands (datapath-internal, never read by the agent). */
enum na_l7_phase {
	NA_L7_PHASE_HEAD = 0,    /* the next message is a request head */
	NA_L7_PHASE_BODY = 1,    /* Content-Length body bytes follow */
	NA_L7_PHASE_DENIED = 2,  /* a request was refused: every later byte is dropped */
	NA_L7_PHASE_CHUNK_SIZE = 3,  /* a chunk-size line of a chunked body */
	NA_L7_PHASE_CHUNK_DATA = 4,  /* a chunk's data */
	NA_L7_PHASE_CHUNK_END = 5,   /* the CRLF after a chunk's data */
	NA_L7_PHASE_TRAILER = 6,     /* after the last chunk: trailer lines, then an empty line */
};

/*
 * One enrolled connection. The stream verdict sees each skb as it arrives
 * (no stream parser: the kernel's verdict-only mode) and frames the requests
 * in it itself; a message that is not complete at the end of an skb (a head
 * split over segments, a chunk-size line) is held in na_l7_hold and put back
 * in front of the next skb.
 */
struct na_l7_conn {
	__u8 local[16];
	__u8 remote[16];
	__be16 local_port;
	__be16 remote_port;
	__u8 family;
	__u8 phase;        /* enum na_l7_phase */
	__u8 fresh;        /* the next message framed is a new one: its scan starts over */
	__u8 match;        /* how much of CRLF CRLF the scan has seen at scanned */
	__u16 pending;     /* reason the framing already refused the message for, 0: none */
	__u16 passed;      /* some bytes of the connection passed to the server (written_at says when) */
	__u32 msg_off;     /* where the current message starts in the skb */
	__u32 msg_len;     /* the current message's length, once framed */
	__u32 held;        /* bytes of an unfinished message held in na_l7_hold */
	__u32 scanned;     /* head bytes already scanned, so a slowly arriving head is scanned once */
	__u32 body_left;   /* Content-Length or chunk bytes still to come */
	__u32 chunk;       /* the size read in the current chunk-size line */
	__u32 walk_end;    /* how the verdict's walk over an skb ended (l7.bpf.c) */
	__u32 written_at;  /* what the server had written (write_seq) when bytes last passed to it */
};

/* An endpoint's address and TCP port with HTTP rules -> its ruleset. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NA_L7_PORTS_MAX_ENTRIES);
	__type(key, struct na_l7_port_key);
	__type(value, struct na_l7_port_value);
} na_l7_ports SEC(".maps");

/* (ruleset, peer identity) -> the rules that apply to the peer. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NA_L7_PEERS_MAX_ENTRIES);
	__type(key, struct na_l7_peer_key);
	__type(value, struct na_l7_peer_value);
} na_l7_peers SEC(".maps");

/* (ruleset, rule index) -> the rule's DFAs and header requirements. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NA_L7_RULES_MAX_ENTRIES);
	__type(key, struct na_l7_rule_key);
	__type(value, struct na_l7_rule);
} na_l7_rules SEC(".maps");

/* Every DFA state of every ruleset; element 0 is the dead state. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NA_L7_DFA_MAX_STATES);
	__type(key, __u32);
	__type(value, struct na_l7_dfa_state);
} na_l7_dfa SEC(".maps");

/* Enrolled server sockets by socket cookie; the stream verdict is attached to it. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, NA_L7_SOCKS_MAX_ENTRIES);
	__type(key, __u64);
	__type(value, __u64);
} na_l7_socks SEC(".maps");

/* Framing state by socket cookie; LRU, so closed connections age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NA_L7_SOCKS_MAX_ENTRIES);
	__type(key, __u64);
	__type(value, struct na_l7_conn);
} na_l7_conns SEC(".maps");

/*
 * The unfinished message of a connection, in pieces by (socket cookie, piece
 * index), until the bytes that finish it arrive; conn->held says how many
 * bytes there are. Allocated only while some connection has one, and deleted
 * when they are put back or the connection closes. Pieces, because the kernel
 * allocates an element of a hash without preallocation from caches of at most
 * 4 KiB (6.1 and later).
 */
#define NA_L7_HOLD_PIECE 3968
#define NA_L7_HOLD_PIECES ((NA_L7_HEAD_MAX + NA_L7_HOLD_PIECE - 1) / NA_L7_HOLD_PIECE)

struct na_l7_hold_key {
	__u64 cookie;
	__u32 piece;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NA_L7_HOLD_MAX_ENTRIES * NA_L7_HOLD_PIECES);
	__type(key, struct na_l7_hold_key);
	__type(value, char[NA_L7_HOLD_PIECE]);
} na_l7_hold SEC(".maps");

/* What the verdict reads of a request head; offsets index the head's copy beside it in the scratch. */
struct na_http_req {
	__u32 len;            /* head length, the final CRLF CRLF included */
	__u32 method_len;     /* the method is [0, method_len) */
	__u32 target_off;     /* the request-target is [target_off, target_off + target_len) */
	__u32 target_len;
	__u32 host_off;
	__u32 host_len;
	__u32 content_length;
	__u32 lines;          /* header lines recorded in the scratch */
	__u32 head_end;       /* where the empty line ending the head ends, once the parse reached it; 0 before */
	__u16 reason;         /* why the head is refused whatever the rules say, 0: it is not */
	__u8 has_host;
	__u8 has_cl;
	__u8 has_te;
	__u8 te_chunked;      /* Transfer-Encoding is exactly "chunked" */
	/* the scan's state between bytes */
	__u8 phase;           /* 0 method, 1 target, 2 version, 3 header lines */
	__u8 in_query;
	__u8 seg_dots;        /* dots since the last '/', while the segment is only dots */
	__u8 seg_other;       /* the segment since the last '/' has a byte that is not a dot */
	char prev;
	char prev2;
	__u32 line_start;
	__u32 colon;
};

/*
 * A request head, what was read of it and where its header lines are, per
 * CPU: far too big for the stack, and kept out of it on purpose: the verifier
 * checks a bpf_loop callback until its states repeat, and counters it knows
 * exactly (stack values) never repeat, while map contents are unknown to it.
 */
struct na_l7_scratch {
	struct na_http_req req;
	char head[NA_L7_HEAD_MAX];
	__u16 line_start[NA_L7_HEADER_LINES_MAX];
	__u16 colon[NA_L7_HEADER_LINES_MAX];
	__u16 line_end[NA_L7_HEADER_LINES_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct na_l7_scratch);
} na_l7_scratch SEC(".maps");

#endif /* NA_L7_MAPS_H */
