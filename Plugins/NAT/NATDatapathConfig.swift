import DatapathCore

/// Writes what the NAT programs read: na_nat_config (address, port range, on/off) and na_nat_cluster (cluster
/// prefixes), and attaches the programs to the external interface.
struct NATDatapathConfig {
    let datapath: Datapath

    static let toNetdev = "to_netdev"
    static let fromNetdev = "from_netdev"

    /// The configuration the datapath holds now (all zero when never written).
    func current() throws -> na_nat_config {
        let map: TypedMap<UInt32, na_nat_config> = try datapath.typedMap("na_nat_config")
        return try map.lookup(0) ?? na_nat_config()
    }

    /// Turns translation on for `address` and `ports` on interface `ifindex`.
    func enable(address: IPAddress, ports: ClosedRange<UInt16>, ifindex: Int32) throws {
        var value = na_nat_config()
        value.flags = UInt32(NA_NAT_CFG_ENABLED)
        setTupleBytes(&value.ipv4, address.bytes)
        value.port_min = ports.lowerBound
        value.port_max = ports.upperBound
        value.ifindex = UInt32(bitPattern: ifindex)
        let map: TypedMap<UInt32, na_nat_config> = try datapath.typedMap("na_nat_config")
        try map.update(0, value)
    }

    /// Turns translation off: the programs, wherever still attached, pass everything untouched.
    func disable() throws {
        let map: TypedMap<UInt32, na_nat_config> = try datapath.typedMap("na_nat_config")
        try map.update(0, na_nat_config())
    }

    /// Makes na_nat_cluster hold exactly `prefixes`: new ones are added before stale ones go, so a prefix that
    /// stays never disappears in between.
    func setClusterPrefixes(_ prefixes: [IPPrefix]) throws {
        let map: TypedMap<na_ipcache_key, UInt32> = try datapath.typedMap("na_nat_cluster")
        let wanted = Set(prefixes.map { bytesOf(na_ipcache_key($0)) })
        for prefix in prefixes { try map.update(na_ipcache_key(prefix), 1) }
        for (key, _) in try map.entries() where !wanted.contains(bytesOf(key)) {
            try map.delete(key)
        }
    }

    /// The prefixes na_nat_cluster holds.
    func clusterPrefixes() throws -> [IPPrefix] {
        let map: TypedMap<na_ipcache_key, UInt32> = try datapath.typedMap("na_nat_cluster")
        return try map.entries().compactMap { key, _ in key.prefix }.sorted {
            $0.description < $1.description
        }
    }

    /// Attaches from_netdev (ingress) and to_netdev (egress), atomically replacing programs of ours already there.
    func attach(ifindex: Int32) throws {
        try datapath.attachTC(ingress: Self.fromNetdev, egress: Self.toNetdev, ifindex: ifindex)
    }

    func detach(ifindex: Int32) {
        datapath.detachTC(ifindex: ifindex)
    }
}
