import AgentAPI
import Dispatch
import EtcdClient
import Synchronization
import XCTest

final class EtcdTxnTests: EtcdTestCase {
    /// Two threads race to create each key only if it does not exist: exactly one wins every race, and the key
    /// holds the winner's value.
    func testCreateRaceHasExactlyOneWinner() throws {
        let client = self.client!
        let prefix = self.prefix
        let outcomes = Mutex<[Int: [(racer: Int, result: Result<EtcdTxnResult, AgentError>)]]>([:])
        for round in 0..<10 {
            let key = "\(prefix)identity-\(round)"
            DispatchQueue.concurrentPerform(iterations: 2) { racer in
                let result = Result { () throws(AgentError) in
                    try client.txn(
                        compare: [EtcdCompare(key: key, .createRevision(0))],
                        success: [.put(key, "racer-\(racer)")],
                        failure: [.get(key)])
                }
                outcomes.withLock { $0[round, default: []].append((racer, result)) }
            }
        }
        let all = outcomes.withLock { $0 }
        for round in 0..<10 {
            let results = try XCTUnwrap(all[round]).map { ($0.racer, try $0.result.get()) }
            let winners = results.filter { $0.1.succeeded }
            XCTAssertEqual(winners.count, 1, "round \(round): \(results)")
            guard let winner = winners.first, let loser = results.first(where: { !$0.1.succeeded }) else { continue }
            guard case .put(let revision) = winner.1.responses.first else {
                return XCTFail("the winner's answer is not a put: \(winner.1.responses)")
            }
            // The loser's failure branch read the winner's key.
            guard case .range(let read) = loser.1.responses.first else {
                return XCTFail("the loser's answer is not a range: \(loser.1.responses)")
            }
            XCTAssertEqual(read.kvs.first?.valueString, "racer-\(winner.0)")
            XCTAssertEqual(read.kvs.first?.createRevision, revision)
            XCTAssertEqual(try client.get("\(prefix)identity-\(round)")?.valueString, "racer-\(winner.0)")
        }
    }

    /// Compares on mod revision, version and value, with an optional range end; success and failure branches
    /// with put, delete and range.
    func testComparesAndBranches() throws {
        let key = prefix + "k"
        let written = try client.put(key, "v1")

        let stale = try client.txn(
            compare: [EtcdCompare(key: key, .modRevision(written - 1))], success: [.put(key, "lost")],
            failure: [.get(key)])
        XCTAssertFalse(stale.succeeded)
        XCTAssertEqual(try client.get(key)?.valueString, "v1")

        let swapped = try client.txn(
            compare: [
                EtcdCompare(key: key, .modRevision(written)), EtcdCompare(key: key, .value(Array("v1".utf8))),
                EtcdCompare(key: key, .version(0), .greater),
            ],
            success: [.put(key, "v2"), .range(prefix: prefix)])
        XCTAssertTrue(swapped.succeeded)
        XCTAssertEqual(swapped.responses.count, 2)
        guard case .range(let listed) = swapped.responses.last else { return XCTFail("\(swapped.responses)") }
        XCTAssertEqual(listed.kvs.map(\.valueString), ["v2"])

        try client.put(prefix + "other", "x")
        let none = try client.txn(
            compare: [EtcdCompare(prefix: prefix, .createRevision(0), .greater)],
            success: [.delete(prefix: prefix)])
        XCTAssertTrue(none.succeeded)
        XCTAssertEqual(none.responses, [.delete(deleted: 2)])
        XCTAssertEqual(try client.range(prefix: prefix).kvs, [])
    }
}
