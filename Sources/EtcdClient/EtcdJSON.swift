import AgentAPI
import FoundationEssentials

/// How the gateway spells etcd's protobuf messages in JSON (proto3 JSON mapping): `bytes` fields are base64,
/// 64-bit integers are strings, and fields at their default value (0, false, "", the first enum value such as
/// `PUT`) are left out altogether.
enum EtcdJSON {
    static func bytes(_ value: [UInt8]) -> JSON {
        .string(Data(value).base64EncodedString())
    }

    static func bytes(_ value: String) -> JSON {
        bytes(Array(value.utf8))
    }

    /// A base64 field; absent means empty.
    static func decodeBytes(_ json: JSON?, field: String) throws(AgentError) -> [UInt8] {
        guard let json else { return [] }
        guard let text = json.stringValue, let data = Data(base64Encoded: text) else {
            throw .internal("etcd answered \(field) that is not base64: \(json)")
        }
        return Array(data)
    }

    static func int64(_ value: Int64) -> JSON {
        .string(String(value))
    }

    /// An int64 field, as a string or a number; absent means 0.
    static func decodeInt64(_ json: JSON?, field: String) throws(AgentError) -> Int64 {
        switch json {
        case nil: return 0
        case .string(let text)?:
            guard let value = Int64(text) else { throw .internal("etcd answered \(field) \"\(text)\", not an int64") }
            return value
        case let other?:
            guard let value = other.intValue else { throw .internal("etcd answered \(field) \(other), not an int64") }
            return value
        }
    }

    /// A uint64 field (member IDs use all 64 bits); absent means 0.
    static func decodeUInt64(_ json: JSON?, field: String) throws(AgentError) -> UInt64 {
        switch json {
        case nil: return 0
        case .string(let text)?:
            guard let value = UInt64(text) else { throw .internal("etcd answered \(field) \"\(text)\", not a uint64") }
            return value
        case let other?:
            guard let value = other.intValue, value >= 0 else {
                throw .internal("etcd answered \(field) \(other), not a uint64")
            }
            return UInt64(value)
        }
    }

    /// `header.revision` of an answer.
    static func revision(_ answer: JSON) throws(AgentError) -> Int64 {
        try decodeInt64(answer["header"]?["revision"], field: "header.revision")
    }

    /// The range end that makes a range cover every key starting with `prefix`: the prefix with its last byte
    /// below 0xff incremented and what follows dropped; "\0" (every key) when there is no such byte.
    static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xff {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]
    }
}
