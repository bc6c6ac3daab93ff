import Foundation

/// The outcome of a finished command: exit status and captured output.
struct CommandResult: Sendable {
    var command: [String]
    var status: Int32
    var stdout: String
    var stderr: String

    var succeeded: Bool { status == 0 }
}

/// A command that could not be started, ran past its deadline, or exited non-zero.
struct ShellError: Error, CustomStringConvertible {
    var command: [String]
    var status: Int32?
    var stderr: String
    var reason: String

    var description: String {
        let trimmed = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        var text = "`\(command.joined(separator: " "))` \(reason)"
        if let status { text += " (exit status \(status))" }
        if !trimmed.isEmpty { text += ": \(trimmed)" }
        return text
    }
}

/// A value shared between threads; every access goes through the lock, which is what makes it Sendable.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    var current: Value { withLock { $0 } }
}

/// Runs external commands (ip, curl, the built binaries) and captures what they print.
enum Shell {
    /// Writing to a pipe or socket whose reader is gone must fail with EPIPE, not kill the test process.
    static let ignoreSIGPIPE: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// Runs `arguments` and returns its stdout; throws `ShellError` carrying stderr when it exits non-zero.
    @discardableResult
    static func run(_ arguments: [String], input: String? = nil, timeout: TimeInterval = 30) throws -> String {
        let result = try capture(arguments, input: input, timeout: timeout)
        guard result.succeeded else {
            throw ShellError(command: arguments, status: result.status, stderr: result.stderr, reason: "failed")
        }
        return result.stdout
    }

    /// Runs `arguments` and returns status and output whatever the status; throws only when the command cannot
    /// be started or does not finish within `timeout` (it is killed then).
    static func capture(_ arguments: [String], input: String? = nil, timeout: TimeInterval = 30) throws
        -> CommandResult
    {
        _ = ignoreSIGPIPE
        guard let name = arguments.first else {
            throw ShellError(command: arguments, status: nil, stderr: "", reason: "is empty")
        }
        // Output goes to unlinked temporary files rather than pipes: nothing can block on a full pipe, and the
        // descriptors are ours to close (Foundation's Pipe handles outlive the Process and leak).
        let stdoutFile = try TemporaryFile()
        let stderrFile = try TemporaryFile()
        let stdinFile = try input.map { text in
            let file = try TemporaryFile()
            try file.write(text)
            return file
        }
        // Closed explicitly: Process keeps its standard handles alive long after the child is gone.
        defer {
            stdoutFile.close()
            stderrFile.close()
            stdinFile?.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executablePath(name, command: arguments))
        process.arguments = Array(arguments.dropFirst())
        process.standardOutput = stdoutFile.handle
        process.standardError = stderrFile.handle
        process.standardInput = stdinFile?.handle ?? FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw ShellError(command: arguments, status: nil, stderr: "\(error)", reason: "could not be started")
        }
        let timedOut = Locked(false)
        let watchdog = DispatchWorkItem {
            timedOut.withLock { $0 = true }
            kill(process.processIdentifier, SIGKILL)
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        process.waitUntilExit()
        watchdog.cancel()

        let stderr = stderrFile.contents()
        if timedOut.current {
            throw ShellError(
                command: arguments, status: nil, stderr: stderr, reason: "did not finish within \(timeout) s")
        }
        return CommandResult(
            command: arguments, status: process.terminationStatus, stdout: stdoutFile.contents(), stderr: stderr)
    }

    /// Resolves a bare command name through PATH, as a shell would; paths containing "/" are used as they are.
    static func executablePath(_ name: String, command: [String] = []) throws -> String {
        if name.contains("/") { return name }
        let path =
            ProcessInfo.processInfo.environment["PATH"]
            ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ShellError(command: command, status: nil, stderr: "", reason: "not found in PATH (\(path))")
    }
}

/// An anonymous file (created and unlinked at once).
private final class TemporaryFile {
    let handle: FileHandle

    init() throws {
        var template = Array("/tmp/nodeagent-e2e-io.XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw NetnsError("mkstemp") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // only the child it is handed to should inherit it
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    func write(_ text: String) throws {
        try handle.write(contentsOf: Data(text.utf8))
        try handle.seek(toOffset: 0)
    }

    func close() { try? handle.close() }

    func contents() -> String {
        _ = try? handle.seek(toOffset: 0)
        return String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    }
}
