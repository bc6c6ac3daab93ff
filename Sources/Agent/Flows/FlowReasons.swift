import DatapathCore

/// The verdict reasons users can filter flows by (`reason=policy denied` or `reason=133`).
enum FlowReasons {
    /// Every code of `enum na_reason`, with its name.
    static let names: [UInt16: String] = {
        let codes: [na_reason] = [
            NA_REASON_FORWARDED, NA_DROP_INVALID_SIP, NA_DROP_POLICY, NA_DROP_INVALID, NA_DROP_CT_CREATE_FAILED,
            NA_DROP_FRAG_NOSUPPORT, NA_DROP_NO_CONFIG, NA_DROP_NAT_NO_MAPPING, NA_DROP_POLICY_DENY, NA_DROP_NAT_NO_PORT,
            NA_DROP_ICMP_NO_FLOW, NA_DROP_ICMP_REDIRECT, NA_DROP_ND_ROUTER_ADVERT, NA_DROP_ND_TARGET, NA_DROP_MLD_QUERY,
            NA_DROP_NO_SERVICE, NA_DROP_LB_REMOTE_BACKEND, NA_DROP_L7_POLICY, NA_DROP_L7_MALFORMED,
            NA_DROP_L7_HEAD_TOO_LARGE, NA_DROP_L7_PROTOCOL, NA_DROP_L7_AMBIGUOUS_PATH, NA_DROP_L7_FRAMING,
            NA_DROP_L7_CONN_DENIED,
        ]
        var names: [UInt16: String] = [:]
        for code in codes { names[UInt16(code.rawValue)] = DropReason.name(of: UInt16(code.rawValue)) }
        return names
    }()
}
