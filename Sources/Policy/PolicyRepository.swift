import AgentAPI

/// The policy documents in force, with a revision and a numbered rule table.
///
/// Every item of every section gets a rule id (≥ 1) and a name, `web-tier/allow-frontend-to-backend egress[0]`
/// (`specs[1].egress[0]` for `specs`), so a datapath entry's rule id can name the rule that decided a flow. Ids are
/// tied to names: replacing a document keeps the ids of the names it still has; ids of names that disappear are
/// not handed out again.
///
/// A value type: the owner serializes access (the daemon holds its lock around it).
public struct PolicyRepository: Sendable {
    /// Starts at 1, +1 for every change; the owner may set it when restoring state.
    public var revision: UInt64 = 1

    private(set) var byKey: [PolicyKey: PolicyDocument] = [:]
    private var idsByName: [String: UInt32] = [:]
    private var namesByID: [UInt32: String] = [:]
    private var nextRuleID: UInt32 = 1
    /// Every rule, by document key then position; rebuilt on change.
    public private(set) var rules: [IndexedRule] = []
    /// The endpoint selectors of `rules`, position for position.
    private var selectors = SelectorIndex([])
    /// `rules` by the peers they name.
    private(set) var peerRules = PeerRuleIndex([])
    /// What the agent asks of the rules as a whole on every endpoint change, worked out once per change of them.
    private(set) var facts = RuleFacts()

    struct RuleFacts: Sendable {
        var usesNamedPorts = false
        var selectsPodsByAddress = false
        var cidrPrefixes: Set<IPPrefix> = []
        var serviceReferences: Set<ServiceReference> = []
    }

    public init() {}

    /// Parses and adds one document or an array of them (see `PolicyParser.parse`), replacing documents with the
    /// same key. All or nothing: one invalid document rejects the request. Returns the keys added.
    @discardableResult
    public mutating func apply(_ json: JSON) throws(AgentError) -> [PolicyKey] {
        let documents = try PolicyParser.parse(json)
        return add(documents)
    }

    /// Adds documents (replacing those with the same key) as one change.
    @discardableResult
    public mutating func add(_ documents: [PolicyDocument]) -> [PolicyKey] {
        guard !documents.isEmpty else { return [] }
        for document in documents { byKey[document.key] = document }
        commit()
        return documents.map(\.key)
    }

    /// Deletes one document; `namespace` nil names a cluster-wide policy, `kind` picks between a
    /// CiliumNetworkPolicy and a NetworkPolicy of the same name (see `PolicyKey.named`).
    @discardableResult
    public mutating func delete(namespace: String?, name: String, kind: PolicyDocument.Kind? = nil)
        throws(AgentError) -> [PolicyKey]
    {
        let key = try PolicyKey.named(namespace: namespace, name: name, kind: kind, in: byKey.keys)
        guard byKey.removeValue(forKey: key) != nil else { throw AgentError.notFound("policy \(key) not found") }
        commit()
        return [key]
    }

    /// Deletes every policy of a namespace; the revision moves only if there was one.
    @discardableResult
    public mutating func delete(namespace: String) -> [PolicyKey] {
        remove { $0.namespace == namespace }
    }

    /// Deletes the documents of `keys` that exist; the revision moves only if there was one.
    @discardableResult
    public mutating func delete(keys: Set<PolicyKey>) -> [PolicyKey] {
        remove { keys.contains($0) }
    }

    /// Deletes every policy; the revision moves only if there was one.
    @discardableResult
    public mutating func deleteAll() -> [PolicyKey] {
        remove { _ in true }
    }

    /// Re-creates the state saved before a restart: documents as stored, the rule table and the revision.
    public mutating func restore(documents: [PolicyDocument], ruleNames: [UInt32: String], revision: UInt64) {
        var restored = PolicyRepository()
        for (id, name) in ruleNames where id > 0 {
            restored.idsByName[name] = id
            restored.namesByID[id] = name
        }
        restored.nextRuleID = (ruleNames.keys.max() ?? 0) + 1
        restored.add(documents)
        restored.revision = revision
        self = restored
    }

    /// Documents by key.
    public var documents: [PolicyDocument] { byKey.keys.sorted().map { byKey[$0]! } }

    /// Documents as they were submitted, by key: what `GET /v1/policy` lists.
    public var storedJSON: [JSON] { documents.map(\.json) }

    /// The same as one serialized JSON array, spliced from the documents' stored text without parsing them;
    /// `first`, serialized JSON, goes ahead of them.
    public func storedJSONArray(after first: [UInt8]? = nil) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "[")]
        if let first { bytes += first }
        for (index, document) in documents.enumerated() {
            if index > 0 || first != nil { bytes.append(UInt8(ascii: ",")) }
            bytes += document.source
        }
        bytes.append(UInt8(ascii: "]"))
        return bytes
    }

    public func document(_ key: PolicyKey) -> PolicyDocument? { byKey[key] }

    /// The name of rule `id` (`web-tier/x egress[0]`), nil for ids not in force.
    public func ruleName(_ id: UInt32) -> String? { namesByID[id] }

    /// Every rule id in force with its name: what to save across restarts.
    public var ruleNames: [UInt32: String] { namesByID }

    /// The name of an item: `<document> <rule path>.<section>[<index>]`, the `spec.` path left out.
    public static func ruleName(document: PolicyKey, rulePath: String, section: String, index: Int) -> String {
        let path = rulePath == "spec" ? "" : "\(rulePath)."
        return "\(document) \(path)\(section)[\(index)]"
    }

    /// The policy of an endpoint (see `PolicyCompiler.resolve`).
    public func resolve(endpoint labels: LabelSet, identities: [Identity], mode: EnforcementMode) -> EndpointPolicy {
        PolicyCompiler.resolve(rules: rules, endpoint: labels, identities: identities, mode: mode)
    }

    /// The rules whose endpoint selector matches `labels`, in the order of `rules` (which numbers HTTP rule bits),
    /// found through an index rather than by matching every rule.
    public func rules(selecting labels: LabelSet) -> [IndexedRule] {
        selectors.matching(labels).map { rules[$0] }
    }

    /// The policy of an endpoint, peers prepared once for many endpoints (see `PolicyPeers`); `namedPorts` are
    /// the endpoint's own.
    public func resolve(
        endpoint labels: LabelSet, peers: PolicyPeers, mode: EnforcementMode, namedPorts: [NamedPort] = []
    ) -> EndpointPolicy {
        PolicyCompiler.resolve(rules: rules, endpoint: labels, peers: peers, mode: mode, namedPorts: namedPorts)
    }

    public func resolve(
        endpoint labels: LabelSet, identities: [(id: UInt32, labels: LabelSet)], mode: EnforcementMode
    ) -> EndpointPolicy {
        PolicyCompiler.resolve(rules: rules, endpoint: labels, identities: identities, mode: mode)
    }

    /// A policy entry as the API shows it, rule ids resolved to names.
    public func json(_ entry: PolicyEntry) -> JSON {
        [
            "direction": .string(entry.direction.description), "identity": .int(Int64(entry.identity)),
            "protocol": .string(IPProtocol.name(of: entry.proto)), "port": .int(Int64(entry.port)),
            "end-port": .int(Int64(entry.endPort)), "deny": .bool(entry.deny),
            "rules": .array(entry.ruleIDs.map { .string(ruleName($0) ?? "rule \($0)") }),
        ]
    }

    private mutating func remove(where match: (PolicyKey) -> Bool) -> [PolicyKey] {
        let keys = byKey.keys.filter(match).sorted()
        guard !keys.isEmpty else { return [] }
        for key in keys { byKey[key] = nil }
        commit()
        return keys
    }

    /// After a change: number the rules (keeping ids of surviving names), rebuild the index, bump the revision.
    private mutating func commit() {
        var live: Set<String> = []
        var indexed: [IndexedRule] = []
        for key in byKey.keys.sorted() {
            for rule in byKey[key]!.rules {
                indexed.append(
                    IndexedRule(document: key, rule: rule) { direction, deny, index in
                        let name = PolicyRepository.ruleName(
                            document: key, rulePath: rule.path,
                            section: PolicyRule.sectionName(direction, deny: deny), index: index)
                        live.insert(name)
                        return self.ruleID(for: name)
                    })
            }
        }
        for (name, id) in idsByName where !live.contains(name) {
            idsByName[name] = nil
            namesByID[id] = nil
        }
        rules = indexed
        selectors = SelectorIndex(indexed.map(\.rule.endpointSelector))
        peerRules = PeerRuleIndex(indexed)
        facts = RuleFacts(
            usesNamedPorts: Self.usesNamedPorts(indexed), selectsPodsByAddress: Self.selectsPodsByAddress(indexed),
            cidrPrefixes: Self.cidrPrefixes(indexed), serviceReferences: Self.serviceReferences(indexed))
        revision += 1
    }

    private mutating func ruleID(for name: String) -> UInt32 {
        if let id = idsByName[name] { return id }
        let id = nextRuleID
        nextRuleID += 1
        idsByName[name] = id
        namesByID[id] = name
        return id
    }
}
