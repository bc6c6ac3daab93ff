import AgentAPI
import DatapathCore

/// `na_lb_ports`: the ports some frontend serves, a bit per protocol and port (layout in nodeagent_abi.h), so that
/// `from_endpoint` looks a packet up in `na_lb_services` only when its destination port is one of them.
///
/// A port's bit is set before the first frontend on it is written and cleared after the last one is deleted, so a
/// packet some frontend serves never skips the lookup. The map counts as complete (its last word nonzero) once
/// `init` has written the bit of every frontend the maps hold; until then the programs look every packet up.
struct LBFrontendPorts {
    /// A protocol and port in host order, and where its bit lives (`NA_LB_PORT_WORD`, which Swift cannot import).
    struct Port: Hashable {
        var proto: UInt8
        var port: UInt16

        var word: UInt32 { (proto == IPProtocol.udp ? UInt32(NA_LB_PORT_WORDS) : 0) + UInt32(port >> 6) }
        var bit: UInt64 { 1 << UInt64(port & 63) }

        /// The ports whose bits are set in `word` at `index` (below `NA_LB_PORTS_COMPLETE`), in port order.
        static func set(in word: UInt64, at index: UInt32) -> [Port] {
            let proto = index >= UInt32(NA_LB_PORT_WORDS) ? IPProtocol.udp : IPProtocol.tcp
            let first = UInt16(index % UInt32(NA_LB_PORT_WORDS)) * 64
            return (0..<64).filter { word >> UInt64($0) & 1 == 1 }.map { Port(proto: proto, port: first + $0) }
        }
    }

    private let map: TypedMap<UInt32, UInt64>
    /// How many frontends the maps hold on each port.
    private var frontends: [Port: Int] = [:]

    /// Over the map, holding `frontends` (every frontend whose slot 0 the maps hold). Each word is written whole with
    /// the bits of those frontends, then the map is marked complete: a word read while this runs holds every bit it
    /// needs, before as after, so only bits of frontends gone while no agent ran are dropped.
    init(map: BPFMap, frontends: some Sequence<ServiceFrontend>) throws {
        self.map = try TypedMap(map)
        for frontend in frontends { self.frontends[Port(frontend), default: 0] += 1 }
        var words = [UInt64](repeating: 0, count: Int(NA_LB_PORTS_COMPLETE))
        for port in self.frontends.keys { words[Int(port.word)] |= port.bit }
        let current = Dictionary(try self.map.entries().map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        for (index, word) in words.enumerated() where current[UInt32(index)] != word {
            try self.map.update(UInt32(index), word)
        }
        if current[UInt32(NA_LB_PORTS_COMPLETE)] != 1 { try self.map.update(UInt32(NA_LB_PORTS_COMPLETE), 1) }
    }

    /// A frontend is about to be written: its port's bit goes in first.
    mutating func add(_ frontend: ServiceFrontend) throws {
        let port = Port(frontend)
        if frontends[port, default: 0] == 0 { try write(port, set: true) }
        frontends[port, default: 0] += 1
    }

    /// A frontend's slot 0 was deleted: its port's bit goes once no other frontend has the port.
    mutating func remove(_ frontend: ServiceFrontend) throws {
        let port = Port(frontend)
        guard let count = frontends[port] else { return }
        if count > 1 {
            frontends[port] = count - 1
            return
        }
        try write(port, set: false)
        frontends[port] = nil
    }

    private func write(_ port: Port, set: Bool) throws {
        let word = try map.lookup(port.word) ?? 0
        try map.update(port.word, set ? word | port.bit : word & ~port.bit)
    }
}

extension LBFrontendPorts.Port {
    init(_ frontend: ServiceFrontend) { self.init(proto: frontend.proto, port: frontend.port) }
}
