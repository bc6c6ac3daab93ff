import AgentAPI

/// Reads CiliumNetworkPolicy (cilium.io/v2) documents from JSON, validating everything: a field this agent cannot
/// enforce is rejected by name, never ignored, so a policy is either enforced as written or refused. Kubernetes
/// NetworkPolicies (`networking.k8s.io/v1`) in the same request go to `NetworkPolicyParser`.
public enum PolicyParser {
    public static let apiVersion = "cilium.io/v2"
    /// The label every pod carries with its namespace.
    public static let namespaceLabelKey = "io.kubernetes.pod.namespace"
    public static let defaultNamespace = "default"

    /// One document (an object), a Kubernetes list (`kind: List` or `NetworkPolicyList`, documents in `items`) or
    /// several of either (an array). One invalid document rejects them all; in an array, paths start with the
    /// element's index (`[1].spec.egress[0]`, `[2].items[0].spec`). The same key twice in one request is an error.
    public static func parse(_ json: JSON) throws(AgentError) -> [PolicyDocument] {
        switch json {
        case .array(let elements):
            return try parse(reading: { (each: (JSON) throws(AgentError) -> Void) throws(AgentError) -> JSON? in
                for element in elements { try each(element) }
                return nil
            })
        case .object:
            return try unique(try listed(json, path: ""), elements: 1)
        default:
            throw AgentError.invalidField(
                "policies", "expected a policy object or an array of them, got \(json.typeName)")
        }
    }

    /// The same for a document read by `read` (`JSON.parse(_:elements:)`, `APIRequest.jsonBody(elements:)`): an
    /// array's elements are parsed into documents as they are read, so the whole array is never a tree at once.
    public static func parse(
        reading read: (_ element: (JSON) throws(AgentError) -> Void) throws(AgentError) -> JSON?
    ) throws(AgentError) -> [PolicyDocument] {
        var documents: [(path: String, document: PolicyDocument)] = []
        var count = 0
        let whole = try read { (element: JSON) throws(AgentError) in
            documents += try listed(element, path: "[\(count)]")
            count += 1
        }
        if let whole { return try parse(whole) }
        return try unique(documents, elements: count)
    }

    /// The documents of a request of `elements` array elements (1 for a single document), each key once.
    private static func unique(_ documents: [(path: String, document: PolicyDocument)], elements: Int)
        throws(AgentError) -> [PolicyDocument]
    {
        if elements == 0 { throw AgentError.invalidField("policies", "expected at least one policy document") }
        var seen: [PolicyKey: String] = [:]
        for (path, document) in documents {
            if let first = seen[document.key] {
                throw AgentError.invalidField(
                    path.isEmpty ? "metadata.name" : "\(path).metadata.name",
                    "policy \(document.key) appears twice in the request (\(first))")
            }
            seen[document.key] = path
        }
        return documents.map(\.document)
    }

    /// Kinds of Kubernetes list objects whose `items` are policy documents.
    static let listKinds: Set<String> = ["List", "NetworkPolicyList", "CiliumNetworkPolicyList"]

    /// The documents of one element: itself, or the items of a list.
    static func listed(_ json: JSON, path: String) throws(AgentError) -> [(path: String, document: PolicyDocument)] {
        guard let kind = json["kind"]?.stringValue, listKinds.contains(kind) else {
            return [(path, try parseDocument(json, path: path))]
        }
        let list = FieldReader(json, path: path)
        _ = try list.object(allowed: ["apiVersion", "kind", "metadata", "items"])
        _ = try list.child("apiVersion")?.string()
        _ = try list.child("metadata")?.object(allowed: ["resourceVersion", "continue", "remainingItemCount"])
        let items = try list.required("items")
        // As for an empty request: importing nothing is almost certainly a mistake.
        if try items.array().isEmpty { throw items.error("expected at least one policy document") }
        var documents: [(path: String, document: PolicyDocument)] = []
        for item in try items.array() {
            documents.append((item.path, try parseDocument(item.value, path: item.path)))
        }
        return documents
    }

    /// One document; `path` prefixes every field in errors.
    public static func parseDocument(_ json: JSON, path: String = "") throws(AgentError) -> PolicyDocument {
        if json["apiVersion"]?.stringValue == NetworkPolicyParser.apiVersion {
            return try NetworkPolicyParser.parseDocument(json, path: path)
        }
        let root = FieldReader(json, path: path)
        _ = try root.object(
            allowed: ["apiVersion", "kind", "metadata", "spec", "specs", "status"],
            hint: [
                "endpointSelector": "rules go under spec", "ingress": "rules go under spec",
                "egress": "rules go under spec",
            ])
        let version = try root.required("apiVersion").string()
        guard version == apiVersion else {
            throw root.error(
                "expected \(quoted(apiVersion)), got \(quoted(version))", at: FieldReader.join(path, "apiVersion"))
        }
        let kindText = try root.required("kind").string()
        guard let kind = PolicyDocument.Kind(rawValue: kindText), kind != .networkPolicy else {
            throw root.error(
                "expected \"CiliumNetworkPolicy\", \"CiliumClusterwideNetworkPolicy\" or \"NetworkPolicy\", got "
                    + quoted(kindText),
                at: FieldReader.join(path, "kind"))
        }
        let key = try metadata(root.required("metadata"), kind: kind)
        let doc = root.withContext(key.description)

        var rules: [PolicyRule] = []
        var warnings: [String] = []
        if let spec = doc.child("spec") {
            rules.append(try rule(spec, name: "spec", namespace: key.namespace, warnings: &warnings))
        }
        if let specs = doc.child("specs") {
            let elements = try specs.array()
            if elements.isEmpty { throw specs.error("expected at least one rule") }
            for (i, element) in elements.enumerated() {
                rules.append(try rule(element, name: "specs[\(i)]", namespace: key.namespace, warnings: &warnings))
            }
        }
        if rules.isEmpty { throw doc.error("spec or specs is required", at: FieldReader.join(path, "spec")) }
        var document = PolicyDocument(kind: kind, key: key, rules: rules, json: json)
        document.warnings = warnings.map { "\(key): \($0)" }
        return document
    }

    /// Kubernetes ObjectMeta: name (and namespace) are read and checked; bookkeeping fields that clients copy
    /// from `kubectl get -o json` are accepted and have no effect on enforcement.
    static func metadata(_ meta: FieldReader, kind: PolicyDocument.Kind) throws(AgentError) -> PolicyKey {
        _ = try meta.object(
            allowed: [
                "name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation",
                "creationTimestamp", "managedFields", "finalizers", "ownerReferences",
            ],
            unsupported: ["generateName": "generateName is not supported: give the policy a name"])
        let nameField = try meta.required("name")
        let name = try nameField.string()
        if let problem = dnsSubdomainProblem(name) { throw nameField.error("\(quoted(name)) \(problem)") }
        var namespace: String?
        if let nsField = meta.child("namespace") {
            let ns = try nsField.string()
            if kind == .clusterwide {
                throw nsField.error("a CiliumClusterwideNetworkPolicy has no namespace")
            }
            if let problem = dnsLabelProblem(ns) { throw nsField.error("\(quoted(ns)) \(problem)") }
            namespace = ns
        } else if kind != .clusterwide {
            namespace = defaultNamespace
        }
        for key in ["labels", "annotations"] {
            guard let map = meta.child(key) else { continue }
            guard case .object(let members) = map.value else {
                throw map.error("expected an object of strings, got \(map.value.typeName)")
            }
            for (k, v) in members where v.stringValue == nil {
                throw map.error("expected a string, got \(v.typeName)", at: FieldReader.join(map.path, k))
            }
        }
        return PolicyKey(namespace: namespace, name: name, isNetworkPolicy: kind == .networkPolicy)
    }

    /// Why `text` is not a Kubernetes object name (RFC 1123 subdomain), nil when it is one.
    static func dnsSubdomainProblem(_ text: String) -> String? {
        if text.isEmpty { return "must not be empty" }
        if text.utf8.count > 253 { return "is longer than 253 characters" }
        let ok = text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "."
        }
        if !ok || !isAlnum(text.first!) || !isAlnum(text.last!) {
            return "must consist of lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        }
        return nil
    }

    /// Why `text` is not a Kubernetes namespace name (RFC 1123 label), nil when it is one.
    static func dnsLabelProblem(_ text: String) -> String? {
        if text.isEmpty { return "must not be empty" }
        if text.utf8.count > 63 { return "is longer than 63 characters" }
        let ok = text.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        if !ok || !isAlnum(text.first!) || !isAlnum(text.last!) {
            return "must consist of lower-case letters, digits and '-', starting and ending with a letter or digit"
        }
        return nil
    }

    private static func isAlnum(_ c: Character) -> Bool { c.isASCIIDigit || ("a"..."z").contains(c) }
}
