import DatapathCore
import XCTest

@testable import Agent

/// ServiceSpec parsing: defaults, both families, and every refusal as a 400 naming the field with its message.
final class ServiceSpecTests: XCTestCase {
    private let minimal: JSON = [
        "frontend-address": ["ip": "10.96.0.10", "port": 80],
        "backend-addresses": [["ip": "10.0.0.1", "port": 8080], ["ip": "10.0.0.2"]],
    ]

    func testDefaultsFollowKubernetes() throws {
        let spec = try ServiceSpec(json: minimal, id: 7)
        XCTAssertEqual(spec.id, 7)
        XCTAssertEqual(
            spec.frontend, ServiceFrontend(address: IPAddress("10.96.0.10")!, port: 80, proto: IPProtocol.tcp))
        XCTAssertEqual(spec.scope, .external)
        XCTAssertEqual(
            spec.backends,
            [
                ServiceBackend(address: IPAddress("10.0.0.1")!, port: 8080, weight: 1, state: .active),
                ServiceBackend(address: IPAddress("10.0.0.2")!, port: 80, weight: 1, state: .active),
            ], "a backend without a port takes the frontend's")
        XCTAssertEqual(spec.kind, .clusterIP)
        XCTAssertEqual(spec.affinity, .noAffinity)
        XCTAssertNil(spec.loadBalanced.affinityTimeout, "no affinity, no timeout for the datapath")
        XCTAssertEqual(
            spec.json,
            [
                "id": 7,
                "frontend-address": ["ip": "10.96.0.10", "port": 80, "protocol": "TCP", "scope": "external"],
                "backend-addresses": [
                    ["ip": "10.0.0.1", "port": 8080, "weight": 1, "state": "active"],
                    ["ip": "10.0.0.2", "port": 80, "weight": 1, "state": "active"],
                ],
                "flags": ["type": "ClusterIP", "session-affinity": "None"],
            ])
    }

    func testEveryFieldReadsAndRendersBackUnchanged() throws {
        let full: JSON = [
            "id": 9,
            "frontend-address": ["ip": "FD00::A", "port": 53, "protocol": "udp", "scope": "internal"],
            "backend-addresses": [
                ["ip": "fd00::1", "port": 5353, "weight": 3, "state": "terminating"],
                ["ip": "fd00::2", "port": 5353, "weight": 0, "state": "maintenance"],
            ],
            "flags": [
                "type": "LoadBalancer", "name": "dns", "namespace": "kube-system", "session-affinity": "ClientIP",
                "session-affinity-timeout": 600,
            ],
        ]
        let spec = try ServiceSpec(json: full, id: 9)
        XCTAssertEqual("\(spec.frontend)", "[fd00::a]:53/UDP")
        XCTAssertEqual(spec.loadBalanced.affinityTimeout, 600)
        XCTAssertEqual(spec.backends.map(\.state), [.terminating, .maintenance])
        let rendered = try XCTUnwrap(spec.json.objectValue)
        XCTAssertEqual(
            rendered["frontend-address"], ["ip": "fd00::a", "port": 53, "protocol": "UDP", "scope": "internal"])
        XCTAssertEqual(
            try ServiceSpec(json: spec.json, id: 9), spec, "what is rendered (and saved) reads back the same")

        let clientIP = minimal.setting("flags", ["session-affinity": "ClientIP"])
        XCTAssertEqual(try ServiceSpec(json: clientIP, id: 1).loadBalanced.affinityTimeout, 10800)
        XCTAssertEqual(try ServiceSpec(json: minimal.setting("backend-addresses", nil), id: 1).backends, [])
    }

    func testRefusalsNameTheField() {
        let cases: [(JSON, String, String)] = [
            ([1, 2], "body", "body: expected a ServiceSpec object, got array"),
            (
                minimal.setting("selector", "x"), "selector",
                "selector: unknown field of ServiceSpec (known: backend-addresses, flags, frontend-address, id)"
            ),
            (minimal.setting("id", 8), "id", "id: does not match the id 7 in the path"),
            (minimal.setting("frontend-address", nil), "frontend-address", "frontend-address: is required"),
            (
                minimal.setting("frontend-address", ["ip": "10.96.0.10"]), "frontend-address.port",
                "frontend-address.port: is required"
            ),
            (
                minimal.setting("frontend-address", ["ip": "10.96.0.10", "port": 0]), "frontend-address.port",
                "frontend-address.port: 0 is out of range 1...65535"
            ),
            (
                minimal.setting("frontend-address", ["ip": "10.96.0.10", "port": "80"]), "frontend-address.port",
                "frontend-address.port: expected an integer, got string"
            ),
            (
                minimal.setting("frontend-address", ["ip": "10.96.0.300", "port": 80]), "frontend-address.ip",
                "frontend-address.ip: \"10.96.0.300\" is not an IP address"
            ),
            (
                minimal.setting("frontend-address", ["ip": "0.0.0.0", "port": 80]), "frontend-address.ip",
                "frontend-address.ip: 0.0.0.0 is the unspecified address"
            ),
            (
                minimal.setting("frontend-address", ["ip": "10.96.0.10", "port": 80, "protocol": "SCTP"]),
                "frontend-address.protocol", "frontend-address.protocol: \"SCTP\" is not one of TCP, UDP"
            ),
            (
                minimal.setting("frontend-address", ["ip": "10.96.0.10", "port": 80, "scope": "cluster"]),
                "frontend-address.scope", "frontend-address.scope: \"cluster\" is not one of external, internal"
            ),
            (
                minimal.setting("frontend-address", ["ip": "10.96.0.10", "port": 80, "zone": "a"]),
                "frontend-address.zone", "frontend-address.zone: unknown field (known: ip, port, protocol, scope)"
            ),
            (
                minimal.setting("backend-addresses", ["ip": "10.0.0.1"]), "backend-addresses",
                "backend-addresses: expected an array, got object"
            ),
            (
                minimal.setting(
                    "backend-addresses", [["ip": "10.0.0.1"], ["ip": "10.0.0.2"], ["ip": "10.0.0.3", "state": "gone"]]),
                "backend-addresses[2].state",
                "backend-addresses[2].state: \"gone\" is not one of active, terminating, quarantined, maintenance"
            ),
            (
                minimal.setting("backend-addresses", [["ip": "10.0.0.1", "port": 70000]]), "backend-addresses[0].port",
                "backend-addresses[0].port: 70000 is out of range 1...65535"
            ),
            (
                minimal.setting("backend-addresses", [["ip": "10.0.0.1", "weight": -1]]), "backend-addresses[0].weight",
                "backend-addresses[0].weight: -1 is out of range 0...65535"
            ),
            (
                minimal.setting("backend-addresses", [["ip": "fd00::1"]]), "backend-addresses[0].ip",
                "backend-addresses[0].ip: fd00::1 is IPv6 but the frontend is IPv4"
            ),
            (
                minimal.setting("backend-addresses", [["port": 80]]), "backend-addresses[0].ip",
                "backend-addresses[0].ip: is required"
            ),
            (
                minimal.setting("backend-addresses", [["ip": "10.0.0.1", "nodeName": "n1"]]),
                "backend-addresses[0].nodeName",
                "backend-addresses[0].nodeName: unknown field (known: ip, port, state, weight)"
            ),
            (
                minimal.setting("backend-addresses", [["ip": "10.0.0.1", "port": 80], ["ip": "10.0.0.1"]]),
                "backend-addresses[1]", "backend-addresses[1]: duplicates backend-addresses[0] (10.0.0.1:80)"
            ),
            (
                minimal.setting("flags", ["type": "HostPort"]), "flags.type",
                "flags.type: \"HostPort\" is not one of ClusterIP, NodePort, ExternalIPs, LoadBalancer"
            ),
            (
                minimal.setting("flags", ["session-affinity": "Cookie"]), "flags.session-affinity",
                "flags.session-affinity: \"Cookie\" is not one of None, ClientIP"
            ),
            (
                minimal.setting("flags", ["session-affinity-timeout": 60]), "flags.session-affinity-timeout",
                "flags.session-affinity-timeout: applies only to session-affinity ClientIP"
            ),
            (
                minimal.setting("flags", ["session-affinity": "ClientIP", "session-affinity-timeout": 86401]),
                "flags.session-affinity-timeout", "flags.session-affinity-timeout: 86401 is out of range 1...86400"
            ),
            (
                minimal.setting("flags", ["name": .string(String(repeating: "n", count: 254))]), "flags.name",
                "flags.name: longer than 253 characters"
            ),
        ]
        for (body, field, message) in cases {
            XCTAssertThrowsError(try ServiceSpec(json: body, id: 7), "\(body)") { error in
                let error = error as? AgentError
                XCTAssertEqual(error?.status, 400, "\(body)")
                XCTAssertEqual(error?.field, field, "\(body)")
                XCTAssertEqual(error?.message, message, "\(body)")
            }
        }
    }

    func testFrontendFilter() throws {
        let tcp = ServiceFrontend(address: IPAddress("10.96.0.10")!, port: 80, proto: IPProtocol.tcp)
        let udp = ServiceFrontend(address: IPAddress("10.96.0.10")!, port: 80, proto: IPProtocol.udp)
        let exact = try ServiceFrontendFilter(parsing: "10.96.0.10:80/TCP")
        XCTAssertTrue(exact.matches(tcp))
        XCTAssertFalse(exact.matches(udp))
        let any = try ServiceFrontendFilter(parsing: "10.96.0.10:80")
        XCTAssertTrue(any.matches(tcp) && any.matches(udp), "no protocol matches both")
        XCTAssertFalse(try ServiceFrontendFilter(parsing: "10.96.0.10:81/tcp").matches(tcp))
        let v6 = ServiceFrontend(address: IPAddress("fd00::a")!, port: 53, proto: IPProtocol.udp)
        XCTAssertTrue(try ServiceFrontendFilter(parsing: "[fd00::a]:53/udp").matches(v6))

        XCTAssertThrowsError(try ServiceFrontendFilter(parsing: "10.96.0.10")) { error in
            XCTAssertEqual(
                (error as? AgentError)?.message,
                "frontend: expected IP:PORT/PROTOCOL (10.96.0.10:80/TCP, [fd00::a]:80/TCP), got \"10.96.0.10\"")
        }
        XCTAssertThrowsError(try ServiceFrontendFilter(parsing: "10.96.0.10:80/ICMP")) { error in
            XCTAssertEqual((error as? AgentError)?.message, "frontend: \"ICMP\" is not one of TCP, UDP")
        }
    }
}

extension JSON {
    /// The object with `key` set to `value`, or removed when `value` is nil.
    fileprivate func setting(_ key: String, _ value: JSON?) -> JSON {
        var object = objectValue ?? [:]
        object[key] = value
        return .object(object)
    }
}
