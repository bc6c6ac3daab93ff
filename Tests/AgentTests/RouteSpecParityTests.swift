import CIDRPolicy
import ConntrackGC
import DatapathCore
import Foundation
import IPAMClusterPool
import NAT
import XCTest

// Testable for starting and stopping the plugins as the daemon does, so that their routes answer.
@testable import Agent

/// openapi/openapi.yaml against the agent itself: a real `NodeAgent` (datapath loaded, maps pinned under a
/// private bpf root, the plugins the daemon links) must serve exactly the operations the spec lists, and every
/// answer it gives must fit the schema the spec documents for that operation and status.
final class RouteSpecParityTests: ScratchAgentTestCase {
    private func makeAgent() throws -> NodeAgent {
        var config = agentConfig
        // IPAM answers 503 until a pod CIDR is configured; with one, its answers can be checked.
        config.plugins = ["ipam": ["pod-cidr-ipv4": "10.8.0.0/24", "pod-cidr-ipv6": "fd08::/120"]]
        // The plugins the nodeagent executable links (linkedPlugins() in Sources/nodeagent/main.swift).
        return try NodeAgent(
            config: config, plugins: [ConntrackGCPlugin(), CIDRPolicyPlugin(), NATPlugin(), IPAMClusterPoolPlugin()],
            logLevel: LogLevelBox(.info))
    }

    func testRegisteredRoutesAreExactlyTheSpecOperations() throws {
        let agent = try makeAgent()
        let spec = try OpenAPIDocument()
        XCTAssertEqual(spec.basePath, "/v1", "the spec's server URL should carry the API's base path")

        let routes = agent.routes.map { Operation(method: $0.method.rawValue, path: $0.pattern) }
        let registered = Set(routes)
        XCTAssertEqual(registered.count, routes.count, "a (method, path) is registered twice: \(routes.sorted())")
        XCTAssertTrue(registered.contains(Operation(method: "GET", path: "/v1/healthz")), "\(registered.sorted())")

        let operations = spec.operations
        XCTAssertEqual(
            registered.subtracting(operations).sorted(), [], "routes the agent serves that openapi.yaml lacks")
        XCTAssertEqual(
            operations.subtracting(registered).sorted(), [], "operations in openapi.yaml that the agent does not serve")
    }

    /// Every `{name}` in a spec path has a path parameter of that name (declared on the path or the operation),
    /// and no operation declares a path parameter its path does not have.
    func testSpecPathParametersMatchTheirTemplates() throws {
        let spec = try OpenAPIDocument()
        for (path, item) in spec.root["paths"]?.objectValue ?? [:] {
            let template = Set(
                path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) })
            for method in OpenAPIDocument.methods {
                guard let operation = item[method] else { continue }
                let declared = ((item["parameters"]?.arrayValue ?? []) + (operation["parameters"]?.arrayValue ?? []))
                    .map { parameter in parameter["$ref"]?.stringValue.flatMap(spec.resolve) ?? parameter }
                    .filter { $0["in"]?.stringValue == "path" }
                    .compactMap { $0["name"]?.stringValue }
                XCTAssertEqual(Set(declared), template, "\(method.uppercased()) \(path): path parameters")
                XCTAssertNotNil(operation["operationId"]?.stringValue, "\(method.uppercased()) \(path): operationId")
            }
        }
    }

    /// Drives every operation through the agent's router, in a network namespace of the test's own with two veth
    /// interfaces for endpoints, and checks each answer (successes and errors) against the spec.
    func testResponsesFitTheSpecSchemas() throws {
        let agent = try makeAgent()
        let spec = try OpenAPIDocument()
        let netns = try ScratchNetns(name: "na-test-" + bpfRoot.suffix(8))
        scratch = netns
        try netns.addVethPair("nat0a", "nat0b")

        agent.startPlugins()
        defer { agent.stop() }
        let root = bpfRoot
        let checker = ConformanceChecker(router: Router(routes: agent.routes), spec: spec) {
            try Self.addConntrackEntry(bpfRoot: root)
        }
        let problems = try netns.run { checker.exerciseEveryOperation() }
        for problem in problems { XCTFail(problem) }
        XCTAssertGreaterThan(checker.calls, 40, "fewer requests than expected were checked")
    }
}

extension RouteSpecParityTests {
    /// One entry of endpoint 1 in the pinned na_ct, as the datapath would write it, so that conntrack listings
    /// have something to show.
    static func addConntrackEntry(bpfRoot: String) throws {
        guard let pinned = try BPFMap.openPinned("\(bpfRoot)/na_ct") else {
            throw ScratchError("\(bpfRoot)/na_ct is not pinned")
        }
        let map: TypedMap<na_ct_key, na_ct_value> = try TypedMap(pinned)
        var key = na_ct_key()
        key.family = 4
        key.proto = 6
        key.sport = UInt16(40000).bigEndian
        key.dport = UInt16(8000).bigEndian
        setTupleBytes(&key.saddr, [10, 9, 0, 2] + [UInt8](repeating: 0, count: 12))
        setTupleBytes(&key.daddr, [10, 9, 0, 1] + [UInt8](repeating: 0, count: 12))
        var value = na_ct_value()
        value.lifetime = UInt32.max / 2
        value.ep_id = 1
        value.src_identity = 257
        value.flags = UInt32(NA_CT_SEEN_REPLY)
        value.packets = 3
        value.bytes = 180
        try map.update(key, value)
    }
}

/// Sends requests straight to the router and collects every way an answer differs from the spec.
final class ConformanceChecker: @unchecked Sendable {  // `problems` and `count` are guarded by `lock`
    let router: Router
    let spec: OpenAPIDocument
    private let validator: SchemaValidator
    private let lock = NSLock()
    private var problems: [String] = []
    private var count = 0

    /// Puts a conntrack entry in place; called once endpoint 1 exists (the plugin sweeps entries of unknown ones).
    private let addConntrackEntry: @Sendable () throws -> Void

    init(router: Router, spec: OpenAPIDocument, addConntrackEntry: @escaping @Sendable () throws -> Void) {
        self.router = router
        self.spec = spec
        self.addConntrackEntry = addConntrackEntry
        validator = SchemaValidator(document: spec)
    }

    var calls: Int { lock.withLock { count } }

    private func record(_ problem: String) { lock.withLock { problems.append(problem) } }

    /// Calls `method path` (the route `pattern`), expects `status`, and validates the body against the spec's
    /// schema for that status. Returns the parsed body.
    @discardableResult
    func call(
        _ method: HTTPMethod, _ pattern: String, _ path: String? = nil, query: [String: String] = [:],
        body: JSON? = nil, rawBody: String? = nil, expect status: Int
    ) -> JSON {
        lock.withLock { count += 1 }
        let target = path ?? pattern
        let bytes = rawBody.map { Array($0.utf8) } ?? body.map { Array($0.serialized().utf8) } ?? []
        let response = router.route(APIRequest(method: method, path: target, query: query, body: bytes))
        let label = "\(method.rawValue) \(target)\(query.isEmpty ? "" : " \(query)")"
        if let body, status < 300 {
            // A request the agent accepts must be one the spec allows.
            let requestBody = spec.operation(method.rawValue, pattern)?["requestBody"]
            let schema = requestBody?["content"]?["application/json"]?["schema"]
            if let schema {
                for violation in validator.violations(of: body, against: schema) {
                    record("\(label) request body: \(violation)")
                }
            } else {
                record("\(label): the spec documents no JSON request body")
            }
        }
        guard let json = try? JSON.parse(response.body) else {
            record("\(label): body is not JSON: \(String(decoding: response.body, as: UTF8.self))")
            return .null
        }
        if response.status != status {
            record("\(label): status \(response.status), expected \(status): \(json.serialized())")
        }
        if !response.contentType.hasPrefix("application/json") {
            record("\(label): content type \(response.contentType)")
        }
        switch spec.responseSchema(method.rawValue, pattern, status: response.status) {
        case .failure(let error):
            record("\(label): \(error)")
        case .success(let schema):
            for violation in validator.violations(of: json, against: schema) {
                record("\(label) → \(response.status): \(violation)")
            }
        }
        return json
    }

    /// Router-level errors (unknown path, wrong method) belong to no operation: they must be the Error schema.
    func callUnrouted(_ method: HTTPMethod, _ path: String, expect status: Int) {
        lock.withLock { count += 1 }
        let response = router.route(APIRequest(method: method, path: path))
        let json = (try? JSON.parse(response.body)) ?? .null
        if response.status != status {
            record("\(method.rawValue) \(path): status \(response.status), expected \(status)")
        }
        for violation in validator.violations(of: json, against: ["$ref": "#/components/schemas/Error"]) {
            record("\(method.rawValue) \(path) → \(response.status): \(violation)")
        }
    }

    func exerciseEveryOperation() -> [String] {
        exerciseDaemonAndMaps()
        exerciseEndpointsPolicyAndIdentities()
        exerciseServices()
        call(.GET, "/v1/nat", expect: 200)
        call(.GET, "/v1/nat", query: ["limit": "1"], expect: 200)
        call(.GET, "/v1/nat", query: ["cursor": "abc"], expect: 400)
        call(.DELETE, "/v1/nat", expect: 200)
        exerciseIPAM()
        callUnrouted(.GET, "/v1/no-such-thing", expect: 404)
        callUnrouted(.DELETE, "/v1/healthz", expect: 405)
        callUnrouted(.POST, "/v1/endpoint/1", expect: 405)
        return lock.withLock { problems }
    }

    private func exerciseIPAM() {
        call(.GET, "/v1/ipam", expect: 200)
        call(.POST, "/v1/ipam", query: ["owner": "t/a-0"], expect: 201)
        call(.POST, "/v1/ipam", query: ["family": "ipv6", "owner": "t/a-1", "pool": "default"], expect: 201)
        call(.POST, "/v1/ipam", query: ["family": "ipx"], expect: 400)
        call(.GET, "/v1/ipam", expect: 200)
        call(.GET, "/v1/ipam/{ip}", "/v1/ipam/10.8.0.2", expect: 200)
        call(.GET, "/v1/ipam/{ip}", "/v1/ipam/10.8.0.200", expect: 404)
        call(.GET, "/v1/ipam/{ip}", "/v1/ipam/x", expect: 400)
        call(.POST, "/v1/ipam/{ip}", "/v1/ipam/10.8.0.9", query: ["owner": "t/b-0"], expect: 201)
        call(.POST, "/v1/ipam/{ip}", "/v1/ipam/10.8.0.9", query: ["owner": "t/b-0"], expect: 200)
        call(.POST, "/v1/ipam/{ip}", "/v1/ipam/10.8.0.9", query: ["owner": "t/c-0"], expect: 409)
        call(.POST, "/v1/ipam/{ip}", "/v1/ipam/10.8.0.1", expect: 400)
        call(.DELETE, "/v1/ipam/{ip}", "/v1/ipam/10.8.0.9", expect: 200)
        call(.DELETE, "/v1/ipam/{ip}", "/v1/ipam/10.8.0.9", expect: 200)
        call(.DELETE, "/v1/ipam/{ip}", "/v1/ipam/10.8.0.255", expect: 400)
        call(.POST, "/v1/ipam/gc", query: ["dry-run": "true"], expect: 200)
        call(.POST, "/v1/ipam/gc", expect: 200)
    }

    private func exerciseConntrack() {
        do { try addConntrackEntry() } catch { record("adding a conntrack entry: \(error)") }
        let page = call(.GET, "/v1/ct", expect: 200)
        if page["entries"]?.arrayValue?.isEmpty ?? true { record("GET /v1/ct lists no entries: \(page.serialized())") }
        call(
            .GET, "/v1/ct", query: ["endpoint": "1", "ip": "10.9.0.2", "port": "8000", "protocol": "tcp"], expect: 200)
        call(.GET, "/v1/ct", query: ["limit": "1"], expect: 200)
        call(.GET, "/v1/ct", query: ["colour": "red"], expect: 400)
        call(.GET, "/v1/ct", query: ["cursor": String(repeating: "0", count: 80)], expect: 409)
        call(.DELETE, "/v1/ct", query: ["endpoint": "7"], expect: 200)
        call(.DELETE, "/v1/ct", query: ["ip": "10.9.0.2"], expect: 400)
        call(.DELETE, "/v1/ct", expect: 200)
    }

    private func exerciseDaemonAndMaps() {
        call(.GET, "/v1/healthz", expect: 200)
        call(.GET, "/v1/cluster/nodes", expect: 200)
        call(.GET, "/v1/config", expect: 200)
        for level in ["trace", "debug", "notice", "warning", "info"] {
            call(.PATCH, "/v1/config", body: ["log-level": .string(level)], expect: 200)
        }
        call(.PATCH, "/v1/config", body: ["policy-enforcement": "sometimes"], expect: 400)
        call(.PATCH, "/v1/config", body: ["no-such-option": 1], expect: 400)
        call(.PATCH, "/v1/config", rawBody: "{bad", expect: 400)

        let maps = call(.GET, "/v1/map", expect: 200)["maps"]?.arrayValue ?? []
        for name in maps.compactMap({ $0["name"]?.stringValue }) {
            call(.GET, "/v1/map/{name}", "/v1/map/\(name)", expect: 200)
        }
        call(.GET, "/v1/map/{name}", "/v1/map/na_config", query: ["limit": "1"], expect: 200)
        call(.GET, "/v1/map/{name}", "/v1/map/na_config", query: ["limit": "0"], expect: 400)
        call(.GET, "/v1/map/{name}", "/v1/map/na_config", query: ["cursor": "zz"], expect: 400)
        call(.GET, "/v1/map/{name}", "/v1/map/na_nothing", expect: 404)
    }

    private func exerciseEndpointsPolicyAndIdentities() {
        let first: JSON = [
            "interface-name": "nat0a", "addressing": ["ipv4": "10.9.0.1", "ipv6": "fd09::1"],
            "labels": ["k8s:app=a"], "k8s-namespace": "t", "k8s-pod-name": "a-0", "container-id": "c1",
            "named-ports": [["name": "http", "port": 8080], ["name": "dns", "port": 53, "protocol": "UDP"]],
        ]
        let second: JSON = [
            "interface-name": "nat0b", "addressing": ["ipv4": "10.9.0.2"], "labels": ["k8s:app=b"],
            "k8s-namespace": "t",
        ]
        call(.PUT, "/v1/endpoint/{id}", "/v1/endpoint/1", body: first, expect: 201)
        call(.PUT, "/v1/endpoint/{id}", "/v1/endpoint/1", body: first, expect: 200)
        call(.PUT, "/v1/endpoint/{id}", "/v1/endpoint/cilium-local:2", body: second, expect: 201)
        call(.PUT, "/v1/endpoint/{id}", "/v1/endpoint/3", body: first, expect: 409)
        call(
            .PUT, "/v1/endpoint/{id}", "/v1/endpoint/3",
            body: ["interface-name": "nat0a", "addressing": ["ipv4": "10.9.0.300"]], expect: 400)
        call(.PUT, "/v1/endpoint/{id}", "/v1/endpoint/0", body: first, expect: 400)

        let policy: JSON = [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": "p", "namespace": "t"],
            "spec": [
                "endpointSelector": ["matchLabels": ["app": "a"]],
                "ingress": [
                    ["fromEndpoints": [["matchLabels": ["app": "b"]]]],
                    ["toPorts": [["ports": [["port": "8000", "endPort": 8003, "protocol": "TCP"]]]]],
                ],
                "ingressDeny": [["toPorts": [["ports": [["port": "8001", "protocol": "TCP"]]]]]],
                "egress": [
                    [
                        "toEndpoints": [["matchExpressions": [["key": "app", "operator": "In", "values": ["b"]]]]],
                        "toPorts": [["ports": [["port": "53", "protocol": "UDP"]]]],
                    ]
                ],
            ],
        ]
        call(.PUT, "/v1/policy", body: policy, expect: 200)
        call(.PUT, "/v1/policy", body: .array([policy]), expect: 200)
        // Namespace, port and protocol may be left out; a clusterwide policy has no namespace.
        call(
            .PUT, "/v1/policy",
            body: [
                [
                    "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": ["name": "in-default"],
                    "spec": ["endpointSelector": [:], "ingress": [["toPorts": [["ports": [["port": 0]]]]]]],
                ],
                [
                    "apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
                    "metadata": ["name": "everywhere"],
                    "specs": [["endpointSelector": ["matchLabels": ["k8s:app": "b"]], "egress": [[:]]]],
                ],
            ], expect: 200)
        // A Kubernetes NetworkPolicy in a List, named as the CiliumNetworkPolicy above.
        call(
            .PUT, "/v1/policy",
            body: [
                "apiVersion": "v1", "kind": "List",
                "items": [
                    [
                        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": ["name": "p", "namespace": "t"],
                        "spec": [
                            "podSelector": ["matchLabels": ["app": "a"]], "policyTypes": ["Ingress"],
                            "ingress": [
                                [
                                    "from": [["namespaceSelector": [:], "podSelector": [:]]],
                                    "ports": [["port": 80, "endPort": 81, "protocol": "TCP"]],
                                ]
                            ],
                        ],
                    ]
                ],
            ], expect: 200)
        call(
            .PUT, "/v1/policy", body: ["metadata": ["name": "q", "namespace": "t"], "spec": ["nope": 1]], expect: 400)
        call(.PUT, "/v1/policy", rawBody: "[", expect: 400)
        call(.GET, "/v1/policy", expect: 200)

        let page = call(.GET, "/v1/map/{name}", "/v1/map/na_endpoints", query: ["limit": "1"], expect: 200)
        if let cursor = page["next-cursor"]?.stringValue {
            let rest = call(.GET, "/v1/map/{name}", "/v1/map/na_endpoints", query: ["cursor": cursor], expect: 200)
            if rest["entries"]?.arrayValue?.count != 1 { record("na_endpoints second page: \(rest.serialized())") }
        } else {
            record("na_endpoints with two endpoints and limit=1 gave no next-cursor: \(page.serialized())")
        }
        call(.GET, "/v1/endpoint", expect: 200)
        call(.GET, "/v1/endpoint", query: ["labels": "k8s:app=a"], expect: 200)
        call(.GET, "/v1/endpoint", query: ["labels": "=="], expect: 400)
        call(.GET, "/v1/endpoint/{id}", "/v1/endpoint/1", expect: 200)
        call(.GET, "/v1/endpoint/{id}", "/v1/endpoint/9", expect: 404)
        call(.GET, "/v1/endpoint/{id}", "/v1/endpoint/abc", expect: 400)
        call(.GET, "/v1/endpoint/{id}/policy", "/v1/endpoint/1/policy", expect: 200)
        call(.GET, "/v1/endpoint/{id}/policy", "/v1/endpoint/2/policy", expect: 200)
        call(.GET, "/v1/endpoint/{id}/policy", "/v1/endpoint/9/policy", expect: 404)
        call(.PATCH, "/v1/endpoint/{id}/labels", "/v1/endpoint/2/labels", body: ["add": ["k8s:tier=x"]], expect: 200)
        call(.PATCH, "/v1/endpoint/{id}/labels", "/v1/endpoint/2/labels", body: ["labels": ["k8s:app=b"]], expect: 200)
        call(
            .PATCH, "/v1/endpoint/{id}/labels", "/v1/endpoint/2/labels",
            body: ["labels": ["k8s:app=b", "k8s:x=1"], "delete": ["k8s:x"], "add": ["k8s:y=2"]], expect: 200)
        call(.PATCH, "/v1/endpoint/{id}/labels", "/v1/endpoint/2/labels", body: ["swap": []], expect: 400)
        call(.PATCH, "/v1/endpoint/{id}/labels", "/v1/endpoint/9/labels", body: ["add": ["k8s:x=y"]], expect: 404)

        call(.GET, "/v1/identity", expect: 200)
        call(.GET, "/v1/identity", query: ["labels": "k8s:app=a"], expect: 200)
        call(.GET, "/v1/identity/{id}", "/v1/identity/1", expect: 200)
        call(.GET, "/v1/identity/{id}", "/v1/identity/256", expect: 200)
        call(.GET, "/v1/identity/{id}", "/v1/identity/77777", expect: 404)
        call(.GET, "/v1/identity/{id}", "/v1/identity/x", expect: 400)
        let entry = call(.GET, "/v1/ipcache/{ip}", "/v1/ipcache/10.9.0.2", expect: 200)
        if entry["source"]?.stringValue != "endpoint" || entry["endpoint"]?.intValue != 2 {
            record("ipcache entry of endpoint 2's address: \(entry.serialized())")
        }
        call(.GET, "/v1/ipcache/{ip}", "/v1/ipcache/198.51.100.7", expect: 404)
        call(.GET, "/v1/ipcache/{ip}", "/v1/ipcache/10.9.0.256", expect: 400)

        let trace = ["src": "2", "dst": "1", "dport": "8001", "protocol": "TCP"]
        call(.GET, "/v1/policy/trace", query: trace, expect: 200)
        call(
            .GET, "/v1/policy/trace", query: ["src": "t/a-0", "dst": "10.9.0.2", "dport": "53", "protocol": "udp"],
            expect: 200)
        call(.GET, "/v1/policy/trace", query: ["src": "k8s:app=z", "dst": "1"], expect: 200)
        call(.GET, "/v1/policy/trace", query: ["dst": "1"], expect: 400)
        call(.GET, "/v1/policy/trace", query: ["src": "99", "dst": "1"], expect: 404)

        call(.DELETE, "/v1/policy", query: ["namespace": "t", "name": "gone"], expect: 404)
        call(.DELETE, "/v1/policy", expect: 400)
        call(.DELETE, "/v1/policy", query: ["namespace": "t", "name": "p"], expect: 400)
        call(.DELETE, "/v1/policy", query: ["namespace": "t", "name": "p", "kind": "NetworkPolicy"], expect: 200)
        call(.DELETE, "/v1/policy", query: ["namespace": "t", "name": "p"], expect: 200)
        call(.DELETE, "/v1/policy", query: ["namespace": "t"], expect: 200)
        call(.DELETE, "/v1/policy", query: ["all": "true"], expect: 200)

        exerciseConntrack()
        call(.DELETE, "/v1/endpoint/{id}", "/v1/endpoint/2", expect: 200)
        call(.DELETE, "/v1/endpoint/{id}", "/v1/endpoint/2", expect: 404)
        call(.DELETE, "/v1/endpoint/{id}", "/v1/endpoint/1", expect: 200)
    }
}
