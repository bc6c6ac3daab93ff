import DatapathCore

/// One address handed out from the pod CIDR, as the ledger records it.
struct Allocation: Sendable, Equatable {
    var address: IPAddress
    /// Who holds it: the CNI plugin uses the container id (a sandbox), so a late DEL of an old sandbox of a pod
    /// cannot release the address of its successor; nil when an endpoint claimed an address nobody allocated.
    /// Ledgers written before the `pod` attribute existed hold `namespace/pod` here.
    var owner: String?
    /// The `namespace/pod` the address is for, shown in listings; not an identity (sandboxes of one pod share it).
    var pod: String?
    /// The endpoint using the address, once one was created with it. Kept after the endpoint goes away: that is
    /// how garbage collection recognises an orphan.
    var endpoint: UInt32?
    /// Unix time in milliseconds after which the allocation is released unless an endpoint claimed it.
    var expiresAtMs: Int64?
    /// Returned to the allocating client, as Cilium returns `ipv4-expiration-uuid`.
    var expirationUUID: String?
    var allocatedAtMs: Int64

    var family: IPAddress.Family { address.family }

    /// The ledger's form: `{"ip", "owner"?, "pod"?, "endpoint"?, "expires-at-ms"?, "expiration-uuid"?,
    /// "allocated-at-ms"}`.
    var ledgerJSON: JSON {
        var object: [String: JSON] = ["ip": .string(address.description), "allocated-at-ms": .int(allocatedAtMs)]
        if let owner { object["owner"] = .string(owner) }
        if let pod { object["pod"] = .string(pod) }
        if let endpoint { object["endpoint"] = .int(Int64(endpoint)) }
        if let expiresAtMs { object["expires-at-ms"] = .int(expiresAtMs) }
        if let expirationUUID { object["expiration-uuid"] = .string(expirationUUID) }
        return .object(object)
    }

    init(
        address: IPAddress, owner: String?, pod: String? = nil, endpoint: UInt32? = nil, expiresAtMs: Int64? = nil,
        expirationUUID: String? = nil, allocatedAtMs: Int64
    ) {
        self.address = address
        self.owner = owner
        self.pod = pod
        self.endpoint = endpoint
        self.expiresAtMs = expiresAtMs
        self.expirationUUID = expirationUUID
        self.allocatedAtMs = allocatedAtMs
    }

    /// From the ledger's form; nil when the record is not one.
    init?(ledgerJSON json: JSON) {
        guard let text = json["ip"]?.stringValue, let address = IPAddress(text),
            let allocatedAt = json["allocated-at-ms"]?.intValue
        else { return nil }
        self.address = address
        owner = json["owner"]?.stringValue
        pod = json["pod"]?.stringValue
        endpoint = json["endpoint"]?.intValue.flatMap { UInt32(exactly: $0) }
        expiresAtMs = json["expires-at-ms"]?.intValue
        expirationUUID = json["expiration-uuid"]?.stringValue
        allocatedAtMs = allocatedAt
    }
}
