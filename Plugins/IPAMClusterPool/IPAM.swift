import DatapathCore
import FoundationEssentials
import Synchronization

/// The IPAM service: the node's pod CIDRs, the allocation table, its durable ledger and the endpoints that use
/// addresses, behind one lock. Every change is on disk before the call returns.
///
/// Lifecycle: `load` reads the ledger, `syncEndpoints` re-claims the addresses of the endpoints found in the
/// datapath; only then is it ready. Nothing is allocated, released, expired or collected before that, so a
/// restart can neither hand out an address a restored endpoint uses nor drop one.
final class IPAM: Sendable {
    enum Phase: Sendable, Equatable {
        case unconfigured
        /// Configured; the ledger and the endpoints are not restored yet.
        case starting
        case ready
        case failed(String)
        case stopped

        var name: String {
            switch self {
            case .unconfigured: "idle"
            case .starting: "starting"
            case .ready: "ready"
            case .failed: "failed"
            case .stopped: "stopped"
            }
        }
    }

    /// Where the allocator's state lives while the lock is held.
    struct State {
        var phase: Phase
        var table: AllocationTable
        var ledger: Ledger?
        /// Address → endpoint id, for every endpoint the agent has.
        var liveAddresses: [IPAddress: UInt32] = [:]
        var liveEndpoints: [UInt32: [IPAddress]] = [:]
        /// Endpoint events that arrived while starting, applied once the endpoints are synced.
        var pendingEvents: [DatapathEvent] = []
    }

    let config: IPAMConfig
    let state: Mutex<State>
    /// Unix time in milliseconds (wall clock: expirations must count the time the agent was down).
    let clock: @Sendable () -> Int64
    let warn: @Sendable (String) -> Void
    private let compactAfter: Int

    init(
        config: IPAMConfig, clock: @escaping @Sendable () -> Int64 = IPAM.wallClockMs,
        compactAfter: Int = 1024, warn: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.config = config
        self.clock = clock
        self.warn = warn
        self.compactAfter = compactAfter
        var cidrs: [IPAddress.Family: PodCIDR] = [:]
        for family in config.families { cidrs[family] = config.family(family)?.podCIDR }
        state = Mutex(
            State(
                phase: config.isConfigured ? .starting : .unconfigured, table: AllocationTable(podCIDRs: cidrs)))
    }

    static let wallClockMs: @Sendable () -> Int64 = { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    var phase: Phase { state.withLock { $0.phase } }

    // MARK: Lifecycle

    /// Loads the ledger from `directory` (once; later calls do nothing).
    func load(directory: String) throws(AgentError) {
        try state.withLock { (state: inout State) throws(AgentError) in
            guard state.phase == .starting, state.ledger == nil else { return }
            let ledger = Ledger(directory: directory, compactAfter: compactAfter)
            let contents: LedgerContents
            do throws(AgentError) {
                contents = try ledger.load()
            } catch {
                state.phase = .failed(error.message)
                throw error
            }
            state.table = AllocationTable(contents: contents, podCIDRs: state.table.podCIDRs)
            state.ledger = ledger
            if ledger.droppedTornRecord {
                warn("the IPAM ledger's last record was torn by a crash and was dropped (it had not been acknowledged)")
            }
            let outside = contents.allocations.values.filter { !state.table.isInside($0.address) }.count
            if outside > 0 {
                warn("\(outside) allocations lie outside the configured pod CIDRs; they stay until released")
            }
        }
    }

    /// Records the endpoints the datapath has (id → addresses), claims their addresses, and makes the service
    /// ready.
    func syncEndpoints(_ endpoints: [UInt32: [IPAddress]]) throws(AgentError) {
        try state.withLock { (state: inout State) throws(AgentError) in
            guard state.phase == .starting, state.ledger != nil else {
                throw AgentError.unavailable("the IPAM ledger is not loaded")
            }
            state.liveEndpoints = endpoints
            state.liveAddresses = [:]
            for (id, addresses) in endpoints {
                for address in addresses { state.liveAddresses[address] = id }
            }
            var change = LedgerChange()
            for (id, addresses) in endpoints.sorted(by: { $0.key < $1.key }) {
                claimChange(endpoint: id, addresses: addresses, state: state, into: &change)
            }
            if !change.isEmpty { try commit(change, &state) }
            state.phase = .ready
            let pending = state.pendingEvents
            state.pendingEvents = []
            for event in pending { apply(event, &state) }
        }
    }

    /// Marks the service failed: its routes answer 503 with `reason`.
    func fail(_ reason: String) {
        state.withLock { $0.phase = .failed(reason) }
    }

    func stop() {
        state.withLock { state in
            state.ledger?.close()
            state.ledger = nil
            if state.phase != .unconfigured { state.phase = .stopped }
        }
    }

    // MARK: Requests

    /// Allocates one address in each of `families`, all or none.
    func allocate(
        families: [IPAddress.Family], owner: String?, pod: String? = nil, expiring: Bool
    ) throws(AgentError) -> [Allocation] {
        try state.withLock { (state: inout State) throws(AgentError) in
            try requireReady(state)
            for family in families where config.family(family) == nil {
                throw notConfigured(family, field: "family")
            }
            let now = clock()
            var change = LedgerChange()
            var picked: [Allocation] = []
            for family in families {
                var address = state.table.nextFree(family) { state.liveAddresses[$0] != nil }
                if address == nil, try expireLocked(&state, now: now) > 0 {
                    address = state.table.nextFree(family) { state.liveAddresses[$0] != nil }
                }
                guard let address else {
                    let cidr = config.family(family)!.podCIDR
                    throw AgentError.capacity("pod CIDR \(cidr) is exhausted (\(cidr.capacity) addresses in use)")
                }
                let allocation = Allocation(
                    address: address, owner: owner, pod: pod,
                    expiresAtMs: expiring ? now + config.expirationTimeout * 1000 : nil,
                    expirationUUID: expiring ? UUID().uuidString.lowercased() : nil, allocatedAtMs: now)
                change.put.append(allocation)
                change.cursors[family] = address
                picked.append(allocation)
            }
            try commit(change, &state)
            return picked
        }
    }

    /// Allocates the given address. The same owner asking again gets its allocation back (`created` false), so
    /// a client may retry after losing an answer; anyone else gets 409.
    func claim(
        _ address: IPAddress, owner: String?, pod: String? = nil, expiring: Bool
    ) throws(AgentError) -> (Allocation, created: Bool) {
        try state.withLock { (state: inout State) throws(AgentError) in
            try requireReady(state)
            guard let family = config.family(address.family) else { throw notConfigured(address.family, field: "ip") }
            if let existing = state.table[address] {
                if let owner, existing.owner == owner { return (existing, false) }
                throw AgentError.conflict("\(address) is already allocated to \(Self.holder(existing))", field: "ip")
            }
            let cidr = family.podCIDR
            guard let offset = cidr.offset(of: address) else {
                throw AgentError.invalidField("ip", "\(address) is outside the pod CIDR \(cidr)")
            }
            if let reservation = cidr.reservation(at: offset) {
                throw AgentError.invalidField("ip", "\(address) is reserved: it is \(reservation) of pod CIDR \(cidr)")
            }
            if let endpoint = state.liveAddresses[address] {
                throw AgentError.conflict("\(address) is in use by endpoint \(endpoint)", field: "ip")
            }
            let now = clock()
            let allocation = Allocation(
                address: address, owner: owner, pod: pod,
                expiresAtMs: expiring ? now + config.expirationTimeout * 1000 : nil,
                expirationUUID: expiring ? UUID().uuidString.lowercased() : nil, allocatedAtMs: now)
            try commit(LedgerChange(put: [allocation]), &state)
            return (allocation, true)
        }
    }

    /// Releases `address`; returns what was allocated, nil when nothing was (releasing is idempotent).
    /// An address a live endpoint uses is not released (409): handing it out again would give two pods one address.
    func release(_ address: IPAddress) throws(AgentError) -> Allocation? {
        try state.withLock { (state: inout State) throws(AgentError) in
            try requireReady(state)
            guard let existing = state.table[address] else {
                if let cidr = config.family(address.family)?.podCIDR, let offset = cidr.offset(of: address),
                    let reservation = cidr.reservation(at: offset)
                {
                    throw AgentError.invalidField(
                        "ip", "\(address) is reserved: it is \(reservation) of pod CIDR \(cidr), never allocated")
                }
                return nil
            }
            if let endpoint = state.liveAddresses[address] {
                throw AgentError.conflict(
                    "\(address) is in use by endpoint \(endpoint); delete the endpoint before releasing its address",
                    field: "ip")
            }
            try commit(LedgerChange(release: [address]), &state)
            return existing
        }
    }

    func allocation(_ address: IPAddress) throws(AgentError) -> Allocation? {
        try state.withLock { (state: inout State) throws(AgentError) in
            try requireReady(state)
            return state.table[address]
        }
    }

    /// Releases allocations whose expiration has passed; returns them. Does nothing until ready.
    @discardableResult
    func expire() -> [Allocation] {
        state.withLock { state in
            guard state.phase == .ready else { return [] }
            let expired = expiredAllocations(state, now: clock())
            guard !expired.isEmpty else { return [] }
            do throws(AgentError) {
                try commit(LedgerChange(release: expired.map(\.address)), &state)
                return expired
            } catch {
                warn("releasing \(expired.count) expired allocations failed: \(error.message)")
                return []
            }
        }
    }

    /// The listing: allocations and per-family counts.
    func listing() throws(AgentError) -> Listing {
        try state.withLock { (state: inout State) throws(AgentError) in
            try requireReady(state)
            return Listing(
                allocations: state.table.allocations, families: config.families.map { usage($0, state) },
                now: clock())
        }
    }

    struct Listing: Sendable {
        var allocations: [Allocation]
        var families: [Usage]
        var now: Int64
    }

    struct Usage: Sendable, Equatable {
        var family: IPAddress.Family
        var podCIDR: PodCIDR
        var allocated: UInt64
        var free: UInt64
    }

    // MARK: Internals

    /// Appends the change to the ledger (durably), then applies it in memory; compacts the ledger when due.
    func commit(_ change: LedgerChange, _ state: inout State) throws(AgentError) {
        guard let ledger = state.ledger else { throw AgentError.unavailable("the IPAM ledger is not open") }
        try ledger.append(change)
        state.table.apply(change)
        if ledger.needsCompaction {
            do throws(AgentError) {
                try ledger.compact(state.table.contents)
            } catch {
                // The log still holds every record; compaction is retried after the next change.
                warn("compacting the IPAM ledger failed: \(error.message)")
            }
        }
    }

    private func expiredAllocations(_ state: State, now: Int64) -> [Allocation] {
        state.table.allocations.filter { allocation in
            guard let expiresAt = allocation.expiresAtMs else { return false }
            return expiresAt <= now && state.liveAddresses[allocation.address] == nil
        }
    }

    private func expireLocked(_ state: inout State, now: Int64) throws(AgentError) -> Int {
        let expired = expiredAllocations(state, now: now)
        if !expired.isEmpty { try commit(LedgerChange(release: expired.map(\.address)), &state) }
        return expired.count
    }

    func usage(_ family: IPAddress.Family, _ state: State) -> Usage {
        let cidr = config.family(family)!.podCIDR
        let allocated = state.table.inUse[family, default: 0]
        // Live endpoints' addresses are claimed on sight; one without an allocation only follows a failed write.
        let unrecorded = state.liveAddresses.keys.filter { $0.family == family && state.table[$0] == nil }
            .filter { cidr.offset(of: $0).map { cidr.reservation(at: $0) == nil } ?? false }.count
        let used = min(cidr.capacity, allocated + UInt64(unrecorded))
        return Usage(family: family, podCIDR: cidr, allocated: allocated, free: cidr.capacity - used)
    }

    func requireReady(_ state: State) throws(AgentError) {
        switch state.phase {
        case .ready:
            if let failure = state.ledger?.failure { throw AgentError.unavailable(failure) }
        case .unconfigured: throw Self.unconfiguredError
        case .starting: throw AgentError.unavailable("IPAM is restoring its ledger; try again shortly")
        case .failed(let reason): throw AgentError.unavailable("IPAM failed to start: \(reason)")
        case .stopped: throw AgentError.unavailable("IPAM is stopped")
        }
    }

    static let unconfiguredError = AgentError.unavailable(
        "IPAM is not configured: set plugins.ipam.cluster-pool-ipv4-cidr and plugins.ipam.node-index "
            + "(or plugins.ipam.pod-cidr-ipv4) in the agent's config")

    private func notConfigured(_ family: IPAddress.Family, field: String) -> AgentError {
        AgentError.invalidField(
            field,
            "\(family.name) is not configured (set plugins.ipam.pod-cidr-\(family.name) or "
                + "plugins.ipam.cluster-pool-\(family.name)-cidr)")
    }

    /// "ns/pod", "endpoint 12" or "ns/pod (endpoint 12)".
    static func holder(_ allocation: Allocation) -> String {
        switch (allocation.owner, allocation.endpoint) {
        case (let owner?, let endpoint?): "\(owner) (endpoint \(endpoint))"
        case (let owner?, nil): owner
        case (nil, let endpoint?): "endpoint \(endpoint)"
        case (nil, nil): "an unnamed owner"
        }
    }
}
