import AgentAPI
import EtcdClient
import EtcdTestSupport
import Foundation
import XCTest

/// A member that takes requests and never answers (hung, or cut off behind a partition) first in the list.
final class EtcdSilentMemberTests: EtcdTestCase {
    /// A read goes on to the next member after its share of the timeout, and the requests after it start there.
    func testAReadGoesOnAndLaterRequestsAvoidTheSilentMember() throws {
        let listener = try SilentListener()
        defer { listener.close() }
        try client.put(prefix + "k", "v")
        let client = EtcdClient(
            endpoints: ["http://127.0.0.1:\(listener.port)", server.clientURL], requestTimeout: .seconds(2))
        var began = ContinuousClock.now
        XCTAssertEqual(try client.get(prefix + "k")?.valueString, "v")
        var took = ContinuousClock.now - began
        XCTAssertGreaterThanOrEqual(took, .milliseconds(900), "the silent member had its share first")
        XCTAssertLessThan(took, .milliseconds(1500))
        began = ContinuousClock.now
        try client.put(prefix + "k", "w")
        XCTAssertEqual(try client.get(prefix + "k")?.valueString, "w")
        took = ContinuousClock.now - began
        XCTAssertLessThan(took, .milliseconds(500), "straight to the member that answers")
    }

    /// A write that a member took and did not answer may have been applied: it is not sent again, but the next
    /// request starts with the following member.
    func testAWriteIsNotSentTwiceButTheNextRequestGoesElsewhere() throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let client = EtcdClient(
            endpoints: ["http://127.0.0.1:\(listener.port)", server.clientURL], requestTimeout: .seconds(1))
        XCTAssertThrowsError(try client.put(prefix + "k", "v")) { error in
            XCTAssertEqual((error as? AgentError)?.status, 503)
        }
        XCTAssertNil(try self.client.get(prefix + "k"), "nothing reached the member that answers")
        let began = ContinuousClock.now
        try client.put(prefix + "k", "v")
        XCTAssertLessThan(ContinuousClock.now - began, .milliseconds(500))
        let operations = client.operations
        XCTAssertEqual(operations[EtcdOperation(kind: "put", outcome: "unavailable")], 1, "\(operations)")
        XCTAssertEqual(operations[EtcdOperation(kind: "put", outcome: "success")], 1, "\(operations)")
    }
}
