import CNodeABI

/// What withdrawn full-length keys may have left set in the policy table's filters with no key behind it: their
/// bits of `na_ptable_ports` and their lines of `na_ptable_peers`. Bits are set before a key is written and a
/// withdrawal leaves them, so a port or a peer whose keys came and went keeps costing its new flows a table read
/// until `PolicyTable.refreshFilters` clears them.
public struct PolicyFilterLeftovers: Equatable, Sendable {
    /// `na_ptable_ports` bits (as `PolicyTable.portBit` gives them).
    public private(set) var ports: Set<UInt32> = []
    /// `na_ptable_peers` lines of 8 words (as `na_policy_peer_line` gives them).
    public private(set) var peerLines: Set<UInt32> = []

    public init() {}

    public var isEmpty: Bool { ports.isEmpty && peerLines.isEmpty }

    /// Notes the bits of keys just withdrawn.
    public mutating func add(withdrawn keys: some Sequence<na_policy_key>) {
        for key in keys {
            let port = PolicyTable.portBit(key)
            ports.insert(port)
            peerLines.insert(na_policy_peer_line(port))
        }
    }
}
