import AgentAPI
import Foundation
import Netlink

/// Creates, checks and removes the veth pair and the addressing of a pod through rtnetlink: one socket in the
/// node's namespace and one in the pod's (any namespace path a runtime hands over: /var/run/netns/x,
/// /proc/<pid>/ns/net), no `ip` or `nsenter` processes.
struct Wiring {
    var hostInterface: String
    var netns: String
    var ifname: String

    struct Interface {
        var name: String
        var mac: String
    }

    /// The pod's veth: `ifname` in the pod, `hostInterface` in our namespace, addresses and routes Cilium-style
    /// (the pod's address as /32, the gateway on-link, default route through it). A failure part-way removes the
    /// pair again, which takes the addresses and routes on it along.
    func add(address: String, gateway: String, mtu: Int?) throws -> (host: Interface, pod: Interface) {
        let node = try CNIError.netlink(.ioFailure) { try NetlinkSocket() }
        let pod = try CNIError.netlink(.ioFailure) { try NetlinkSocket(namespace: netns) }
        return try CNIError.netlink(.wiringFailed) { try add(address: address, gateway: gateway, mtu: mtu, node, pod) }
    }

    private func add(address: String, gateway: String, mtu: Int?, _ node: NetlinkSocket, _ pod: NetlinkSocket)
        throws -> (host: Interface, pod: Interface)
    {
        try pod.addVeth(name: ifname, peer: hostInterface, peerPID: getpid(), mtu: mtu)
        do {
            try node.setUp(hostInterface)
            let host = try Self.require(node, hostInterface, in: "the node")
            try node.addAddress(gateway, prefix: 32, to: host.index)
            try node.addRoute("\(address)/32", via: host.index, replace: true)
            try pod.setUp("lo")
            let inside = try Self.require(pod, ifname, in: netns)
            try pod.addAddress(address, prefix: 32, to: inside.index)
            try pod.setUp(ifname)
            try pod.addRoute("\(gateway)/32", via: inside.index)
            try pod.addRoute("0.0.0.0/0", gateway: gateway, via: inside.index)
            try? Sysctl.set("net/ipv4/ip_forward", "1")
            return (Interface(name: host.name, mac: host.mac), Interface(name: inside.name, mac: inside.mac))
        } catch {
            _ = try? node.deleteLink(hostInterface)
            throw error
        }
    }

    /// Deletes the host side (the pair goes with it). True when it existed.
    @discardableResult
    func remove() -> Bool {
        Self.remove(hostInterface: hostInterface)
    }

    @discardableResult
    static func remove(hostInterface: String) -> Bool {
        (try? NetlinkSocket().deleteLink(hostInterface)) ?? false
    }

    /// The host-side veths of this namespace named as this plugin names them.
    static func hostInterfaces() throws -> [String] {
        try CNIError.netlink(.ioFailure) {
            try NetlinkSocket().links().filter { ($0.type ?? "veth") == "veth" && CNIRequest.isHostInterface($0.name) }
                .map(\.name)
        }
    }

    /// What CHECK verifies, as the kernel reports it: both ends exist and are up; the node holds the gateway on
    /// the host end and routes the pod's /32 through it; the pod holds its /32, reaches the gateway on-link and
    /// routes everything else through it.
    func verify(address: String, gateway: String) throws {
        let node = try CNIError.netlink(.ioFailure) { try NetlinkSocket() }
        let pod = try CNIError.netlink(.ioFailure) { try NetlinkSocket(namespace: netns) }
        try CNIError.netlink(.wiringFailed) { try verify(address: address, gateway: gateway, node, pod) }
    }

    private func verify(address: String, gateway: String, _ node: NetlinkSocket, _ pod: NetlinkSocket) throws {
        let host = try Self.require(node, hostInterface, in: "the node")
        guard host.isUp else { throw CNIError(.wiringFailed, "host interface \(hostInterface) is down") }
        guard try node.addresses(of: host.index).contains("\(gateway)/32") else {
            throw CNIError(.wiringFailed, "host interface \(hostInterface) does not hold the gateway \(gateway)")
        }
        guard try node.routes().contains(.init(destination: "\(address)/32", interfaceIndex: host.index)) else {
            throw CNIError(.wiringFailed, "the node has no route to \(address) through \(hostInterface)")
        }
        let inside = try Self.require(pod, ifname, in: netns)
        guard inside.isUp else { throw CNIError(.wiringFailed, "\(ifname) in \(netns) is down") }
        guard try pod.addresses(of: inside.index).contains("\(address)/32") else {
            throw CNIError(.wiringFailed, "\(ifname) in \(netns) does not hold \(address)")
        }
        let routes = try pod.routes()
        guard routes.contains(.init(destination: "\(gateway)/32", interfaceIndex: inside.index)) else {
            throw CNIError(.wiringFailed, "\(netns) has no on-link route to the gateway \(gateway)")
        }
        guard routes.contains(.init(destination: "0.0.0.0/0", gateway: gateway, interfaceIndex: inside.index)) else {
            throw CNIError(.wiringFailed, "\(netns) has no default route through \(gateway) on \(ifname)")
        }
    }

    private static func require(_ socket: NetlinkSocket, _ name: String, in place: String) throws
        -> NetlinkSocket.Link
    {
        guard let link = try socket.link(named: name) else {
            throw CNIError(.wiringFailed, "interface \(name) is missing in \(place)")
        }
        return link
    }
}

enum Sysctl {
    static func set(_ key: String, _ value: String) throws {
        try value.write(toFile: "/proc/sys/\(key)", atomically: false, encoding: .utf8)
    }
}
