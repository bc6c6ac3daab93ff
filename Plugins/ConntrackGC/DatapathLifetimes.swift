import DatapathCore

/// Writes the configured lifetimes into na_config, which the datapath reads per packet to stamp entries.
enum DatapathLifetimes {
    static func write(_ config: ConntrackGCConfig, to map: BPFMap) throws {
        let typed = try TypedMap<UInt32, na_config>(map)
        var value = try typed.lookup(0) ?? na_config()
        if isUnwritten(value) {
            // The datapath reads an all-zero element as "defaults, drop events on" but takes flags as written once
            // any field is set: keep that meaning when the lifetimes are the first thing written.
            value.flags = UInt32(NA_CFG_EVENTS_DROPPED)
            value.allowed_sample_rate = 1
        }
        value.ct_lifetime_tcp = config.tcpEstablished
        value.ct_lifetime_syn = config.tcpSYN
        value.ct_lifetime_closing = config.tcpClosing
        value.ct_lifetime_nontcp = config.nonTCP
        // Recorded for readers of the map; the pressure check itself runs in the agent (see FillEstimate).
        value.ct_pressure_pct = UInt32((config.pressureThreshold * 100).rounded())
        try typed.update(0, value)
    }

    static func isUnwritten(_ value: na_config) -> Bool {
        value.ct_lifetime_tcp == 0 && value.ct_lifetime_syn == 0 && value.ct_lifetime_closing == 0
            && value.ct_lifetime_nontcp == 0 && value.flags == 0 && value.allowed_sample_rate == 0
    }
}
