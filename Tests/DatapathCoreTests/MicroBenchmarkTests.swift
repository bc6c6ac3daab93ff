import CLibbpf
import CNodeABI
import DatapathCore
import Foundation
import Glibc
import XCTest

/// BPF_PROG_TEST_RUN cost of `from_endpoint` per packet as the endpoint's policy map and the ipcache grow.
///
/// Skipped unless NODEAGENT_BENCH=1 (bench/micro.sh runs it with `swift test -c release`). One object is loaded per
/// size, sizes are interleaved round by round, and every pass sends a different packet per test run so maps are
/// walked for many keys, not kept hot for one. Environment: NODEAGENT_BENCH_SIZES (default "1,10000,100000"),
/// NODEAGENT_BENCH_FLOWS (distinct packets per pass, default 10000), NODEAGENT_BENCH_ROUNDS (default 3),
/// NODEAGENT_BENCH_OUT (a file that gets one tab-separated line per case, size and round), NODEAGENT_BENCH_OBJECTS
/// ("label=path,..." of compiled endpoint objects, e.g. another commit's, each measured beside this build's in the
/// same rounds: the way to compare two versions on a machine whose speed drifts), NODEAGENT_BENCH_FAMILY (4 or 6: the
/// family of the endpoint's and the peers' addresses, default 4), NODEAGENT_BENCH_RULES ("own", "shared" or both,
/// comma-separated: whether each spread peer's key has a rule of its own, or one rule selects them all, as a label
/// or namespace selector does; default "own").
final class MicroBenchmarkTests: XCTestCase {
    func testFromEndpointCostAsPolicyGrows() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["NODEAGENT_BENCH"] == "1" else { throw XCTSkip("a benchmark: set NODEAGENT_BENCH=1 to run it") }
        let sizes = (env["NODEAGENT_BENCH_SIZES"] ?? "1,10000,100000").split(separator: ",").compactMap { Int($0) }
        let flows = min(Int(env["NODEAGENT_BENCH_FLOWS"] ?? "") ?? 10_000, 50_000)
        let rounds = Int(env["NODEAGENT_BENCH_ROUNDS"] ?? "") ?? 3
        let family: IPAddress.Family = env["NODEAGENT_BENCH_FAMILY"] == "6" ? .ipv6 : .ipv4
        XCTAssertFalse(sizes.isEmpty, "NODEAGENT_BENCH_SIZES names no size")
        let shapes = try (env["NODEAGENT_BENCH_RULES"] ?? "own").split(separator: ",").map { name in
            guard let shape = MicroRules(rawValue: String(name)) else {
                throw MicroBenchError("NODEAGENT_BENCH_RULES: \(name) is neither own nor shared")
            }
            return shape
        }

        var objects: [(label: String, elf: [UInt8]?)] = [("", nil)]
        for item in (env["NODEAGENT_BENCH_OBJECTS"] ?? "").split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let data = FileManager.default.contents(atPath: parts[1]) else {
                throw MicroBenchError("NODEAGENT_BENCH_OBJECTS: \(item) is not label=path of a readable object")
            }
            objects.append((parts[0], [UInt8](data)))
        }
        if objects.count > 1 { objects[0].label = "this build" }
        // The first bench a process creates has at times run 30-150 ns slower per packet here than every later one
        // (the memory its maps got, not its code): one is created first and kept, not measured.
        let unmeasured = try MicroBench(entries: 1, flows: 1, family: family)
        defer { withExtendedLifetime(unmeasured) {} }
        let benches = try shapes.flatMap { rules in
            try objects.flatMap { object in
                try sizes.map {
                    let label = [shapes.count > 1 ? rules.label : "", object.label].filter { !$0.isEmpty }
                    return try MicroBench(
                        entries: $0, flows: flows, family: family, rules: rules, label: label.joined(separator: ", "),
                        elf: object.elf)
                }
            }
        }
        let columns = benches.map(\.column)
        var results: [MicroResult] = []
        for round in 1...max(rounds, 1) {
            // Rotate which size goes first, so a slow moment of the machine does not always hit the same one.
            for offset in benches.indices {
                let bench = benches[(round - 1 + offset) % benches.count]
                for pass in MicroPass.allCases {
                    let samples = try bench.run(pass)
                    results.append(MicroResult(pass: pass, column: bench.column, round: round, samples: samples))
                }
            }
        }
        let report = MicroReport(results: results, columns: columns, flows: flows, rounds: rounds, family: family)
        print(report.table())
        if let path = env["NODEAGENT_BENCH_OUT"] {
            try report.tsv().write(toFile: path, atomically: true, encoding: .utf8)
        }
    }
}

/// The rules of the spread peers' keys.
private enum MicroRules: String {
    /// A rule per peer: no two keys share a rule, so no policy block holds two of them.
    case own
    /// One rule selects every spread peer (`MicroBench.sharedRule`).
    case shared

    var label: String { self == .own ? "rule per peer" : "one rule" }
}

/// What one pass sends, and the verdict each of its packets must get.
private enum MicroPass: String, CaseIterable {
    /// ARP: parsed and passed before any lookup; the floor of a test run (timer, context, metrics).
    case floor = "non-IP (ARP) pass: floor"
    /// SYN of a new flow: conntrack miss (both keys), ipcache, policy lookups, conntrack create, flow event.
    case newAllowed = "new connection, allowed (SYN)"
    /// ACK of a flow the SYN pass created: conntrack hit, entry touched.
    case established = "established (ACK, CT hit)"
    /// ACKs of as many flows, all to one address: conntrack keys vary, the ipcache lookup does not.
    case oneDestination = "established, one destination"
    /// The same ACK repeated in the kernel: every map stays hot in cache.
    case hot = "established, one flow repeated"
    /// That flow's answer at to_endpoint, repeated in the kernel: a reply's conntrack lookup, hot.
    case hotReply = "reply, one flow repeated (to_endpoint)"
    /// SYN to a port no rule allows, spread over the identities: conntrack miss, policy miss, drop reported.
    case newDenied = "new connection, denied (SYN)"
    /// SYN to a port only another peer is allowed on, spread over the identities: the port is named, so the policy
    /// table's bucket is read and shows the key absent.
    case newDeniedNamed = "new connection, denied, named port"
    /// SYNs of as many new flows, all to one address: the lookups' maps as large, but their entries hot in cache.
    case newOneDestination = "new connection, one destination"
    /// SYN to a named port whose other peers came and went (`MicroBench.churn` keys written, then withdrawn): their
    /// bits left in the peer filter's line make most peers look named, so the policy table's bucket is read.
    case newDeniedChurned = "denied, named port, peers gone"
    /// The same on a second such port after `PolicyTable.refreshFilters`: its line holds its one key's bits again.
    case newDeniedRefreshed = "denied, named port, peers gone, refreshed"

    var expectedVerdict: UInt32 {  // TC_ACT_SHOT : TC_ACT_OK
        [.newDenied, .newDeniedNamed, .newDeniedChurned, .newDeniedRefreshed].contains(self) ? 2 : 0
    }
}

/// Per-packet durations (ns) of one pass.
private struct MicroResult {
    var pass: MicroPass
    var column: String
    var round: Int
    var samples: [Double]

    var median: Double { percentile(samples, 0.5) }
    var mean: Double { samples.reduce(0, +) / Double(max(samples.count, 1)) }
}

private func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let position = p * Double(sorted.count - 1)
    let low = Int(position.rounded(.down))
    let high = min(low + 1, sorted.count - 1)
    return sorted[low] + (sorted[high] - sorted[low]) * (position - Double(low))
}

/// One loaded endpoint object with `entries` identities in the ipcache and as many egress allow entries in the
/// policy of the endpoint behind the test-run device, plus the packets of every pass.
private final class MicroBench {
    /// BPF_PROG_TEST_RUN runs tc programs on the loopback device (ifindex 1) of the caller's namespace.
    static let ifindex: UInt32 = 1
    static let endpointID: UInt32 = 1
    static let firstIdentity: UInt32 = 1000
    static let port: UInt16 = 8080
    static let deniedPort: UInt16 = 9090
    /// A port one peer outside the spread ones is allowed on, so that it is named for every endpoint key lookup.
    static let namedPort: UInt16 = 9091
    static let namedPortIdentity: UInt32 = 999
    /// How many other peers had keys on each of the two churned ports, withdrawn before the passes.
    static let churn: UInt32 = 1000
    /// The first identity of those peers: above every spread one.
    static let churnIdentity: UInt32 = 900_000

    let entries: Int
    let flows: Int
    let family: IPAddress.Family
    /// 10.0.0.1, or fd00::1 for IPv6.
    let endpointAddress: [UInt8]
    /// "<entries> entries", after the object's label when several objects are compared.
    let column: String
    let object: BPFObject
    let program: BPFProgram
    let toEndpoint: BPFProgram
    let policy: BPFMap
    let exactPolicy: BPFMap
    let conntrack: BPFMap
    let ringBuffer: OpaquePointer
    let syn: [[UInt8]]
    let ack: [[UInt8]]
    /// The answer to ack[0], from the peer's port to the endpoint's.
    let reply: [UInt8]
    let synOne: [[UInt8]]
    let ackOne: [[UInt8]]
    let denied: [[UInt8]]
    let deniedNamed: [[UInt8]]
    let deniedChurned: [[UInt8]]
    let deniedRefreshed: [[UInt8]]
    let arp: [UInt8]

    /// The rule of every spread peer's key under `MicroRules.shared`: above every identity, so no rule of its own.
    static let sharedRule: UInt32 = 2_000_000

    init(
        entries: Int, flows: Int, family: IPAddress.Family, rules shape: MicroRules = .own, label: String = "",
        elf: [UInt8]? = nil
    ) throws {
        self.entries = entries
        self.flows = flows
        self.family = family
        let source: [UInt8] = family == .ipv4 ? [10, 0, 0, 1] : [0xfd, 0] + Array(repeating: 0, count: 13) + [1]
        endpointAddress = source
        column = (label.isEmpty ? "" : "\(label): ") + "\(entries) entries"
        object =
            try elf.map {
                try BPFObject.load(elf: $0, name: "endpoint", pinDirectory: nil, maxEntries: ["na_policy": 16])
            }
            ?? BPFObject.load(embedded: "endpoint", pinDirectory: nil, maxEntries: ["na_policy": 16])
        guard let program = object.program(named: "from_endpoint"),
            let toEndpoint = object.program(named: "to_endpoint"),
            let endpoints = object.map(named: "na_endpoints"), let ipcache = object.map(named: "na_ipcache"),
            let outer = object.map(named: "na_policy"), let outerExact = object.map(named: "na_policy_exact"),
            let conntrack = object.map(named: "na_ct"),
            let config = object.map(named: "na_config"), let events = object.map(named: "na_events"),
            let hosts = object.map(named: IPCache.hostName)
        else { throw MicroBenchError("the endpoint object lacks a program or map the benchmark needs") }
        self.program = program
        self.toEndpoint = toEndpoint
        self.conntrack = conntrack
        guard let ring = ring_buffer__new(events.fd, { _, _, _ in 0 }, nil, nil) else {
            throw MicroBenchError("ring_buffer__new on na_events: \(String(cString: strerror(errno)))")
        }
        ringBuffer = ring

        // The settings the agent writes at start: drop events and every allowed new flow reported.
        var settings = na_config()
        (settings.ct_lifetime_tcp, settings.ct_lifetime_syn) = (8000, 60)
        (settings.ct_lifetime_closing, settings.ct_lifetime_nontcp) = (10, 60)
        settings.flags = UInt32(NA_CFG_EVENTS_DROPPED) | UInt32(NA_CFG_EVENTS_ALLOWED)
        settings.allowed_sample_rate = 1
        try TypedMap<UInt32, na_config>(config).update(0, settings)
        // The frontend ports as the agent's load balancer leaves them with no service (objects from before the map
        // lack it, and look every packet up in na_lb_services).
        if let ports = object.map(named: "na_lb_ports") {
            try TypedMap<UInt32, UInt64>(ports).update(UInt32(NA_LB_PORTS_COMPLETE), 1)
        }

        var endpoint = na_endpoint_info()
        endpoint.ep_id = Self.endpointID
        endpoint.identity = 300
        endpoint.flags = UInt32(NA_EP_ENFORCE_INGRESS | NA_EP_ENFORCE_EGRESS)
        if family == .ipv4 {
            endpoint.flags |= UInt32(NA_EP_HAS_IPV4)
            withUnsafeMutableBytes(of: &endpoint.ipv4) { $0.copyBytes(from: source) }
        } else {
            endpoint.flags |= UInt32(NA_EP_HAS_IPV6)
            withUnsafeMutableBytes(of: &endpoint.ipv6) { $0.copyBytes(from: source) }
        }
        try TypedMap<UInt32, na_endpoint_info>(endpoints).update(Self.ifindex, endpoint)
        // Its slot filled, as the agent's EndpointSlots leaves it (objects from before the slots lack them).
        let slots = try EndpointSlots(object: object)
        slots.publish(Self.ifindex)
        guard slots.fillAll() else { throw MicroBenchError("the kernel refused an RCU grace period") }

        policy = try BPFMap.create(
            type: .lpmTrie, name: "na_pol_bench", keySize: MemoryLayout<na_policy_key>.size,
            valueSize: MemoryLayout<na_policy_value>.size, maxEntries: max(16384, entries + 16),
            flags: UInt32(BPF_F_NO_PREALLOC))
        // As the agent writes them (EndpointDatapath.applyPolicy): full-length keys of one peer in the endpoint's
        // hash, sized to a power of two with room to double, the trie left with the rest (here nothing).
        var hashSize = 64
        while hashSize < 2 * entries { hashSize *= 2 }
        exactPolicy = try BPFMap.create(
            type: .hash, name: "na_polh_bench", keySize: MemoryLayout<na_policy_key>.size,
            valueSize: MemoryLayout<na_policy_value>.size, maxEntries: hashSize,
            flags: UInt32(BPF_F_NO_PREALLOC))
        let rules = try TypedMap<na_policy_key, na_policy_value>(exactPolicy)
        var tableEntries: [(key: na_policy_key, value: na_policy_value)] = []
        let cache = try IPCache(
            trie: ipcache, hosts: hosts, v4: object.map(named: IPCache.v4Name), v6: object.map(named: IPCache.v6Name))
        for index in 0..<entries {
            let identity = Self.firstIdentity + UInt32(index)
            tableEntries.append(Self.allow(identity, port: Self.port, rule: shape == .shared ? Self.sharedRule : nil))
            try cache.set(IPAddress(family: family, bytes: Self.address(index, family)), identity: identity)
        }
        tableEntries.append(Self.allow(Self.namedPortIdentity, port: Self.namedPort))
        let (churned, refreshed) = Self.churnedPorts()
        for port in [churned, refreshed] { tableEntries.append(Self.allow(Self.namedPortIdentity, port: port)) }
        for entry in tableEntries { try rules.update(entry.key, entry.value) }
        try TypedMap<UInt32, UInt32>(outer).update(Self.endpointID, UInt32(bitPattern: policy.fd))
        try TypedMap<UInt32, UInt32>(outerExact).update(Self.endpointID, UInt32(bitPattern: exactPolicy.fd))
        // The keys again in the policy table, as the agent leaves it (objects from before the table lack it).
        if let table = object.map(named: PolicyTable.name), let states = object.map(named: PolicyTable.stateName),
            let overflows = object.map(named: PolicyTable.overflowName)
        {
            let policyTable = try PolicyTable(
                table: table, states: states, overflows: overflows, ports: object.map(named: PolicyTable.portsName),
                peers: object.map(named: PolicyTable.peersName), blocks: object.map(named: PolicyBlocks.name))
            try policyTable.rebuild([Self.endpointID: tableEntries])
            // Peers that came and went on both churned ports: their keys written and withdrawn as a regeneration
            // does, their bits left; then the second port's line refreshed.
            var leftovers = PolicyFilterLeftovers()
            for port in [churned, refreshed] {
                let gone = (0..<Self.churn).map { Self.allow(Self.churnIdentity + $0, port: port) }
                try policyTable.apply(endpoint: Self.endpointID, gone.map { ($0.key, $0.value) })
                try policyTable.apply(endpoint: Self.endpointID, gone.map { ($0.key, nil) })
                if port == refreshed { leftovers.add(withdrawn: gone.map(\.key)) }
            }
            try policyTable.refreshFilters(&leftovers) { visit in tableEntries.forEach { visit($0.key) } }
            let blocks = try policyTable.validBlocks()
            if !blocks.isEmpty {
                let bits = blocks.reduce(0) { $0 + PolicyBlocks.identities(of: $1.block).count }
                print("\(column): \(blocks.count) policy blocks hold \(bits) of \(tableEntries.count) keys")
            }
        }

        // Flow k goes from its own source port to one of the listed addresses, spread over all of them.
        let targets = (0..<flows).map { Self.address(($0 &* 7919) % entries, family) }
        syn = (0..<flows).map {
            MicroPacket.tcp(from: source, to: targets[$0], sport: UInt16(10_000 + $0), flags: .syn)
        }
        ack = (0..<flows).map {
            MicroPacket.tcp(from: source, to: targets[$0], sport: UInt16(10_000 + $0), flags: .ack)
        }
        reply = MicroPacket.tcp(
            from: targets[0], to: source, sport: Self.port, dport: 10_000, flags: .ack)
        let one = Self.address(0, family)
        synOne = (0..<flows).map {
            MicroPacket.tcp(from: source, to: one, sport: UInt16(10_000 + $0), flags: .syn)
        }
        ackOne = (0..<flows).map {
            MicroPacket.tcp(from: source, to: one, sport: UInt16(10_000 + $0), flags: .ack)
        }
        let spreadSYNs = { (port: UInt16) in
            (0..<flows).map {
                MicroPacket.tcp(
                    from: source, to: targets[$0], sport: UInt16(10_000 + $0), dport: port, flags: .syn)
            }
        }
        denied = spreadSYNs(Self.deniedPort)
        deniedNamed = spreadSYNs(Self.namedPort)
        deniedChurned = spreadSYNs(churned)
        deniedRefreshed = spreadSYNs(refreshed)
        arp = MicroPacket.arp
    }

    deinit { ring_buffer__free(ringBuffer) }

    /// Two ports above `namedPort` whose peer-filter lines are their own (not the spread peers' port's, not the named
    /// port's, not each other's), so that only their own keys' bits are in them.
    static func churnedPorts() -> (churned: UInt16, refreshed: UInt16) {
        func line(_ port: UInt16) -> UInt32 { na_policy_peer_line(PolicyTable.portBit(allow(0, port: port).key)) }
        var taken: Set<UInt32> = [line(Self.port), line(Self.namedPort), line(Self.deniedPort)]
        var ports: [UInt16] = []
        var port = Self.namedPort
        while ports.count < 2 {
            port += 1
            if taken.insert(line(port)).inserted { ports.append(port) }
        }
        return (ports[0], ports[1])
    }

    /// A full-length egress key allowing `identity` on TCP `port`, its rule `rule` (nil: numbered as the identity).
    private static func allow(_ identity: UInt32, port: UInt16, rule: UInt32? = nil)
        -> (key: na_policy_key, value: na_policy_value)
    {
        var entry = PolicyEntry.egress(identity, Proto.tcp, port)
        entry.ruleID = rule ?? identity
        return (entry.key, entry.value)
    }

    /// 10.128.0.0 + index, or fd00:0:0:80:: + index for IPv6.
    static func address(_ index: Int, _ family: IPAddress.Family) -> [UInt8] {
        let low = [UInt8((index >> 16) & 0xff), UInt8((index >> 8) & 0xff), UInt8(index & 0xff)]
        guard family == .ipv6 else { return [10, 128 + low[0] & 0x7f, low[1], low[2]] }
        return [0xfd, 0, 0, 0, 0, 0, 0, 0x80] + Array(repeating: 0, count: 5) + low
    }

    /// Runs one pass and returns the kernel's duration of every test run, in ns per packet.
    func run(_ pass: MicroPass) throws -> [Double] {
        switch pass {
        case .floor: return try each(Array(repeating: arp, count: flows), expect: pass.expectedVerdict)
        case .newAllowed:
            // Every SYN must miss conntrack: forget the flows of the previous round.
            for key in try conntrack.keys() { _ = try conntrack.delete(key: key) }
            return try each(syn, expect: pass.expectedVerdict)
        case .established: return try each(ack, expect: pass.expectedVerdict)
        case .oneDestination:
            _ = try each(synOne, expect: 0)  // creates the flows; not part of the measurement
            return try each(ackOne, expect: pass.expectedVerdict)
        case .hot, .hotReply:
            let result =
                pass == .hot
                ? try program.testRun(packet: ack[0], repeat: UInt32(flows))
                : try toEndpoint.testRun(packet: reply, repeat: UInt32(flows))
            guard result.retval == pass.expectedVerdict else {
                throw MicroBenchError("\(pass.rawValue): verdict \(result.retval), expected \(pass.expectedVerdict)")
            }
            return [Double(result.durationNs)]
        case .newDenied: return try each(denied, expect: pass.expectedVerdict)
        case .newDeniedNamed: return try each(deniedNamed, expect: pass.expectedVerdict)
        case .newDeniedChurned: return try each(deniedChurned, expect: pass.expectedVerdict)
        case .newDeniedRefreshed: return try each(deniedRefreshed, expect: pass.expectedVerdict)
        case .newOneDestination:
            for key in try conntrack.keys() { _ = try conntrack.delete(key: key) }
            return try each(synOne, expect: pass.expectedVerdict)
        }
    }

    private func each(_ packets: [[UInt8]], expect verdict: UInt32) throws -> [Double] {
        var samples: [Double] = []
        samples.reserveCapacity(packets.count)
        for (index, packet) in packets.enumerated() {
            // Keep the ring buffer from filling: a full one takes the cheaper "lost event" path.
            if index % 2048 == 0 { _ = ring_buffer__consume(ringBuffer) }
            let result = try program.testRun(packet: packet)
            guard result.retval == verdict else {
                throw MicroBenchError(
                    "packet \(index) with \(column): verdict \(result.retval), expected \(verdict)")
            }
            samples.append(Double(result.durationNs))
        }
        _ = ring_buffer__consume(ringBuffer)
        return samples
    }
}

/// Frames as a pod sends them: Ethernet, IPv4 or IPv6 (by the addresses' length), TCP with the options Linux puts
/// on a SYN (74 bytes over IPv4) or an ACK with timestamps (66 bytes). Checksums stay zero: the datapath does not
/// check them.
private enum MicroPacket {
    enum Flags: UInt8 {
        case syn = 0x02
        case ack = 0x10
    }

    static let ethernet: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]

    static func tcp(
        from source: [UInt8], to destination: [UInt8], sport: UInt16, dport: UInt16 = MicroBench.port, flags: Flags
    ) -> [UInt8] {
        let options: [UInt8] =
            flags == .syn
            ? [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]
            : [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1]
        let tcpLength = 20 + options.count
        let ip: [UInt8]
        if source.count == 16 {
            let payload = UInt16(tcpLength)
            ip = [0x60, 0, 0, 0, UInt8(payload >> 8), UInt8(payload & 0xff), 6, 64] + source + destination
        } else {
            let total = UInt16(20 + tcpLength)
            let header: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]
            ip = header + source + destination
        }
        var tcp: [UInt8] = [UInt8(sport >> 8), UInt8(sport & 0xff), UInt8(dport >> 8), UInt8(dport & 0xff)]
        tcp += [0, 0, 0x10, 0, 0, 0, flags == .ack ? 1 : 0, 0]  // sequence, acknowledgment
        tcp += [UInt8(tcpLength / 4) << 4, flags.rawValue, 0xfa, 0xf0, 0, 0, 0, 0] + options
        return ethernet + (source.count == 16 ? [0x86, 0xdd] : [0x08, 0x00]) + ip + tcp
    }

    static let arp: [UInt8] =
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]
        + [0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x01, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]
}

/// The table bench/micro.sh shows: per case and column (size, or object and size), the median over rounds of each
/// round's median (and mean) ns per packet, the min–max over rounds, and the ratio of the last column to the first
/// (the largest size to the smallest, or the last object to this build).
private struct MicroReport {
    var results: [MicroResult]
    var columns: [String]
    var flows: Int
    var rounds: Int
    var family: IPAddress.Family

    func table() -> String {
        let packets = family == .ipv6 ? "IPv6 packets" : "packets"
        var lines = [
            "=== from_endpoint BPF_PROG_TEST_RUN ns/packet: \(flows) distinct \(packets) per pass, \(rounds) rounds",
            "    (median over rounds of the per-round median; [min-max over rounds]; mean per packet in braces)",
        ]
        let caseWidth = MicroPass.allCases.map(\.rawValue.count).max() ?? 30
        let header =
            "case".padding(toLength: caseWidth, withPad: " ", startingAt: 0)
            + columns.map { "  " + $0.leftPad(26) }.joined() + "  " + "last/first".leftPad(16)
        lines.append(header)
        for pass in MicroPass.allCases {
            var row = pass.rawValue.padding(toLength: caseWidth, withPad: " ", startingAt: 0)
            var medians: [Double] = []
            for column in columns {
                let mine = results.filter { $0.pass == pass && $0.column == column }
                let perRound = mine.map(\.median)
                let median = percentile(perRound, 0.5)
                let mean = percentile(mine.map(\.mean), 0.5)
                medians.append(median)
                let (low, high) = (perRound.min() ?? .nan, perRound.max() ?? .nan)
                let cell = String(format: "%.0f [%.0f-%.0f] {%.0f}", median, low, high, mean)
                row += "  " + cell.leftPad(26)
            }
            let ratio = (medians.last ?? .nan) / (medians.first ?? .nan)
            row += "  " + String(format: "%.2f", ratio).leftPad(16)
            lines.append(row)
        }
        lines.append("=== end")
        return lines.joined(separator: "\n")
    }

    func tsv() -> String {
        let rows = results.map { r in
            "\(r.pass.rawValue)\t\(r.column)\t\(r.round)\t\(String(format: "%.1f", r.median))\t"
                + String(format: "%.1f", r.mean)
        }
        return (["case\tcolumn\tround\tmedian_ns\tmean_ns"] + rows).joined(separator: "\n") + "\n"
    }
}

private struct MicroBenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    fileprivate func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
