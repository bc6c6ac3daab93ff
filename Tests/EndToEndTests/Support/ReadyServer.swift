import Foundation
import Glibc

/// Test servers that say they listen by creating a file: started in the background, stopped when the topology
/// goes.
enum ReadyServer {
    /// Runs `command` (stdin and stdout to /dev/null) and returns once the file `ready` exists; throws naming
    /// `what` when the process exits first or the file does not appear within 5 s.
    static func start(_ command: [String], ready: String, topology: Topology, what: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        nonisolated(unsafe) let server = process
        topology.onDestroy {
            server.terminate()
            server.waitUntilExit()
        }
        let deadline = Date() + 5
        while !FileManager.default.fileExists(atPath: ready) {
            guard process.isRunning, Date() < deadline else { throw AgentHarnessError("\(what) did not start") }
            usleep(20_000)
        }
    }
}
