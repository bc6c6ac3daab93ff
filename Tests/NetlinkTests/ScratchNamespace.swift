import AgentAPI
import Foundation
import Glibc
import XCTest

/// A network namespace of its own for one test, named with a random tag, with two links whose subnets hold the
/// gateways the tests route through: `d0` 192.0.2.1/24 and 2001:db8:1::1/64, `d1` 198.51.100.1/24 and
/// 2001:db8:2::1/64. They are veths with their peers (`p0`, `p1`) in the same namespace, up so the links have a
/// carrier (kernels without the dummy driver have veth).
/// Everything the test does happens inside it; deleting it takes the links and routes along.
struct ScratchNamespace {
    let name: String
    var path: String { "/var/run/netns/\(name)" }

    /// Creates the namespace and registers its deletion with `test`, which runs even when the test fails.
    init(for test: XCTestCase) throws {
        name = "nl-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try Self.run(["ip", "netns", "add", name])
        let name = self.name
        test.addTeardownBlock { _ = try? Self.run(["ip", "netns", "delete", name]) }
        for (link, v4, v6) in [
            ("d0", "192.0.2.1/24", "2001:db8:1::1/64"), ("d1", "198.51.100.1/24", "2001:db8:2::1/64"),
        ] {
            let peer = "p" + link.dropFirst()
            try ip(["link", "add", link, "type", "veth", "peer", "name", peer])
            try ip(["link", "set", link, "up"])
            try ip(["link", "set", peer, "up"])
            try ip(["address", "add", v4, "dev", link])
            // No duplicate address detection: the address (and its subnet route) is usable at once.
            try ip(["address", "add", v6, "dev", link, "nodad"])
        }
    }

    /// `ip -n <name> arguments`, its standard output.
    @discardableResult
    func ip(_ arguments: [String]) throws -> String {
        try Self.run(["ip", "-n", name] + arguments)
    }

    /// The routes of the main table as the kernel reports them to iproute2 (`ip -j route show`), one family.
    func kernelRoutes(ipv6: Bool = false) throws -> [JSON] {
        let output = try ip(["-j", ipv6 ? "-6" : "-4", "route", "show", "table", "main"])
        return try JSON.parse(output).arrayValue ?? []
    }

    /// The kernel's routes to `destination` (as `ip` writes it).
    func kernelRoutes(to destination: String) throws -> [JSON] {
        try kernelRoutes(ipv6: destination.contains(":")).filter { $0["dst"]?.stringValue == destination }
    }

    /// The index of `link` inside the namespace.
    func index(of link: String) throws -> Int32 {
        let json = try JSON.parse(ip(["-j", "link", "show", link]))
        guard let index = json[0]?["ifindex"]?.intValue else { throw ScratchError("no ifindex for \(link)") }
        return Int32(index)
    }

    /// Runs a command to its end; throws with its standard error when it fails.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Both are read to the end before waiting; `ip` writes far less than a pipe holds.
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? output.fileHandleForReading.close()
        try? errors.fileHandleForReading.close()
        guard process.terminationStatus == 0 else {
            let reason = String(decoding: stderr, as: UTF8.self)
            throw ScratchError("\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(reason)")
        }
        return String(decoding: stdout, as: UTF8.self)
    }

    /// The identity (nsfs inode) of the network namespace the calling thread is in.
    static func currentNamespace() throws -> UInt64 {
        var st = stat()
        guard stat("/proc/thread-self/ns/net", &st) == 0 else { throw ScratchError("stat of this thread's netns") }
        return UInt64(st.st_ino)
    }
}

struct ScratchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
