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

/// Namespaces and veth pairs for one test: a node namespace that routes between pod namespaces and external
/// hosts. Every name carries the run tag so that leftovers can be found; `destroy()` removes everything.
///
/// State changes go through `state`'s lock, which is what makes the class Sendable.
final class Topology: @unchecked Sendable {
    /// Four hex digits that every name created for this topology contains.
    let tag: String
    /// The node namespace: forwards between pods and hosts, and is where the agent runs.
    let nodeNetns: String
    /// The pods' gateway: the same address on every host-side veth, routed on-link from each pod.
    let gatewayIPv4: String
    let gatewayIPv6: String

    private struct State {
        var namespaces: [String] = []  // in creation order
        var pods: [Pod] = []
        var externalHosts: [ExternalHost] = []
        var cleanups: [@Sendable () -> Void] = []
        var destroyed = false
        var lastIndex = 0  // numbers namespaces and interfaces
    }
    private let state = Locked(State())

    /// Creates the node namespace (loopback up, forwarding on). Throws when not run as root or `ip` fails;
    /// whatever was created before the failure is removed again.
    init(tag: String? = nil, gatewayIPv4: String = "10.244.0.1") throws {
        _ = Shell.ignoreSIGPIPE
        Topology.sweepAbandoned()
        self.tag = try tag ?? Topology.freshTag()
        nodeNetns = "na\(self.tag)-node"
        self.gatewayIPv4 = gatewayIPv4
        gatewayIPv6 = "fd00:\(self.tag)::1"
        try RunMarker.claim(self.tag)
        do {
            try createNamespace(nodeNetns)
            try Netns.setSysctl("net.ipv4.ip_forward", "1", in: nodeNetns)
            try Netns.setSysctl("net.ipv6.conf.all.forwarding", "1", in: nodeNetns)
            // The defaults apply to veths created later; reverse-path filtering is inherited from the root
            // namespace and would depend on the machine.
            try Netns.setSysctl("net.ipv4.conf.all.rp_filter", "0", in: nodeNetns)
            try Netns.setSysctl("net.ipv4.conf.default.rp_filter", "0", in: nodeNetns)
            try disableDuplicateAddressDetection(nodeNetns)
            try ip(nodeNetns, ["link set lo up"])
        } catch {
            destroy()
            throw error
        }
    }

    deinit { destroy() }

    var pods: [Pod] { state.current.pods }
    var externalHosts: [ExternalHost] { state.current.externalHosts }
    /// Every namespace created so far, node namespace first.
    var namespaces: [String] { state.current.namespaces }

    /// Adds a pod with addresses picked from the topology's ranges (10.244.1.N, fd00:<tag>::1:N).
    @discardableResult
    func addPod(namespace k8sNamespace: String, name: String, dualStack: Bool = true) throws -> Pod {
        let index = nextIndex()
        return try addPod(
            index: index, namespace: k8sNamespace, name: name, ipv4: "10.244.1.\(index)",
            ipv6: dualStack ? "fd00:\(tag)::1:\(String(index, radix: 16))" : nil)
    }

    /// Adds a pod namespace `na<tag>-p<N>` whose eth0 pairs with `lxc<tag><N>` in the node namespace.
    ///
    /// Inside the pod: the address as /32 (/128) on eth0, an on-link route to the gateway and a default route via
    /// it. In the node namespace: the gateway address on the host veth and a host route to the pod through it.
    @discardableResult
    func addPod(namespace k8sNamespace: String, name: String, ipv4: String, ipv6: String? = nil) throws -> Pod {
        try addPod(index: nextIndex(), namespace: k8sNamespace, name: name, ipv4: ipv4, ipv6: ipv6)
    }

    private func addPod(index: Int, namespace k8sNamespace: String, name: String, ipv4: String, ipv6: String?)
        throws -> Pod
    {
        let podNetns = "na\(tag)-p\(index)"
        let hostInterface = "lxc\(tag)\(index)"
        try createNamespace(podNetns)
        try disableDuplicateAddressDetection(podNetns)
        try ip(nodeNetns, ["link add \(hostInterface) type veth peer name eth0 netns \(podNetns)"])

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
        try ip(podNetns, podCommands)
        try ip(nodeNetns, nodeCommands)

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
        let index = nextIndex()
        let hostNetns = "na\(tag)-x\(index)"
        let hostInterface = "ext\(tag)\(index)"
        try createNamespace(hostNetns)
        try disableDuplicateAddressDetection(hostNetns)
        try ip(nodeNetns, ["link add \(hostInterface) type veth peer name eth0 netns \(hostNetns)"])

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
        try ip(hostNetns, hostCommands)
        try ip(nodeNetns, nodeCommands)

        let host = ExternalHost(
            netns: hostNetns, hostInterface: hostInterface,
            hostIfindex: try Netns.interfaceIndex(hostInterface, in: nodeNetns), ipv4: ipv4, ipv6: ipv6,
            nodeIPv4: nodeIPv4, nodeIPv6: ipv6 == nil ? nil : nodeIPv6)
        state.withLock { $0.externalHosts.append(host) }
        return host
    }

    /// Registers work to run at the start of `destroy()`, newest first: closing sockets (which keep their
    /// namespace alive), stopping an agent before its namespace disappears.
    func onDestroy(_ block: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.destroyed { return true }
            state.cleanups.append(block)
            return false
        }
        if runNow { block() }
    }

    /// Runs the registered cleanups, deletes every namespace of this topology and sweeps anything else carrying
    /// its tag. Safe to call more than once and after a partial setup; returns what could not be removed.
    @discardableResult
    func destroy() -> [String] {
        let (cleanups, namespaces) = state.withLock { state in
            defer {
                state.cleanups = []
                state.namespaces = []
                state.destroyed = true
            }
            return (state.cleanups, state.namespaces)
        }
        for cleanup in cleanups.reversed() { cleanup() }
        var problems: [String] = []
        for name in namespaces.reversed() {
            do { try Netns.delete(name) } catch { problems.append("\(error)") }
        }
        problems += Topology.sweep(tag: tag)
        return problems
    }

    /// What still exists with this topology's tag in its name: namespaces, interfaces in the root namespace
    /// (there should never be any), BPF pin directories, temporary directories and the run marker.
    func leftovers() -> [String] { Topology.leftovers(tag: tag) }

    /// Adds an empty namespace `na<tag>-c<N>`, as a container runtime creates one before calling its CNI plugin.
    func addContainerNamespace() throws -> String {
        let name = "na\(tag)-c\(nextIndex())"
        try createNamespace(name)
        try disableDuplicateAddressDetection(name)
        return name
    }

    // MARK: - Building blocks

    private func nextIndex() -> Int {
        state.withLock { state in
            state.lastIndex += 1
            return state.lastIndex
        }
    }

    private func createNamespace(_ name: String) throws {
        try Netns.create(name)
        state.withLock { $0.namespaces.append(name) }
    }

    /// No duplicate address detection on either end of a veth: until DAD ends, a link-local address is
    /// "tentative" and neighbour discovery across the link stalls for a second or two after creation.
    private func disableDuplicateAddressDetection(_ name: String) throws {
        try Netns.setSysctl("net.ipv6.conf.all.accept_dad", "0", in: name)
        try Netns.setSysctl("net.ipv6.conf.default.accept_dad", "0", in: name)
    }

    /// Runs `ip` commands inside namespace `netns` in one process (`ip -batch`), stopping at the first failure.
    private func ip(_ netns: String, _ commands: [String]) throws {
        try Shell.run(["ip", "-n", netns, "-batch", "-"], input: commands.joined(separator: "\n") + "\n")
    }
}
