import AgentAPI
import CLibbpf
import FoundationEssentials
import Glibc
import Logging
import Synchronization

/// libbpf's messages. Without a sink libbpf prints them to stderr; here they go to the agent's log instead
/// (libbpf's warnings at warning, the rest at debug), and the last ones are kept so a failed load can quote the
/// verifier. A caller whose call may fail harmlessly (asking about a tc hook an interface does not have) holds its
/// thread's messages and decides what they are worth.
enum LibbpfLog {
    private static let logger = Logger(label: "libbpf")
    private static let recent = Mutex<[String]>([])
    /// Messages of the threads inside `holding`, by thread: libbpf calls the sink on the thread that called it.
    private static let held = Mutex<[pthread_t: [String]]>([:])
    private static let installed: Void = {
        cbpf_set_log_sink { level, message in
            guard let message else { return }
            LibbpfLog.receive(level: level, String(cString: message))
        }
    }()

    /// Sends libbpf's messages here from now on; every entry point into libbpf calls it first.
    static func install() { _ = installed }

    static func receive(level: Int32, _ message: String) {
        var text = Substring(message.trimmedWhitespace)
        if text.hasPrefix("libbpf: ") { text = text.dropFirst("libbpf: ".count) }
        let line = String(text)
        let thread = pthread_self()
        let taken = held.withLock { held -> Bool in
            guard held[thread] != nil else { return false }
            held[thread]!.append(line)
            return true
        }
        if taken { return }
        recent.withLock { buffer in
            buffer.append(line)
            if buffer.count > 60 { buffer.removeFirst(buffer.count - 60) }
        }
        if level == Int32(LIBBPF_WARN.rawValue) {
            logger.warning("\(line)")
        } else {
            logger.debug("\(line)")
        }
    }

    /// Runs `body` (a BPF object load) with the kept messages cleared, so `tail()` shows its own.
    static func capturing<T>(_ body: () throws -> T) throws -> T {
        install()
        recent.withLock { $0.removeAll() }
        return try body()
    }

    /// The last libbpf messages, formatted to follow an error message.
    static func tail() -> String {
        let text = recent.withLock { $0.suffix(25).joined(separator: "\n") }
        return text.isEmpty ? "" : "\nlibbpf:\n\(text)"
    }

    /// Runs `body` and hands back the libbpf messages it caused instead of logging them.
    static func holding<T>(_ body: () throws -> T) rethrows -> (value: T, messages: [String]) {
        install()
        let thread = pthread_self()
        held.withLock { $0[thread] = [] }
        defer { held.withLock { $0[thread] = nil } }
        let value = try body()
        return (value, held.withLock { $0[thread] ?? [] })
    }

    /// Logs messages a caller held after all, at warning.
    static func warn(_ messages: [String], context: String) {
        for message in messages { logger.warning("\(message)", metadata: ["while": "\(context)"]) }
    }
}
