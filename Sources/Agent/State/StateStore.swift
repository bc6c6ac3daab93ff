import DatapathCore
import Foundation
import Glibc

/// Durable JSON documents in the state directory.
///
/// Each write goes to a temporary file that is fsynced, renamed over the old document and followed by an fsync of
/// the directory, so a crash at any moment leaves either the old or the new document, never a torn one.
public struct StateStore: Sendable {
    public let directory: String

    public init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw AgentError.internal("creating state directory \(directory): \(error)")
        }
    }

    public func path(_ name: String) -> String { "\(directory)/\(name).json" }

    public func write(_ name: String, _ document: JSON) throws {
        let final = path(name)
        let temporary = "\(final).tmp"
        let bytes = Array(document.serialized(pretty: true).utf8)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AgentError.internal("writing \(temporary): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd)
                throw AgentError.internal("writing \(temporary): \(reason)")
            }
            offset += written
        }
        guard fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw AgentError.internal("syncing \(temporary): \(reason)")
        }
        close(fd)
        guard rename(temporary, final) == 0 else {
            throw AgentError.internal("replacing \(final): \(String(cString: strerror(errno)))")
        }
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    /// The document `name`, or nil when it was never written.
    public func read(_ name: String) throws -> JSON? {
        guard let data = FileManager.default.contents(atPath: path(name)) else { return nil }
        do {
            return try JSON.parse([UInt8](data))
        } catch let error as AgentError {
            throw AgentError.internal("state file \(path(name)) is unreadable: \(error.message)")
        }
    }

    public func remove(_ name: String) {
        unlink(path(name))
    }
}
