import DatapathCore
import Policy
import XCTest

@testable import Agent

/// Decoding `na_flow_event`s into flows with the agent's knowledge: pods, identities, rules, world and CIDR peers.
final class FlowContextTests: XCTestCase {
    private var identities = IdentityAllocator()
    private var policy = PolicyRepository()
    private var endpoints = EndpointTable()
    private var frontendIdentity: UInt32 = 0
    private var backendIdentity: UInt32 = 0

    override func setUpWithError() throws {
        frontendIdentity = try identities.acquire(
            LabelSet(parsing: ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"])
        ).id
        backendIdentity = try identities.acquire(
            LabelSet(parsing: ["k8s:app=backend-api", "k8s:io.kubernetes.pod.namespace=api-tier"])
        ).id
        endpoints[1] = endpoint(1, "10.244.1.1", "web-tier", "frontend", frontendIdentity)
        endpoints[2] = endpoint(2, "10.244.1.2", "api-tier", "backend-api", backendIdentity)
        try policy.apply([
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": "allow-frontend-to-backend", "namespace": "web-tier"],
            "spec": [
                "endpointSelector": ["matchLabels": ["app": "frontend"]],
                "egress": [
                    ["toCIDR": ["198.51.100.0/24", "198.51.100.10/32"]],
                    ["toEndpoints": [["matchLabels": ["app": "backend-api"]]]],
                ],
            ],
        ])
    }

    private func endpoint(
        _ id: UInt32, _ ip: String, _ namespace: String, _ pod: String, _ identity: UInt32
    ) -> Endpoint {
        Endpoint(
            id: id, interfaceName: "lxc\(id)", ifindex: Int32(id + 10), ipv4: IPAddress(ip), ipv6: nil,
            labels: LabelSet(), k8sNamespace: namespace, k8sPodName: pod, containerID: nil, identity: identity,
            state: .ready, policyRevision: 1, enforceIngress: true, enforceEgress: true)
    }

    private func event(
        from source: String, to destination: String, egress: Bool = true, endpoint: UInt32 = 1, sourceIdentity: UInt32,
        destinationIdentity: UInt32, reason: na_reason = NA_DROP_POLICY, rule: UInt32 = 0
    ) -> na_flow_event {
        var event = na_flow_event()
        event.timestamp_ns = 5_000_000_000
        setTupleBytes(&event.saddr, IPAddress(source)!.bytes)
        setTupleBytes(&event.daddr, IPAddress(destination)!.bytes)
        event.sport = UInt16(41234).bigEndian
        event.dport = UInt16(9090).bigEndian
        event.proto = 6
        event.family = UInt8(NA_FAMILY_IPV4)
        event.direction = UInt8(egress ? NA_DIR_EGRESS.rawValue : NA_DIR_INGRESS.rawValue)
        event.verdict = UInt8(
            reason == NA_REASON_FORWARDED ? NA_VERDICT_FORWARDED.rawValue : NA_VERDICT_DROPPED.rawValue)
        event.reason = UInt16(reason.rawValue)
        event.ep_id = endpoint
        event.src_identity = sourceIdentity
        event.dst_identity = destinationIdentity
        event.rule_id = rule
        event.ifindex = endpoint + 10
        event.length = 74
        return event
    }

    private var context: FlowContext { FlowContext(endpoints: endpoints, identities: identities, policy: policy) }

    /// The flow `context` makes of an event between two addresses, with the identities (source, destination).
    private func decode(
        _ context: FlowContext, from source: String, to destination: String, egress: Bool = true,
        endpoint: UInt32 = 1, identities: (UInt32, UInt32)
    ) -> Flow {
        let event = event(
            from: source, to: destination, egress: egress, endpoint: endpoint, sourceIdentity: identities.0,
            destinationIdentity: identities.1)
        return context.flow(from: event, wallOffset: 0)
    }

    func testPodToPodDropIsEnrichedOnBothSides() {
        let flow = context.flow(
            from: event(
                from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: frontendIdentity,
                destinationIdentity: backendIdentity),
            wallOffset: 1_700_000_000_000_000_000)
        XCTAssertEqual(flow.time, 1_700_000_005_000_000_000, "monotonic time plus the wall-clock offset")
        XCTAssertEqual(flow.verdict, .dropped)
        XCTAssertEqual(flow.reason, "policy denied")
        XCTAssertEqual(flow.reasonCode, 133)
        XCTAssertEqual(flow.direction, .egress)
        XCTAssertEqual(flow.source.pod, "web-tier/frontend")
        XCTAssertEqual(flow.source.endpoint, 1)
        XCTAssertEqual(flow.source.port, 41234)
        XCTAssertEqual(flow.source.labels, ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"])
        XCTAssertEqual(flow.destination.pod, "api-tier/backend-api")
        XCTAssertEqual(flow.destination.endpoint, 2)
        XCTAssertEqual(flow.destination.port, 9090)
        XCTAssertEqual(flow.destination.identity, backendIdentity)
        XCTAssertNil(flow.rule)
    }

    func testAPodOfAnotherNodeIsNamedWithItsNode() {
        let remote = [
            IPAddress("10.244.2.7")!: RemoteEndpoint(
                identity: backendIdentity, node: "node2", nodeAddress: IPAddress("192.168.86.2"),
                namespace: "api-tier", pod: "backend-api-2")
        ]
        let context = FlowContext(endpoints: endpoints, identities: identities, policy: policy, remote: remote)
        let flow = context.flow(
            from: event(
                from: "10.244.1.1", to: "10.244.2.7", sourceIdentity: frontendIdentity,
                destinationIdentity: backendIdentity),
            wallOffset: 0)
        XCTAssertEqual(flow.destination.pod, "api-tier/backend-api-2")
        XCTAssertEqual(flow.destination.name, "api-tier/backend-api-2")
        XCTAssertEqual(flow.destination.node, "node2")
        XCTAssertNil(flow.destination.endpoint, "not an endpoint of this node")
        XCTAssertEqual(flow.json["destination"]?["pod-name"]?.stringValue, "backend-api-2")
        XCTAssertEqual(flow.json["destination"]?["namespace"]?.stringValue, "api-tier")
        XCTAssertEqual(flow.json["destination"]?["node"]?.stringValue, "node2")
        XCTAssertNil(flow.source.node, "a local pod has no node")
        XCTAssertNil(flow.json["source"]?["node"])
    }

    func testRuleNameOfTheDecidingRule() throws {
        let id = try XCTUnwrap(
            policy.ruleNames.first { $0.value == "web-tier/allow-frontend-to-backend egress[1]" }?.key)
        let flow = context.flow(
            from: event(
                from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: frontendIdentity,
                destinationIdentity: backendIdentity, reason: NA_REASON_FORWARDED, rule: id),
            wallOffset: 0)
        XCTAssertEqual(flow.verdict, .forwarded)
        XCTAssertEqual(flow.reason, "forwarded")
        XCTAssertEqual(flow.rule, "web-tier/allow-frontend-to-backend egress[1]")
        XCTAssertNil(
            context.flow(
                from: event(
                    from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: 1, destinationIdentity: 2, rule: 9999),
                wallOffset: 0
            ).rule, "a rule no longer in force has no name")
    }

    func testWorldAndCIDRPeers() {
        let world = context.flow(
            from: event(
                from: "10.244.1.1", to: "93.184.216.34", sourceIdentity: frontendIdentity, destinationIdentity: 2),
            wallOffset: 0)
        XCTAssertEqual(world.destination.name, "world")
        XCTAssertEqual(world.destination.labels, ["reserved:world"])
        XCTAssertNil(world.destination.pod)

        // The most specific policy prefix holding the address names a CIDR identity.
        let cidrIdentity = UInt32(NA_ID_LOCAL_CIDR_BASE) + 3
        for (address, prefix) in [("198.51.100.10", "198.51.100.10/32"), ("198.51.100.77", "198.51.100.0/24")] {
            let flow = context.flow(
                from: event(
                    from: "10.244.1.1", to: address, sourceIdentity: frontendIdentity,
                    destinationIdentity: cidrIdentity),
                wallOffset: 0)
            XCTAssertEqual(flow.destination.name, prefix)
            XCTAssertEqual(flow.destination.labels, ["cidr:\(prefix)", "reserved:world"])
        }
        let unknown = context.flow(
            from: event(from: "10.244.1.1", to: "10.9.9.9", sourceIdentity: frontendIdentity, destinationIdentity: 0),
            wallOffset: 0)
        XCTAssertEqual(unknown.destination.name, "10.9.9.9", "no identity, no pod: the address")
        XCTAssertEqual(unknown.destination.labels, [])
    }

    func testSpoofedSourceIsAttributedToTheReportingEndpoint() {
        let flow = context.flow(
            from: event(
                from: "10.66.6.6", to: "10.244.1.2", sourceIdentity: frontendIdentity,
                destinationIdentity: backendIdentity, reason: NA_DROP_INVALID_SIP),
            wallOffset: 0)
        XCTAssertEqual(flow.reason, "invalid source ip")
        XCTAssertEqual(flow.source.ip.description, "10.66.6.6")
        XCTAssertEqual(flow.source.pod, "web-tier/frontend", "the endpoint that sent it")
    }

    func testIngressFlowsAttributeTheEndpointToTheDestination() {
        let flow = context.flow(
            from: event(
                from: "93.184.216.34", to: "10.244.1.2", egress: false, endpoint: 2, sourceIdentity: 2,
                destinationIdentity: backendIdentity),
            wallOffset: 0)
        XCTAssertEqual(flow.direction, .ingress)
        XCTAssertEqual(flow.source.name, "world")
        XCTAssertNil(flow.source.endpoint)
        XCTAssertEqual(flow.destination.endpoint, 2)
        XCTAssertEqual(flow.destination.pod, "api-tier/backend-api")
    }

    // A context makes each peer once and gives it back for later flows: the cases below prove that what it is
    // keyed by tells apart every peer that differs.

    func testTheSameAddressWithAnotherIdentityIsAnotherPeer() {
        let context = context
        let first = context.flow(
            from: event(
                from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: frontendIdentity,
                destinationIdentity: backendIdentity),
            wallOffset: 0)
        let second = context.flow(
            from: event(
                from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: backendIdentity, destinationIdentity: 2),
            wallOffset: 0)
        XCTAssertEqual(first.source.labels, ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"])
        XCTAssertEqual(second.source.identity, backendIdentity)
        XCTAssertEqual(second.source.labels, ["k8s:app=backend-api", "k8s:io.kubernetes.pod.namespace=api-tier"])
        XCTAssertEqual(second.source.pod, "web-tier/frontend", "the address still names the endpoint")
        XCTAssertEqual(second.destination.identity, 2)
        XCTAssertEqual(second.destination.labels, ["reserved:world"])
    }

    func testTheSameIdentityFromAnotherAddressIsAnotherPeer() {
        let context = context
        let identities = (backendIdentity, frontendIdentity)
        let local = decode(context, from: "10.244.1.2", to: "10.244.1.1", egress: false, identities: identities)
        let elsewhere = decode(context, from: "10.244.9.9", to: "10.244.1.1", egress: false, identities: identities)
        XCTAssertEqual(local.source.pod, "api-tier/backend-api")
        XCTAssertEqual(local.source.endpoint, 2)
        XCTAssertEqual(elsewhere.source.ip.description, "10.244.9.9")
        XCTAssertNil(elsewhere.source.pod, "no endpoint has the address")
        XCTAssertNil(elsewhere.source.endpoint)
        XCTAssertEqual(elsewhere.source.name, "10.244.9.9")
        XCTAssertEqual(elsewhere.source.labels, local.source.labels, "the identity's labels, whatever the address")

        // IPv6: addresses that differ only in their last byte.
        let v6 = ["fd00::1", "fd00::2"].map { address in
            var flow = event(from: address, to: "fd00::ff", sourceIdentity: 2, destinationIdentity: 2)
            flow.family = UInt8(NA_FAMILY_IPV6)
            return context.flow(from: flow, wallOffset: 0).source.ip.description
        }
        XCTAssertEqual(v6, ["fd00::1", "fd00::2"])
    }

    func testAnIPv4AddressIsItsFirstFourBytes() {
        let context = context
        var padded = event(
            from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: frontendIdentity, destinationIdentity: backendIdentity
        )
        withUnsafeMutableBytes(of: &padded.saddr) { $0[4] = 0xAA }
        let clean = event(
            from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: frontendIdentity, destinationIdentity: backendIdentity
        )
        XCTAssertEqual(context.flow(from: padded, wallOffset: 0), context.flow(from: clean, wallOffset: 0))
        XCTAssertEqual(context.flow(from: padded, wallOffset: 0).source.ip.description, "10.244.1.1")
    }

    func testTheReportingEndpointStandsInOnlyForItsOwnSide() {
        let context = context
        // Egress from endpoint 1 with a source no endpoint has (spoofed): the source is endpoint 1's.
        let spoofed = decode(
            context, from: "10.66.6.6", to: "10.244.1.2", endpoint: 1, identities: (frontendIdentity, backendIdentity))
        // The same source address and identity reported by endpoint 2: endpoint 2 stands in.
        let spoofedAtTwo = decode(
            context, from: "10.66.6.6", to: "10.244.1.1", endpoint: 2, identities: (frontendIdentity, frontendIdentity)
        )
        // And arriving (ingress) at endpoint 2: the reporting endpoint is the destination's, the source has none.
        let arriving = decode(
            context, from: "10.66.6.6", to: "10.244.1.2", egress: false, endpoint: 2,
            identities: (frontendIdentity, backendIdentity))
        XCTAssertEqual(spoofed.source.pod, "web-tier/frontend")
        XCTAssertEqual(spoofed.source.endpoint, 1)
        XCTAssertEqual(spoofedAtTwo.source.pod, "api-tier/backend-api")
        XCTAssertEqual(spoofedAtTwo.source.endpoint, 2)
        XCTAssertNil(arriving.source.pod)
        XCTAssertNil(arriving.source.endpoint)
        XCTAssertEqual(arriving.source.name, "10.66.6.6")
        XCTAssertEqual(arriving.destination.pod, "api-tier/backend-api")
    }

    func testAContextTakenAfterAPodIsRenamedShowsTheNewName() {
        let before = context
        let event = event(
            from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: frontendIdentity, destinationIdentity: backendIdentity
        )
        XCTAssertEqual(before.flow(from: event, wallOffset: 0).source.pod, "web-tier/frontend")
        endpoints[1]?.k8sPodName = "frontend-7d4b9"
        let after = context
        XCTAssertEqual(after.flow(from: event, wallOffset: 0).source.pod, "web-tier/frontend-7d4b9")
        XCTAssertEqual(after.flow(from: event, wallOffset: 0).source.name, "web-tier/frontend-7d4b9")
        XCTAssertEqual(
            before.flow(from: event, wallOffset: 0).source.pod, "web-tier/frontend", "a context is a snapshot")
    }

    func testChangingOneFlowsPeerLeavesOtherFlowsAsTheyWere() {
        let context = context
        let event = event(
            from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: frontendIdentity, destinationIdentity: backendIdentity
        )
        var first = context.flow(from: event, wallOffset: 0)
        let second = context.flow(from: event, wallOffset: 0)
        first.source.pod = "elsewhere/other"
        first.source.labels.append("k8s:extra=1")
        XCTAssertEqual(first.source.pod, "elsewhere/other")
        XCTAssertEqual(first.source.labels.last, "k8s:extra=1")
        XCTAssertNotEqual(first, second)
        XCTAssertEqual(second.source.pod, "web-tier/frontend")
        XCTAssertEqual(context.flow(from: event, wallOffset: 0).source.pod, "web-tier/frontend")
        XCTAssertEqual(context.flow(from: event, wallOffset: 0).source.labels.count, 2)
    }

    func testPortsAreEachFlowsOwn() {
        let context = context
        let ports = (0..<3).map { index in
            var event = event(
                from: "10.244.1.1", to: "10.244.1.2", sourceIdentity: frontendIdentity,
                destinationIdentity: backendIdentity)
            event.sport = UInt16(50_000 + index).bigEndian
            event.dport = UInt16(80 + index).bigEndian
            let flow = context.flow(from: event, wallOffset: 0)
            return [flow.source.port, flow.destination.port]
        }
        XCTAssertEqual(ports, [[50_000, 80], [50_001, 81], [50_002, 82]])
    }

    /// Whatever came before, a context gives each event the flow a new context would make for it.
    func testRememberedPeersEqualNewlyMadeOnes() {
        let shared = context
        let addresses = ["10.244.1.1", "10.244.1.2", "10.66.6.6", "93.184.216.34", "198.51.100.10", "198.51.100.77"]
        let identities = [frontendIdentity, backendIdentity, 2, UInt32(NA_ID_LOCAL_CIDR_BASE) + 3, 0]
        // Every pairing of the lists above comes up, most of them more than once.
        for index in 0..<720 {
            let event = event(
                from: addresses[index % 6], to: addresses[index / 6 % 6], egress: index / 36 % 2 == 0,
                endpoint: UInt32(index / 72 % 4), sourceIdentity: identities[index * 7 % 5],
                destinationIdentity: identities[(index * 3 + 1) % 5])
            XCTAssertEqual(shared.flow(from: event, wallOffset: 0), context.flow(from: event, wallOffset: 0))
        }
    }

    func testMorePeersThanTheMemoKeepsAreStillEachTheirOwn() {
        let context = context
        for index in 0..<5000 {
            let address = "203.0.\(index / 256).\(index % 256)"
            let flow = context.flow(
                from: event(from: "10.244.1.1", to: address, sourceIdentity: frontendIdentity, destinationIdentity: 2),
                wallOffset: 0)
            if flow.destination.ip.description != address || flow.source.pod != "web-tier/frontend" {
                XCTFail("flow \(index): \(flow)")
                break
            }
        }
    }

    func testEveryReasonHasAName() {
        XCTAssertEqual(FlowReasons.names.count, 24)
        for (code, name) in FlowReasons.names {
            XCTAssertFalse(name.isEmpty)
            XCTAssertFalse(name.contains("unknown"), "\(code)")
            XCTAssertNotEqual(name, "reason \(code)", "every code of enum na_reason has a real name")
        }
        XCTAssertEqual(Set(FlowReasons.names.values).count, 24, "names are unique, so reason=<name> is unambiguous")
    }
}
