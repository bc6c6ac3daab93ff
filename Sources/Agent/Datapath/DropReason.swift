import DatapathCore

/// Names of the datapath's verdict reasons (enum na_reason in nodeagent_abi.h), as users read them.
enum DropReason {
    static func name(of code: UInt16) -> String {
        switch UInt32(code) {
        case NA_REASON_FORWARDED.rawValue: "forwarded"
        case NA_DROP_INVALID_SIP.rawValue: "invalid source ip"
        case NA_DROP_POLICY.rawValue: "policy denied"
        case NA_DROP_INVALID.rawValue: "invalid packet"
        case NA_DROP_ICMP_NO_FLOW.rawValue: "ICMP error without flow"
        case NA_DROP_ICMP_REDIRECT.rawValue: "ICMP redirect from endpoint"
        case NA_DROP_ND_ROUTER_ADVERT.rawValue: "router advertisement from endpoint"
        case NA_DROP_ND_TARGET.rawValue: "neighbor advertisement for foreign address"
        case NA_DROP_MLD_QUERY.rawValue: "MLD query from endpoint"
        case NA_DROP_CT_CREATE_FAILED.rawValue: "conntrack map full"
        case NA_DROP_FRAG_NOSUPPORT.rawValue: "fragmentation not supported"
        case NA_DROP_NO_SERVICE.rawValue: "service without backends"
        case NA_DROP_LB_REMOTE_BACKEND.rawValue: "service backend on another node"
        case NA_DROP_NO_CONFIG.rawValue: "no endpoint configuration"
        case NA_DROP_NAT_NO_MAPPING.rawValue: "no NAT mapping"
        case NA_DROP_POLICY_DENY.rawValue: "policy deny rule"
        case NA_DROP_NAT_NO_PORT.rawValue: "NAT ports exhausted"
        case NA_DROP_L7_POLICY.rawValue: "HTTP request denied"
        case NA_DROP_L7_MALFORMED.rawValue: "malformed HTTP request"
        case NA_DROP_L7_HEAD_TOO_LARGE.rawValue: "HTTP request head too large"
        case NA_DROP_L7_PROTOCOL.rawValue: "HTTP/2, TLS or upgrade on an HTTP port"
        case NA_DROP_L7_AMBIGUOUS_PATH.rawValue: "ambiguous HTTP path"
        case NA_DROP_L7_FRAMING.rawValue: "unsupported HTTP framing"
        case NA_DROP_L7_CONN_DENIED.rawValue: "bytes after a denied HTTP request"
        default: "reason \(code)"
        }
    }
}
