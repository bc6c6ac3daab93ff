import Foundation
import Glibc

/// A system call made inside a namespace failed.
struct NetnsError: Error, CustomStringConvertible {
    var description: String

    init(_ what: String, errno code: Int32 = errno) {
        description = "\(what): \(String(cString: strerror(code)))"
    }
}

/// Named network namespaces as `ip netns` keeps them (a bind mount under /var/run/netns), and a way to run code
/// inside one without spawning a process.
enum Netns {
    static let directory = "/var/run/netns"

    static func path(_ name: String) -> String { "\(directory)/\(name)" }

    static func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

    /// Names of the namespaces whose name starts with `prefix`.
    static func names(withPrefix prefix: String) -> [String] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return all.filter { $0.hasPrefix(prefix) }.sorted()
    }

    static func create(_ name: String) throws {
        try Shell.run(["ip", "netns", "add", name])
    }

    /// Deletes the namespace; the kernel frees it (and the veth ends inside, taking their peers along) once
    /// nothing else refers to it. A namespace that is already gone is not an error.
    static func delete(_ name: String) throws {
        guard exists(name) else { return }
        try Shell.run(["ip", "netns", "delete", name])
    }

    /// Runs `ip` commands inside namespace `name` in one process (`ip -batch`), stopping at the first failure.
    static func ip(_ name: String, _ commands: [String]) throws {
        try Shell.run(["ip", "-n", name, "-batch", "-"], input: commands.joined(separator: "\n") + "\n")
    }

    /// No duplicate address detection in namespace `name`: until DAD ends, a link-local address is "tentative"
    /// and neighbour discovery across a new veth stalls for a second or two after creation.
    static func disableDuplicateAddressDetection(in name: String) throws {
        try setSysctl("net.ipv6.conf.all.accept_dad", "0", in: name)
        try setSysctl("net.ipv6.conf.default.accept_dad", "0", in: name)
    }

    /// Runs `body` on a new thread that has first joined namespace `name`, and returns its result.
    ///
    /// The namespace is a per-thread attribute: sockets created by `body` stay in that namespace for their whole
    /// life, while the calling thread never leaves its own. The thread ends after `body`, so nothing else ever
    /// runs in the namespace by accident.
    static func perform<T>(in name: String, _ body: @escaping @Sendable () throws -> T) throws -> T {
        let result = Locked<Result<T, Error>?>(nil)
        let nsPath = path(name)
        let entry = ThreadEntry {
            let outcome = Result { () throws -> T in
                try enter(nsPath)
                return try body()
            }
            result.withLock { $0 = outcome }
        }
        var thread = pthread_t()
        let argument = Unmanaged.passRetained(entry).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { argument in
                Unmanaged<ThreadEntry>.fromOpaque(argument!).takeRetainedValue().work()
                return nil
            }, argument)
        guard rc == 0 else {
            Unmanaged<ThreadEntry>.fromOpaque(argument).release()
            throw NetnsError("pthread_create", errno: rc)
        }
        pthread_join(thread, nil)
        guard let outcome = result.current else { throw NetnsError("thread in \(name) returned nothing", errno: 0) }
        return try outcome.get()
    }

    /// Writes a sysctl (`net.ipv4.ip_forward`) of namespace `name`: /proc/sys/net resolves to the namespace of
    /// the thread that opens it, so no `ip netns exec` process is needed.
    static func setSysctl(_ key: String, _ value: String, in name: String) throws {
        let file = "/proc/sys/" + key.replacingOccurrences(of: ".", with: "/")
        try perform(in: name) {
            let fd = open(file, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw NetnsError("open \(file)") }
            defer { close(fd) }
            let bytes = Array(value.utf8)
            guard write(fd, bytes, bytes.count) == bytes.count else { throw NetnsError("write \(file)") }
        }
    }

    /// Reads a sysctl of namespace `name`.
    static func sysctl(_ key: String, in name: String) throws -> String {
        let file = "/proc/sys/" + key.replacingOccurrences(of: ".", with: "/")
        return try perform(in: name) {
            try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// The ifindex of `interface` inside namespace `name`.
    static func interfaceIndex(_ interface: String, in name: String) throws -> Int32 {
        try perform(in: name) {
            let index = if_nametoindex(interface)
            guard index != 0 else { throw NetnsError("if_nametoindex(\(interface)) in \(name)") }
            return Int32(index)
        }
    }

    /// The kernel's identity of a namespace (its nsfs inode), to tell whether two paths name the same one.
    static func inode(ofPath path: String) throws -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else { throw NetnsError("stat \(path)") }
        return UInt64(st.st_ino)
    }

    /// Glibc declares setns only under _GNU_SOURCE, which the Swift Glibc module does not define, so it is
    /// looked up at run time. CLONE_NEWNET is hidden for the same reason (value from <linux/sched.h>).
    private typealias SetnsFunction = @convention(c) (Int32, Int32) -> Int32
    private static let cloneNewNet: Int32 = 0x4000_0000
    private static let setnsFunction: SetnsFunction? = {
        guard let symbol = dlsym(nil, "setns") else { return nil }
        return unsafeBitCast(symbol, to: SetnsFunction.self)
    }()

    private static func enter(_ nsPath: String) throws {
        guard let setns = setnsFunction else { throw NetnsError("setns is not available in libc", errno: ENOSYS) }
        let fd = open(nsPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetnsError("open \(nsPath)") }
        defer { close(fd) }
        guard setns(fd, cloneNewNet) == 0 else { throw NetnsError("setns \(nsPath)") }
    }
}

/// The closure a namespace thread runs, handed to pthread_create as an opaque retained pointer.
private final class ThreadEntry {
    let work: () -> Void
    init(_ work: @escaping () -> Void) { self.work = work }
}
