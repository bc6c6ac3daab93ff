import AgentAPI
import Foundation

/// Pinned maps read and written with bpftool, independently of the agent (e.g. to set up what an earlier version
/// left behind).
enum BPFTool {
    /// Every (key, value) of the map pinned at `pin`, as bytes.
    static func dump(_ pin: String) throws -> [(key: [UInt8], value: [UInt8])] {
        let entries = try JSON.parse(try Shell.run(["bpftool", "-j", "map", "dump", "pinned", pin])).arrayValue ?? []
        return try entries.map { entry in
            guard let key = bytes(entry["key"]), let value = bytes(entry["value"]) else {
                throw AgentHarnessError("unexpected bpftool entry \(entry.serialized())")
            }
            return (key, value)
        }
    }

    static func update(_ pin: String, key: [UInt8], value: [UInt8]) throws {
        _ = try Shell.run(["bpftool", "map", "update", "pinned", pin] + hex("key", key) + hex("value", value))
    }

    static func delete(_ pin: String, key: [UInt8]) throws {
        _ = try Shell.run(["bpftool", "map", "delete", "pinned", pin] + hex("key", key))
    }

    private static func hex(_ name: String, _ bytes: [UInt8]) -> [String] {
        [name, "hex"] + bytes.map { String(format: "%02x", $0) }
    }

    private static func bytes(_ value: JSON?) -> [UInt8]? {
        guard let items = value?.arrayValue else { return nil }
        var result: [UInt8] = []
        for item in items {
            guard let text = item.stringValue,
                let byte = UInt8(text.hasPrefix("0x") ? String(text.dropFirst(2)) : text, radix: 16)
            else { return nil }
            result.append(byte)
        }
        return result
    }
}
