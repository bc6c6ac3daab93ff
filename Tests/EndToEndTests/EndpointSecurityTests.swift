import AgentAPI
import Foundation
import XCTest

/// What a request may not make an endpoint: another identity (reserved labels, another namespace's label).
final class EndpointSecurityTests: EndToEndTestCase {
    private func changeRequest(_ pod: Pod, labels: [String]) -> JSON {
        var addressing: [String: JSON] = ["ipv4": .string(pod.ipv4)]
        if let ipv6 = pod.ipv6 { addressing["ipv6"] = .string(ipv6) }
        return [
            "interface-name": .string(pod.hostInterface), "addressing": .object(addressing), "labels": JSON(labels),
            "k8s-namespace": .string(pod.k8sNamespace), "k8s-pod-name": .string(pod.name),
        ]
    }

    /// Nothing of endpoint `id` or of `pod`'s addresses is in the agent or the datapath.
    private func assertNothingApplied(
        _ agent: AgentProcess, id: Int, pod: Pod, _ context: String,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        assertAPIError(
            try agent.api(.GET, "/v1/endpoint/\(id)"), status: 404, code: "not-found", context,
            file: file, line: line)
        XCTAssertEqual(try agent.mapEntries("na_endpoints").count, 0, context, file: file, line: line)
        let cache = try agent.ipcache()
        XCTAssertNil(cache[hostPrefix(pod.ipv4)], "\(context): \(cache)", file: file, line: line)
        let identities = try agent.getJSON("/v1/identity").arrayValue ?? []
        XCTAssertTrue(
            identities.allSatisfy { ($0["endpoints"]?.arrayValue ?? []).isEmpty }, "\(context): \(identities)",
            file: file, line: line)
    }

    func testReservedAndForeignNamespaceLabelsAreRefusedWithNothingApplied() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "a")
        let agent = try startAgent(in: topology)

        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/1", changeRequest(pod, labels: ["k8s:app=a", "reserved:host"])),
            status: 400, code: "invalid-field", field: "labels[1]", mentions: ["reserved:host"])
        try assertNothingApplied(agent, id: 1, pod: pod, "reserved:host")

        for label in ["k8s:io.kubernetes.pod.namespace=kube-system", "container:io.kubernetes.pod.namespace=other"] {
            assertAPIError(
                try agent.api(.PUT, "/v1/endpoint/1", changeRequest(pod, labels: [label, "k8s:app=a"])),
                status: 400, code: "invalid-field", field: "labels[0]", mentions: [label, "web-tier"], label)
            try assertNothingApplied(agent, id: 1, pod: pod, label)
        }

        // The body nodeagent-cni sends for a pod whose runtime labels claim another namespace.
        let cni: JSON = [
            "interface-name": .string(pod.hostInterface), "addressing": ["ipv4": .string(pod.ipv4)],
            "labels": ["k8s:app=a", "k8s:io.kubernetes.pod.namespace=kube-system"],
            "container-id": "0123456789abcdef", "k8s-namespace": "web-tier", "k8s-pod-name": "a",
        ]
        assertAPIError(
            try agent.api(.PUT, "/v1/endpoint/1", cni), status: 400, code: "invalid-field", field: "labels[1]",
            mentions: ["io.kubernetes.pod.namespace=kube-system"], "CNI-style request")
        try assertNothingApplied(agent, id: 1, pod: pod, "CNI-style request")

        // Its own namespace is redundant, and accepted.
        let created = try agent.api(
            .PUT, "/v1/endpoint/1",
            changeRequest(pod, labels: ["k8s:app=a", "k8s:io.kubernetes.pod.namespace=web-tier"]))
        XCTAssertEqual(created.status, 201, "\(created)")
        XCTAssertGreaterThanOrEqual(created.json?["identity"]?["id"]?.intValue ?? 0, 256, "\(created)")
    }

    func testPatchingLabelsCannotClaimAReservedIdentityOrAnotherNamespace() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "a")
        let agent = try startAgent(in: topology)
        let endpoint = try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=a"])

        assertAPIError(
            try agent.api(.PATCH, "/v1/endpoint/1/labels", ["add": ["k8s:x=y", "reserved:host"]]), status: 400,
            code: "invalid-field", field: "add[1]", mentions: ["reserved:host"])
        assertAPIError(
            try agent.api(.PATCH, "/v1/endpoint/1/labels", ["add": ["k8s:io.kubernetes.pod.namespace=kube-system"]]),
            status: 400, code: "invalid-field", field: "add[0]", mentions: ["kube-system"])
        assertAPIError(
            try agent.api(.PATCH, "/v1/endpoint/1/labels", ["labels": ["k8s:app=a", "reserved:world"]]), status: 400,
            code: "invalid-field", field: "labels[1]", mentions: ["reserved:world"])
        XCTAssertEqual(try agent.getJSON("/v1/endpoint/1"), endpoint, "nothing changed")
        XCTAssertEqual(try agent.ipcache()[hostPrefix(pod.ipv4)], endpoint["identity"]?["id"]?.intValue)

        let relabelled = try agent.api(.PATCH, "/v1/endpoint/1/labels", ["add": ["k8s:tier=web"]])
        XCTAssertEqual(relabelled.status, 200, "\(relabelled)")
    }

    func testASavedEndpointWithAReservedLabelIsNotRestored() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "a")
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=a"])
        agent.stop()
        // As an earlier version, which accepted the label, would have saved it.
        let path = "\(agent.stateDirectory)/endpoints/1.json"
        var saved = try XCTUnwrap(try JSON.parse(String(contentsOfFile: path, encoding: .utf8)).objectValue)
        saved["labels"] = ["k8s:app=a", "k8s:io.kubernetes.pod.namespace=web-tier", "reserved:host"]
        try JSON.object(saved).serialized().write(toFile: path, atomically: true, encoding: .utf8)

        try agent.start()
        try assertNothingApplied(agent, id: 1, pod: pod, "after restart")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "the record is removed")
        XCTAssertTrue(agent.stderrTail().contains("saved endpoint is refused"), agent.stderrTail())
    }

    func testOnlyVethInterfacesCanBecomeEndpoints() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "a")
        let node = topology.nodeNetns
        // Stand-ins for the node's own interfaces, in the node namespace the agent runs in. Not every kernel has
        // dummy interfaces; ifb and bridge are always there.
        var refused = ["lo": "without a driver"]
        for (name, type) in [
            ("ifb\(topology.tag)", "ifb"), ("br\(topology.tag)", "bridge"), ("dm\(topology.tag)", "dummy"),
        ] {
            let added = try Shell.capture(["ip", "-n", node, "link", "add", name, "type", type])
            if added.status == 0 { refused[name] = type } else { XCTAssertEqual(type, "dummy", "\(added)") }
        }
        let agent = try startAgent(in: topology)
        for (name, kind) in refused.sorted(by: { $0.key < $1.key }) {
            let request = changeRequest(pod, labels: ["k8s:app=a"]).setting("interface-name", .string(name))
            assertAPIError(
                try agent.api(.PUT, "/v1/endpoint/1", request), status: 400, code: "invalid-field",
                field: "interface-name", mentions: [name, kind, "only veth and netkit"], name)
            try assertNothingApplied(agent, id: 1, pod: pod, name)
            XCTAssertFalse(try TCFilters.show(name, "ingress", in: node).contains("bpf"), "no program on \(name)")
        }
        // The pod's veth is accepted.
        let created = try agent.api(.PUT, "/v1/endpoint/1", changeRequest(pod, labels: ["k8s:app=a"]))
        XCTAssertEqual(created.status, 201, "\(created)")
    }

    func testASavedEndpointOnLoopbackIsNotRestored() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "a")
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=a"])
        agent.stop()
        // As an earlier version, which accepted any interface, would have saved it.
        let path = "\(agent.stateDirectory)/endpoints/1.json"
        var saved = try XCTUnwrap(try JSON.parse(String(contentsOfFile: path, encoding: .utf8)).objectValue)
        saved["interface-name"] = "lo"
        saved["interface-index"] = 1
        try JSON.object(saved).serialized().write(toFile: path, atomically: true, encoding: .utf8)

        try agent.start()
        try assertNothingApplied(agent, id: 1, pod: pod, "after restart")
        XCTAssertFalse(try TCFilters.show("lo", "ingress", in: topology.nodeNetns).contains("bpf"))
        XCTAssertFalse(try TCFilters.show("lo", "egress", in: topology.nodeNetns).contains("bpf"))
        XCTAssertTrue(agent.stderrTail().contains("not a veth or netkit interface"), agent.stderrTail())
    }
}
