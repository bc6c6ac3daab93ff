import AgentAPI
import ArgumentParser
import NodeCtlKit

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Options every command takes: where the agent listens and how to print its answers.
struct GlobalOptions: ParsableArguments {
    static let defaultSocket = AgentSocket.defaultPath
    static let socketEnvironment = "NODEAGENT_SOCK"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Path of the agent's API socket (default: $\(socketEnvironment), else \(defaultSocket)).",
            valueName: "path"))
    var socket: String?

    @Option(name: [.short, .customLong("output")], help: "Output format: table, json or yaml.")
    var output: OutputFormat = .table

    /// The socket to use: the option, else the environment, else the default.
    var socketPath: String {
        if let socket { return socket }
        if let env = getenv(Self.socketEnvironment), let value = String(validatingCString: env), !value.isEmpty {
            return value
        }
        return Self.defaultSocket
    }

    func validate() throws {
        let path = socketPath
        guard !path.isEmpty else { throw ValidationError("--socket must not be empty") }
        // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
        guard path.utf8.count < 108 else {
            throw ValidationError("socket path \(path) is longer than 107 bytes, the limit for Unix sockets")
        }
    }

    var client: AgentClient { AgentClient(socketPath: socketPath) }

    /// Prints `value` in the chosen format, `table` rendering it for people.
    func emit(_ value: JSON, table: (JSON) -> String) {
        print(output.render(value, table: table), terminator: "")
    }
}

extension OutputFormat: ExpressibleByArgument {}

/// Writes a line to standard error (notes that must not mix with the output scripts parse).
/// Goes through write(2) on descriptor 2: the C `stderr` stream is a global that strict concurrency rejects.
func printNote(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return }
        offset += n
    }
}
