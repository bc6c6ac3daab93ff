import CNodeABI
import DatapathCore
import Glibc
import XCTest

/// `EndpointSlots` over an unpinned endpoint object: a slot is valid only with the row `na_endpoints` holds, is
/// withdrawn at once when the row changes or goes, filled again only after a grace period that began after its last
/// withdrawal, and rebuilt from the rows at start; and `from_endpoint` (BPF_PROG_TEST_RUN) reads the slot while it is
/// valid and the hash otherwise.
final class EndpointSlotsTests: XCTestCase {
    /// BPF_PROG_TEST_RUN runs tc programs on loopback, ifindex 1 (see DatapathHarness).
    static let ifindex: UInt32 = 1

    private var object: BPFObject!
    private var rows: TypedMap<UInt32, na_endpoint_info>!
    private var slotMap: TypedMap<UInt32, na_endpoint_info>!
    private var slots: EndpointSlots!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("loading BPF programs needs root") }
        object = try BPFObject.load(
            embedded: "endpoint", pinDirectory: nil,
            maxEntries: ["na_ct": 1024, "na_ipcache": 64, "na_endpoints": 64, "na_policy": 8, "na_policy_exact": 8])
        rows = try TypedMap(XCTUnwrap(object.map(named: "na_endpoints")))
        slotMap = try TypedMap(XCTUnwrap(object.map(named: "na_ep_slots")))
        slots = try EndpointSlots(object: object)
    }

    override func tearDown() {
        slots?.stop()
    }

    private func row(id: UInt32, identity: UInt32, revision: UInt32 = 1, enforceEgress: Bool = false)
        -> na_endpoint_info
    {
        var info = na_endpoint_info()
        info.ep_id = id
        info.identity = identity
        info.policy_revision = revision
        info.flags = UInt32(NA_EP_HAS_IPV4) | (enforceEgress ? UInt32(NA_EP_ENFORCE_EGRESS) : 0)
        setTupleBytes(&info.ipv4, [10, 0, 1, 5])
        return info
    }

    /// What the agent does for a new or changed row.
    private func write(_ ifindex: UInt32, _ info: na_endpoint_info) throws {
        try slots.withdraw(ifindex)
        try rows.update(ifindex, info)
        slots.publish(ifindex)
    }

    /// The slot's row when it is valid (without the valid bit), nil otherwise.
    private func validSlot(_ ifindex: UInt32) throws -> na_endpoint_info? {
        guard var slot = try slotMap.lookup(ifindex), slot.flags & UInt32(NA_EP_SLOT_VALID) != 0 else { return nil }
        slot.flags &= ~UInt32(NA_EP_SLOT_VALID)
        return slot
    }

    func testASlotIsValidOnlyWithItsRowAndOnlyAfterAGracePeriod() throws {
        try write(7, row(id: 3, identity: 300))
        XCTAssertNil(try validSlot(7), "not before a grace period")
        XCTAssertEqual(slots.waiting, 1)
        XCTAssertTrue(slots.fillAll())
        XCTAssertEqual(try validSlot(7).map(bytesOf), bytesOf(row(id: 3, identity: 300)))
        XCTAssertEqual(slots.waiting, 0)

        // A change: the slot stops counting before the row changes, and holds the new row after the next fill.
        try slots.withdraw(7)
        XCTAssertNil(try validSlot(7))
        try rows.update(7, row(id: 3, identity: 301, revision: 2))
        slots.publish(7)
        XCTAssertTrue(slots.fillAll())
        XCTAssertEqual(try validSlot(7).map(bytesOf), bytesOf(row(id: 3, identity: 301, revision: 2)))

        // A delete.
        try slots.withdraw(7)
        try rows.delete(7)
        XCTAssertTrue(slots.fillAll())
        XCTAssertNil(try validSlot(7))
    }

    func testASlotWithdrawnAgainBeforeItsFillWaitsForTheNextRequest() throws {
        try write(7, row(id: 3, identity: 300))
        try slots.withdraw(7)  // the row is about to change again
        XCTAssertTrue(slots.fillAll())
        XCTAssertNil(try validSlot(7), "a withdrawal after the request cancels it")
        XCTAssertEqual(slots.waiting, 0)
    }

    func testIfindexesBeyondTheSlotsHaveNone() throws {
        let high = UInt32(NA_EP_SLOTS) + 5
        XCTAssertFalse(slots.hasSlot(high))
        try write(high, row(id: 4, identity: 400))
        XCTAssertEqual(slots.waiting, 0)
    }

    /// Slots outlive the agent: a restarted one withdraws those whose row is gone or changed while no agent ran and
    /// fills those whose row has no valid slot.
    func testRestoreWithdrawsStaleSlotsAndFillsMissingOnes() throws {
        try write(7, row(id: 3, identity: 300))
        try write(8, row(id: 4, identity: 400))
        try write(9, row(id: 5, identity: 500))
        XCTAssertTrue(slots.fillAll())
        try rows.delete(7)  // gone behind the slots' back
        try rows.update(8, row(id: 4, identity: 401, revision: 2))  // changed behind their back
        try rows.update(10, row(id: 6, identity: 600))  // a row with no slot yet

        let restarted = try EndpointSlots(object: object)
        defer { restarted.stop() }
        try restarted.restore()
        XCTAssertNil(try validSlot(7))
        XCTAssertNil(try validSlot(8), "withdrawn at once")
        XCTAssertEqual(try validSlot(9).map(bytesOf), bytesOf(row(id: 5, identity: 500)), "left as it was")
        XCTAssertEqual(restarted.waiting, 2)
        XCTAssertTrue(restarted.fillAll())
        XCTAssertEqual(try validSlot(8).map(bytesOf), bytesOf(row(id: 4, identity: 401, revision: 2)))
        XCTAssertEqual(try validSlot(10).map(bytesOf), bytesOf(row(id: 6, identity: 600)))
    }

    /// The slot decides while valid: the hash's row enforces egress (no policy: a SYN is dropped), the slot's does
    /// not (the SYN passes). Slots differ from their rows only here, to show which one the program read.
    func testFromEndpointReadsTheSlotWhileValidAndTheHashOtherwise() throws {
        try rows.update(Self.ifindex, row(id: 3, identity: 300, enforceEgress: true))
        var slot = row(id: 3, identity: 300)
        slot.flags |= UInt32(NA_EP_SLOT_VALID)
        try slotMap.update(Self.ifindex, slot)
        XCTAssertEqual(try verdictOfSYN(sport: 40000), 0, "TC_ACT_OK: the slot's row, which does not enforce")

        slot.flags &= ~UInt32(NA_EP_SLOT_VALID)
        try slotMap.update(Self.ifindex, slot)
        XCTAssertEqual(try verdictOfSYN(sport: 40001), 2, "TC_ACT_SHOT: the hash's row, which enforces")
    }

    /// from_endpoint's verdict on a TCP SYN from 10.0.1.5 to 10.0.9.9:80.
    private func verdictOfSYN(sport: UInt16) throws -> UInt32 {
        let frame = Packet.tcp("10.0.1.5", "10.0.9.9", sport: sport, dport: 80).bytes
        return try XCTUnwrap(object.program(named: "from_endpoint")).testRun(packet: frame).retval
    }
}
