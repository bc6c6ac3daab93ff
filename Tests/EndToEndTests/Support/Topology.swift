import Foundation
import Glibc

/// Anything with its own network namespace and addresses that traffic helpers can connect from or to.
protocol NetworkHost: Sendable {
    var netns: String { get }
    var ipv4: String { get }
    var ipv6: String? { get }
}

/// A pod: a namespace wired to the node namespace through a veth pair, as Cilium wires one.
struct Pod: NetworkHost, CustomStringConvertible {
    /// The Kubernetes pod name and namespace the pod stands for.
    var name: String
    var k8sNamespace: String
    /// The network namespace the pod's eth0 lives in.
    var netns: String
    /// The host side of the veth pair, in the node namespace (the endpoint's `interface-name`).
    var hostInterface: String
    var hostIfindex: Int32
    var ipv4: String
    var ipv6: String?

    var description: String { "\(k8sNamespace)/\(name)" }
}

/// A host outside the cluster ("world"), reached through the node namespace.
struct ExternalHost: NetworkHost, CustomStringConvertible {
    var netns: String
    var hostInterface: String
    var hostIfindex: Int32
    var ipv4: String
    var ipv6: String?
    /// The node's own address on the link to this host: the address a masquerading node would use.
    var nodeIPv4: String
    var nodeIPv6: String?

    var description: String { "world \(ipv4)" }
}

/// A node namespace that routes between pod namespaces and external hosts, where the agent runs: alone for a
/// single-node test, or one of the nodes of a `ClusterTopology`. Every name carries the run tag so that leftovers
/// can be found; `destroy()` removes everything of the run.
///
/// State changes go through `state`'s lock, which is what makes the class Sendable.
final class Topology: @unchecked Sendable {
    /// What this node belongs to: its own run when alone, the cluster's when part of one.
    let run: TestRun
    /// The node's name ("node" alone, "node1", "node2", ... in a cluster), as the agent would register it.
    let nodeName: String
    /// The node namespace `na<tag>-<nodeName>`: forwards between pods and hosts, and is where the agent runs.
    let nodeNetns: String
    /// The pod ranges and gateway of this node.
    let addressing: PodAddressing
    /// The node's link to the cluster underlay; nil for a node alone.
    let underlay: UnderlayPort?

    /// Four hex digits that every name created for this topology contains.
    var tag: String { run.tag }
    var gatewayIPv4: String { addressing.gatewayIPv4 }
    var gatewayIPv6: String { addressing.gatewayIPv6 }

    private struct State {
        var pods: [Pod] = []
        var externalHosts: [ExternalHost] = []
    }
    private let state = Locked(State())
    private let ownsRun: Bool

    /// A node alone: creates its run and the node namespace (loopback up, forwarding on). Throws when not run as
    /// root or `ip` fails; whatever was created before the failure is removed again.
    convenience init(tag: String? = nil, gatewayIPv4: String = "10.244.0.1") throws {
        let run = try TestRun(tag: tag)
        try self.init(
            run: run, ownsRun: true, nodeName: "node",
            addressing: .singleNode(tag: run.tag, gatewayIPv4: gatewayIPv4), underlay: nil)
    }

    /// Node `number` of a cluster: its namespace in `run`, pods from `PodAddressing.clusterNode`, and an `eth0`
    /// on `underlay` with host number `number`. On failure the caller destroys the run.
    convenience init(clusterNode number: Int, in run: TestRun, underlay: Underlay) throws {
        try self.init(
            run: run, ownsRun: false, nodeName: "node\(number)", addressing: .clusterNode(number, tag: run.tag),
            underlay: underlay.reserve(host: number))
    }

    private init(run: TestRun, ownsRun: Bool, nodeName: String, addressing: PodAddressing, underlay: UnderlayPort?)
        throws
    {
        self.run = run
        self.ownsRun = ownsRun
        self.nodeName = nodeName
        nodeNetns = "na\(run.tag)-\(nodeName)"
        self.addressing = addressing
        self.underlay = underlay
        do {
            try run.createNamespace(nodeNetns)
            try Netns.setSysctl("net.ipv4.ip_forward", "1", in: nodeNetns)
            try Netns.setSysctl("net.ipv6.conf.all.forwarding", "1", in: nodeNetns)
            // The defaults apply to veths created later; reverse-path filtering is inherited from the root
            // namespace and would depend on the machine.
            try Netns.setSysctl("net.ipv4.conf.all.rp_filter", "0", in: nodeNetns)
            try Netns.setSysctl("net.ipv4.conf.default.rp_filter", "0", in: nodeNetns)
            try Netns.ip(nodeNetns, ["link set lo up"])
            if let underlay { try underlay.attach(nodeNetns) }
        } catch {
            if ownsRun { run.destroy() }
            throw error
        }
    }

    deinit {
        // A cluster's nodes go with the cluster's run, which destroys itself when it goes.
        if ownsRun { destroy() }
    }

    var pods: [Pod] { state.current.pods }
    var externalHosts: [ExternalHost] { state.current.externalHosts }
    /// Every namespace of the run created so far, in creation order (for a node alone, its namespace first).
    var namespaces: [String] { run.namespaces }

    /// Adds a pod with addresses picked from the node's ranges (`addressing`: 10.244.1.N and fd00:<tag>::1:N for a
    /// node alone).
    @discardableResult
    func addPod(namespace k8sNamespace: String, name: String, dualStack: Bool = true) throws -> Pod {
        let index = run.nextIndex()
        return try addPod(
            index: index, namespace: k8sNamespace, name: name, ipv4: addressing.ipv4(index: index),
            ipv6: dualStack ? addressing.ipv6(index: index) : nil)
    }

    /// Adds a pod namespace `na<tag>-p<N>` whose eth0 pairs with `lxc<tag><N>` in the node namespace.
    ///
    /// Inside the pod: the address as /32 (/128) on eth0, an on-link route to the gateway and a default route via
    /// it. In the node namespace: the gateway address on the host veth and a host route to the pod through it.
    @discardableResult
    func addPod(namespace k8sNamespace: String, name: String, ipv4: String, ipv6: String? = nil) throws -> Pod {
        try addPod(index: run.nextIndex(), namespace: k8sNamespace, name: name, ipv4: ipv4, ipv6: ipv6)
    }

    private func addPod(index: Int, namespace k8sNamespace: String, name: String, ipv4: String, ipv6: String?)
        throws -> Pod
    {
        let podNetns = "na\(tag)-p\(index)"
        let hostInterface = "lxc\(tag)\(index)"
        try run.createNamespace(podNetns)
        try Netns.ip(nodeNetns, ["link add \(hostInterface) type veth peer name eth0 netns \(podNetns)"])

        var podCommands = [
            "link set lo up", "link set eth0 up",
            "address add \(ipv4)/32 dev eth0",
            "route add \(gatewayIPv4) dev eth0 scope link",
            "route add default via \(gatewayIPv4) dev eth0",
        ]
        var nodeCommands = [
            "link set \(hostInterface) up",
            "address add \(gatewayIPv4)/32 dev \(hostInterface)",
            "route add \(ipv4)/32 dev \(hostInterface)",
        ]
        if let ipv6 {
            podCommands += [
                "address add \(ipv6)/128 dev eth0 nodad",
                "route add \(gatewayIPv6) dev eth0",
                "route add ::/0 via \(gatewayIPv6) dev eth0",
            ]
            nodeCommands += [
                "address add \(gatewayIPv6)/128 dev \(hostInterface) nodad",
                "route add \(ipv6)/128 dev \(hostInterface)",
            ]
        }
        try Netns.ip(podNetns, podCommands)
        try Netns.ip(nodeNetns, nodeCommands)

        let pod = Pod(
            name: name, k8sNamespace: k8sNamespace, netns: podNetns, hostInterface: hostInterface,
            hostIfindex: try Netns.interfaceIndex(hostInterface, in: nodeNetns), ipv4: ipv4, ipv6: ipv6)
        state.withLock { $0.pods.append(pod) }
        return pod
    }

    /// Adds a host "outside the cluster" in namespace `na<tag>-x<N>`, linked to the node namespace by
    /// `ext<tag><N>` and addressed like a pod, with the node's address on that link being `nodeIPv4`.
    /// With `routeToPods` its default route points at the node, so it can reach pods directly; without it, it can
    /// only answer the node's own address (what masquerading needs).
    @discardableResult
    func addExternalHost(
        ipv4: String, ipv6: String? = nil, nodeIPv4: String = "172.31.0.1", nodeIPv6: String = "fd01::1",
        routeToPods: Bool = true
    ) throws -> ExternalHost {
        let index = run.nextIndex()
        let hostNetns = "na\(tag)-x\(index)"
        let hostInterface = "ext\(tag)\(index)"
        try run.createNamespace(hostNetns)
        try Netns.ip(nodeNetns, ["link add \(hostInterface) type veth peer name eth0 netns \(hostNetns)"])

        var hostCommands = [
            "link set lo up", "link set eth0 up",
            "address add \(ipv4)/32 dev eth0",
            "route add \(nodeIPv4) dev eth0 scope link",
        ]
        if routeToPods { hostCommands.append("route add default via \(nodeIPv4) dev eth0") }
        var nodeCommands = [
            "link set \(hostInterface) up",
            "address add \(nodeIPv4)/32 dev \(hostInterface)",
            "route add \(ipv4)/32 dev \(hostInterface)",
        ]
        if let ipv6 {
            hostCommands += ["address add \(ipv6)/128 dev eth0 nodad", "route add \(nodeIPv6) dev eth0"]
            if routeToPods { hostCommands.append("route add ::/0 via \(nodeIPv6) dev eth0") }
            nodeCommands += [
                "address add \(nodeIPv6)/128 dev \(hostInterface) nodad",
                "route add \(ipv6)/128 dev \(hostInterface)",
            ]
        }
        try Netns.ip(hostNetns, hostCommands)
        try Netns.ip(nodeNetns, nodeCommands)

        let host = ExternalHost(
            netns: hostNetns, hostInterface: hostInterface,
            hostIfindex: try Netns.interfaceIndex(hostInterface, in: nodeNetns), ipv4: ipv4, ipv6: ipv6,
            nodeIPv4: nodeIPv4, nodeIPv6: ipv6 == nil ? nil : nodeIPv6)
        state.withLock { $0.externalHosts.append(host) }
        return host
    }

    /// Registers work to run at the start of `destroy()`, newest first: closing sockets (which keep their
    /// namespace alive), stopping an agent before its namespace disappears.
    func onDestroy(_ block: @escaping @Sendable () -> Void) { run.onDestroy(block) }

    /// Destroys the run this node belongs to (for a cluster node, the whole cluster): runs the registered
    /// cleanups, deletes every namespace and sweeps anything else carrying the tag. Safe to call more than once
    /// and after a partial setup; returns what could not be removed.
    @discardableResult
    func destroy() -> [String] { run.destroy() }

    /// What still exists with this run's tag in its name: namespaces, interfaces in the root namespace
    /// (there should never be any), BPF pin directories, temporary directories and the run marker.
    func leftovers() -> [String] { run.leftovers() }

    /// Adds an empty namespace `na<tag>-c<N>`, as a container runtime creates one before calling its CNI plugin.
    func addContainerNamespace() throws -> String {
        let name = "na\(tag)-c\(run.nextIndex())"
        try run.createNamespace(name)
        return name
    }
}
