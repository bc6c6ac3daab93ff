import AgentAPI
import Foundation

/// Creates and removes the veth pair and the addressing of a pod, with iproute2 (`ip`) as the netlink client.
/// Container-side commands run inside the pod's network namespace through `nsenter --net=<path>`, which accepts
/// any namespace path a runtime hands over (/var/run/netns/x, /proc/<pid>/ns/net).
struct Wiring {
    var hostInterface: String
    var netns: String
    var ifname: String

    struct Interface {
        var name: String
        var mac: String
    }

    /// The pod's veth: `ifname` in the pod, `hostInterface` in our namespace, addresses and routes Cilium-style
    /// (the pod's address as /32, the gateway on-link, default route through it).
    func add(address: String, gateway: String, mtu: Int?) throws -> (host: Interface, pod: Interface) {
        let hostPID = getpid()
        var link = ["link", "add", ifname, "type", "veth", "peer", "name", hostInterface, "netns", "\(hostPID)"]
        if let mtu { link += ["mtu", "\(mtu)"] }
        try ipInPod(link)
        try ip(["link", "set", hostInterface, "up"])
        try ip(["address", "add", "\(gateway)/32", "dev", hostInterface])
        try ip(["route", "replace", "\(address)/32", "dev", hostInterface])
        try ipInPod(["link", "set", "lo", "up"])
        try ipInPod(["address", "add", "\(address)/32", "dev", ifname])
        try ipInPod(["link", "set", ifname, "up"])
        try ipInPod(["route", "add", gateway, "dev", ifname, "scope", "link"])
        try ipInPod(["route", "add", "default", "via", gateway, "dev", ifname])
        try? Sysctl.set("net/ipv4/ip_forward", "1")
        return (try Wiring.interface(hostInterface, pod: nil), try Wiring.interface(ifname, pod: netns))
    }

    /// Deletes the host side (the pair goes with it). True when it existed.
    @discardableResult
    func remove() -> Bool {
        Self.remove(hostInterface: hostInterface)
    }

    @discardableResult
    static func remove(hostInterface: String) -> Bool {
        (try? run(["ip", "link", "delete", hostInterface])) != nil
    }

    /// The host-side veths of this namespace named as this plugin names them.
    static func hostInterfaces() throws -> [String] {
        let output = try run(["ip", "-j", "link", "show", "type", "veth"])
        let links = (try? JSON.parse(output))?.arrayValue ?? []
        return links.compactMap { $0["ifname"]?.stringValue }.filter(CNIRequest.isHostInterface)
    }

    /// What CHECK verifies: both ends exist and the pod holds the address.
    func verify(address: String) throws {
        guard (try? Wiring.interface(hostInterface, pod: nil)) != nil else {
            throw CNIError(.wiringFailed, "host interface \(hostInterface) is missing")
        }
        let shown = try Wiring.run(["nsenter", "--net=\(netns)", "ip", "-j", "address", "show", "dev", ifname])
        guard shown.contains("\"local\":\"\(address)\"") else {
            throw CNIError(.wiringFailed, "\(ifname) in \(netns) does not hold \(address)")
        }
    }

    static func interface(_ name: String, pod netns: String?) throws -> Interface {
        let prefix = netns.map { ["nsenter", "--net=\($0)"] } ?? []
        let output = try run(prefix + ["ip", "-j", "link", "show", "dev", name])
        let json = try? JSON.parse(output)
        guard let mac = json?[0]?["address"]?.stringValue else {
            throw CNIError(.wiringFailed, "cannot read interface \(name)", details: output)
        }
        return Interface(name: name, mac: mac)
    }

    private func ip(_ arguments: [String]) throws {
        _ = try Wiring.run(["ip"] + arguments)
    }

    private func ipInPod(_ arguments: [String]) throws {
        _ = try Wiring.run(["nsenter", "--net=\(netns)", "ip"] + arguments)
    }

    /// Runs a command; its stderr becomes the error's details.
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do {
            try process.run()
        } catch {
            throw CNIError(.ioFailure, "cannot run \(arguments[0])", details: "\(error)")
        }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CNIError(
                .wiringFailed, "\(arguments.joined(separator: " ")) failed",
                details: String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return String(decoding: output, as: UTF8.self)
    }
}

enum Sysctl {
    static func set(_ key: String, _ value: String) throws {
        try value.write(toFile: "/proc/sys/\(key)", atomically: false, encoding: .utf8)
    }
}
