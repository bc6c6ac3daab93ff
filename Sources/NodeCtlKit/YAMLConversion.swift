import AgentAPI
import Yams

/// Conversions between YAML representation trees and `JSON`.
///
/// Scalars keep the type YAML gives them: a quoted `"8080"` is a string, a plain `8080` an integer, `true` a
/// boolean, `null`/`~`/empty a null. Resolution follows Yams' default (YAML 1.1) resolver, as Kubernetes tooling
/// does, so `yes`/`no`/`on`/`off` are booleans and `0x1F`, `0o17`, `1_000` integers.
public enum YAMLConversion {
    /// Converts one YAML node. `path` names the node in error messages ("spec.egress[0]").
    public static func json(from node: Node, path: String = "") throws(InputError) -> JSON {
        switch node {
        case .scalar(let scalar):
            return try json(from: scalar, path: path)
        case .sequence(let sequence):
            var elements: [JSON] = []
            for (index, element) in sequence.enumerated() {
                elements.append(try json(from: element, path: "\(path)[\(index)]"))
            }
            return .array(elements)
        case .mapping(let mapping):
            return .object(try members(of: mapping, path: path))
        case .alias:
            // The parser resolves aliases to their anchored nodes; a bare alias here means it could not.
            throw InputError("\(describe(path)): unresolved alias")
        }
    }

    private static func members(of mapping: Node.Mapping, path: String) throws(InputError) -> [String: JSON] {
        var result: [String: JSON] = [:]
        var merged: [String: JSON] = [:]
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                throw InputError("\(describe(path)): mapping keys must be scalars, found a \(kind(of: keyNode))")
            }
            // `<<: *anchor` merges the keys of another mapping (or a list of mappings) that are not set here.
            if keyScalar.style == .plain && tagName(keyNode) == .merge {
                let sources: [Node]
                switch valueNode {
                case .mapping: sources = [valueNode]
                case .sequence(let list): sources = Array(list)
                default: throw InputError("\(describe(path)): '<<' must merge a mapping or a list of mappings")
                }
                for case .mapping(let source) in sources {
                    for (key, value) in try members(of: source, path: path) where merged[key] == nil {
                        merged[key] = value
                    }
                }
                continue
            }
            let key = keyScalar.string
            let childPath = path.isEmpty ? key : "\(path).\(key)"
            result[key] = try json(from: valueNode, path: childPath)
        }
        for (key, value) in merged where result[key] == nil {
            result[key] = value
        }
        return result
    }

    private static func json(from scalar: Node.Scalar, path: String) throws(InputError) -> JSON {
        let node = Node.scalar(scalar)
        switch tagName(node) {
        case .null:
            return .null
        case .bool:
            guard let value = Bool.construct(from: scalar) else {
                throw InputError("\(describe(path)): invalid boolean \(scalar.string)")
            }
            return .bool(value)
        case .int:
            guard let value = Int64.construct(from: scalar) else {
                throw InputError("\(describe(path)): integer \(scalar.string) is out of range")
            }
            return .int(value)
        case .float:
            guard let value = Double.construct(from: scalar), value.isFinite else {
                throw InputError("\(describe(path)): \(scalar.string) is not a finite number, which JSON cannot hold")
            }
            return .double(value)
        default:
            // Strings, and types JSON has no place for (timestamps, binary, custom tags), keep their text.
            return .string(scalar.string)
        }
    }

    /// The node's resolved tag (Yams keeps `Tag.name` internal; its raw value is public).
    private static func tagName(_ node: Node) -> Tag.Name {
        Tag.Name(rawValue: node.tag.rawValue)
    }

    private static func kind(of node: Node) -> String {
        switch node {
        case .scalar: return "scalar"
        case .sequence: return "sequence"
        case .mapping: return "mapping"
        case .alias: return "alias"
        }
    }

    private static func describe(_ path: String) -> String {
        path.isEmpty ? "document" : path
    }

    // MARK: JSON to YAML

    /// Renders `value` as a YAML document: keys sorted, strings quoted whenever they would otherwise read back
    /// as another type ("8080", "true", "null", "").
    public static func yaml(from value: JSON) -> String {
        do {
            return try Yams.serialize(node: node(from: value), width: -1, allowUnicode: true, sortKeys: true)
        } catch {
            // Serializing a tree we built ourselves cannot meet malformed input; fall back to JSON, which is
            // valid YAML, rather than lose the output.
            return value.serialized(pretty: true) + "\n"
        }
    }

    /// The YAML representation tree of `value`.
    public static func node(from value: JSON) -> Node {
        switch value {
        case .null: return Node("null", Tag(.null))
        case .bool(let b): return Node(b ? "true" : "false", Tag(.bool))
        case .int(let i): return Node(String(i), Tag(.int))
        case .double: return Node(value.serialized(), Tag(.float))
        case .string(let s): return stringNode(s)
        case .array(let elements): return Node(elements.map(node(from:)))
        case .object(let members):
            let pairs = members.sorted { $0.key < $1.key }.map { (stringNode($0.key), node(from: $0.value)) }
            return Node(pairs)
        }
    }

    private static func stringNode(_ s: String) -> Node {
        let plain = Node.Scalar(s)
        if tagName(.scalar(plain)) == .str {
            return .scalar(Node.Scalar(s, Tag(.str)))
        }
        return .scalar(Node.Scalar(s, Tag(.str), .doubleQuoted))
    }
}
