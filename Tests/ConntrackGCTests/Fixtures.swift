import ConntrackGC
import DatapathCore
import Foundation
import Logging
import XCTest

/// A flow as tests write it into na_ct.
struct Flow {
    var source: String
    var destination: String
    var sourcePort: UInt16 = 40000
    var destinationPort: UInt16 = 80
    var proto: UInt8 = 6
    var egress = true

    var key: na_ct_key {
        let src = IPAddress(source)!
        let dst = IPAddress(destination)!
        var key = na_ct_key()
        setTupleBytes(&key.saddr, src.keyBytes)
        setTupleBytes(&key.daddr, dst.keyBytes)
        key.sport = sourcePort.bigEndian
        key.dport = destinationPort.bigEndian
        key.proto = proto
        key.family = src.family.rawValue
        key.direction = egress ? UInt8(NA_DIR_EGRESS.rawValue) : UInt8(NA_DIR_INGRESS.rawValue)
        return key
    }
}

func ctValue(
    expiresIn: Int64, endpoint: UInt32, identity: UInt32 = 256, ruleID: UInt32 = 0, flags: UInt32 = 0,
    packets: UInt64 = 1, bytes: UInt64 = 60, policyGeneration: UInt32 = 0, now: UInt32 = MonotonicClock.seconds()
) -> na_ct_value {
    var value = na_ct_value()
    // Clamped: on a machine up for less than the offset, a lifetime "before boot" is 0 (expired all the same).
    value.lifetime = UInt32(clamping: Int64(now) + expiresIn)
    value.ep_id = endpoint
    value.src_identity = identity
    value.rule_id = ruleID
    value.flags = flags
    value.created = now
    value.policy_revision = policyGeneration
    value.packets = packets
    value.bytes = bytes
    return value
}

/// An unpinned datapath with a small conntrack table, loaded for one test; skipped when not root.
func loadDatapath(conntrackEntries: UInt32 = 4096) throws -> Datapath {
    try XCTSkipUnless(getuid() == 0, "loading BPF objects needs root")
    return try Datapath(unpinned: "endpoint", maxEntries: ["na_ct": conntrackEntries])
}

extension Datapath {
    func conntrack() throws -> TypedMap<na_ct_key, na_ct_value> { try typedMap("na_ct") }

    func put(_ flow: Flow, _ value: na_ct_value) throws {
        try conntrack().update(flow.key, value)
    }

    /// Registers endpoint `id` on interface `ifindex` in na_endpoints, as the agent does.
    func addEndpoint(id: UInt32, ifindex: UInt32, ipv4: String? = nil) throws {
        var info = na_endpoint_info()
        info.ep_id = id
        info.identity = 256 + id
        if let ipv4 {
            setTupleBytes(&info.ipv4, IPAddress(ipv4)!.bytes)
            info.flags |= UInt32(NA_EP_HAS_IPV4)
        }
        let map: TypedMap<UInt32, na_endpoint_info> = try typedMap("na_endpoints")
        try map.update(ifindex, info)
    }

    func removeEndpoint(ifindex: UInt32) throws {
        let map: TypedMap<UInt32, na_endpoint_info> = try typedMap("na_endpoints")
        try map.delete(ifindex)
    }

    /// The flows left in na_ct, as comparable strings "src:sport>dst:dport/proto".
    func remainingFlows() throws -> Set<String> {
        Set(
            try conntrack().entries().map { key, _ in
                let entry = ConntrackEntry(key: key, value: na_ct_value())
                return
                    "\(entry.source!):\(entry.sourcePort)>\(entry.destination!):\(entry.destinationPort)/\(key.proto)"
            })
    }
}

extension Flow {
    var label: String { "\(source):\(sourcePort)>\(destination):\(destinationPort)/\(proto)" }
}

/// A configured and started plugin on `datapath`, its state directory under /tmp.
func startedPlugin(on datapath: Datapath, options: JSON = [:]) throws -> ConntrackGCPlugin {
    let plugin = ConntrackGCPlugin()
    try plugin.configure(options)
    let directory = NSTemporaryDirectory() + "ctgc-tests-\(getpid())-\(UUID().uuidString)"
    try plugin.start(
        PluginContext(
            datapath: datapath, logger: Logger(label: "conntrack-gc-test"), stateDirectory: directory,
            restored: false))
    return plugin
}

/// Runs `plugin`'s route `method path` on a request with `query`.
func call(
    _ plugin: ConntrackGCPlugin, _ method: HTTPMethod, _ path: String, _ query: [String: String] = [:]
) throws -> (status: Int, body: JSON) {
    let router = Router(routes: plugin.routes)
    let response = router.route(APIRequest(method: method, path: path, query: query))
    return (response.status, try JSON.parse(response.body))
}
