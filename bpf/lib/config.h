/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* config.h: the effective runtime configuration, na_config with defaults filled in. */
#ifndef NA_CONFIG_H
#define NA_CONFIG_H

#include "maps.h"

/* na_config as the datapath applies it: no zero lifetimes, sample rate at least 1, ns intervals. */
struct na_cfg {
	__u32 lifetime_tcp;
	__u32 lifetime_syn;
	__u32 lifetime_closing;
	__u32 lifetime_nontcp;
	__u32 flags;
	__u32 sample_rate;
	__u64 drop_interval_ns;  /* 0: every drop produces an event */
};

static __always_inline __u32 na_or_default(__u32 value, __u32 fallback)
{
	return value ? value : fallback;
}

/*
 * Loads na_config. An element never written by the agent (all zero, or the
 * lookup failing) still gives a working datapath: default lifetimes and drop
 * events on, so a restart before the agent configures anything is visible.
 */
static __always_inline void na_config_load(struct na_cfg *cfg)
{
	const struct na_config *c;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&na_config, &zero);
	if (!c || !(c->ct_lifetime_tcp | c->ct_lifetime_syn | c->ct_lifetime_closing |
		    c->ct_lifetime_nontcp | c->flags | c->allowed_sample_rate |
		    c->drop_event_interval_ms)) {
		cfg->lifetime_tcp = NA_CT_DEFAULT_LIFETIME_TCP;
		cfg->lifetime_syn = NA_CT_DEFAULT_LIFETIME_SYN;
		cfg->lifetime_closing = NA_CT_DEFAULT_LIFETIME_CLOSING;
		cfg->lifetime_nontcp = NA_CT_DEFAULT_LIFETIME_NONTCP;
		cfg->flags = NA_CFG_EVENTS_DROPPED;
		cfg->sample_rate = 1;
		cfg->drop_interval_ns = 0;
		return;
	}
	cfg->lifetime_tcp = na_or_default(c->ct_lifetime_tcp, NA_CT_DEFAULT_LIFETIME_TCP);
	cfg->lifetime_syn = na_or_default(c->ct_lifetime_syn, NA_CT_DEFAULT_LIFETIME_SYN);
	cfg->lifetime_closing = na_or_default(c->ct_lifetime_closing,
					      NA_CT_DEFAULT_LIFETIME_CLOSING);
	cfg->lifetime_nontcp = na_or_default(c->ct_lifetime_nontcp, NA_CT_DEFAULT_LIFETIME_NONTCP);
	cfg->flags = c->flags;
	cfg->sample_rate = na_or_default(c->allowed_sample_rate, 1);
	cfg->drop_interval_ns = (__u64)c->drop_event_interval_ms * NA_NSEC_PER_MSEC;
}

#endif /* NA_CONFIG_H */
