import AgentAPI

/// The node's endpoints by id, with the interface names and addresses they hold indexed: which endpoint has an
/// interface or an address is a lookup, not a walk of every endpoint (a create checks both, and flows, traces,
/// services and cluster mode ask for addresses).
///
/// An interface name or address belongs to at most one endpoint (`putEndpoint` refuses a second holder). Writing
/// an endpoint moves its index entries with it; an index entry is removed only by the endpoint it names.
struct EndpointTable: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    private var byID: [UInt32: Endpoint] = [:]
    private var byInterface: [String: UInt32] = [:]
    private var byAddress: [IPAddress: UInt32] = [:]
    /// How many endpoints have each policy revision (one or two at a time): `setPolicyRevision` walks the endpoints
    /// only when some lack the revision.
    private var revisions: [UInt64: Int] = [:]

    init() {}

    init(dictionaryLiteral elements: (UInt32, Endpoint)...) {
        for (id, endpoint) in elements { self[id] = endpoint }
    }

    subscript(id: UInt32) -> Endpoint? {
        get { byID[id] }
        set {
            let old = byID[id]
            byID[id] = newValue
            if let old {
                revisions[old.policyRevision, default: 0] -= 1
                if revisions[old.policyRevision] == 0 { revisions[old.policyRevision] = nil }
            }
            if let newValue { revisions[newValue.policyRevision, default: 0] += 1 }
            // Most writes change an endpoint's state or policy, not what the indexes hold.
            if let old, let newValue, old.interfaceName == newValue.interfaceName, old.ipv4 == newValue.ipv4,
                old.ipv6 == newValue.ipv6
            {
                return
            }
            if let old {
                if byInterface[old.interfaceName] == id { byInterface[old.interfaceName] = nil }
                for address in [old.ipv4, old.ipv6] {
                    if let address, byAddress[address] == id { byAddress[address] = nil }
                }
            }
            if let newValue {
                byInterface[newValue.interfaceName] = id
                for address in [newValue.ipv4, newValue.ipv6] {
                    if let address { byAddress[address] = id }
                }
            }
        }
    }

    /// Sets every endpoint's policy revision, in place: copying each endpoint out to look at its revision cost a
    /// create more than its policy. Nothing to walk when every endpoint has it already (a change that moved no
    /// revision, or one whose endpoints were all regenerated).
    mutating func setPolicyRevision(_ revision: UInt64) {
        guard revisions[revision, default: 0] != byID.count else { return }
        var position = byID.values.startIndex
        while position != byID.values.endIndex {
            if byID.values[position].policyRevision != revision { byID.values[position].policyRevision = revision }
            position = byID.values.index(after: position)
        }
        revisions = byID.isEmpty ? [:] : [revision: byID.count]
    }

    var values: Dictionary<UInt32, Endpoint>.Values { byID.values }
    var keys: Dictionary<UInt32, Endpoint>.Keys { byID.keys }
    var count: Int { byID.count }
    func contains(id: UInt32) -> Bool { byID.index(forKey: id) != nil }
    func makeIterator() -> Dictionary<UInt32, Endpoint>.Iterator { byID.makeIterator() }

    /// The id of the endpoint on the interface of that name.
    func id(onInterface name: String) -> UInt32? { byInterface[name] }
    /// The id of the endpoint holding the address.
    func id(withAddress address: IPAddress) -> UInt32? { byAddress[address] }
    func endpoint(withAddress address: IPAddress) -> Endpoint? { byAddress[address].flatMap { byID[$0] } }
}
