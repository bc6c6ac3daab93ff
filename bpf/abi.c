/*
 * Compiled into the agent so the ABI header is checked by the host compiler
 * too: a size change here is a change of the kernel/user contract.
 */
#include "nodeagent_abi.h"

_Static_assert(sizeof(struct na_ipcache_key) == 24, "ipcache key layout");
_Static_assert(sizeof(struct na_policy_key) == 12, "policy key layout");
_Static_assert(sizeof(struct na_policy_value) == 8, "policy value layout");
_Static_assert(sizeof(struct na_ct_key) == 40, "conntrack key layout");
_Static_assert(sizeof(struct na_ct_value) == 48, "conntrack value layout");
_Static_assert(sizeof(struct na_drop_agg_key) == 48, "drop aggregation key layout");
_Static_assert(sizeof(struct na_metrics_key) == 4, "metrics key layout");
_Static_assert(sizeof(struct na_flow_event) == 80, "flow event layout");
_Static_assert(sizeof(struct na_endpoint_info) == 36, "endpoint info layout");
_Static_assert(sizeof(struct na_config) == 32, "config layout");
_Static_assert(sizeof(struct na_ct_sweep_args) == 40, "conntrack sweep arguments layout");
_Static_assert(sizeof(struct na_ct_gc_owners) == 8192, "conntrack sweep owners bitmap layout");
_Static_assert(sizeof(struct na_event_stats) == 16, "event stats layout");
_Static_assert(sizeof(struct na_frag_key) == 40, "fragment key layout");
_Static_assert(sizeof(struct na_frag_value) == 8, "fragment value layout");
_Static_assert(sizeof(struct na_nat_entry) == 32, "NAT entry layout");
_Static_assert(sizeof(struct na_nat_config) == 16, "NAT config layout");
_Static_assert(sizeof(struct na_lb_service_key) == 24, "LB service key layout");
_Static_assert(sizeof(struct na_lb_service_value) == 20, "LB service value layout");
_Static_assert(sizeof(struct na_lb_backend) == 24, "LB backend layout");
_Static_assert(sizeof(struct na_lb_revnat_key) == 32, "LB reverse translation key layout");
_Static_assert(sizeof(struct na_lb_revnat_value) == 24, "LB reverse translation value layout");
