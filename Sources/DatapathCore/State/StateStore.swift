import Foundation
import Glibc

/// Durable JSON documents in a state directory (the agent's, or a plugin's own).
///
/// Each write goes through `DurableFile.replace`: a temporary file that is fsynced, renamed over the old document
/// and followed by an fsync of the directory, so a crash at any moment leaves either the old or the new document,
/// never a torn one.
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
        try DurableFile.replace(path(name), with: Array(document.serialized(pretty: true).utf8))
    }

    /// The document `name`, or nil when it was never written.
    public func read(_ name: String) throws -> JSON? {
        guard let bytes = try DurableFile.read(path(name)) else { return nil }
        do {
            return try JSON.parse(bytes)
        } catch {
            throw AgentError.internal("state file \(path(name)) is unreadable: \(error.message)")
        }
    }

    public func remove(_ name: String) {
        unlink(path(name))
    }
}
