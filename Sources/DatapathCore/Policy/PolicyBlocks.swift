import CGlibc
import CNodeABI
import Synchronization

/// Read-modify-writes of `na_ptable_bits`, one at a time in the process: a bit lost to a concurrent write would
/// only cost its peer the table's line, but a slot claimed twice would give one tag the other's bits. The lock also
/// holds when each map's slots were withdrawn.
private let blockWrites = Mutex(Withdrawals())

/// By map id: when every slot was last withdrawn at once (`withdrawAll`), and when slots were withdrawn one by one
/// since. A stale slot is free once a grace period began after its own withdrawal: a change that needs a slot
/// another change withdrew a moment ago waits for one, the others do not.
private struct Withdrawals {
    var all: [UInt32: ContinuousClock.Instant] = [:]
    var slots: [UInt32: [UInt32: ContinuousClock.Instant]] = [:]

    /// Slots recorded at most, by map, before those a grace period already freed are dropped.
    static let pruneAbove = 1024
}

/// `na_ptable_bits`: per endpoint, full-length key and group of 256 peer identities, a bit per identity whose key
/// the endpoint's hash holds with the block's rule and verdict, so a new flow of any of the group's peers reads one
/// line its other peers keep warm where `na_ptable` has a line per peer (BENCHMARKS.md §2). The programs read a
/// key's block before the table, and a clear bit (or a block of another tag) sends them on to it: blocks only ever
/// answer for keys the table and hash hold, so a key without a block costs what it did.
///
/// Kept by `PolicyTable` beside the table: bits are cleared before a key leaves the hash or changes (`withdraw`), set
/// after it is written (`publish`). A block's tag (endpoint, key, group), rule and verdict never change while it is
/// valid: a key of another rule or verdict is left to the table, and a block whose last bit clears is withdrawn
/// (stale) and its slot serves another tag only after an RCU grace period began after that withdrawal
/// (`GracePeriods`; a publish waits for one only when it needs such a slot). Slots go first come
/// (within one change, to the tag, rule and verdict most of its keys there share): a tag whose slot another holds is
/// left to the table.
public struct PolicyBlocks {
    public static let name = "na_ptable_bits"

    private let map: TypedMap<UInt32, na_policy_block>
    private let gracePeriod: () -> Bool
    private let waitsSoon: Bool

    /// `gracePeriod` is what a change that needs a slot withdrawn since the last grace period waits; with
    /// `waitsSoon`, withdrawals also start one on a thread of their own (`GracePeriods.waitSoon`), so that a
    /// change a moment later rarely needs to wait.
    public init(
        _ map: BPFMap, gracePeriod: @escaping () -> Bool = { cglibc_synchronize_rcu() == 0 }, waitsSoon: Bool = true
    ) throws {
        guard map.info.maxEntries == Int(NA_POLICY_BLOCKS) else {
            throw AgentError.datapath("\(map.name) is not an array of \(NA_POLICY_BLOCKS) policy blocks")
        }
        self.map = try TypedMap(map)
        self.gracePeriod = gracePeriod
        self.waitsSoon = waitsSoon
    }

    /// Where a key's bit lives: its block's slot and tag, and the bit's number in the block.
    public struct Place: Hashable {
        public var slot: UInt32
        public var key: UInt32
        public var group: UInt32
        public var bit: UInt32
    }

    /// The place of endpoint `id`'s full-length key, as `na_policy_block_of` picks its slot.
    public static func place(endpoint id: UInt32, _ key: na_policy_key) -> Place {
        let identity = UInt32(bigEndian: key.identity)
        let bits = na_policy_table_key(key.direction, key.protocol, key.dport)
        return Place(
            slot: na_policy_block_of(id, identity, bits), key: bits,
            group: identity >> UInt32(NA_POLICY_BLOCK_GROUP_BITS), bit: identity & 255)
    }

    /// The meta word a block of this value has (without VALID): nil for a value a block cannot hold.
    private static func meta(_ key: UInt32, _ value: na_policy_value) -> UInt32? {
        switch value.flags {
        case 0: return key
        case UInt32(NA_POLICY_DENY): return key | UInt32(NA_POLICY_TABLE_DENY)
        default: return nil
        }
    }

    private static let valid = UInt32(NA_POLICY_TABLE_VALID)
    private static let stale = UInt32(NA_POLICY_TABLE_STALE)
    private static let tagMask = UInt32(NA_POLICY_TABLE_KEY_MASK | NA_POLICY_TABLE_DENY)

    /// Whether `block` is valid and has the tag of `place` under endpoint `id` (whatever its rule and verdict).
    private static func holds(_ block: na_policy_block, _ id: UInt32, _ place: Place) -> Bool {
        block.meta & valid != 0 && block.meta & UInt32(NA_POLICY_TABLE_KEY_MASK) == place.key && block.ep_id == id
            && block.group == place.group
    }

    private static func has(_ block: na_policy_block, bit: UInt32) -> Bool {
        withUnsafeBytes(of: block.bits) { $0.load(fromByteOffset: Int(bit / 64) * 8, as: UInt64.self) }
            & (1 << UInt64(bit % 64)) != 0
    }

    private static func setting(_ block: na_policy_block, bit: UInt32, to on: Bool) -> na_policy_block {
        var block = block
        withUnsafeMutableBytes(of: &block.bits) { raw in
            let offset = Int(bit / 64) * 8
            var word = raw.load(fromByteOffset: offset, as: UInt64.self)
            if on { word |= 1 << UInt64(bit % 64) } else { word &= ~(1 << UInt64(bit % 64)) }
            raw.storeBytes(of: word, toByteOffset: offset, as: UInt64.self)
        }
        return block
    }

    private static func empty(_ block: na_policy_block) -> Bool {
        withUnsafeBytes(of: block.bits) { raw in
            (0..<4).allSatisfy { raw.load(fromByteOffset: $0 * 8, as: UInt64.self) == 0 }
        }
    }

    /// Blocks read by one call, with what it wrote to them, and the slots it withdrew.
    private struct Pass {
        var loaded: [UInt32: na_policy_block] = [:]
        var withdrawn: Set<UInt32> = []

        mutating func block(_ slot: UInt32, in map: TypedMap<UInt32, na_policy_block>) throws -> na_policy_block {
            if let block = loaded[slot] { return block }
            let block = try map.lookup(slot) ?? na_policy_block()
            loaded[slot] = block
            return block
        }
    }

    /// One change of endpoint `id`'s full-length keys (nil: removed) around `body`, which writes the table (the
    /// hash holds the new values already, and still holds the removed keys): `withdraw` before it, `publish` after,
    /// each block read once.
    public func apply(
        endpoint id: UInt32, _ changes: [(key: na_policy_key, value: na_policy_value?)], around body: () throws -> Void
    ) throws {
        try blockWrites.withLock { withdrawals in
            var pass = Pass()
            try withdraw(endpoint: id, changes, &pass, &withdrawals)
            try body()
            try publish(
                endpoint: id, changes.compactMap { change in change.value.map { (change.key, $0) } }, &pass,
                &withdrawals)
        }
    }

    /// Before the hash loses or changes keys of endpoint `id`: each key removed (nil) or given a value other than
    /// its block's loses its bit, and a block left without bits is withdrawn.
    public func withdraw(endpoint id: UInt32, _ changes: [(key: na_policy_key, value: na_policy_value?)]) throws {
        try blockWrites.withLock { withdrawals in
            var pass = Pass()
            try withdraw(endpoint: id, changes, &pass, &withdrawals)
        }
    }

    private func withdraw(
        endpoint id: UInt32, _ changes: [(key: na_policy_key, value: na_policy_value?)], _ pass: inout Pass,
        _ withdrawals: inout Withdrawals
    ) throws {
        var changed: Set<UInt32> = []
        for (key, value) in changes {
            let place = Self.place(endpoint: id, key)
            let block = try pass.block(place.slot, in: map)
            guard Self.holds(block, id, place), Self.has(block, bit: place.bit) else { continue }
            if let value, let meta = Self.meta(place.key, value), meta == block.meta & Self.tagMask,
                value.rule_id == block.rule_id
            {
                continue
            }
            pass.loaded[place.slot] = Self.setting(block, bit: place.bit, to: false)
            changed.insert(place.slot)
        }
        for slot in changed {
            var block = pass.loaded[slot]!
            if Self.empty(block) {
                block.meta = (block.meta & ~Self.valid) | Self.stale
                pass.loaded[slot] = block
                pass.withdrawn.insert(slot)
            }
            try map.update(slot, block)
        }
        guard !pass.withdrawn.isEmpty else { return }
        let now = ContinuousClock.now
        let mapID = map.map.info.id
        var slots = withdrawals.slots[mapID] ?? [:]
        if slots.count > Withdrawals.pruneAbove { slots = slots.filter { !GracePeriods.began(after: $0.value) } }
        for slot in pass.withdrawn { slots[slot] = now }
        withdrawals.slots[mapID] = slots
        if waitsSoon { GracePeriods.waitSoon() }
    }

    /// A block's tag, rule and verdict: what a free slot becomes.
    private struct Claim: Hashable {
        var key: UInt32
        var group: UInt32
        var meta: UInt32
        var rule: UInt32

        /// The claim `entries` give most keys (the lowest rule, then verdict, key and group on a tie), so the blocks
        /// a set of entries makes do not depend on their order.
        static func best(_ votes: [Claim: Int]) -> Claim? {
            votes.max { a, b in
                (a.value, b.key.rule, b.key.meta, b.key.key, b.key.group)
                    < (b.value, a.key.rule, a.key.meta, a.key.key, a.key.group)
            }?.key
        }
    }

    /// After the hash holds them: each key of endpoint `id` gets its bit where its block has its rule and verdict.
    /// A free slot becomes the block of the tag, rule and verdict most of the call's keys there share (written
    /// without VALID, then with it); a slot withdrawn earlier is free once a grace period began after its
    /// withdrawal (waited out here when not, at most once for the whole call), and one this change withdrew is
    /// left for a later one.
    public func publish(endpoint id: UInt32, _ entries: [(key: na_policy_key, value: na_policy_value)]) throws {
        try blockWrites.withLock { withdrawals in
            var pass = Pass()
            try publish(endpoint: id, entries, &pass, &withdrawals)
        }
    }

    private func publish(
        endpoint id: UInt32, _ entries: [(key: na_policy_key, value: na_policy_value)], _ pass: inout Pass,
        _ withdrawals: inout Withdrawals
    ) throws {
        let placed = entries.compactMap { entry in
            let place = Self.place(endpoint: id, entry.key)
            return Self.meta(place.key, entry.value).map { (place: place, meta: $0, rule: entry.value.rule_id) }
        }
        guard !placed.isEmpty else { return }
        var votes: [UInt32: [Claim: Int]] = [:]
        for item in placed {
            let claim = Claim(key: item.place.key, group: item.place.group, meta: item.meta, rule: item.rule)
            votes[item.place.slot, default: [:]][claim, default: 0] += 1
        }
        var changed: Set<UInt32> = []
        var claimed: Set<UInt32> = []
        for (place, meta, rule) in placed {
            var block = try pass.block(place.slot, in: map)
            if block.meta & Self.valid == 0 {
                guard !pass.withdrawn.contains(place.slot),
                    block.meta & Self.stale == 0 || waitUntilFree(place.slot, &withdrawals),
                    let claim = votes[place.slot].flatMap(Claim.best)
                else { continue }
                block = na_policy_block()
                // Valid in memory so the call's later keys find it; written without VALID first.
                block.meta = claim.meta | Self.valid
                block.ep_id = id
                block.group = claim.group
                block.rule_id = claim.rule
                claimed.insert(place.slot)
                pass.loaded[place.slot] = block
            }
            guard Self.holds(block, id, place), meta == block.meta & Self.tagMask, rule == block.rule_id,
                !Self.has(block, bit: place.bit)
            else { continue }
            pass.loaded[place.slot] = Self.setting(block, bit: place.bit, to: true)
            changed.insert(place.slot)
        }
        for slot in claimed where changed.contains(slot) {
            var hidden = pass.loaded[slot]!
            hidden.meta &= ~Self.valid
            try map.update(slot, hidden)
        }
        for slot in changed { try map.update(slot, pass.loaded[slot]!) }
    }

    /// Whether `slot` may be claimed without waiting: neither valid nor withdrawn since the last grace period began.
    public func isFree(slot: UInt32) throws -> Bool {
        try blockWrites.withLock { withdrawals in
            guard let block = try map.lookup(slot), block.meta & Self.valid == 0 else { return false }
            return block.meta & Self.stale == 0 || !Self.waitNeeded(slot, map.map.info.id, withdrawals)
        }
    }

    /// Whether claiming stale `slot` of map `mapID` needs a grace period first.
    private static func waitNeeded(_ slot: UInt32, _ mapID: UInt32, _ withdrawals: Withdrawals) -> Bool {
        let withdrawn = withdrawals.slots[mapID]?[slot] ?? withdrawals.all[mapID] ?? beforeThisProcess
        return !GracePeriods.began(after: withdrawn)
    }

    /// Later than any withdrawal an earlier agent wrote: read first after this process began.
    private static let beforeThisProcess = ContinuousClock.now

    /// Whether stale `slot` may be claimed: a grace period began after its withdrawal (or after every slot's,
    /// for one not withdrawn since), or one is waited out now, which frees every slot withdrawn before it. False
    /// when the kernel refuses one.
    private func waitUntilFree(_ slot: UInt32, _ withdrawals: inout Withdrawals) -> Bool {
        let mapID = map.map.info.id
        guard Self.waitNeeded(slot, mapID, withdrawals) else { return true }
        guard GracePeriods.wait(gracePeriod) else { return false }
        withdrawals.slots[mapID] = nil
        return true
    }

    /// Withdraws every block (the start of a restore, when no block's bits are known to hold).
    public func withdrawAll() throws {
        try blockWrites.withLock { withdrawals in
            var stale = na_policy_block()
            stale.meta = Self.stale
            try map.map.fill(bytesOf(stale))
            withdrawals.all[map.map.info.id] = .now
            withdrawals.slots[map.map.info.id] = nil
        }
    }

    /// The valid blocks, by slot.
    public func validBlocks() throws -> [(slot: UInt32, block: na_policy_block)] {
        var result: [(slot: UInt32, block: na_policy_block)] = []
        try map.forEachEntry(batchSize: 1024) { slot, block in
            if block.meta & Self.valid != 0 { result.append((slot, block)) }
        }
        return result
    }

    /// The identities whose bit a block has set.
    public static func identities(of block: na_policy_block) -> [UInt32] {
        (0..<256).filter { has(block, bit: $0) }.map { block.group << UInt32(NA_POLICY_BLOCK_GROUP_BITS) | $0 }
    }
}
