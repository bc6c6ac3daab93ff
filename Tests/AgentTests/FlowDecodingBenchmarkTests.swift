import DatapathCore
import Foundation
import Glibc
import Policy
import XCTest

@testable import Agent

/// The flow reader's cost per HTTP request: synthetic `na_l7_event` records (a GET of a 25-byte path with a Host,
/// between two local pods with labels, over 50 keep-alive connections) go through the reader's own per-batch work,
/// `FlowIngest` (decode, flows with the context, store, the refused-request hook), after being copied as the ring
/// buffer's callback copies them. Prints CPU and wall nanoseconds per flow; asserts only that every flow was stored
/// as it should be, never a time.
///
/// Skipped unless NODEAGENT_BENCH=1 (bench/micro.sh runs it in release mode). Environment:
/// NODEAGENT_BENCH_DECODE_FLOWS (flows per round, default 200000), NODEAGENT_BENCH_DECODE_BATCH (records per read of
/// the ring, default 400: the datapath wakes the reader once an eighth of its 1 MiB ring, about 420 HTTP records, is
/// waiting), NODEAGENT_BENCH_DECODE_ROUNDS (default 5), NODEAGENT_BENCH_DECODE_CLIENTS (default 0: the frontend pod
/// is the client; N: N clients outside the node (world), each from an address of its own, the reader's worst case
/// once N is past the 4096 peers a context remembers).
final class FlowDecodingBenchmarkTests: XCTestCase {
    private static let path = "/api/v1/public/items/0042"
    private static let host = "backend-api:8080"

    func testFlowDecodingCostPerHTTPRequest() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["NODEAGENT_BENCH"] == "1" else { throw XCTSkip("a benchmark: set NODEAGENT_BENCH=1 to run it") }
        let flows = max(Int(env["NODEAGENT_BENCH_DECODE_FLOWS"] ?? "") ?? 200_000, 1)
        let batch = max(Int(env["NODEAGENT_BENCH_DECODE_BATCH"] ?? "") ?? 400, 1)
        let rounds = max(Int(env["NODEAGENT_BENCH_DECODE_ROUNDS"] ?? "") ?? 5, 1)
        let clients = max(Int(env["NODEAGENT_BENCH_DECODE_CLIENTS"] ?? "") ?? 0, 0)

        let fixture = try Self.fixture()
        let records =
            clients == 0
            ? (0..<50).map { Self.record(sourcePort: UInt16(40_000 + $0), fixture) }
            : (0..<clients).map { Self.record(sourcePort: 40_000, fixture, worldClient: $0) }
        let store = FlowStore(capacity: 4096)
        let denied = L7DeniedConnections()
        let ingest = FlowIngest(store: store, context: { fixture.context }, refused: { denied.closeLater($0) })

        var cpu: [Double] = []
        var wall: [Double] = []
        for _ in 0..<rounds {
            let started = (cpu: Self.threadCPUSeconds(), wall: ContinuousClock.now)
            var pending = RingBufferRecords()
            for index in 0..<flows {
                // As the ring buffer's callback hands over each record, and the reader each read.
                records[index % records.count].withUnsafeBytes { pending.append($0) }
                if pending.count == batch || index == flows - 1 {
                    ingest.ingest(pending)
                    pending.removeAll()
                }
            }
            let elapsed = ContinuousClock.now - started.wall
            cpu.append((Self.threadCPUSeconds() - started.cpu) * 1e9 / Double(flows))
            wall.append(Double(elapsed.components.attoseconds / 1_000_000_000) / Double(flows))
            wall[wall.count - 1] += Double(elapsed.components.seconds) * 1e9 / Double(flows)
        }

        XCTAssertEqual(store.stats.appended, UInt64(flows * rounds), "every flow is stored")
        XCTAssertEqual(ingest.malformedRecords, 0)
        let last = try XCTUnwrap(store.recent(matching: FlowFilter(), last: 1).first)
        if clients == 0 {
            XCTAssertEqual(last.source.pod, "web-tier/frontend")
            XCTAssertEqual(last.source.labels, ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"])
        } else {
            let client = (flows - 1) % clients
            XCTAssertEqual(last.source.name, "world")
            XCTAssertEqual(last.source.ip.description, "10.250.\(client / 256 % 256).\(client % 256)")
        }
        XCTAssertEqual(last.destination.pod, "api-tier/backend-api")
        XCTAssertEqual(last.destination.endpoint, 2)
        XCTAssertEqual(last.destination.port, 8080)
        XCTAssertEqual(last.rule, "api-tier/backend-api-http ingress[0]")
        XCTAssertEqual(last.l7, Flow.L7(method: "GET", url: Self.path, host: Self.host, ruleIndex: 0))

        cpu.sort()
        wall.sort()
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3)
        print(
            String(
                format: "bench: flow decoding: %d flows x %d rounds, %d records per batch, %@: CPU %.0f ns/flow "
                    + "median (%.0f-%.0f), wall %.0f ns/flow median; load average %@", flows, rounds, batch,
                clients == 0 ? "pod to pod" : "\(clients) world clients", cpu[cpu.count / 2], cpu.first!,
                cpu.last!, wall[wall.count / 2], load?.joined(separator: " ") ?? "?"))
        fflush(nil)
    }

    private struct Fixture {
        var context: FlowContext
        var frontend: UInt32
        var backend: UInt32
        var ruleID: UInt32
    }

    /// Two local pods with labels and identities, and an ingress rule on the server whose name flows carry.
    private static func fixture() throws -> Fixture {
        var identities = IdentityAllocator()
        let frontend = try identities.acquire(
            LabelSet(parsing: ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"])
        ).id
        let backend = try identities.acquire(
            LabelSet(parsing: ["k8s:app=backend-api", "k8s:io.kubernetes.pod.namespace=api-tier"])
        ).id
        var policy = PolicyRepository()
        try policy.apply([
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": "backend-api-http", "namespace": "api-tier"],
            "spec": [
                "endpointSelector": ["matchLabels": ["app": "backend-api"]],
                "ingress": [["fromEndpoints": [["matchLabels": ["app": "frontend"]]]]],
            ],
        ])
        let ruleID = try XCTUnwrap(policy.ruleNames.first { $0.value == "api-tier/backend-api-http ingress[0]" }?.key)
        func endpoint(_ id: UInt32, _ ip: String, _ labels: [String], _ pod: String, _ identity: UInt32) throws
            -> Endpoint
        {
            Endpoint(
                id: id, interfaceName: "lxc\(id)", ifindex: Int32(id + 10), ipv4: IPAddress(ip), ipv6: nil,
                labels: try LabelSet(parsing: labels), k8sNamespace: labels[1].split(separator: "=")[1].description,
                k8sPodName: pod, containerID: "container-\(id)", identity: identity, state: .ready,
                policyRevision: 1, enforceIngress: true, enforceEgress: true)
        }
        let endpoints: EndpointTable = [
            1: try endpoint(
                1, "10.244.1.1", ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"], "frontend",
                frontend),
            2: try endpoint(
                2, "10.244.1.2", ["k8s:app=backend-api", "k8s:io.kubernetes.pod.namespace=api-tier"], "backend-api",
                backend),
        ]
        let context = FlowContext(endpoints: endpoints, identities: identities, policy: policy, version: 1)
        return Fixture(context: context, frontend: frontend, backend: backend, ruleID: ruleID)
    }

    /// An allowed GET as the kernel reports it: ingress, from the server endpoint's point of view; from the frontend
    /// pod, or from a client outside the node (`worldClient`: which one).
    private static func record(sourcePort: UInt16, _ fixture: Fixture, worldClient: Int? = nil) -> [UInt8] {
        var http = na_l7_event()
        http.flow.timestamp_ns = 5_000_000_000
        setTupleBytes(&http.flow.saddr, [10, 244, 1, 1])
        if let client = worldClient {
            setTupleBytes(&http.flow.saddr, [10, 250, UInt8(client / 256 % 256), UInt8(client % 256)])
        }
        setTupleBytes(&http.flow.daddr, [10, 244, 1, 2])
        http.flow.sport = sourcePort.bigEndian
        http.flow.dport = UInt16(8080).bigEndian
        http.flow.proto = 6
        http.flow.family = UInt8(NA_FAMILY_IPV4)
        http.flow.direction = UInt8(NA_DIR_INGRESS.rawValue)
        http.flow.verdict = UInt8(NA_VERDICT_FORWARDED.rawValue)
        http.flow.kind = UInt16(NA_EVENT_L7_HTTP.rawValue)
        http.flow.ep_id = 2
        http.flow.src_identity = worldClient == nil ? fixture.frontend : 2  // reserved:world
        http.flow.dst_identity = fixture.backend
        http.flow.rule_id = fixture.ruleID
        http.flow.ifindex = 12
        http.flow.length = 120
        http.method_len = 3
        setTupleBytes(&http.method, Array("GET".utf8))
        http.path_len = UInt16(path.utf8.count)
        setTupleBytes(&http.path, Array(path.utf8))
        http.host_len = UInt16(host.utf8.count)
        setTupleBytes(&http.host, Array(host.utf8))
        http.rule_index = 0
        return bytesOf(http)
    }

    /// CPU time of the calling thread: what the decoding costs whatever else runs on the machine.
    private static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
