import Foundation
import Glibc

/// A named network namespace of its own for an in-process agent, so endpoints can sit on real veth interfaces
/// without touching the root namespace. `run` executes code on a thread that has joined the namespace: the
/// agent's interface lookups and tc attachments made from that thread happen in there.
final class ScratchNetns: @unchecked Sendable {  // immutable after init
    let name: String

    init(name: String) throws {
        self.name = name
        try Self.ip(["netns", "add", name])
    }

    /// Deletes the namespace (and the interfaces and tc programs inside it).
    func destroy() {
        _ = try? Self.ip(["netns", "delete", name])
    }

    /// Adds a veth pair, both ends up.
    func addVethPair(_ a: String, _ b: String) throws {
        try Self.ip(["-n", name, "link", "add", a, "type", "veth", "peer", "name", b])
        try Self.ip(["-n", name, "link", "set", a, "up"])
        try Self.ip(["-n", name, "link", "set", b, "up"])
    }

    /// Runs `body` on a new thread inside the namespace and returns its result.
    func run<T>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        try Self.run(in: name, body)
    }

    /// Runs `body` on a new thread inside the named namespace (made by anyone) and returns its result.
    static func run<T>(in name: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let path = "/var/run/netns/\(name)"
        let done = DispatchSemaphore(value: 0)
        Thread {
            box.result = Result {
                try Self.enter(path)
                return try body()
            }
            done.signal()
        }.start()
        done.wait()
        guard let result = box.result else { throw ScratchError("namespace thread returned nothing") }
        return try result.get()
    }

    /// setns is declared only under _GNU_SOURCE, which the Glibc module does not define: looked up at run time.
    private typealias SetnsFunction = @convention(c) (Int32, Int32) -> Int32

    private static func enter(_ path: String) throws {
        guard let symbol = dlsym(nil, "setns") else { throw ScratchError("setns is not available") }
        let setns = unsafeBitCast(symbol, to: SetnsFunction.self)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ScratchError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET, which Glibc does not export to Swift
        guard setns(fd, cloneNewNet) == 0 else {
            throw ScratchError("setns \(path): \(String(cString: strerror(errno)))")
        }
    }

    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        if !FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") {
            process.executableURL = URL(fileURLWithPath: "/sbin/ip")
        }
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw ScratchError("ip \(arguments.joined(separator: " ")) failed: \(text)")
        }
        return text
    }
}

/// Written by the namespace thread before it signals, read by the caller only after the signal.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}

struct ScratchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
