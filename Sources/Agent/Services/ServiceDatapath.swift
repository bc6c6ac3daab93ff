import AgentAPI

/// What clients of a service connect to: an address, a port and TCP or UDP (`IPProtocol.tcp`/`.udp`).
public struct ServiceFrontend: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    public var proto: UInt8

    public init(address: IPAddress, port: UInt16, proto: UInt8) {
        self.address = address
        self.port = port
        self.proto = proto
    }

    /// "10.96.0.10:53/UDP", as `cilium-dbg service list` prints a frontend ("[fd00::a]:53/UDP" for IPv6).
    public var description: String {
        "\(AddressPort(address: address, port: port))/\(IPProtocol.name(of: proto))"
    }
}

/// A backend's state, as Cilium's API names it: only `active` backends take new connections; the others keep
/// the connections they have.
public enum ServiceBackendState: String, Sendable, CaseIterable {
    case active
    case terminating
    case quarantined
    case maintenance
}

/// One backend of a service. Weight 0 takes no new connections (as `maintenance`).
public struct ServiceBackend: Hashable, Sendable {
    public var address: IPAddress
    public var port: UInt16
    public var weight: UInt16
    public var state: ServiceBackendState

    public init(address: IPAddress, port: UInt16, weight: UInt16 = 1, state: ServiceBackendState = .active) {
        self.address = address
        self.port = port
        self.weight = weight
        self.state = state
    }

    /// Whether new connections may be sent here.
    public var takesNewConnections: Bool { state == .active && weight > 0 }
}

/// A service as the datapath sees it: the API's id (also the reverse-translation id), the frontend, every
/// backend in the order the API gave them, and the ClientIP affinity timeout in seconds (nil: no affinity).
public struct LoadBalancedService: Hashable, Sendable {
    public var id: UInt32
    public var frontend: ServiceFrontend
    public var backends: [ServiceBackend]
    public var affinityTimeout: UInt32?
    /// Translated for clients outside the node too, on its external interfaces (NodePort, ExternalIPs and
    /// LoadBalancer services; a ClusterIP is for the cluster only).
    public var external: Bool

    public init(
        id: UInt32, frontend: ServiceFrontend, backends: [ServiceBackend], affinityTimeout: UInt32? = nil,
        external: Bool = false
    ) {
        self.id = id
        self.frontend = frontend
        self.backends = backends
        self.affinityTimeout = affinityTimeout
        self.external = external
    }
}

/// The datapath side of services: the load balancer's maps. `apply` swaps a service's backend set in so that no
/// lookup sees a half-written set (backends first, then slots, then the count; a shrink lowers the count first);
/// `remove` takes a service out, after which its frontend is an ordinary address again.
public protocol ServiceDatapath: Sendable {
    func apply(_ service: LoadBalancedService) throws(AgentError)
    func remove(_ service: LoadBalancedService) throws(AgentError)
    /// Every service the maps hold, as read back from them (a restarted agent compares these with its state).
    func programmed() throws(AgentError) -> [LoadBalancedService]
    /// Ends the connections the load balancer made to `backends` of `service`, which it no longer has (after
    /// `apply` or `remove` took them out); returns how many sockets it ended. Throws when the kernel cannot.
    func terminateConnections(to backends: [ServiceBackend], of service: LoadBalancedService) throws(AgentError)
        -> Int
}
