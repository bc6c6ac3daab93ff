import AgentAPI
import DatapathCore
import Glibc
import Logging
import Synchronization

/// Writes one logfmt line per record to stderr: `time=... level=info subsys=api msg="..." key=value ...`.
/// The level can change at run time (PATCH /v1/config), so every handler reads it from a shared box.
public struct StructuredLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let level: LogLevelBox

    public init(label: String, level: LogLevelBox) {
        self.label = label
        self.level = level
    }

    public var logLevel: Logger.Level {
        get { level.value }
        set { level.value = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        var line =
            "time=\(Self.timestamp()) level=\(event.level) subsys=\(label) msg=\(Self.quote(event.message.description))"
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(Self.quote(value.description))"
        }
        line += "\n"
        // One write(2) per line to descriptor 2, so that lines from several threads do not interleave; a log line
        // that cannot be written has nowhere to be reported.
        try? DurableFile.writeAll(2, Array(line.utf8), path: "standard error")
    }

    static func quote(_ text: String) -> String {
        let plain = !text.isEmpty && text.allSatisfy { $0.isLetter || $0.isNumber || "-_./:@".contains($0) }
        if plain { return text }
        let escaped = text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n")
        return "\"\(escaped)\""
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return RFC3339.format(nanoseconds: Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec), fractionDigits: 3)
    }
}

/// The process-wide log level, shared by every handler.
public final class LogLevelBox: Sendable {
    private let level: Mutex<Logger.Level>
    public init(_ level: Logger.Level) { self.level = Mutex(level) }
    public var value: Logger.Level {
        get { level.withLock { $0 } }
        set { level.withLock { $0 = newValue } }
    }
}
