import DatapathCore
import Foundation
import Glibc
import Policy
import Synchronization
import XCTest

@testable import Agent

/// HTTP rules enforced in the kernel, with real traffic: a Python HTTP/1.1 server in a pod and the test's cgroup
/// (where the sockops program attaches, never the machine's root cgroup), clients in another pod, rules written
/// through `L7Datapath` as the policy side will write them.
final class L7EnforcementTests: XCTestCase {
    var pods: L7Pods!
    var pinRoot = ""
    var enforcement: L7Enforcement?

    /// Long enough that every refused request can carry the full 403 (80 bytes) in its place.
    static let agent = "User-Agent: nodeagent-l7-tests/1.0 (the full answer needs 80 bytes)"

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("namespaces, cgroups and BPF programs need root") }
        pods = try L7Pods()
        pinRoot = "/sys/fs/bpf/nodeagent-test-l7-\(pods.tag)"
        enforcement = try L7Enforcement.start(cgroupRoot: pods.cgroup, pinRoot: pinRoot)
        try pods.startServer()
    }

    override func tearDown() {
        enforcement?.stop()
        enforcement = nil
        if !pinRoot.isEmpty {
            try? L7Enforcement.detach(pinRoot: pinRoot)
            BPFFS.removeAll(root: pinRoot)
        }
        pods?.destroy()
    }

    private func literal(_ text: String) -> ByteDFA { ByteDFA(literal: Array(text.utf8)) }

    /// GET /ok (rule 0), POST /upload (rule 1), and GET of two paths only the ambiguity checks refuse (2, 3).
    private func applyRules(peers: [UInt32: HTTPPortPolicy.Access] = [0: .rules(0b1111)]) throws {
        let rules = [
            HTTPRuleProgram(ruleID: 100, method: literal("GET"), path: literal("/ok")),
            HTTPRuleProgram(ruleID: 101, method: literal("POST"), path: literal("/upload")),
            HTTPRuleProgram(ruleID: 102, method: literal("GET"), path: literal("//ok")),
            HTTPRuleProgram(ruleID: 103, method: literal("GET"), path: literal("/a/%2E%2e/ok")),
        ]
        try enforcement!.datapath.apply(
            endpoint: 9, identity: 4242, addresses: [IPAddress(pods.serverIP)!],
            ports: [HTTPPortPolicy(port: pods.port, rules: rules, peers: peers)])
    }

    private func get(_ path: String) -> String { "send:GET \(path) HTTP/1.1|Host: pod|\(Self.agent)||" }

    private func assertServed(_ answer: [String: Any], _ body: String, line: UInt = #line) {
        XCTAssertEqual(answer["status"] as? Int, 200, "\(answer)", line: line)
        XCTAssertEqual(answer["body"] as? String, body, line: line)
    }

    private func assertRefused(_ answer: [String: Any], line: UInt = #line) {
        XCTAssertEqual(answer["status"] as? Int, 403, "\(answer)", line: line)
        XCTAssertEqual(answer["body"] as? String, "Access denied\r\n", line: line)
        XCTAssertEqual((answer["headers"] as? [String: String])?["connection"], "close", line: line)
    }

    func testAllowedRequestIsServedAndRefusedOneGetsThe403WithoutReachingTheServer() throws {
        try applyRules()
        let allowed = try pods.session([get("/ok"), "read"])
        assertServed(allowed[0], "ok /ok\n")
        let refused = try pods.session([get("/private"), "read"])
        assertRefused(refused[0])
        XCTAssertEqual(pods.serverLog(), ["GET /ok HTTP/1.1"])
    }

    func testIPv6RequestsAreDecidedToo() throws {
        let rules = [HTTPRuleProgram(ruleID: 100, method: literal("GET"), path: literal("/ok"))]
        try enforcement!.datapath.apply(
            endpoint: 9, identity: 4242, addresses: [IPAddress(pods.serverIP)!, IPAddress(pods.serverIPv6)!],
            ports: [HTTPPortPolicy(port: pods.port, rules: rules, peers: [0: .rules(1)])])
        assertServed(try pods.session([get("/ok"), "read"], to: pods.serverIPv6)[0], "ok /ok\n")
        assertRefused(try pods.session([get("/private"), "read"], to: pods.serverIPv6)[0])
        // The same server, reached over IPv4 (an IPv4-mapped address on its socket), meets the same rules.
        assertRefused(try pods.session([get("/private"), "read"])[0])
        XCTAssertEqual(pods.serverLog(), ["GET /ok HTTP/1.1"])
    }

    func testKeepAliveConnectionIsDroppedAfterARefusal() throws {
        try applyRules()
        let answers = try pods.session([get("/ok"), "read", get("/private"), "read", get("/ok"), "read"])
        XCTAssertEqual(answers.count, 3)
        assertServed(answers[0], "ok /ok\n")
        assertRefused(answers[1])
        XCTAssertNil(answers[2]["status"], "a request after the refusal was answered: \(answers[2])")
        XCTAssertEqual(pods.serverLog(), ["GET /ok HTTP/1.1"])
    }

    func testPipelinedRequestsAreDecidedOneByOne() throws {
        try applyRules()
        let three =
            "send:GET /ok HTTP/1.1|Host: a||GET /ok HTTP/1.1|Host: bb||GET /private HTTP/1.1|Host: c|\(Self.agent)||"
        let answers = try pods.session([three, "read", "read", "read"])
        // One segment: the two allowed requests pass and are answered in order; the refused one behind them gets no
        // answer (a 403 would reach the client before the answers to the two in front) and nothing after it passes.
        XCTAssertEqual(answers.count, 3)
        assertServed(answers[0], "ok /ok\n")
        assertServed(answers[1], "ok /ok\n")
        XCTAssertNil(answers[2]["status"], "the refused pipelined request was answered: \(answers[2])")
        XCTAssertEqual(pods.serverLog(), ["GET /ok HTTP/1.1", "GET /ok HTTP/1.1"])
    }

    func testARefusedRequestInALaterSegmentWaitsForNoAnswerAheadOfIt() throws {
        let rules = [HTTPRuleProgram(ruleID: 100, method: literal("GET"), path: literal("/slow"))]
        try enforcement!.datapath.apply(
            endpoint: 9, identity: 4242, addresses: [IPAddress(pods.serverIP)!],
            ports: [HTTPPortPolicy(port: pods.port, rules: rules, peers: [0: .rules(0b1)])])
        // The server takes half a second to answer /slow; the refused request comes in its own segment before that.
        // A 403 sent now would be read as the answer to /slow: the refused request gets none, /slow gets its own.
        let answers = try pods.session([
            "send:GET /slow HTTP/1.1|Host: a||", "sleep:0.1", "send:GET /private HTTP/1.1|Host: b|\(Self.agent)||",
            "read", "read",
        ])
        XCTAssertEqual(answers.count, 2)
        assertServed(answers[0], "ok /slow\n")
        XCTAssertNil(answers[1]["status"], "the refused request was answered: \(answers[1])")
        XCTAssertEqual(pods.serverLog(), ["GET /slow HTTP/1.1"])

        // Once the server has answered, a refused request on the same kind of connection gets its 403.
        let sequential = try pods.session([
            "send:GET /slow HTTP/1.1|Host: a||", "read", "send:GET /private HTTP/1.1|Host: b|\(Self.agent)||", "read",
        ])
        assertServed(sequential[0], "ok /slow\n")
        assertRefused(sequential[1])
    }

    func testRequestsArrivingOneBytePerSegmentAreFramedAndDecided() throws {
        try applyRules()
        let allowed = try pods.session(["slow:GET /ok HTTP/1.1|Host: pod||", "read", "slow:GET /ok HTTP/1.1||", "read"])
        assertServed(allowed[0], "ok /ok\n")
        assertServed(allowed[1], "ok /ok\n")
        let refused = try pods.session(["slow:GET /private HTTP/1.1|Host: pod|\(Self.agent)||", "read"])
        assertRefused(refused[0])
        XCTAssertEqual(pods.serverLog(), ["GET /ok HTTP/1.1", "GET /ok HTTP/1.1"])
    }

    /// A head that has not ended is held in the kernel until it does; a connection that closes first leaves
    /// nothing held behind.
    func testAConnectionClosingWithAHeadUnfinishedLeavesNothingHeld() throws {
        try applyRules()
        let held = try XCTUnwrap(try BPFMap.openPinned("\(pinRoot)/na_l7_hold"))
        let pods = self.pods!
        let answer = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let got = try? pods.session(["send:GET /ok HTTP/1.1|Host: p", "slow:od|", "read"])
            let text = got.map { "\($0)" } ?? "no session"
            answer.withLock { $0 = text }
            done.signal()
        }
        // While the client waits for an answer, the head's bytes are held in the kernel.
        var seen = 0
        let start = Date()
        while seen == 0, Date().timeIntervalSince(start) < 3 {
            seen = try held.count()
            usleep(20_000)
        }
        XCTAssertGreaterThan(seen, 0, "nothing of the unfinished head was held")
        done.wait()
        let got = answer.withLock { $0 } ?? ""
        XCTAssertTrue(got.contains("timeout") && !got.contains("status"), "an unfinished head was answered: \(got)")
        // The client has closed: its socket's held pieces go with it.
        let deadline = Date().addingTimeInterval(2)
        while try held.count() > 0, Date() < deadline { usleep(20_000) }
        XCTAssertEqual(try held.count(), 0, "pieces of a closed connection's head are still held")
        XCTAssertEqual(pods.serverLog(), [])
    }

    /// A connection's framing state goes when it closes (left to the LRU, closed connections' states filled the
    /// map and evicted live ones); one whose state went while it was open (more connections at once than the map
    /// holds) gets a new one at its next request, decided as a new connection's, never dropped in silence.
    func testConnectionStateLeavesWithTheConnectionAndComesBackWhenLost() throws {
        try applyRules()
        let conns = try XCTUnwrap(try BPFMap.openPinned("\(pinRoot)/na_l7_conns"))
        assertServed(try pods.session([get("/ok"), "read"])[0], "ok /ok\n")
        var deadline = Date().addingTimeInterval(2)
        while try conns.count() > 0, Date() < deadline { usleep(20_000) }
        XCTAssertEqual(try conns.count(), 0, "a closed connection's state is still in na_l7_conns")
        // The next kept connection's state, dropped while the client waits between its requests.
        let dropped = Mutex<Int>(-1)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var keys: [[UInt8]] = []
            let start = Date()
            while keys.isEmpty, Date().timeIntervalSince(start) < 1.2 {
                keys = (try? conns.keys()) ?? []
                usleep(20_000)
            }
            for key in keys { _ = try? conns.delete(key: key) }
            dropped.withLock { $0 = keys.count }
            done.signal()
        }
        let got = try pods.session([get("/ok"), "read", "sleep:1.5", get("/ok"), "read", get("/x"), "read"])
        done.wait()
        XCTAssertEqual(dropped.withLock { $0 }, 1, "the open connection had no state, or others had")
        XCTAssertEqual(got.count, 3, "\(got)")
        guard got.count == 3 else { return }
        assertServed(got[0], "ok /ok\n")
        assertServed(got[1], "ok /ok\n")
        assertRefused(got[2])
        // Closed (the client, and the agent's side after the refusal): no state left.
        deadline = Date().addingTimeInterval(2)
        while try conns.count() > 0, Date() < deadline { usleep(20_000) }
        XCTAssertEqual(try conns.count(), 0, "a closed connection's state is still in na_l7_conns")
        XCTAssertEqual(pods.serverLog(), Array(repeating: "GET /ok HTTP/1.1", count: 3))
    }

    func testHeadOverTheLimitIsRefused() throws {
        try applyRules()
        let answers = try pods.session(["big:32768", "read"])
        assertRefused(answers[0])
        XCTAssertEqual(pods.serverLog(), [])
    }

    /// Heads one read of a new head takes whole (up to 4,096 bytes) and longer ones, which the framing takes over
    /// (the pods' MTU splits them over segments too), are decided alike; a refusal after them still gets its 403.
    func testLongAllowedHeadsAreServedOnAKeptConnection() throws {
        try applyRules()
        // A big:N head is 38 + N bytes: 4,096, 4,097 and 12,038.
        let answers = try pods.session(["big:4058", "read", "big:4059", "read", "big:12000", "read", get("/x"), "read"])
        for answer in answers.prefix(3) { assertServed(answer, "ok /ok\n") }
        assertRefused(answers[3])
        XCTAssertEqual(pods.serverLog(), Array(repeating: "GET /ok HTTP/1.1", count: 3))
    }

    func testContentLengthBodyReachesTheServerAndTheNextRequestIsDecided() throws {
        try applyRules()
        let post = "send:POST /upload HTTP/1.1|Host: pod|Content-Length: 11||hello world"
        let answers = try pods.session([post, "read", get("/ok"), "read", get("/private"), "read"])
        assertServed(answers[0], "got hello world")
        assertServed(answers[1], "ok /ok\n")
        assertRefused(answers[2])
        XCTAssertEqual(pods.serverLog(), ["POST /upload HTTP/1.1 body=hello world", "GET /ok HTTP/1.1"])
    }

    func testChunkedBodyReachesTheServerAndTheNextRequestIsDecided() throws {
        try applyRules()
        let post =
            "send:POST /upload HTTP/1.1|Host: pod|Transfer-Encoding: chunked||5|hello|6;x=y| world|0|Trailer: t||"
        let answers = try pods.session([post, "read", get("/ok"), "read", get("/private"), "read"])
        assertServed(answers[0], "got hello world")
        assertServed(answers[1], "ok /ok\n")
        assertRefused(answers[2])
        let slow = try pods.session(["slow:POST /upload HTTP/1.1|Transfer-Encoding: chunked||3|abc|0||", "read"])
        assertServed(slow[0], "got abc")
        XCTAssertEqual(
            pods.serverLog(),
            ["POST /upload HTTP/1.1 body=hello world", "GET /ok HTTP/1.1", "POST /upload HTTP/1.1 body=abc"])
    }

    func testTransferEncodingsOtherThanChunkedAndChunkedWithLengthAreRefused() throws {
        try applyRules()
        let both = "send:POST /upload HTTP/1.1|Transfer-Encoding: chunked|Content-Length: 5|\(Self.agent)||5|hello|0||"
        assertRefused(try pods.session([both, "read"])[0])
        let gzip = "send:POST /upload HTTP/1.1|Transfer-Encoding: gzip, chunked|\(Self.agent)||5|hello|0||"
        assertRefused(try pods.session([gzip, "read"])[0])
        // A chunk that is not one, after an allowed head: the rest of the connection is refused.
        let broken = "send:POST /upload HTTP/1.1|Transfer-Encoding: chunked||zz|hello|0||"
        XCTAssertNil(try pods.session([broken, "read"])[0]["body"])
        XCTAssertEqual(pods.serverLog(), [])
    }

    func testHTTP2PriorKnowledgeTLSAndAmbiguousPathsAreRefused() throws {
        try applyRules()
        // Rules 2 and 3 match these paths byte for byte: only the ambiguity checks stand in the way.
        assertRefused(try pods.session([get("//ok"), "read"])[0])
        assertRefused(try pods.session([get("/a/%2E%2e/ok"), "read"])[0])
        // The HTTP/2 preface (24 bytes) gets the shortest answer, a status line: an HTTP/2 client reads it as a
        // protocol error, and the server never sees the preface.
        let preface = try pods.session(["send:PRI * HTTP/2.0||SM||", "read"])
        XCTAssertEqual(preface[0]["status"] as? Int, 403, "\(preface)")
        let hello = try pods.session([
            "send:\u{16}\u{03}\u{01}\u{02}\u{05}hello and more bytes of a ClientHello", "read",
        ])
        XCTAssertNotEqual(hello[0]["status"] as? Int, 200, "\(hello)")
        XCTAssertEqual(pods.serverLog(), [])
    }

    /// A refused request shorter than the full answer gets the longest 403 that fits in its bytes: down to a status
    /// line for the shortest well-formed head (18 bytes).
    func testShortRefusedRequestsStillGetA403() throws {
        try applyRules()
        let shortest = try pods.session(["send:GET / HTTP/1.1||", "read"])
        XCTAssertEqual(shortest[0]["status"] as? Int, 403, "18 bytes: \(shortest)")
        let terse = try pods.session(["send:GET /private HTTP/1.1|Host: pod||", "read"])
        XCTAssertEqual(terse[0]["status"] as? Int, 403, "36 bytes: \(terse)")
        XCTAssertEqual((terse[0]["headers"] as? [String: String])?["content-length"], "0", "\(terse)")
        let empty = try pods.session(["send:GET /private HTTP/1.1|Host: pod|Accept: */*||", "read"])
        XCTAssertEqual(empty[0]["status"] as? Int, 403, "49 bytes: \(empty)")
        XCTAssertEqual(empty[0]["body"] as? String, "", "\(empty)")
        let withBody = try pods.session(["send:GET /private HTTP/1.1|Host: pod|User-Agent: curl/7.88.1||", "read"])
        XCTAssertEqual(withBody[0]["status"] as? Int, 403, "61 bytes: \(withBody)")
        XCTAssertEqual(withBody[0]["body"] as? String, "Access denied\r\n", "\(withBody)")
        // Under every answer, the request reached nobody; an allowed short request is served as before.
        assertServed(try pods.session(["send:GET /ok HTTP/1.1||", "read"])[0], "ok /ok\n")
        XCTAssertEqual(pods.serverLog(), ["GET /ok HTTP/1.1"])
    }

    /// What is attached to the pinned sockhash is found and detached whoever attached it (how a start removes a
    /// stream parser an earlier agent left there), and a start attaches the verdict again.
    func testProgramsOnThePinnedSockhashAreFoundAndDetachedWhoeverAttachedThem() throws {
        let socks = try XCTUnwrap(try BPFMap.openPinned("\(pinRoot)/na_l7_socks"))
        XCTAssertEqual(try BPFProgram.detachAll(from: socks, as: .streamParser), 0, "a stream parser is attached")
        XCTAssertEqual(try BPFProgram.detachAll(from: socks, as: .streamVerdict), 1)
        XCTAssertEqual(try BPFProgram.detachAll(from: socks, as: .streamVerdict), 0)
        enforcement?.stop()
        enforcement = try L7Enforcement.start(cgroupRoot: pods.cgroup, pinRoot: pinRoot)
        try applyRules()
        assertServed(try pods.session(["slow:GET /ok HTTP/1.1|Host: pod||", "read"])[0], "ok /ok\n")
        assertRefused(try pods.session([get("/private"), "read"])[0])
    }

    func testUnrestrictedPeerPassesEveryRequestAndAPeerWithoutEntryNone() throws {
        // Nobody wrote the client's address into the ipcache: it is WORLD.
        try applyRules(peers: [UInt32(NA_ID_WORLD.rawValue): .unrestricted])
        assertServed(try pods.session([get("/anything"), "read"])[0], "ok /anything\n")
        try applyRules(peers: [4711: .unrestricted])
        assertRefused(try pods.session([get("/ok"), "read"])[0])
        XCTAssertEqual(pods.serverLog(), ["GET /anything HTTP/1.1"])
    }

    func testEveryDecisionIsAFlowWithItsHTTPRequest() throws {
        let records = Mutex<[FlowRecord]>([])
        let events = try XCTUnwrap(try BPFMap.openPinned("\(pinRoot)/na_events"))
        let reader = RingBufferReader(map: events, pollTimeout: .milliseconds(20)) { batch in
            records.withLock { $0 += batch.compactMap { FlowRecord(Array($0)) } }
        }
        try reader.start()
        defer { reader.stop() }
        try applyRules()
        _ = try pods.session([get("/ok"), "read"])
        _ = try pods.session([get("//ok"), "read"])
        _ = try pods.session([get("/private"), "read"])
        let deadline = Date().addingTimeInterval(3)
        while records.withLock({ $0.count }) < 3, Date() < deadline { usleep(20_000) }
        let http = records.withLock { $0 }.filter { $0.l7 != nil }
        XCTAssertEqual(http.map { $0.l7?.url }, ["/ok", "//ok", "/private"])
        XCTAssertEqual(http.map(\.event.reason), [0, 234, 230])
        XCTAssertEqual(http.map { $0.l7?.ruleIndex }, [0, nil, nil])
        let allowed = try XCTUnwrap(http.first)
        XCTAssertEqual(allowed.l7, Flow.L7(method: "GET", url: "/ok", host: "pod", ruleIndex: 0))
        XCTAssertEqual(allowed.event.rule_id, 100)
        XCTAssertEqual(allowed.event.ep_id, 9)
        XCTAssertEqual(allowed.event.dst_identity, 4242)
        XCTAssertEqual(UInt16(bigEndian: allowed.event.dport), pods.port)
        XCTAssertEqual(IPAddress(family: .ipv4, bytes: tupleBytes(allowed.event.saddr)), IPAddress(pods.clientIP))
        XCTAssertEqual(allowed.event.verdict, UInt8(NA_VERDICT_FORWARDED.rawValue))
    }

    func testRulesThatDoNotFitTheDFAMapAreRefusedAndTheOldOnesStay() throws {
        try applyRules()
        let huge = HTTPRuleProgram(ruleID: 1, path: ByteDFA(literal: [UInt8](repeating: 0x61, count: 20_000)))
        XCTAssertThrowsError(
            try enforcement!.datapath.apply(
                endpoint: 9, identity: 4242, addresses: [IPAddress(pods.serverIP)!],
                ports: [HTTPPortPolicy(port: pods.port, rules: [huge], peers: [0: .rules(1)])])
        ) { error in
            XCTAssertEqual((error as? AgentError)?.status, 507, "\(error)")
        }
        assertServed(try pods.session([get("/ok"), "read"])[0], "ok /ok\n")
        assertRefused(try pods.session([get("/private"), "read"])[0])
    }

    func testEnforcementGoesOnWithoutTheAgentAndEndsWithDetach() throws {
        try applyRules()
        enforcement?.stop()
        enforcement = nil
        // Only the pins hold it now.
        assertRefused(try pods.session([get("/private"), "read"])[0])
        try L7Enforcement.detach(pinRoot: pinRoot)
        assertServed(try pods.session([get("/private"), "read"])[0], "ok /private\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(pinRoot)/na_l7_socks"))
    }

    func testRemovedRulesLeaveNewConnectionsUnchecked() throws {
        try applyRules()
        assertRefused(try pods.session([get("/private"), "read"])[0])
        try enforcement!.datapath.remove(endpoint: 9)
        assertServed(try pods.session([get("/private"), "read"])[0], "ok /private\n")
    }
}
