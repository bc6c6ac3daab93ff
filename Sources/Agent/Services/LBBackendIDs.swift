import DatapathCore

/// Backend ids of the socket load balancer: one id per backend address, port and protocol, shared by every
/// frontend that lists it, and freed when the last frontend lets it go. Rebuilt from the maps when the agent
/// starts, so ids stay those the datapath already holds.
struct LBBackendIDs {
    private(set) var byIdentity: [LBBackendIdentity: UInt32] = [:]
    private var identities: [UInt32: LBBackendIdentity] = [:]
    private var users: [UInt32: Set<ServiceFrontend>] = [:]
    private var next: UInt32 = 1
    /// The backends map's size: ids run from 1 to it.
    let capacity: UInt32

    init(capacity: UInt32) { self.capacity = capacity }

    /// Records an id the maps hold (at start).
    mutating func adopt(_ id: UInt32, _ identity: LBBackendIdentity, usedBy frontend: ServiceFrontend) {
        byIdentity[identity] = id
        identities[id] = identity
        users[id, default: []].insert(frontend)
    }

    func id(of identity: LBBackendIdentity) -> UInt32? { byIdentity[identity] }

    func isUsed(_ id: UInt32) -> Bool { !(users[id] ?? []).isEmpty }

    /// The id of `identity` for `frontend`: the existing one, or a free one. `isNew` tells the caller it must
    /// write the backend entry before any slot names the id.
    mutating func acquire(_ identity: LBBackendIdentity, for frontend: ServiceFrontend) throws(AgentError)
        -> (id: UInt32, isNew: Bool)
    {
        if let id = byIdentity[identity] {
            users[id, default: []].insert(frontend)
            return (id, false)
        }
        guard identities.count < Int(capacity) else {
            throw .capacity("every one of the \(capacity) service backend ids is in use")
        }
        while identities[next] != nil { next = next % capacity + 1 }
        let id = next
        next = next % capacity + 1
        byIdentity[identity] = id
        identities[id] = identity
        users[id] = [frontend]
        return (id, true)
    }

    /// Lets `frontend` go of `id`; true when no frontend uses it any more and its entry is to be deleted.
    mutating func release(_ id: UInt32, by frontend: ServiceFrontend) -> Bool {
        users[id]?.remove(frontend)
        guard users[id]?.isEmpty ?? true else { return false }
        users[id] = nil
        if let identity = identities.removeValue(forKey: id) { byIdentity[identity] = nil }
        return true
    }
}
