import AgentAPI
import DatapathCore

/// `na_lb_ports`: the ports some frontend serves, a bit per protocol and port (layout in nodeagent_abi.h), so that
/// `from_endpoint` looks a packet up in `na_lb_services` only when its destination port is one of them.
///
/// A port's bit is set before the first frontend on it is written and cleared after the last one is deleted, so a
/// packet some frontend serves never skips the lookup. The map counts as complete (its last word nonzero) once
/// `init` has written the bit of every frontend the maps hold; until then the programs look every packet up.
struct LBFrontendPorts {
    /// A protocol and port in host order.
    struct Port: Hashable {
        var proto: UInt8
        var port: UInt16

        /// TCP's ports, then UDP's: bit `index` is where `NA_LB_PORT_WORD` (which Swift cannot import) puts it.
        fileprivate static let perProtocol = UInt32(NA_LB_PORT_WORDS) * 64

        var index: UInt32 { (proto == IPProtocol.udp ? Self.perProtocol : 0) + UInt32(port) }
    }

    private let map: BitWords
    /// How many frontends the maps hold on each port.
    private var frontends: [Port: Int] = [:]

    /// Over the map, holding `frontends` (every frontend whose slot 0 the maps hold). Each word is written whole with
    /// the bits of those frontends, then the map is marked complete: a word read while this runs holds every bit it
    /// needs, before as after, so only bits of frontends gone while no agent ran are dropped.
    init(map: BPFMap, frontends: some Sequence<ServiceFrontend>) throws {
        self.map = try BitWords(map, words: UInt32(NA_LB_PORTS_COMPLETE))
        for frontend in frontends { self.frontends[Port(frontend), default: 0] += 1 }
        try self.map.rewrite(exactly: self.frontends.keys.map(\.index))
    }

    /// A frontend is about to be written: its port's bit goes in first.
    mutating func add(_ frontend: ServiceFrontend) throws {
        let port = Port(frontend)
        if frontends[port, default: 0] == 0 { try map.set([port.index]) }
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
        try map.clear([port.index])
        frontends[port] = nil
    }
}

extension LBFrontendPorts.Port {
    init(_ frontend: ServiceFrontend) { self.init(proto: frontend.proto, port: frontend.port) }

    /// The port of bit `index` (below `NA_LB_PORTS_COMPLETE` * 64).
    init(index: UInt32) {
        self.init(
            proto: index >= Self.perProtocol ? IPProtocol.udp : IPProtocol.tcp, port: UInt16(index % Self.perProtocol))
    }
}
