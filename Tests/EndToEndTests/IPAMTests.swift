import AgentAPI
import Foundation
import Glibc
import NodeCtlKit
import XCTest

/// The ipam plugin in the real daemon: allocation through the API and nodectl, endpoints claiming addresses,
/// garbage collection of addresses whose endpoint is gone, and a ledger that survives SIGKILL at any moment.
final class IPAMTests: EndToEndTestCase {
    /// Node 5 of 10.200.0.0/16 in /24s: the pod CIDR is 10.200.5.0/24, gateway 10.200.5.1.
    private static let pool: JSON = ["cluster-pool-ipv4-cidr": ["10.200.0.0/16"], "node-index": 5]

    /// Writes a config enabling IPAM with `options` next to the topology's other files (removed with it).
    private func configFile(_ topology: Topology, ipam options: JSON) throws -> String {
        let path = "\(Topology.temporaryDirectory)/na\(topology.tag)-ipam-config.json"
        try JSON.object(["plugins": ["ipam": options]]).serialized(pretty: true)
            .write(toFile: path, atomically: true, encoding: .utf8)
        topology.onDestroy { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testEndpointsClaimAddressesAndGarbageCollectionFindsTheOrphans() throws {
        let topology = try makeTopology()
        let agent = try startPatiently(in: topology, configFile: try configFile(topology, ipam: Self.pool))

        let health = try agent.api(.GET, "/v1/healthz")
        let plugin = health.json?["plugins"]?.arrayValue?.first { $0["name"] == "ipam" }
        XCTAssertEqual(plugin?["state"], "running", "\(health)")
        XCTAssertEqual(plugin?["detail"]?["ipv4"]?["pod-cidr"], "10.200.5.0/24")

        // Allocate as the CNI plugin does: with expiration, so a pod that never appears does not hold it forever.
        let allocated = try curl(
            agent, "POST", "/v1/ipam?family=ipv4&owner=e2e/web-0", headers: ["expiration: true"])
        XCTAssertEqual(allocated.status, 201, "\(allocated)")
        let address = try XCTUnwrap(allocated.json?["address"]?["ipv4"]?.stringValue)
        XCTAssertEqual(address, "10.200.5.2")
        XCTAssertEqual(allocated.json?["ipv4"]?["gateway"], "10.200.5.1")
        XCTAssertEqual(allocated.json?["ipv4"]?["cidrs"], ["10.200.0.0/16"])
        XCTAssertNotNil(allocated.json?["address"]?["ipv4-expiration-uuid"]?.stringValue)
        XCTAssertNotNil(try agent.api(.GET, "/v1/ipam/\(address)").json?["expires"]?.stringValue)

        let pod = try topology.addPod(namespace: "e2e", name: "web-0", ipv4: address)
        try agent.registerEndpoint(id: 11, pod: pod, labels: ["k8s:app=web"])
        let claimed = try agent.api(.GET, "/v1/ipam/\(address)")
        XCTAssertEqual(claimed.json?["endpoint"], 11, "\(claimed)")
        XCTAssertEqual(claimed.json?["owner"], "e2e/web-0")
        XCTAssertNil(claimed.json?["expires"], "the endpoint's creation cancels the expiration")

        // A crash forgets nothing: the ledger and the datapath's endpoint table tell the restarted agent.
        agent.kill(signal: SIGKILL)
        XCTAssertEqual(agent.waitForExit(timeout: 5), .signaled(SIGKILL))
        try agent.start(timeout: Self.startTimeout)
        XCTAssertEqual(try agent.api(.GET, "/v1/ipam/\(address)").json?["endpoint"], 11)
        let next = try agent.api(.POST, "/v1/ipam?owner=e2e/web-1")
        XCTAssertEqual(next.json?["address"]?["ipv4"], "10.200.5.3", "the address in use is not handed out again")

        let dryRunBefore = try agent.api(.POST, "/v1/ipam/gc?dry-run=true")
        XCTAssertEqual(dryRunBefore.status, 200, "\(dryRunBefore)")
        XCTAssertEqual(dryRunBefore.json?["orphans"], [], "the endpoint exists: nothing is orphaned")
        XCTAssertEqual(try agent.api(.DELETE, "/v1/ipam/\(address)").status, 409, "in use by endpoint 11")

        XCTAssertEqual(try agent.api(.DELETE, "/v1/endpoint/11").status, 200)
        XCTAssertEqual(
            try agent.api(.GET, "/v1/ipam/\(address)").status, 200, "deleting the endpoint does not free the address")
        let dryRun = try agent.nodectl("ipam", "gc", "--dry-run", "-o", "json")
        XCTAssertEqual(dryRun.status, 0, dryRun.stderr)
        let orphans = try JSON.parse(dryRun.stdout)["orphans"]?.arrayValue ?? []
        XCTAssertEqual(orphans.map { $0["ip"] }, [.string(address)])
        XCTAssertEqual(orphans.first?["owner"], "e2e/web-0")
        XCTAssertEqual(orphans.first?["endpoint"], 11)

        let collected = try agent.nodectl("ipam", "gc")
        XCTAssertEqual(collected.status, 0, collected.stderr)
        XCTAssertTrue(collected.stdout.hasPrefix("Released 1 orphaned allocations\n"), collected.stdout)
        XCTAssertTrue(collected.stdout.contains(address), collected.stdout)
        XCTAssertEqual(try agent.api(.GET, "/v1/ipam/\(address)").status, 404)

        let list = try agent.nodectl("ipam", "list")
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertTrue(
            list.stdout.hasPrefix("IPv4: pod CIDR 10.200.5.0/24, gateway 10.200.5.1, 1 allocated, 252 free\n"),
            list.stdout)
        XCTAssertTrue(list.stdout.contains("10.200.5.3"), list.stdout)
        XCTAssertFalse(list.stdout.contains(address + " "), list.stdout)

        let release = try agent.nodectl("ipam", "release", "10.200.5.3")
        XCTAssertEqual(release.stdout, "Released 10.200.5.3 (owner e2e/web-1)\n")
        let again = try agent.nodectl("ipam", "release", "10.200.5.3")
        XCTAssertEqual(again.status, 0)
        XCTAssertEqual(again.stdout, "10.200.5.3 was not allocated\n")
        let exact = try agent.nodectl("ipam", "allocate", "--ip", "10.200.5.1", "--owner", "e2e/x")
        XCTAssertEqual(exact.status, 1)
        XCTAssertTrue(exact.stderr.contains("10.200.5.1 is reserved: it is the gateway"), exact.stderr)
    }

    func testWithoutAPoolTheRoutesSayWhatToConfigure() throws {
        let topology = try makeTopology()
        let agent = try startPatiently(in: topology)
        let answer = try agent.api(.POST, "/v1/ipam?owner=a/b")
        XCTAssertEqual(answer.status, 503, "\(answer)")
        XCTAssertEqual(answer.json?["error"]?["code"], "unavailable")
        XCTAssertTrue(
            answer.json?["error"]?["message"]?.stringValue?.hasPrefix(
                "IPAM is not configured: set plugins.ipam.cluster-pool-ipv4-cidr") ?? false, "\(answer)")
        let health = try agent.api(.GET, "/v1/healthz")
        let plugin = health.json?["plugins"]?.arrayValue?.first { $0["name"] == "ipam" }
        XCTAssertEqual(plugin?["detail"]?["state"], "idle", "\(health)")
    }

    /// 1,000 allocate/release operations while the agent is SIGKILLed every 50 to 150 operations, at a random
    /// moment inside a request, and restarted. After each restart the ledger must list exactly the addresses
    /// the client holds: those it was told were allocated and not released. The one request in flight when the
    /// agent died is the only unknown, and it must have happened entirely or not at all: an allocation in flight
    /// shows up under its own unique owner (which the client then holds, as a retrying client would learn), or
    /// not at all; a release in flight leaves the address allocated or released.
    func testNoAddressIsDuplicatedOrLeakedWhenTheAgentIsKilledAtRandom() throws {
        continueAfterFailure = false
        let topology = try makeTopology()
        let agent = try startPatiently(
            in: topology, configFile: try configFile(topology, ipam: Self.pool.merging(["expiration-timeout": 3600])))
        let client = AgentClient(
            socketPath: agent.socketPath, connectTimeout: .seconds(2), responseTimeout: .seconds(10))
        let seed = UInt64.random(in: 0...UInt64.max)
        var random = SplitMix64(seed: seed)
        let context = "seed \(seed)"
        let started = Date()

        var held: [String: String] = [:]  // address → owner, as acknowledged
        var nextKill = Int.random(in: 50...150, using: &random)
        var kills = 0
        var inFlightApplied = 0
        var pendingKill: Thread?
        for operation in 0..<1000 {
            if operation == nextKill {
                let delay = useconds_t.random(in: 0...3000, using: &random)
                let pid = try XCTUnwrap(agent.pid)
                pendingKill = Thread {
                    usleep(delay)
                    Glibc.kill(pid, SIGKILL)
                }
                pendingKill?.start()
            }
            let allocate = held.count < 20 || (held.count < 200 && Double.random(in: 0..<1, using: &random) < 0.55)
            let step: Step =
                allocate
                ? .allocate(owner: "crash/op-\(operation)")
                : .release(held.keys.sorted()[Int.random(in: 0..<held.count, using: &random)])
            do {
                try perform(step, client: client, held: &held, context: "\(context), operation \(operation)")
            } catch let error as ClientError {
                if case .server = error { throw error }
                // The agent died under this request.
                XCTAssertNotNil(agent.waitForExit(timeout: 5), "agent still running after \(error)")
                try agent.start(timeout: Self.startTimeout)
                kills += 1
                pendingKill = nil
                let before = held
                try reconcile(agent: client, inFlight: step, held: &held, context: "\(context), kill \(kills)")
                if held != before { inFlightApplied += 1 }
                nextKill = operation + Int.random(in: 50...150, using: &random)
            }
        }
        // A kill scheduled near the end may have landed after the last request.
        if let thread = pendingKill {
            while !thread.isFinished { usleep(1000) }
            XCTAssertNotNil(agent.waitForExit(timeout: 5), context)
            try agent.start(timeout: Self.startTimeout)
            kills += 1
        }
        try reconcile(agent: client, inFlight: nil, held: &held, context: "\(context), end")
        try agent.restart(timeout: Self.startTimeout)
        try reconcile(agent: client, inFlight: nil, held: &held, context: "\(context), clean restart")
        XCTAssertGreaterThanOrEqual(kills, 6, context)
        let elapsed = Date().timeIntervalSince(started)
        print(
            "IPAM crash test: 1000 operations, \(kills) kills (\(inFlightApplied) with the request in flight applied), "
                + "\(held.count) addresses held, \(Int(elapsed)) s (\(context))")
    }

    // MARK: - Helpers

    /// Restarts are the point of these tests; on a machine shared with other builds an agent can need more than
    /// the harness's default 10 s to come up.
    private static let startTimeout: TimeInterval = 30

    private func startPatiently(in topology: Topology, configFile: String? = nil) throws -> AgentProcess {
        guard AgentProcess.locate("nodeagent") != nil else {
            throw XCTSkip("nodeagent binary not built (looked in \(AgentProcess.searchDirectories()))")
        }
        let agent = try AgentProcess(topology: topology, configFile: configFile, start: false)
        try agent.start(timeout: Self.startTimeout)
        return agent
    }

    private enum Step {
        case allocate(owner: String)
        case release(String)
    }

    /// Runs one step; on an acknowledged answer updates `held` and checks the address was not already held.
    private func perform(_ step: Step, client: AgentClient, held: inout [String: String], context: String) throws {
        switch step {
        case .allocate(let owner):
            let answer = try client.request(.POST, "/v1/ipam", query: [("family", "ipv4"), ("owner", owner)])
            guard let address = answer["address"]?["ipv4"]?.stringValue else {
                return XCTFail("no address in \(answer.serialized()) (\(context))")
            }
            XCTAssertNil(
                held[address], "\(address) handed to \(owner) while \(held[address] ?? "") holds it (\(context))")
            XCTAssertTrue(address.hasPrefix("10.200.5."), "\(address) (\(context))")
            XCTAssertFalse(["10.200.5.0", "10.200.5.1", "10.200.5.255"].contains(address), "\(address) (\(context))")
            held[address] = owner
        case .release(let address):
            let answer = try client.request(.DELETE, "/v1/ipam/\(address)")
            XCTAssertEqual(answer["released"], true, "\(address) was acknowledged as allocated (\(context))")
            XCTAssertEqual(answer["owner"]?.stringValue, held[address], context)
            held[address] = nil
        }
    }

    /// Compares the ledger with what the client holds, after settling the request that was in flight.
    private func reconcile(agent: AgentClient, inFlight: Step?, held: inout [String: String], context: String) throws {
        let listing = try agent.request(.GET, "/v1/ipam")
        var ledger: [String: String] = [:]
        for allocation in listing["allocations"]?.arrayValue ?? [] {
            let address = try XCTUnwrap(allocation["ip"]?.stringValue)
            XCTAssertNil(ledger[address], "\(address) listed twice (\(context))")
            ledger[address] = allocation["owner"]?.stringValue ?? "-"
        }
        switch inFlight {
        case .allocate(let owner):
            let found = ledger.filter { $0.value == owner }.map(\.key)
            XCTAssertLessThanOrEqual(found.count, 1, "the allocation in flight took \(found) (\(context))")
            if let address = found.first { held[address] = owner }
        case .release(let address):
            if ledger[address] == nil { held[address] = nil }
        case nil:
            break
        }
        let leaked = ledger.filter { held[$0.key] != $0.value }.sorted { $0.key < $1.key }
        let lost = held.filter { ledger[$0.key] != $0.value }.sorted { $0.key < $1.key }
        XCTAssertTrue(
            leaked.isEmpty,
            "\(leaked.count) listed but not held by the client (leaks), e.g. \(leaked.prefix(5)) (\(context))")
        XCTAssertTrue(
            lost.isEmpty, "\(lost.count) held by the client but not listed, e.g. \(lost.prefix(5)) (\(context))")
        XCTAssertEqual(listing["ipv4"]?["allocated"]?.intValue, Int64(held.count), context)
    }

    /// `curl` with extra request headers (the agent harness sends none).
    private func curl(_ agent: AgentProcess, _ method: String, _ path: String, headers: [String]) throws -> APIResult {
        let output = try Shell.run(
            [
                "curl", "--silent", "--show-error", "--max-time", "10", "--unix-socket", agent.socketPath,
                "--write-out", "\n%{http_code}", "--request", method,
            ]
                + headers.flatMap { ["--header", $0] } + ["http://localhost\(path)"])
        guard let split = output.lastIndex(of: "\n"), let status = Int(output[output.index(after: split)...]) else {
            throw AgentHarnessError("unexpected curl output for \(method) \(path): \(output)")
        }
        let body = String(output[..<split])
        return APIResult(status: status, body: body, json: try? JSON.parse(body))
    }
}

/// A seeded generator: a failure report names the seed of the operations it ran.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension JSON {
    fileprivate func merging(_ other: [String: JSON]) -> JSON {
        .object((objectValue ?? [:]).merging(other) { _, new in new })
    }
}
