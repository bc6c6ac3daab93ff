import AgentAPI
import FoundationEssentials
import Glibc

/// Durable JSON documents in a state directory (the agent's, or a plugin's own).
///
/// Each write goes through `DurableFile.replace`: a temporary file that is fsynced and renamed over the old
/// document, so a crash at any moment leaves either the old or the new document, never a torn one. Names may contain
/// one `/` (a subdirectory, created on first write).
public struct StateStore: Sendable {
    public let directory: String
    /// Whether each write also fsyncs the directory, making the rename itself durable at once. Without it, the
    /// kernel writes the directory back within seconds: after a power loss the previous version of a document may
    /// come back, never a broken one.
    public let syncsDirectory: Bool

    public init(directory: String, syncsDirectory: Bool = true) throws {
        self.directory = directory
        self.syncsDirectory = syncsDirectory
        try Self.createDirectory(directory)
    }

    public func path(_ name: String) -> String { "\(directory)/\(name).json" }

    /// Writes `document`, indented for people who read state directories.
    public func write(_ name: String, _ document: JSON) throws {
        try write(name, bytes: Array(document.serialized(pretty: true).utf8))
    }

    /// Writes a document already serialized.
    public func write(_ name: String, bytes: [UInt8]) throws {
        let final = path(name)
        let parent = FilePath.parent(of: final)
        if parent != directory && !FileManager.default.fileExists(atPath: parent) { try Self.createDirectory(parent) }
        try DurableFile.replace(final, with: bytes, syncDirectory: syncsDirectory)
    }

    /// The document `name`, or nil when it was never written.
    public func read(_ name: String) throws -> JSON? {
        try read(name) { (bytes) throws(AgentError) in try JSON.parse(bytes) }
    }

    /// The document `name` as `JSON.parse(_:elements:)` reads it: an array's elements are handed to `element` one
    /// at a time and nil returned, any other document is returned whole; nil too when it was never written. What
    /// `element` throws is reported as the file being unreadable.
    public func read(_ name: String, elements element: (JSON) throws(AgentError) -> Void) throws -> JSON? {
        try read(name) { (bytes) throws(AgentError) in try JSON.parse(bytes, elements: element) }
    }

    /// The file of document `name` through `parse`, nil when it was never written; what fails is the file being
    /// unreadable.
    private func read(_ name: String, parse: ([UInt8]) throws(AgentError) -> JSON?) throws -> JSON? {
        guard let bytes = try DurableFile.read(path(name)) else { return nil }
        do {
            return try parse(bytes)
        } catch {
            throw AgentError.internal("state file \(path(name)) is unreadable: \(error.message)")
        }
    }

    /// Removes the document `name`; one that does not exist is not an error.
    public func remove(_ name: String) throws {
        guard unlink(path(name)) == 0 || errno == ENOENT else { throw DurableFile.failure("removing \(path(name))") }
    }

    /// Names of the documents in `subdirectory` (without ".json"), sorted; temporary files are left out.
    public func names(in subdirectory: String) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: "\(directory)/\(subdirectory)")) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    private static func createDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw AgentError.internal("creating state directory \(path): \(error)")
        }
    }
}
