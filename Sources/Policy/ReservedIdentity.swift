/// Reserved security identities: fixed numbers for peers that are not pods, numbered as Cilium numbers them (and as
/// `enum na_reserved_identity` in the datapath ABI). Each has the single label `reserved:<name>`.
public enum ReservedIdentity {
    /// Source of the reserved labels.
    public static let source = "reserved"

    /// Not a peer: in a policy entry, 0 means "any peer".
    public static let unknown: UInt32 = 0
    public static let host: UInt32 = 1
    /// Anything outside the cluster; the datapath's identity for an address the ipcache does not know.
    public static let world: UInt32 = 2
    public static let unmanaged: UInt32 = 3
    public static let health: UInt32 = 4
    /// Endpoints whose labels are not known yet.
    public static let initializing: UInt32 = 5
    public static let remoteNode: UInt32 = 6
    public static let kubeAPIServer: UInt32 = 7
    public static let ingress: UInt32 = 8
    public static let worldIPv4: UInt32 = 9
    public static let worldIPv6: UInt32 = 10

    /// Every reserved identity with its name, by number.
    public static let all: [(id: UInt32, name: String)] = [
        (host, "host"), (world, "world"), (unmanaged, "unmanaged"), (health, "health"), (initializing, "init"),
        (remoteNode, "remote-node"), (kubeAPIServer, "kube-apiserver"), (ingress, "ingress"),
        (worldIPv4, "world-ipv4"), (worldIPv6, "world-ipv6"),
    ]

    /// Identities outside the cluster: the `world` entity, never selected by endpoint selectors.
    public static let worldIdentities: Set<UInt32> = [world, worldIPv4, worldIPv6]

    /// The reserved identities inside the cluster, part of the `cluster` entity.
    public static let clusterIdentities: [UInt32] = [
        host, unmanaged, health, initializing, remoteNode, kubeAPIServer, ingress,
    ]

    /// The name of a reserved identity (`host`), nil for other numbers.
    public static func name(of id: UInt32) -> String? { all.first { $0.id == id }?.name }

    /// The number of the reserved identity named `name`.
    public static func id(named name: String) -> UInt32? { all.first { $0.name == name }?.id }

    /// `reserved:<name>` as a one-label set, nil for numbers that are not reserved.
    public static func labels(of id: UInt32) -> LabelSet? {
        name(of: id).map { LabelSet([Label(trusted: source, $0)]) }
    }
}

/// A numeric security identity and the labels it stands for.
public struct Identity: Hashable, Sendable {
    public let id: UInt32
    public let labels: LabelSet

    public init(id: UInt32, labels: LabelSet) {
        self.id = id
        self.labels = labels
    }

    /// True for the fixed identities below 256.
    public var isReserved: Bool { id < IdentityAllocator.firstLocal }
}
