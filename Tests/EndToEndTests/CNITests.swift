import AgentAPI
import Foundation
import XCTest

/// nodeagent-cni driven exactly as a container runtime drives it: CNI_* environment, the network configuration on
/// stdin, run in the node's network namespace, against container namespaces the test creates.
final class CNITests: EndToEndTestCase {
    private static let podCIDR = "10.250.0.0/24"

    private func cniBinary(near agent: AgentProcess) throws -> String {
        guard let path = AgentProcess.locate("nodeagent-cni", near: agent.binary) else {
            throw XCTSkip("nodeagent-cni is not built")
        }
        return path
    }

    private func startAgentWithIPAM(in topology: Topology) throws -> AgentProcess {
        let config = NSTemporaryDirectory() + "nodeagent-cni-\(topology.tag).json"
        let json: JSON = [
            "plugins": [
                "ipam": [
                    "cluster-pool-ipv4-cidr": ["10.250.0.0/16"], "cluster-pool-ipv4-mask-size": 24, "node-index": 0,
                ]
            ]
        ]
        try json.serialized().write(toFile: config, atomically: true, encoding: .utf8)
        topology.onDestroy { try? FileManager.default.removeItem(atPath: config) }
        return try startAgent(in: topology, configFile: config)
    }

    private func networkConfig(_ agent: AgentProcess, labels: [String: String] = [:], extra: [String: JSON] = [:])
        -> String
    {
        var config: [String: JSON] = [
            "cniVersion": "1.0.0", "name": "nodeagent", "type": "nodeagent-cni", "socket": .string(agent.socketPath),
        ]
        if !labels.isEmpty {
            config["runtimeConfig"] = ["labels": .object(labels.mapValues { .string($0) })]
        }
        for (key, value) in extra { config[key] = value }
        return JSON.object(config).serialized()
    }

    /// Runs the plugin in the node namespace with the runtime's environment.
    private func cni(
        _ command: String, _ binary: String, topology: Topology, container: String, netns: String?,
        pod: (namespace: String, name: String)?, config: String
    ) throws -> CommandResult {
        var environment = [
            "CNI_COMMAND=\(command)", "CNI_CONTAINERID=\(container)", "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin",
        ]
        if let netns { environment.append("CNI_NETNS=\(netns)") }
        if let pod { environment.append("CNI_ARGS=K8S_POD_NAMESPACE=\(pod.namespace);K8S_POD_NAME=\(pod.name)") }
        return try Shell.capture(
            ["nsenter", "--net=/var/run/netns/\(topology.nodeNetns)", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
                + environment + [binary],
            input: config, timeout: 30)
    }

    /// Validates a result document against the CNI result schema with Python's jsonschema.
    private func assertValidResult(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let schema = try fixture("cni-result.schema.json")
        let script = "import json,sys,jsonschema; jsonschema.validate(json.load(sys.stdin), json.load(open(sys.argv[1])))"
        let check = try Shell.capture(["python3", "-c", script, schema], input: text)
        XCTAssertEqual(check.status, 0, "CNI result does not match the schema: \(check.stderr)\n\(text)", file: file, line: line)
    }

    private struct Wired {
        var container: String
        var netns: String
        var pod: (namespace: String, name: String)
        var address: String
    }

    func testVersionAndStatus() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        let version = try cni("VERSION", binary, topology: topology, container: "", netns: nil, pod: nil,
                              config: #"{"cniVersion":"1.0.0"}"#)
        XCTAssertEqual(version.status, 0, version.stdout)
        XCTAssertEqual(Set(try JSON.parse(version.stdout)["supportedVersions"]?.arrayValue?.compactMap(\.stringValue) ?? []),
                       ["0.4.0", "1.0.0", "1.1.0"])
        let status = try cni("STATUS", binary, topology: topology, container: "", netns: nil, pod: nil,
                             config: networkConfig(agent))
        XCTAssertEqual(status.status, 0, status.stdout)
        let down = try cni("STATUS", binary, topology: topology, container: "", netns: nil, pod: nil,
                           config: #"{"cniVersion":"1.1.0","name":"x","type":"nodeagent-cni","socket":"/nonexistent.sock"}"#)
        XCTAssertNotEqual(down.status, 0)
        XCTAssertEqual(try JSON.parse(down.stdout)["code"]?.intValue, 50, down.stdout)
    }

    func testFiftyPodsWiredPolicedAndRemoved() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)

        var wired: [Wired] = []
        for index in 0..<50 {
            let netns = try topology.addContainerNamespace()
            let pod = (namespace: index < 25 ? "clients" : "servers", name: "pod\(index)")
            let role = index < 25 ? "client" : "server"
            let container = "ctr\(topology.tag)\(index)"
            let result = try cni(
                "ADD", binary, topology: topology, container: container, netns: "/var/run/netns/\(netns)", pod: pod,
                config: networkConfig(agent, labels: ["app": role]))
            XCTAssertEqual(result.status, 0, "ADD \(index): \(result.stdout) \(result.stderr)")
            try assertValidResult(result.stdout)
            let json = try JSON.parse(result.stdout)
            let address = try XCTUnwrap(json["ips"]?[0]?["address"]?.stringValue?.split(separator: "/").first)
            XCTAssertTrue(address.hasPrefix("10.250.0."), "address from the pod CIDR: \(address)")
            XCTAssertEqual(json["interfaces"]?[1]?["sandbox"]?.stringValue, "/var/run/netns/\(netns)")
            wired.append(Wired(container: container, netns: netns, pod: pod, address: String(address)))
        }
        XCTAssertEqual(Set(wired.map(\.address)).count, 50, "every pod has its own address")

        let endpoints = try agent.api(.GET, "/v1/endpoint").json?.arrayValue ?? []
        XCTAssertEqual(endpoints.count, 50)
        XCTAssertEqual(endpoints.first { $0["k8s-pod-name"]?.stringValue == "pod3" }?["labels"]?.arrayValue?
            .compactMap(\.stringValue).contains("k8s:app=client"), true)

        // Connectivity, then policy: servers accept clients on 8080 only.
        let hosts = wired.map { CNIPod(netns: $0.netns, ipv4: $0.address) }
        for server in hosts[25...] { _ = try TCPServer(on: server, port: 8080, in: topology) }
        _ = try TCPServer(on: hosts[26], port: 9090, in: topology)
        assertReachability(
            [
                Probe(from: hosts[0], to: hosts[25], port: 8080, .passes),
                Probe(from: hosts[30], to: hosts[26], port: 9090, .passes),
            ], "no policy")
        let policy: JSON = [
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": ["name": "servers", "namespace": "servers"],
            "spec": [
                "endpointSelector": ["matchLabels": ["app": "server"]],
                "ingress": [[
                    "fromEndpoints": [["matchLabels": ["k8s:io.kubernetes.pod.namespace": "clients"]]],
                    "toPorts": [["ports": [["port": "8080", "protocol": "TCP"]]]],
                ]],
            ],
        ]
        XCTAssertEqual(try agent.api(.PUT, "/v1/policy", policy).status, 200)
        try agent.waitForPolicyRevision()
        assertReachability(
            [
                Probe(from: hosts[0], to: hosts[25], port: 8080, .passes),
                Probe(from: hosts[24], to: hosts[49], port: 8080, .passes),
                Probe(from: hosts[0], to: hosts[26], port: 9090, .dropped),
                Probe(from: hosts[30], to: hosts[25], port: 8080, .dropped),
            ], "servers accept clients on 8080 only")

        // CHECK verifies the wiring; it fails once the pod's address is gone.
        let check = try cni(
            "CHECK", binary, topology: topology, container: wired[0].container,
            netns: "/var/run/netns/\(wired[0].netns)", pod: wired[0].pod, config: networkConfig(agent))
        XCTAssertEqual(check.status, 0, check.stdout)
        _ = try Shell.run(["ip", "-n", wired[1].netns, "address", "flush", "dev", "eth0"])
        let broken = try cni(
            "CHECK", binary, topology: topology, container: wired[1].container,
            netns: "/var/run/netns/\(wired[1].netns)", pod: wired[1].pod, config: networkConfig(agent))
        XCTAssertNotEqual(broken.status, 0, "CHECK must notice the missing address")

        // DEL everything, twice, one of them after an agent restart: nothing may remain.
        for (index, pod) in wired.enumerated() {
            if index == 25 { try agent.restart() }
            let result = try cni(
                "DEL", binary, topology: topology, container: pod.container, netns: "/var/run/netns/\(pod.netns)",
                pod: pod.pod, config: networkConfig(agent))
            XCTAssertEqual(result.status, 0, "DEL \(index): \(result.stdout)")
        }
        let again = try cni(
            "DEL", binary, topology: topology, container: wired[0].container, netns: nil, pod: wired[0].pod,
            config: networkConfig(agent))
        XCTAssertEqual(again.status, 0, "DEL is idempotent: \(again.stdout)")

        XCTAssertEqual(try agent.api(.GET, "/v1/endpoint").json?.arrayValue?.count, 0)
        let ipam = try agent.api(.GET, "/v1/ipam")
        XCTAssertEqual(ipam.json?["allocations"]?.arrayValue?.count ?? -1, 0, ipam.body)
        let links = try Shell.run(["ip", "-n", topology.nodeNetns, "-o", "link", "show"])
        XCTAssertFalse(links.contains("lxc"), "no host-side veth remains: \(links)")
        let rows = try agent.api(.GET, "/v1/map/na_endpoints").json?["entries"]?.arrayValue ?? []
        XCTAssertEqual(rows.count, 0)
        let pins = try FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot).filter { $0.hasPrefix("na_pol_") }
        XCTAssertEqual(pins, [], "no per-endpoint policy map remains")
        let ipcache = try agent.api(.GET, "/v1/map/na_ipcache?limit=10000").json?["entries"]?.arrayValue ?? []
        XCTAssertFalse(ipcache.contains { $0["key"]?["prefix"]?.stringValue?.hasPrefix("10.250.0.") == true
            && $0["value"]?["identity"]?.intValue != 1 }, "no pod address remains in the ipcache")
    }

    func testFailedAddLeavesNothingBehind() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        let result = try cni(
            "ADD", binary, topology: topology, container: "broken\(topology.tag)",
            netns: "/var/run/netns/na\(topology.tag)-missing", pod: ("default", "broken"), config: networkConfig(agent))
        XCTAssertNotEqual(result.status, 0)
        let error = try JSON.parse(result.stdout)
        XCTAssertNotNil(error["code"]?.intValue, result.stdout)
        XCTAssertFalse(error["msg"]?.stringValue?.isEmpty ?? true, result.stdout)
        let ipam = try agent.api(.GET, "/v1/ipam")
        XCTAssertEqual(ipam.json?["allocations"]?.arrayValue?.count ?? -1, 0, "the address went back: \(ipam.body)")
        XCTAssertEqual(try agent.api(.GET, "/v1/endpoint").json?.arrayValue?.count, 0)
        let links = try Shell.run(["ip", "-n", topology.nodeNetns, "-o", "link", "show"])
        XCTAssertFalse(links.contains("lxc"), links)

        let badConfig = try cni(
            "ADD", binary, topology: topology, container: "x", netns: "/var/run/netns/\(topology.nodeNetns)",
            pod: nil, config: "{not json")
        XCTAssertEqual(try JSON.parse(badConfig.stdout)["code"]?.intValue, 6, badConfig.stdout)
        let badVersion = try cni(
            "ADD", binary, topology: topology, container: "x", netns: "/var/run/netns/\(topology.nodeNetns)",
            pod: nil, config: #"{"cniVersion":"0.1.0","name":"n","type":"nodeagent-cni"}"#)
        XCTAssertEqual(try JSON.parse(badVersion.stdout)["code"]?.intValue, 1, badVersion.stdout)
    }
}

/// A pod wired by the CNI plugin, as a traffic endpoint.
struct CNIPod: NetworkHost {
    var netns: String
    var ipv4: String
    var ipv6: String? { nil }
}
