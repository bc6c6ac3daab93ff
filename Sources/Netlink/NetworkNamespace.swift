import AgentAPI
import CNetlink
import Glibc

/// Network namespaces by path: running a short piece of code inside one, and finding every namespace of the node.
public enum NetworkNamespace {
    /// Runs `body` on the calling thread inside the namespace at `path` (/var/run/netns/x, /proc/<pid>/ns/net) and
    /// returns to the thread's own namespace before anything else runs on it. Sockets `body` creates keep the
    /// namespace they were created in, which is how one process talks to the node's and many pods' namespaces.
    /// `body` must not suspend: safe on a thread of Swift's concurrency pool too.
    public static func run<T>(in path: String, _ body: () throws -> T) throws -> T {
        let target = open(path, O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { throw systemError("opening network namespace \(path)") }
        defer { close(target) }
        let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard home >= 0, cnl_setns_net(target) == 0 else {
            let error = systemError("entering network namespace \(path)")
            if home >= 0 { close(home) }
            throw error
        }
        let result = Result { try body() }
        let returned = cnl_setns_net(home)
        let failure = returned == 0 ? nil : systemError("returning to this thread's namespace from \(path)")
        close(home)
        if let failure { throw failure }
        return try result.get()
    }

    /// One path for each network namespace of the node: those `ip netns` names, then those only processes hold
    /// (`/proc/<pid>/ns/net` of the first process found in each). Namespaces are told apart by device and inode.
    public static func all() -> [String] {
        var seen: Set<[UInt64]> = []
        var paths: [String] = []
        func add(_ path: String) {
            var info = stat()
            guard stat(path, &info) == 0, seen.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else {
                return
            }
            paths.append(path)
        }
        for name in directoryEntries("/var/run/netns") { add("/var/run/netns/\(name)") }
        for name in directoryEntries("/proc") where name.allSatisfy(\.isASCIIDigit) {
            add("/proc/\(name)/ns/net")
        }
        return paths
    }

    private static func directoryEntries(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    static func systemError(_ what: String) -> AgentError {
        let code = errno
        return AgentError.kernel("\(what): \(String(cString: strerror(code)))", errno: code)
    }
}
