import DatapathCore
import Foundation
import Glibc

/// Durable JSON documents in the state directory.
///
/// Each write goes to a temporary file that is fsynced and then renamed over the old document, so a crash (or a
/// power loss) at any moment leaves either the old or the new document, never a torn one. The directory itself is
/// not fsynced after every rename: that doubled the cost of each change, and the kernel writes directories back
/// within seconds; after a power loss the agent may restore a version a few seconds old, never a broken one.
/// Names may contain one `/` (a subdirectory, created on first write).
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
        try write(name, bytes: Array(document.serialized(pretty: true).utf8))
    }

    /// Writes a document already serialized.
    public func write(_ name: String, bytes: [UInt8]) throws {
        let final = path(name)
        let temporary = "\(final).tmp"
        let parent = (final as NSString).deletingLastPathComponent
        if parent != directory && !FileManager.default.fileExists(atPath: parent) {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw AgentError.internal("creating state directory \(parent): \(error)")
            }
        }
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

    /// Removes the document `name`; one that does not exist is not an error.
    public func remove(_ name: String) throws {
        guard unlink(path(name)) == 0 || errno == ENOENT else {
            throw AgentError.internal("removing \(path(name)): \(String(cString: strerror(errno)))")
        }
    }

    /// Names of the documents in `subdirectory` (without ".json"), sorted; temporary files are left out.
    public func names(in subdirectory: String) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/\(subdirectory)")) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }
}
