/// A plugin that knows this node's pod CIDRs (the IPAM plugin): in cluster mode the node publishes them, and
/// other nodes route them through this node's address.
public protocol PodCIDRProvider: AnyObject, Sendable {
    /// The prefixes this node's pods get their addresses from; empty when none is configured.
    var podCIDRs: [IPPrefix] { get }
}
