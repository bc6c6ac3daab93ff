import AgentAPI
import Foundation
import XCTest

/// `/v1/service...` against the real daemon with `services.enabled` false, so services are stored without a load
/// balancer: creation and replacement, frontend clashes, validation naming the field, the frontend filter,
/// deletion, restoring across a restart, and nodectl's service commands. `ServiceLoadBalancingTests` has the
/// load balancer running.
final class ServiceAPITests: EndToEndTestCase {
    private func startStoringAgent(in topology: Topology) throws -> AgentProcess {
        try startAgent(in: topology, configFile: try configFile(["services": ["enabled": false]]))
    }

    private func spec(_ ip: String, _ port: Int, _ proto: String = "TCP", backends: [(String, Int)]) -> JSON {
        [
            "frontend-address": ["ip": .string(ip), "port": .int(Int64(port)), "protocol": .string(proto)],
            "backend-addresses": .array(
                backends.map { ["ip": .string($0.0), "port": .int(Int64($0.1))] }),
            "flags": ["type": "ClusterIP", "name": "web", "namespace": "shop"],
        ]
    }

    private func backendRows(_ backends: [(String, Int)]) -> JSON {
        .array(backends.map { ["ip": .string($0.0), "port": .int(Int64($0.1)), "weight": 1, "state": "active"] })
    }

    func testCreateReplaceConflictFilterAndDelete() throws {
        let topology = try makeTopology()
        let agent = try startStoringAgent(in: topology)
        let web = spec("10.96.0.10", 80, backends: [("10.0.0.1", 8080), ("10.0.0.2", 8080)])

        let created = try agent.api(.PUT, "/v1/service/1", web)
        XCTAssertEqual(created.status, 201, "\(created)")
        let service = try XCTUnwrap(created.json)
        XCTAssertEqual(
            service["spec"],
            [
                "id": 1,
                "frontend-address": ["ip": "10.96.0.10", "port": 80, "protocol": "TCP", "scope": "external"],
                "backend-addresses": backendRows([("10.0.0.1", 8080), ("10.0.0.2", 8080)]),
                "flags": ["type": "ClusterIP", "name": "web", "namespace": "shop", "session-affinity": "None"],
            ])
        XCTAssertEqual(service["status"]?["realized"], false, "this agent has no load balancer: \(service)")
        let message = service["status"]?["message"]?.stringValue ?? ""
        XCTAssertTrue(message.contains("load balancer is not available"), message)
        XCTAssertEqual(try agent.getJSON("/v1/service/1"), service)

        let replaced = try agent.api(.PUT, "/v1/service/1", web.setting("backend-addresses", [["ip": "10.0.0.3"]]))
        XCTAssertEqual(replaced.status, 200, "a replacement: \(replaced)")
        XCTAssertEqual(replaced.json?["spec"]?["backend-addresses"], backendRows([("10.0.0.3", 80)]))
        XCTAssertEqual(try agent.getJSON("/v1/service/1"), replaced.json)

        // The same address and port over TCP belongs to service 1; over UDP it is another frontend.
        assertAPIError(
            try agent.api(.PUT, "/v1/service/2", web), status: 409, code: "conflict", field: "frontend-address",
            mentions: ["10.96.0.10:80/TCP", "service 1"])
        assertAPIError(try agent.api(.GET, "/v1/service/2"), status: 404, code: "not-found")
        let dns = spec("10.96.0.10", 80, "UDP", backends: [("10.0.0.1", 53)])
        XCTAssertEqual(try agent.api(.PUT, "/v1/service/2", dns).status, 201)
        let v6 = spec("fd00::10", 443, backends: [("fd00::1", 8443)])
        XCTAssertEqual(try agent.api(.PUT, "/v1/service/300", v6).status, 201)

        let ids = { (path: String) throws -> [Int64] in
            try agent.getJSON(path).arrayValue?.compactMap { $0["spec"]?["id"]?.intValue } ?? []
        }
        XCTAssertEqual(try ids("/v1/service"), [1, 2, 300])
        XCTAssertEqual(try ids("/v1/service?frontend=10.96.0.10:80/TCP"), [1])
        XCTAssertEqual(try ids("/v1/service?frontend=10.96.0.10:80/udp"), [2])
        XCTAssertEqual(try ids("/v1/service?frontend=10.96.0.10:80"), [1, 2])
        XCTAssertEqual(try ids("/v1/service?frontend=%5Bfd00::10%5D:443/TCP"), [300])
        XCTAssertEqual(try ids("/v1/service?frontend=10.96.0.11:80/TCP"), [])
        assertAPIError(
            try agent.api(.GET, "/v1/service?frontend=10.96.0.10"), status: 400, code: "invalid-field",
            field: "frontend")
        assertAPIError(
            try agent.api(.GET, "/v1/service?colour=red"), status: 400, code: "invalid-field", field: "colour")

        XCTAssertEqual(try agent.api(.DELETE, "/v1/service/2").json?["spec"]?["id"], 2)
        assertAPIError(try agent.api(.GET, "/v1/service/2"), status: 404, code: "not-found")
        assertAPIError(try agent.api(.DELETE, "/v1/service/2"), status: 404, code: "not-found")
        XCTAssertEqual(try ids("/v1/service"), [1, 300])
    }

    func testBadRequestsAre400NamingTheFieldAndChangeNothing() throws {
        let topology = try makeTopology()
        let agent = try startStoringAgent(in: topology)
        let web = spec("10.96.0.10", 80, backends: [("10.0.0.1", 8080), ("10.0.0.2", 8080)])
        let original = try XCTUnwrap(try agent.api(.PUT, "/v1/service/5", web).json)

        let badState = web.setting(
            "backend-addresses", [["ip": "10.0.0.1"], ["ip": "10.0.0.2"], ["ip": "10.0.0.3", "state": "draining"]])
        assertAPIError(
            try agent.api(.PUT, "/v1/service/5", badState), status: 400, code: "invalid-field",
            field: "backend-addresses[2].state", mentions: ["draining"])
        assertAPIError(
            try agent.api(.PUT, "/v1/service/5", web.setting("frontend-address", ["ip": "10.96.0.10", "port": 0])),
            status: 400, code: "invalid-field", field: "frontend-address.port")
        assertAPIError(
            try agent.api(.PUT, "/v1/service/5", web.setting("frontend-address", ["ip": "10.96.0", "port": 80])),
            status: 400, code: "invalid-field", field: "frontend-address.ip")
        assertAPIError(
            try agent.api(.PUT, "/v1/service/5", web.setting("backend-addresses", [["ip": "fd00::1"]])),
            status: 400, code: "invalid-field", field: "backend-addresses[0].ip")
        assertAPIError(
            try agent.api(.PUT, "/v1/service/5", web.setting("id", 6)), status: 400, code: "invalid-field", field: "id")
        assertAPIError(
            try agent.api(.PUT, "/v1/service/5", web.setting("flags", ["type": "Headless"])), status: 400,
            code: "invalid-field", field: "flags.type")
        assertAPIError(
            try agent.api(.PUT, "/v1/service/5", rawBody: "{\"frontend-address\":"), status: 400,
            code: "invalid-json")
        assertAPIError(try agent.api(.PUT, "/v1/service/0", web), status: 400, code: "invalid-field", field: "id")
        assertAPIError(try agent.api(.PUT, "/v1/service/65536", web), status: 400, code: "invalid-field", field: "id")
        assertAPIError(try agent.api(.GET, "/v1/service/abc"), status: 400, code: "invalid-field", field: "id")

        XCTAssertEqual(try agent.getJSON("/v1/service"), [original], "nothing changed")
    }

    func testRestartRestoresTheSameServices() throws {
        let topology = try makeTopology()
        let agent = try startStoringAgent(in: topology)
        let affinity = spec("10.96.0.20", 8080, backends: [("10.0.0.5", 80)]).setting(
            "flags", ["type": "NodePort", "session-affinity": "ClientIP", "session-affinity-timeout": 60])
        XCTAssertEqual(try agent.api(.PUT, "/v1/service/7", affinity).status, 201)
        let dns = spec("fd00::a", 53, "UDP", backends: [("fd00::1", 53), ("fd00::2", 53)]).setting(
            "backend-addresses",
            [["ip": "fd00::1", "weight": 2], ["ip": "fd00::2", "state": "terminating"]])
        XCTAssertEqual(try agent.api(.PUT, "/v1/service/4242", dns).status, 201)
        XCTAssertEqual(try agent.api(.PUT, "/v1/service/8", spec("10.96.0.30", 80, backends: [])).status, 201)
        XCTAssertEqual(try agent.api(.DELETE, "/v1/service/8").status, 200)
        let before = try agent.getJSON("/v1/service")
        XCTAssertEqual(before.arrayValue?.count, 2)

        let saved = try JSON.parse(
            Array(try Data(contentsOf: URL(fileURLWithPath: "\(agent.stateDirectory)/services/7.json"))))
        XCTAssertEqual(saved["version"], 1)
        XCTAssertEqual(saved["flags"]?["session-affinity-timeout"], 60)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(agent.stateDirectory)/services/8.json"))

        try agent.restart()
        XCTAssertEqual(try agent.getJSON("/v1/service"), before, "same ids, specs and status after a restart")
        try agent.restart()
        XCTAssertEqual(try agent.getJSON("/v1/service"), before, "and after another")
        assertAPIError(try agent.api(.GET, "/v1/service/8"), status: 404, code: "not-found")
    }

    func testASavedServiceTheAgentRefusesIsDroppedAtStartAndTheOthersStay() throws {
        let topology = try makeTopology()
        let agent = try startStoringAgent(in: topology)
        XCTAssertEqual(
            try agent.api(.PUT, "/v1/service/1", spec("10.96.0.1", 443, backends: [("10.0.0.1", 6443)])).status, 201)
        let before = try agent.getJSON("/v1/service")
        agent.stop()
        // Written by hand while the agent was down: a state no agent accepts, and a second claim on service 1's
        // frontend.
        let directory = "\(agent.stateDirectory)/services"
        try #"{"version": 1, "id": 2, "frontend-address": {"ip": "10.96.0.2", "port": 80}, "backend-addresses": "#
            .appending(#"[{"ip": "10.0.0.2", "state": "draining"}]}"#)
            .write(toFile: "\(directory)/2.json", atomically: true, encoding: .utf8)
        try #"{"version": 1, "id": 3, "frontend-address": {"ip": "10.96.0.1", "port": 443}}"#
            .write(toFile: "\(directory)/3.json", atomically: true, encoding: .utf8)
        try agent.start()

        XCTAssertEqual(try agent.getJSON("/v1/service"), before, "only the valid service is restored")
        for id in [2, 3] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/\(id).json"), "\(id).json removed")
        }
        let log = try String(contentsOfFile: agent.stderrPath, encoding: .utf8)
        XCTAssertTrue(log.contains("saved service is refused"), log.suffix(2000).description)
    }

    func testNodectlServiceCommands() throws {
        let topology = try makeTopology()
        let agent = try startStoringAgent(in: topology)

        let update = try agent.nodectl(
            "service", "update", "--id", "3", "--frontend", "10.96.0.10:80",
            "--backends", "10.0.0.1:8080,10.0.0.2:8080", "--protocol", "TCP", "--type", "ClusterIP",
            "--states", "active,terminating")
        XCTAssertEqual(update.status, 0, "\(update)")
        XCTAssertTrue(update.stdout.hasPrefix("Created service 3\n"), update.stdout)
        let specFile = "\(agent.directory)/dns.yaml"
        try """
        id: 4
        frontend-address:
          ip: 10.96.0.53
          port: 53
          protocol: UDP
        backend-addresses:
          - ip: 10.0.0.9
        """.write(toFile: specFile, atomically: true, encoding: .utf8)
        let fromFile = try agent.nodectl("service", "update", "--file", specFile)
        XCTAssertEqual(fromFile.status, 0, "\(fromFile)")
        XCTAssertEqual(try agent.getJSON("/v1/service/4")["spec"]?["backend-addresses"]?[0]?["port"], 53)

        let list = try agent.nodectl("service", "list")
        XCTAssertEqual(list.status, 0, "\(list)")
        XCTAssertEqual(
            list.stdout,
            """
            ID   FRONTEND            SERVICE TYPE   BACKEND
            3    10.96.0.10:80/TCP   ClusterIP      1 => 10.0.0.1:8080/TCP (active)
                                                    2 => 10.0.0.2:8080/TCP (terminating)
            4    10.96.0.53:53/UDP   ClusterIP      1 => 10.0.0.9:53/UDP (active)

            Service 3 is not realized: the load balancer is not available in this agent; the service is stored only
            Service 4 is not realized: the load balancer is not available in this agent; the service is stored only

            """)
        let json = try agent.nodectl("-o", "json", "service", "get", "3")
        XCTAssertEqual(try JSON.parse(json.stdout), try agent.getJSON("/v1/service/3"))

        let clash = try agent.nodectl("service", "update", "--id", "5", "--frontend", "10.96.0.10:80")
        XCTAssertNotEqual(clash.status, 0)
        XCTAssertTrue(clash.stderr.contains("belongs to service 3"), clash.stderr)
        let badBackend = try agent.nodectl(
            "service", "update", "--id", "5", "--frontend", "10.96.0.11:80", "--backends", "fd00::1:80")
        XCTAssertNotEqual(badBackend.status, 0)
        XCTAssertTrue(badBackend.stderr.contains("--backends"), badBackend.stderr)

        let deleted = try agent.nodectl("service", "delete", "3")
        XCTAssertEqual(deleted.stdout, "Deleted service 3 (10.96.0.10:80/TCP)\n", "\(deleted)")
        assertAPIError(try agent.api(.GET, "/v1/service/3"), status: 404, code: "not-found")
    }
}
