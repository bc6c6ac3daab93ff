import AgentAPI

/// Maps security-relevant label sets to numeric identities on this node.
///
/// - Reserved identities (1...10, `reserved:<name>`) are fixed and always present; a label set holding one reserved
///   label gets that identity and is not reference counted.
/// - Other label sets get numbers from `range` (default 256 up to just below the CIDR identities at 1<<24),
///   reference counted: `acquire` adds a reference, `release` drops one, and the number is freed at zero.
/// - Numbers are handed out lowest never-used first. A freed number is not reused while never-used numbers remain,
///   and its label set is remembered: acquiring the same labels again gets the same number back. So a consumer
///   that restarts, or a pod that is recreated, does not see its number reassigned to a different label set, and
///   flow records and policy entries that still carry an old number never name the wrong workload. Only when the
///   range is exhausted are freed numbers reused, oldest-freed first; then any number nobody holds (gaps left by
///   `restore`).
///
/// A value type: the owner serializes access (the daemon holds its lock around it).
public struct IdentityAllocator: Sendable {
    /// First number for label sets.
    public static let firstLocal: UInt32 = 256
    /// Last number for label sets: CIDR identities start at 1<<24.
    public static let lastLocal: UInt32 = (1 << 24) - 1
    /// How many freed label sets are remembered for handing their number back. Beyond it the oldest is forgotten;
    /// its number stays unused until the range is exhausted.
    public static let rememberedFreedLimit = 65536

    public let filter: LabelFilter
    public let range: ClosedRange<UInt32>
    /// Who numbers new label sets: this allocator (standalone), or the cluster's store, in which case `acquire`
    /// only finds numbers the store handed out (`learn`) and never takes one itself.
    public let numbering: Numbering

    public enum Numbering: Sendable { case local, cluster }

    private struct Allocation {
        var labels: LabelSet
        var references: Int
    }

    private var allocated: [UInt32: Allocation] = [:]
    private var byLabels: [LabelSet: UInt32] = [:]
    /// Lowest number never handed out (beyond `range` when all have been).
    private var nextFresh: UInt64
    /// Freed numbers whose labels are still remembered, with the sequence number of their release.
    private var freed: [UInt32: (labels: LabelSet, sequence: UInt64)] = [:]
    private var freedByLabels: [LabelSet: UInt32] = [:]
    /// Release order; entries whose sequence no longer matches `freed` are stale and skipped.
    private var freedQueue: [(id: UInt32, sequence: UInt64)] = []
    private var freedQueueHead = 0
    private var sequence: UInt64 = 0
    /// Identities numbered by the cluster's store, whether or not anything on this node holds them.
    var learned: [UInt32: LabelSet] = [:]
    var learnedByLabels: [LabelSet: UInt32] = [:]

    public init(
        filter: LabelFilter = .default, range: ClosedRange<UInt32> = firstLocal...lastLocal,
        numbering: Numbering = .local
    ) {
        precondition(range.lowerBound >= Self.firstLocal && range.upperBound <= Self.lastLocal, "bad identity range")
        self.filter = filter
        self.range = range
        self.numbering = numbering
        nextFresh = UInt64(range.lowerBound)
    }

    /// The identity for `labels` (filtered first), adding a reference to it.
    public mutating func acquire(_ labels: LabelSet) throws(AgentError) -> Identity {
        let labels = filter.apply(labels)
        if let reserved = try reservedIdentity(labels) { return reserved }
        if let id = byLabels[labels] {
            allocated[id]!.references += 1
            return Identity(id: id, labels: labels)
        }
        let id: UInt32
        if let known = learnedByLabels[labels] {
            id = known
        } else if numbering == .cluster {
            throw AgentError.unavailable("labels \(labels) have no cluster identity yet")
        } else if let previous = freedByLabels[labels] {
            id = previous
        } else if let next = takeNumber() {
            id = next
        } else {
            throw AgentError.capacity(
                "no free identity left in \(range.lowerBound)...\(range.upperBound) for labels \(labels)")
        }
        forgetFreed(id)
        allocated[id] = Allocation(labels: labels, references: 1)
        byLabels[labels] = id
        return Identity(id: id, labels: labels)
    }

    /// Drops one reference to `id`; returns true when that was the last one and the number is now free.
    /// Releasing a reserved identity does nothing.
    @discardableResult
    public mutating func release(_ id: UInt32) throws(AgentError) -> Bool {
        if ReservedIdentity.name(of: id) != nil { return false }
        guard var allocation = allocated[id] else {
            throw AgentError.notFound("identity \(id) is not allocated")
        }
        allocation.references -= 1
        if allocation.references > 0 {
            allocated[id] = allocation
            return false
        }
        allocated[id] = nil
        byLabels[allocation.labels] = nil
        // A cluster identity stays known: other nodes may hold it, and the store decides when it goes.
        if numbering == .cluster { return true }
        sequence += 1
        freed[id] = (allocation.labels, sequence)
        freedByLabels[allocation.labels] = id
        freedQueue.append((id, sequence))
        trimRememberedFreed()
        return true
    }

    /// Re-creates the identity `identity` for `labels` (filtered), as it was before a restart, adding a reference.
    /// Restoring the same pair again adds another reference. A number held by other labels, or labels holding
    /// another number, is a conflict; a reserved number must come with its own reserved label.
    @discardableResult
    public mutating func restore(identity id: UInt32, labels: LabelSet) throws(AgentError) -> Identity {
        let labels = filter.apply(labels)
        if let reserved = ReservedIdentity.labels(of: id) {
            guard try reservedIdentity(labels)?.id == id else {
                throw AgentError.conflict(
                    "identity \(id) is reserved for \(reserved), not labels \(labels)", field: "identity")
            }
            return Identity(id: id, labels: reserved)
        }
        guard range.contains(id) else {
            throw AgentError.invalidField(
                "identity", "identity \(id) is outside the node-local range \(range.lowerBound)...\(range.upperBound)")
        }
        if try reservedIdentity(labels) != nil {
            throw AgentError.conflict("labels \(labels) belong to a reserved identity, not \(id)", field: "identity")
        }
        if let holder = allocated[id], holder.labels != labels {
            throw AgentError.conflict(
                "identity \(id) is already allocated to labels \(holder.labels)", field: "identity")
        }
        if let other = byLabels[labels], other != id {
            throw AgentError.conflict("labels \(labels) already have identity \(other)", field: "labels")
        }
        if let known = learned[id], known != labels {
            throw AgentError.conflict("identity \(id) belongs to labels \(known) in the cluster", field: "identity")
        }
        forgetFreed(id)
        if let other = freedByLabels[labels], other != id { forgetFreed(other) }
        allocated[id, default: Allocation(labels: labels, references: 0)].references += 1
        byLabels[labels] = id
        nextFresh = max(nextFresh, UInt64(id) + 1)
        return Identity(id: id, labels: labels)
    }

    /// The identity numbered `id`, reserved ones included.
    public func identity(id: UInt32) -> Identity? {
        if let reserved = ReservedIdentity.labels(of: id) { return Identity(id: id, labels: reserved) }
        if let allocation = allocated[id] { return Identity(id: id, labels: allocation.labels) }
        return learned[id].map { Identity(id: id, labels: $0) }
    }

    /// The identity currently allocated for `labels` (filtered first), reserved ones included.
    public func identity(labels: LabelSet) -> Identity? {
        let labels = filter.apply(labels)
        if let reserved = try? reservedIdentity(labels) { return reserved }
        return (byLabels[labels] ?? learnedByLabels[labels]).map { Identity(id: $0, labels: labels) }
    }

    /// References held on `id`; 0 for reserved and unallocated numbers.
    public func references(_ id: UInt32) -> Int { allocated[id]?.references ?? 0 }

    /// Every identity, reserved ones first, by number.
    public var identities: [Identity] {
        let reserved = ReservedIdentity.all.map { Identity(id: $0.id, labels: ReservedIdentity.labels(of: $0.id)!) }
        let numbers = Set(allocated.keys).union(learned.keys).sorted()
        return reserved + numbers.map { Identity(id: $0, labels: allocated[$0]?.labels ?? learned[$0]!) }
    }

    /// `{"id": 256, "labels": [...], "references": 2}`, as the API lists identities.
    public func json(_ identity: Identity) -> JSON {
        [
            "id": .int(Int64(identity.id)), "labels": .array(identity.labels.strings.map(JSON.string)),
            "references": .int(Int64(references(identity.id))),
        ]
    }

    /// The reserved identity a label set names through its `reserved:` label; nil when it has none.
    private func reservedIdentity(_ labels: LabelSet) throws(AgentError) -> Identity? {
        let reserved = labels.labels(ofSource: ReservedIdentity.source)
        guard let first = reserved.first else { return nil }
        guard reserved.count == 1 else {
            throw AgentError.invalidField(
                "labels", "labels \(labels) name more than one reserved identity")
        }
        guard let id = ReservedIdentity.id(named: first.key) else {
            let names = ReservedIdentity.all.map(\.name).joined(separator: ", ")
            throw AgentError.invalidField(
                "labels", "label \(quoted(first.description)) is not a reserved identity (known: \(names))")
        }
        return Identity(id: id, labels: ReservedIdentity.labels(of: id)!)
    }

    /// A number for new labels: never-used first, then the oldest freed, then any gap.
    private mutating func takeNumber() -> UInt32? {
        if nextFresh <= UInt64(range.upperBound) {
            defer { nextFresh += 1 }
            return UInt32(nextFresh)
        }
        while freedQueueHead < freedQueue.count {
            let (id, seq) = freedQueue[freedQueueHead]
            freedQueueHead += 1
            if freed[id]?.sequence == seq { return id }
        }
        compactQueue()
        // Numbers never allocated in this run, below a restored one, or freed and forgotten.
        return range.first { allocated[$0] == nil && freed[$0] == nil }
    }

    private mutating func forgetFreed(_ id: UInt32) {
        guard let record = freed.removeValue(forKey: id) else { return }
        freedByLabels[record.labels] = nil
    }

    private mutating func trimRememberedFreed() {
        while freed.count > Self.rememberedFreedLimit, freedQueueHead < freedQueue.count {
            let (id, seq) = freedQueue[freedQueueHead]
            freedQueueHead += 1
            if freed[id]?.sequence == seq { forgetFreed(id) }
        }
        compactQueue()
    }

    /// Drops consumed queue entries once they are the larger part, so the queue does not grow without bound.
    private mutating func compactQueue() {
        if freedQueueHead > 1024 && freedQueueHead * 2 > freedQueue.count {
            freedQueue.removeFirst(freedQueueHead)
            freedQueueHead = 0
        }
    }
}
