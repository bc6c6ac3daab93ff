/// A plugin that gives CIDR prefixes security identities in the ipcache (the CIDR policy plugin).
///
/// The agent calls `acquire` with every prefix policies name before it programs policy maps, and `release` after,
/// so a prefix keeps its ipcache entry for as long as an enforced policy may select it.
public protocol PrefixIdentityProvider: AnyObject, Sendable {
    /// Makes sure each prefix (10.0.0.0/8, fd00::/64) has an identity and an ipcache entry; returns them all.
    func acquire(prefixes: Set<IPPrefix>) throws -> [IPPrefix: UInt32]
    /// Releases every prefix not in `keep`: its ipcache entry and its identity.
    func release(keeping keep: Set<IPPrefix>) throws
    /// The prefixes that have an identity now.
    var heldPrefixes: Set<IPPrefix> { get }
}
