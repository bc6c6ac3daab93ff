import AgentAPI
import Foundation
import Yams

/// openapi/openapi.yaml, loaded as JSON, with the lookups the parity tests need: its operations as full request
/// paths, and the schema it documents for one operation's response.
struct OpenAPIDocument {
    static let methods = ["get", "put", "post", "patch", "delete", "head", "options", "trace"]

    let root: JSON
    /// The path of the first server URL ("/v1"): spec paths are relative to it.
    let basePath: String

    static let defaultPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("openapi/openapi.yaml").path

    init(path: String = OpenAPIDocument.defaultPath) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let loaded = try Yams.load(yaml: text) else { throw SpecError("\(path) is empty") }
        root = try Self.json(loaded)
        let server = root["servers"]?.arrayValue?.first?["url"]?.stringValue ?? ""
        let path = URL(string: server)?.path ?? ""
        basePath = path == "/" ? "" : path
    }

    /// A spec path as the agent sees requests: relative paths get the server's base path in front.
    func fullPath(_ specPath: String) -> String {
        if !basePath.isEmpty, specPath == basePath || specPath.hasPrefix(basePath + "/") { return specPath }
        return basePath + specPath
    }

    /// Every (METHOD, full path) the spec describes.
    var operations: Set<Operation> {
        var result = Set<Operation>()
        for (path, item) in root["paths"]?.objectValue ?? [:] {
            for method in Self.methods where item[method] != nil {
                result.insert(Operation(method: method.uppercased(), path: fullPath(path)))
            }
        }
        return result
    }

    /// The operation object for a full path and method.
    func operation(_ method: String, _ fullPath: String) -> JSON? {
        for (path, item) in root["paths"]?.objectValue ?? [:] where self.fullPath(path) == fullPath {
            return item[method.lowercased()]
        }
        return nil
    }

    /// The JSON schema of `status`'s response of an operation; nil with a reason when the spec does not give one.
    func responseSchema(_ method: String, _ fullPath: String, status: Int) -> Result<JSON, SpecError> {
        guard let operation = operation(method, fullPath) else {
            return .failure(SpecError("no operation \(method) \(fullPath)"))
        }
        guard var response = operation["responses"]?["\(status)"] ?? operation["responses"]?["default"] else {
            return .failure(SpecError("\(method) \(fullPath) documents no \(status) response"))
        }
        if let reference = response["$ref"]?.stringValue {
            guard let resolved = resolve(reference) else { return .failure(SpecError("unresolved \(reference)")) }
            response = resolved
        }
        guard let schema = response["content"]?["application/json"]?["schema"] else {
            return .failure(SpecError("\(method) \(fullPath) \(status) has no application/json schema"))
        }
        return .success(schema)
    }

    /// "#/components/schemas/Endpoint" and the like.
    func resolve(_ reference: String) -> JSON? {
        guard reference.hasPrefix("#/") else { return nil }
        var node: JSON? = root
        for part in reference.dropFirst(2).split(separator: "/") { node = node?[String(part)] }
        return node
    }

    private static func json(_ value: Any) throws -> JSON {
        switch value {
        case let value as Bool: return .bool(value)
        case let value as Int: return .int(Int64(value))
        case let value as Double: return .double(value)
        case let value as String: return .string(value)
        case let value as [Any]: return .array(try value.map(json))
        case let value as [AnyHashable: Any]:
            var object: [String: JSON] = [:]
            for (key, item) in value { object["\(key.base)"] = try json(item) }
            return .object(object)
        case is NSNull: return .null
        default: throw SpecError("unexpected YAML value \(value) (\(type(of: value)))")
        }
    }
}

struct Operation: Hashable, CustomStringConvertible, Comparable {
    var method: String
    var path: String
    var description: String { "\(method) \(path)" }
    static func < (a: Operation, b: Operation) -> Bool { (a.path, a.method) < (b.path, b.method) }
}

struct SpecError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
