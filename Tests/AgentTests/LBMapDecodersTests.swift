import AgentAPI
import DatapathCore
import Glibc
import XCTest

@testable import Agent

/// The load balancer's maps through `GET /v1/map` and `GET /v1/map/{name}`: the endpoint object pins them (it
/// includes `lb_maps.h`), the `sock` object loaded on the same root reuses those pins, and a service programmed
/// through it reads back decoded.
final class LBMapDecodersTests: XCTestCase {
    private var pinRoot = ""
    private var datapath: Datapath!
    private var balancer: SocketLoadBalancer!
    private var sockObject: BPFObject!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("pinning BPF maps needs root") }
        pinRoot = "/sys/fs/bpf/nodeagent-test-lbdec-\(String(format: "%04x", UInt32.random(in: 0...0xffff)))"
        datapath = try Datapath(root: pinRoot)
        LBMapDecoders.register(on: datapath)
        sockObject = try BPFObject.load(embedded: "sock", pinDirectory: pinRoot)
        balancer = try SocketLoadBalancer(object: sockObject)
    }

    override func tearDown() {
        balancer = nil
        sockObject = nil
        datapath = nil
        if !pinRoot.isEmpty { BPFFS.removeAll(root: pinRoot) }
    }

    private func get(_ path: String) throws -> JSON {
        let response = Router(routes: MapRoutes(datapath: datapath).routes).route(
            APIRequest(method: .GET, path: path, query: [:]))
        let body = try JSON.parse(response.body)
        XCTAssertEqual(response.status, 200, body.serialized())
        return body
    }

    private func entries(_ map: String) throws -> [JSON] {
        try get("/v1/map/\(map)")["entries"]?.arrayValue ?? []
    }

    private let web = LoadBalancedService(
        id: 12, frontend: ServiceFrontend(address: IPAddress("10.96.0.10")!, port: 80, proto: IPProtocol.tcp),
        backends: [
            ServiceBackend(address: IPAddress("10.0.0.7")!, port: 8080),
            ServiceBackend(address: IPAddress("10.0.0.8")!, port: 8080, weight: 3),
            ServiceBackend(address: IPAddress("10.0.0.9")!, port: 8080, state: .terminating),
        ], affinityTimeout: 600)

    func testTheSockObjectSharesTheEndpointObjectsMapsAndMapListShowsThem() throws {
        XCTAssertEqual(sockObject.replacedPins, [])
        try balancer.apply(web)
        let listed = try get("/v1/map")["maps"]?.arrayValue ?? []
        let counts = Dictionary(
            uniqueKeysWithValues: listed.compactMap { map in
                map["name"]?.stringValue.map { ($0, map["entries"]?.intValue ?? -1) }
            })
        // Slot 0, four slots for weights 1 and 3, one for the terminating backend.
        XCTAssertEqual(counts["na_lb_services"], 6)
        XCTAssertEqual(counts["na_lb_backends"], 3)
        XCTAssertEqual(counts["na_lb_aff_match"], 2)
        XCTAssertEqual(counts["na_lb_revnat"], 0)
        XCTAssertEqual(counts["na_lb_affinity"], 0)
        let words = Int64(NA_LB_PORTS_COMPLETE) + 1
        XCTAssertEqual(counts["na_lb_ports"], words, "an array counts every word")
    }

    func testFrontendPortsDecode() throws {
        try balancer.apply(web)
        var dns = web
        dns.id = 13
        dns.frontend = ServiceFrontend(address: IPAddress("10.96.0.10")!, port: 53, proto: IPProtocol.udp)
        try balancer.apply(dns)
        let words = try entries("na_lb_ports")
        XCTAssertEqual(words.count, 3)
        XCTAssertEqual(
            words.first { $0["key"]?["protocol"] == "TCP" },
            ["key": ["protocol": "TCP", "first-port": 64], "value": ["ports": [80]]])
        XCTAssertEqual(
            words.first { $0["key"]?["protocol"] == "UDP" },
            ["key": ["protocol": "UDP", "first-port": 0], "value": ["ports": [53]]])
        XCTAssertTrue(words.contains { $0["key"] == ["complete": true] })
    }

    func testServicesAndBackendsDecode() throws {
        try balancer.apply(web)
        let services = try entries("na_lb_services")
        let head = try XCTUnwrap(services.first { $0["key"]?["slot"]?.intValue == 0 })
        XCTAssertEqual(head["key"], ["frontend": "10.96.0.10:80/TCP", "slot": 0])
        XCTAssertEqual(
            head["value"], ["service-id": 12, "count": 4, "inactive": 1, "bank": 0, "affinity-timeout": 600])
        let slots = services.filter { $0["key"]?["slot"]?.intValue != 0 }
            .sorted { ($0["key"]?["slot"]?.intValue ?? 0) < ($1["key"]?["slot"]?.intValue ?? 0) }
        XCTAssertEqual(slots.map { $0["key"]?["slot"]?.intValue }, [1, 2, 3, 4, 5])
        XCTAssertEqual(slots.map { $0["key"]?["bank"]?.intValue }, [0, 0, 0, 0, 0])
        XCTAssertEqual(
            slots.map { $0["value"]?["backend"]?.stringValue },
            ["10.0.0.7:8080", "10.0.0.8:8080", "10.0.0.8:8080", "10.0.0.8:8080", "10.0.0.9:8080"])
        XCTAssertEqual(slots.map { $0["value"]?["position"]?.intValue }, [0, 1, 1, 1, 2])

        let backends = try entries("na_lb_backends")
        let byAddress = Dictionary(
            uniqueKeysWithValues: backends.compactMap { entry in
                entry["value"]?["address"]?.stringValue.map { ($0, entry) }
            })
        XCTAssertEqual(
            byAddress["10.0.0.8:8080"]?["value"],
            ["address": "10.0.0.8:8080", "protocol": "TCP", "state": "active", "weight": 3])
        XCTAssertEqual(byAddress["10.0.0.9:8080"]?["value"]?["state"], "terminating")
        let id8 = try XCTUnwrap(byAddress["10.0.0.8:8080"]?["key"]?["backend-id"]?.intValue)
        XCTAssertEqual(slots[1]["value"]?["backend-id"]?.intValue, id8)

        // The terminating backend takes no new connections: affinity may not send anyone there.
        let matches = try entries("na_lb_aff_match").compactMap { $0["key"] }
        XCTAssertEqual(
            Set(matches.compactMap { $0["backend-id"]?.intValue }),
            Set(["10.0.0.7:8080", "10.0.0.8:8080"].compactMap { byAddress[$0]?["key"]?["backend-id"]?.intValue }))
        XCTAssertEqual(Set(matches.compactMap { $0["service-id"]?.intValue }), [12])

        // A new set goes into bank 1; the view of the maps follows.
        var next = web
        next.backends = [ServiceBackend(address: IPAddress("10.0.0.9")!, port: 8080)]
        try balancer.apply(next)
        let swapped = try entries("na_lb_services")
        XCTAssertEqual(swapped.count, 2)
        XCTAssertEqual(swapped.first { $0["key"]?["slot"]?.intValue == 0 }?["value"]?["bank"], 1)
        XCTAssertEqual(
            swapped.first { $0["key"]?["slot"]?.intValue == 1 }?["key"],
            ["frontend": "10.96.0.10:80/TCP", "slot": 1, "bank": 1])
        XCTAssertEqual(try entries("na_lb_aff_match").count, 1)
    }

    func testRevnatAndAffinityEntriesDecode() throws {
        try balancer.apply(web)
        let id8 = try XCTUnwrap(balancer.backends.entries().first { $0.value.weight == 3 }?.key)
        // Entries as the hooks write them.
        var revnatKey = na_lb_revnat_key()
        revnatKey.cookie = 4242
        revnatKey.family = IPAddress.Family.ipv4.rawValue
        setTupleBytes(&revnatKey.addr, IPAddress("10.0.0.8")!.keyBytes)
        revnatKey.port = UInt16(8080).bigEndian
        var revnatValue = na_lb_revnat_value()
        revnatValue.family = IPAddress.Family.ipv4.rawValue
        setTupleBytes(&revnatValue.addr, IPAddress("10.96.0.10")!.keyBytes)
        revnatValue.port = UInt16(80).bigEndian
        revnatValue.service_id = 12
        try balancer.revnat.update(revnatKey, revnatValue)
        let affinity = try TypedMap<na_lb_affinity_key, na_lb_affinity_value>(datapath.map("na_lb_affinity"))
        try affinity.update(
            na_lb_affinity_key(netns_cookie: 77, service_id: 12, pad: 0),
            na_lb_affinity_value(backend_id: id8, last_used: MonotonicClock.seconds() - 5))

        XCTAssertEqual(
            try entries("na_lb_revnat"),
            [
                [
                    "key": ["cookie": 4242, "backend": "10.0.0.8:8080"],
                    "value": ["frontend": "10.96.0.10:80", "service-id": 12],
                ]
            ])
        let decoded = try XCTUnwrap(try entries("na_lb_affinity").first)
        XCTAssertEqual(decoded["key"], ["netns-cookie": 77, "service-id": 12])
        XCTAssertEqual(decoded["value"]?["backend-id"]?.intValue, Int64(id8))
        let idle = try XCTUnwrap(decoded["value"]?["idle-seconds"]?.intValue)
        XCTAssertTrue((5...6).contains(idle), "idle \(idle)")

        // The tc path's affinity, by client address.
        let byAddress = try TypedMap<na_lb_aff_ip_key, na_lb_affinity_value>(datapath.map("na_lb_aff_ip"))
        var clientKey = na_lb_aff_ip_key()
        setTupleBytes(&clientKey.addr, IPAddress("fd00::7")!.keyBytes)
        clientKey.family = IPAddress.Family.ipv6.rawValue
        clientKey.service_id = 12
        try byAddress.update(clientKey, na_lb_affinity_value(backend_id: id8, last_used: MonotonicClock.seconds()))
        let client = try XCTUnwrap(try entries("na_lb_aff_ip").first)
        XCTAssertEqual(client["key"], ["client": "fd00::7", "service-id": 12])
        XCTAssertEqual(client["value"]?["backend-id"]?.intValue, Int64(id8))
    }
}
