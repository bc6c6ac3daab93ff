import AgentAPI
import XCTest

@testable import Policy

/// An endpoint's `named-ports`: Kubernetes' port-name rules, errors naming the element.
final class NamedPortTests: XCTestCase {
    func testAcceptedList() throws {
        let ports = try NamedPort.parseList(
            JSON.parse(
                #"[{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "udp"},"#
                    + #" {"name": "dns", "port": 53, "protocol": "TCP"}]"#))
        XCTAssertEqual(
            ports,
            [
                NamedPort(name: "http", port: 80), NamedPort(name: "dns", port: 53, proto: .udp),
                NamedPort(name: "dns", port: 53, proto: .tcp),
            ])
        XCTAssertEqual(try NamedPort.parseList(nil), [])
        XCTAssertEqual(try NamedPort.parseList(.null), [])
        XCTAssertEqual(
            NamedPort.json(ports).serialized(),
            #"[{"name":"http","port":80,"protocol":"TCP"},{"name":"dns","port":53,"protocol":"UDP"},"#
                + #"{"name":"dns","port":53,"protocol":"TCP"}]"#)
    }

    func testRefusedListsNameTheElement() throws {
        let cases: [(String, String)] = [
            (#"{"name": "http"}"#, "named-ports"),
            (#"[{"name": "http", "port": 80, "x": 1}]"#, "named-ports[0].x"),
            (#"[{"port": 80}]"#, "named-ports[0].name"),
            (#"[{"name": "HTTP", "port": 80}]"#, "named-ports[0].name"),
            (#"[{"name": "8080", "port": 80}]"#, "named-ports[0].name"),
            (#"[{"name": "a--b", "port": 80}]"#, "named-ports[0].name"),
            (#"[{"name": "sixteen-chars-xx", "port": 80}]"#, "named-ports[0].name"),
            (#"[{"name": "http", "port": 0}]"#, "named-ports[0].port"),
            (#"[{"name": "http", "port": 70000}]"#, "named-ports[0].port"),
            (#"[{"name": "http", "port": 80, "protocol": "ANY"}]"#, "named-ports[0].protocol"),
            (#"[{"name": "http", "port": 80}, {"name": "http", "port": 81}]"#, "named-ports[1].name"),
        ]
        for (text, field) in cases {
            let error = agentError { try NamedPort.parseList(JSON.parse(text)) }
            XCTAssertEqual(error?.field, field, text)
            XCTAssertEqual(error?.status, 400, text)
        }
    }
}
