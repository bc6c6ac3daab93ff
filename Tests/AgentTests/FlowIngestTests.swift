import DatapathCore
import Policy
import Synchronization
import XCTest

@testable import Agent

/// The flow reader's work on a batch of ring records, without a kernel: what is stored, what is set aside, and what
/// the refused-request hook gets.
final class FlowIngestTests: XCTestCase {
    private let store = FlowStore(capacity: 100)
    private let refusedBatches = Batches()

    private final class Batches: Sendable {
        let flows = Mutex<[[Flow]]>([])
    }

    private func ingest(
        context: FlowContext? = FlowContext(endpoints: [:], identities: IdentityAllocator(), policy: PolicyRepository())
    ) -> FlowIngest {
        let batches = refusedBatches
        return FlowIngest(
            store: store, context: { context }, refused: { flows in batches.flows.withLock { $0.append(flows) } })
    }

    private func header(time: UInt64, reason: na_reason = NA_REASON_FORWARDED) -> na_flow_event {
        var event = na_flow_event()
        event.timestamp_ns = time
        setTupleBytes(&event.saddr, [10, 0, 0, 1])
        setTupleBytes(&event.daddr, [10, 0, 0, 2])
        event.sport = UInt16(40_000).bigEndian
        event.dport = UInt16(80).bigEndian
        event.proto = 6
        event.family = UInt8(NA_FAMILY_IPV4)
        event.direction = UInt8(NA_DIR_INGRESS.rawValue)
        event.verdict = UInt8(
            reason == NA_REASON_FORWARDED ? NA_VERDICT_FORWARDED.rawValue : NA_VERDICT_DROPPED.rawValue)
        event.reason = UInt16(reason.rawValue)
        event.kind = UInt16(NA_EVENT_L34.rawValue)
        event.ep_id = 7
        return event
    }

    private func http(
        time: UInt64, method: String = "GET", path: [UInt8], host: String = "pod",
        reason: na_reason = NA_REASON_FORWARDED, endpoint: UInt32 = 7
    ) -> [UInt8] {
        var http = na_l7_event()
        http.flow = header(time: time, reason: reason)
        http.flow.kind = UInt16(NA_EVENT_L7_HTTP.rawValue)
        http.flow.ep_id = endpoint
        http.method_len = UInt16(method.utf8.count)
        setTupleBytes(&http.method, Array(method.utf8))
        http.path_len = UInt16(path.count)
        setTupleBytes(&http.path, path)
        http.host_len = UInt16(host.utf8.count)
        setTupleBytes(&http.host, Array(host.utf8))
        http.rule_index = reason == NA_REASON_FORWARDED ? 0 : 255
        return bytesOf(http)
    }

    private var stored: [Flow] { store.recent(matching: FlowFilter(), last: 100) }

    /// Records as one read of the ring hands them over.
    private func batch(_ records: [[UInt8]]) -> RingBufferRecords {
        var batch = RingBufferRecords()
        for record in records { record.withUnsafeBytes { batch.append($0) } }
        return batch
    }

    func testABatchIsStoredInOrderWithoutMalformedOrSelfTestRecords() {
        let ingest = ingest()
        let refusedRecord = http(time: 5, path: Array("/private".utf8), reason: NA_DROP_L7_POLICY)
        ingest.ingest(
            batch([
                bytesOf(header(time: 1)),
                Array(bytesOf(header(time: 2)).prefix(10)),
                http(time: 3, path: Array("/self".utf8), endpoint: L7SelfTest.endpointID),
                http(time: 4, path: Array("/ok".utf8)),
                refusedRecord,
                Array(refusedRecord.prefix(MemoryLayout<na_flow_event>.size)),
            ]))
        let times = stored.map(\.time)  // the event's time plus the wall-clock offset
        XCTAssertEqual(times.map { $0 - times[0] }, [0, 3, 4])
        XCTAssertEqual(stored.map { $0.l7?.url }, [nil, "/ok", "/private"])
        XCTAssertEqual(ingest.malformedRecords, 2, "too short for a header; an HTTP record cut to its header")
        XCTAssertEqual(ingest.selfTestEvents, 1)
        let refused = refusedBatches.flows.withLock { $0 }
        XCTAssertEqual(refused.count, 1)
        XCTAssertEqual(refused.first, [stored[2]], "only the refused HTTP request")
    }

    func testBatchesWithoutRefusalsDoNotCallTheHook() {
        let ingest = ingest()
        var dropped = header(time: 2, reason: NA_DROP_POLICY)
        dropped.kind = UInt16(NA_EVENT_L34.rawValue)
        ingest.ingest(batch([http(time: 1, path: Array("/ok".utf8)), bytesOf(dropped)]))
        XCTAssertEqual(stored.map(\.verdict), [.forwarded, .dropped])
        XCTAssertEqual(refusedBatches.flows.withLock { $0.count }, 0, "a dropped connection is not a refused request")
    }

    func testNothingIsStoredWithoutAContextButRecordsAreStillCounted() {
        let ingest = ingest(context: nil)
        ingest.ingest(batch([bytesOf(header(time: 1)), [1, 2, 3]]))
        XCTAssertEqual(store.stats.appended, 0)
        XCTAssertEqual(ingest.malformedRecords, 1)
    }

    func testRepeatedAndChangedHTTPTextsAreEachRecordsOwn() {
        let ingest = ingest()
        let invalid: [UInt8] = [0x2F, 0xFF]
        ingest.ingest(
            batch([
                http(time: 1, path: Array("/a1".utf8)),
                http(time: 2, path: Array("/a1".utf8)),
                http(time: 3, method: "POST", path: Array("/a2".utf8), host: ""),
                http(time: 4, path: Array("/a1".utf8), host: "pod:8080"),
                http(time: 5, path: invalid),
                http(time: 6, path: invalid),
            ]))
        ingest.ingest(batch([http(time: 7, path: Array("/a1".utf8))]))
        XCTAssertEqual(stored.map { $0.l7?.method }, ["GET", "GET", "POST", "GET", "GET", "GET", "GET"])
        XCTAssertEqual(stored.map { $0.l7?.url }, ["/a1", "/a1", "/a2", "/a1", "/\u{FFFD}", "/\u{FFFD}", "/a1"])
        XCTAssertEqual(stored.map { $0.l7?.host }, ["pod", "pod", "", "pod:8080", "pod", "pod", "pod"])
    }
}
