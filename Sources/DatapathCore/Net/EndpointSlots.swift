import AgentAPI
import CGlibc
import CNodeABI
import Dispatch
import Glibc
import Logging
import Synchronization

/// `na_ep_slots`: the rows of `na_endpoints` again, by ifindex, where the programs find them with an array lookup
/// the verifier inlines instead of a hash lookup (~25 ns a packet). `na_endpoints` stays the rows' home; a slot
/// only ever holds a copy of one of its rows, and the programs read it only while `NA_EP_SLOT_VALID` is set.
///
/// A hash element is replaced whole under RCU, so a packet sees an old row or a new one. An array element is
/// rewritten in place, so a packet could see half of each (old enforcement flags with the new policy revision: a
/// flow allowed then would never be checked again). So no slot a packet may be reading is ever rewritten:
/// - `withdraw` clears the slot's valid bit before its row changes or goes. That is a one-byte change, which no
///   packet can see half of; from then on packets read the row from `na_endpoints`.
/// - `publish` (after the row is in `na_endpoints`) asks for the slot to be filled, which a thread of its own does
///   once an RCU grace period has passed since the slot's last `withdraw` (`cglibc_synchronize_rcu`: no program
///   that could have read the old slot is still running). It writes the row, then sets the bit (another one-byte
///   change), for every slot that waited, so a policy change of many endpoints costs one grace period.
///
/// Interfaces with an ifindex of `NA_EP_SLOTS` or more (the array's size) have no slot. On a kernel that refuses the
/// grace period (`nohz_full`), slots are never filled and every packet reads `na_endpoints`.
public final class EndpointSlots: Sendable {
    private struct State {
        /// Slots to fill, by ifindex, with the `withdrawals` count each was asked under. A withdrawal removes its
        /// slot's request, so a request still here unchanged after a grace period was made before it began, and
        /// so was the slot's last withdrawal (a writer withdraws before it asks).
        var pending: [UInt32: UInt64] = [:]
        /// `withdraw` calls so far.
        var withdrawals: UInt64 = 0
        var started = false
        var stopped = false
        var refused = false
    }

    private let rows: TypedMap<UInt32, na_endpoint_info>?
    private let slots: TypedMap<UInt32, na_endpoint_info>?
    private let state = Mutex(State())
    /// Held while a slot is written, so a fill never overlaps a withdrawal.
    private let writing = Mutex(())
    private let wake = DispatchSemaphore(value: 0)
    private let logger = Logger(label: "datapath")

    /// Over the object's `na_endpoints` and `na_ep_slots` (an object without them: every call does nothing).
    public init(object: BPFObject) throws {
        rows = try object.map(named: "na_endpoints").map { try TypedMap($0) }
        slots = try object.map(named: "na_ep_slots").map { try TypedMap($0) }
    }

    /// Whether the interface has a slot: an ifindex below the array's size (`NA_EP_SLOTS` unless sized otherwise).
    public func hasSlot(_ ifindex: UInt32) -> Bool { ifindex < UInt32(slots?.map.info.maxEntries ?? 0) }

    /// Before the interface's row changes or is deleted: the programs stop reading its slot.
    public func withdraw(_ ifindex: UInt32) throws {
        guard let slots, hasSlot(ifindex) else { return }
        try writing.withLock { _ in
            state.withLock { state in
                state.withdrawals += 1
                state.pending[ifindex] = nil
            }
            guard var row = try slots.lookup(ifindex), row.flags & UInt32(NA_EP_SLOT_VALID) != 0 else { return }
            row.flags &= ~UInt32(NA_EP_SLOT_VALID)
            try slots.update(ifindex, row)
        }
    }

    /// After the interface's row was written to `na_endpoints`: its slot is filled after the next grace period.
    public func publish(_ ifindex: UInt32) {
        guard hasSlot(ifindex) else { return }
        let start = state.withLock { state -> Bool in
            guard !state.refused else { return false }
            state.pending[ifindex] = state.withdrawals
            defer { state.started = true }
            return !state.started
        }
        if start { startFiller() }
        wake.signal()
    }

    /// At start, over slots an earlier agent (or another writer of `na_endpoints`) left: a valid slot whose row is
    /// gone or differs is withdrawn, and every row whose slot is not valid and equal to it is published.
    public func restore() throws {
        guard let rows, let slots else { return }
        let current = Dictionary(try rows.entries().map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        var right = Set<UInt32>()
        for (ifindex, slot) in try validSlots() {
            var row = slot
            row.flags &= ~UInt32(NA_EP_SLOT_VALID)
            if let expected = current[ifindex], bytesOf(expected) == bytesOf(row) {
                right.insert(ifindex)
            } else {
                try withdraw(ifindex)
            }
        }
        for ifindex in current.keys where hasSlot(ifindex) && !right.contains(ifindex) { publish(ifindex) }
    }

    /// The valid slots, read in batches of 1,024 straight from the batch buffers: the array has 65,536 slots, which
    /// as an array per key and value would take megabytes at every start.
    private func validSlots() throws -> [(ifindex: UInt32, row: na_endpoint_info)] {
        guard let slots else { return [] }
        var valid: [(ifindex: UInt32, row: na_endpoint_info)] = []
        try slots.forEachEntry(batchSize: 1024) { ifindex, row in
            if row.flags & UInt32(NA_EP_SLOT_VALID) != 0 { valid.append((ifindex, row)) }
        }
        return valid
    }

    /// Slots asked for and not filled yet.
    public var waiting: Int { state.withLock { $0.pending.count } }

    /// Ends the filler thread; waiting slots stay empty, and packets read `na_endpoints`.
    public func stop() {
        state.withLock { $0.stopped = true }
        wake.signal()
    }

    private func startFiller() {
        let wake = wake
        // Holds the object only while it fills: the thread ends once the object is gone or stopped.
        BackgroundThread.start(name: "ep-slots", scheduling: .batch) { [weak self] in
            while true {
                guard let waiting = self?.state.withLock({ $0.stopped ? nil : $0.pending.count }) else { return }
                if waiting == 0 {
                    _ = wake.wait(timeout: .now() + .seconds(60))
                    continue
                }
                // Rows often change in bursts (a policy change regenerates many endpoints): one grace period
                // serves every slot asked for within this wait.
                _ = wake.wait(timeout: .now() + .milliseconds(20))
                guard self?.fillAll() == true else { return }
            }
        }
    }

    /// Fills every slot asked for and not withdrawn since, after one grace period (the filler thread's round, or a
    /// caller's that will not wait for it); false when the kernel refused the grace period.
    @discardableResult
    public func fillAll() -> Bool {
        guard let rows, let slots else { return true }
        let asked = state.withLock { $0.pending }
        guard !asked.isEmpty else { return true }
        let began = ContinuousClock.now
        let rc = cglibc_synchronize_rcu()
        if rc == 0 { GracePeriods.completed(began: began) }
        guard rc == 0 else {
            state.withLock {
                $0.refused = true
                $0.pending = [:]
            }
            logger.warning(
                "the kernel refused an RCU grace period (membarrier); endpoint rows are read from na_endpoints only",
                metadata: ["error": "\(String(cString: strerror(-rc)))"])
            return false
        }
        writing.withLock { _ in
            for (ifindex, generation) in asked {
                let due = state.withLock { state -> Bool in
                    guard state.pending[ifindex] == generation else { return false }
                    state.pending[ifindex] = nil
                    return true
                }
                guard due else { continue }
                do {
                    guard var row = try rows.lookup(ifindex) else { continue }
                    row.flags &= ~UInt32(NA_EP_SLOT_VALID)
                    try slots.update(ifindex, row)
                    row.flags |= UInt32(NA_EP_SLOT_VALID)
                    try slots.update(ifindex, row)
                } catch {
                    // The slot stays invalid, which is always safe: packets read na_endpoints.
                    logger.warning(
                        "filling an endpoint slot failed", metadata: ["ifindex": "\(ifindex)", "error": "\(error)"])
                }
            }
        }
        return true
    }
}
