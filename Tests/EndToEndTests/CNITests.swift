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

    private func startAgentWithIPAM(in topology: Topology, plugins extra: [String: JSON] = [:]) throws
        -> AgentProcess
    {
        let config = NSTemporaryDirectory() + "nodeagent-cni-\(topology.tag).json"
        var plugins: [String: JSON] = [
            "ipam": ["cluster-pool-ipv4-cidr": ["10.250.0.0/16"], "cluster-pool-ipv4-mask-size": 24, "node-index": 0]
        ]
        plugins.merge(extra) { _, new in new }
        let json: JSON = ["plugins": .object(plugins)]
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
    private static func cni(
        _ command: String, _ binary: String, topology: Topology, container: String, netns: String?,
        pod: (namespace: String, name: String)?, config: String
    ) throws -> CommandResult {
        var environment = [
            "CNI_COMMAND=\(command)", "CNI_CONTAINERID=\(container)", "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin",
        ]
        if let netns { environment.append("CNI_NETNS=\(netns)") }
        if let pod { environment.append("CNI_ARGS=K8S_POD_NAMESPACE=\(pod.namespace);K8S_POD_NAME=\(pod.name)") }
        return try Shell.capture(
            [
                "nsenter", "--net=/var/run/netns/\(topology.nodeNetns)", "env", "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            ]
                + environment + [binary],
            input: config, timeout: 30)
    }

    /// Validates a result document against the CNI result schema with Python's jsonschema.
    private func assertValidResult(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let schema = try fixture("cni-result.schema.json")
        let script =
            "import json,sys,jsonschema; jsonschema.validate(json.load(sys.stdin), json.load(open(sys.argv[1])))"
        let check = try Shell.capture(["python3", "-c", script, schema], input: text)
        XCTAssertEqual(
            check.status, 0, "CNI result does not match the schema: \(check.stderr)\n\(text)", file: file, line: line)
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
        let version = try Self.cni(
            "VERSION", binary, topology: topology, container: "", netns: nil, pod: nil,
            config: #"{"cniVersion":"1.0.0"}"#)
        XCTAssertEqual(version.status, 0, version.stdout)
        XCTAssertEqual(
            Set(try JSON.parse(version.stdout)["supportedVersions"]?.arrayValue?.compactMap(\.stringValue) ?? []),
            ["0.4.0", "1.0.0", "1.1.0"])
        let status = try Self.cni(
            "STATUS", binary, topology: topology, container: "", netns: nil, pod: nil,
            config: networkConfig(agent))
        XCTAssertEqual(status.status, 0, status.stdout)
        let down = try Self.cni(
            "STATUS", binary, topology: topology, container: "", netns: nil, pod: nil,
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
            let result = try Self.cni(
                "ADD", binary, topology: topology, container: container, netns: "/var/run/netns/\(netns)", pod: pod,
                config: networkConfig(
                    agent, labels: ["app": role], extra: ["named-ports": [["name": "http", "port": 8080]]]))
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
        XCTAssertEqual(
            endpoints.first { $0["k8s-pod-name"]?.stringValue == "pod3" }?["labels"]?.arrayValue?
                .compactMap(\.stringValue).contains("k8s:app=client"), true)
        XCTAssertEqual(
            endpoints.first { $0["k8s-pod-name"]?.stringValue == "pod3" }?["named-ports"],
            [["name": "http", "port": 8080, "protocol": "TCP"]], "named-ports from the network configuration")

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
                "ingress": [
                    [
                        "fromEndpoints": [["matchLabels": ["k8s:io.kubernetes.pod.namespace": "clients"]]],
                        "toPorts": [["ports": [["port": "8080", "protocol": "TCP"]]]],
                    ]
                ],
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
        let check = try Self.cni(
            "CHECK", binary, topology: topology, container: wired[0].container,
            netns: "/var/run/netns/\(wired[0].netns)", pod: wired[0].pod, config: networkConfig(agent))
        XCTAssertEqual(check.status, 0, check.stdout)
        _ = try Shell.run(["ip", "-n", wired[1].netns, "address", "flush", "dev", "eth0"])
        let broken = try Self.cni(
            "CHECK", binary, topology: topology, container: wired[1].container,
            netns: "/var/run/netns/\(wired[1].netns)", pod: wired[1].pod, config: networkConfig(agent))
        XCTAssertNotEqual(broken.status, 0, "CHECK must notice the missing address")

        // DEL everything, twice, one of them after an agent restart: nothing may remain.
        for (index, pod) in wired.enumerated() {
            if index == 25 { try agent.restart() }
            let result = try Self.cni(
                "DEL", binary, topology: topology, container: pod.container, netns: "/var/run/netns/\(pod.netns)",
                pod: pod.pod, config: networkConfig(agent))
            XCTAssertEqual(result.status, 0, "DEL \(index): \(result.stdout)")
        }
        let again = try Self.cni(
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
        // What stays are the spare maps made ahead of creates: a bounded number, all empty.
        let pins = try FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot).filter { $0.hasPrefix("na_pol_") }
        XCTAssertLessThanOrEqual(pins.count, 2 * 64 + 8, "no pod's policy map remains")
        for pin in pins { XCTAssertEqual(try agent.mapEntries(pin).count, 0, "\(pin) is an empty spare") }
        let ipcache = try agent.api(.GET, "/v1/map/na_ipcache?limit=10000").json?["entries"]?.arrayValue ?? []
        XCTAssertFalse(
            ipcache.contains {
                $0["key"]?["prefix"]?.stringValue?.hasPrefix("10.250.0.") == true
                    && $0["value"]?["identity"]?.intValue != 1
            }, "no pod address remains in the ipcache")
    }

    /// The whole path a runtime sets up: the pod's address comes from IPAM (none is picked by the test), and a host
    /// outside the cluster, with no route to pods, sees the node's address and answers it.
    func testPodWithAnIPAMAddressReachesTheWorldThroughNAT() throws {
        let topology = try makeTopology()
        let world = try topology.addExternalHost(ipv4: "198.51.100.30", routeToPods: false)
        let server = try TCPServer(on: world, port: 7100, in: topology)
        let agent = try startAgentWithIPAM(
            in: topology,
            plugins: ["nat": ["interface": .string(world.hostInterface), "cluster-cidrs": ["10.250.0.0/16"]]])
        let binary = try cniBinary(near: agent)
        let netns = try topology.addContainerNamespace()
        let added = try Self.cni(
            "ADD", binary, topology: topology, container: "nat\(topology.tag)", netns: "/var/run/netns/\(netns)",
            pod: ("default", "client"), config: networkConfig(agent, labels: ["app": "client"]))
        XCTAssertEqual(added.status, 0, added.stdout)
        let address = try XCTUnwrap(
            try JSON.parse(added.stdout)["ips"]?[0]?["address"]?.stringValue?.split(separator: "/").first)
        let pod = CNIPod(netns: netns, ipv4: String(address))

        let result = try tcpConnect(from: pod, to: world, port: 7100)
        XCTAssertTrue(result.passed, "IPAM pod → world through NAT: \(result)")
        XCTAssertEqual(server.peers, [world.nodeIPv4], "the world sees the node's address, not \(address)")
        let mappings = try agent.api(.GET, "/v1/nat").json?["mappings"]?.arrayValue ?? []
        XCTAssertTrue(mappings.contains { $0["original"]?["address"]?.stringValue == String(address) }, "\(mappings)")
    }

    /// Chaining, as a conflist runs it: nodeagent-cni first, then Debian's portmap plugin with our result as its
    /// prevResult. A host outside the cluster reaches the pod's server through the node's host port.
    func testChainsWithThePortmapPlugin() throws {
        let portmap = "/usr/lib/cni/portmap"
        guard FileManager.default.isExecutableFile(atPath: portmap) else {
            throw XCTSkip("containernetworking-plugins is not installed (scripts/setup.sh installs it)")
        }
        let topology = try makeTopology()
        let world = try topology.addExternalHost(ipv4: "198.51.100.40")
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        let netns = try topology.addContainerNamespace()
        let container = "pm\(topology.tag)"
        let pod = (namespace: "default", name: "web")
        let added = try Self.cni(
            "ADD", binary, topology: topology, container: container, netns: "/var/run/netns/\(netns)", pod: pod,
            config: networkConfig(agent))
        XCTAssertEqual(added.status, 0, added.stdout)
        let address = try XCTUnwrap(
            try JSON.parse(added.stdout)["ips"]?[0]?["address"]?.stringValue?.split(separator: "/").first)
        _ = try TCPServer(on: CNIPod(netns: netns, ipv4: String(address)), port: 8080, in: topology)

        let chained: JSON = [
            "cniVersion": "1.0.0", "name": "nodeagent", "type": "portmap", "capabilities": ["portMappings": true],
            "runtimeConfig": ["portMappings": [["hostPort": 18080, "containerPort": 8080, "protocol": "tcp"]]],
            "prevResult": try JSON.parse(added.stdout),
        ]
        let mapped = try Self.cni(
            "ADD", portmap, topology: topology, container: container, netns: "/var/run/netns/\(netns)", pod: pod,
            config: chained.serialized())
        XCTAssertEqual(mapped.status, 0, "portmap ADD: \(mapped.stdout) \(mapped.stderr)")
        topology.onDestroy {
            _ = try? Self.cni(
                "DEL", portmap, topology: topology, container: container, netns: nil, pod: pod,
                config: chained.serialized())
        }
        let node = NodeHost(netns: topology.nodeNetns, ipv4: world.nodeIPv4)
        let result = try tcpConnect(from: world, to: node, port: 18080)
        XCTAssertTrue(result.passed, "world → node:18080 → pod:8080 through portmap: \(result)")

        let unmapped = try Self.cni(
            "DEL", portmap, topology: topology, container: container, netns: "/var/run/netns/\(netns)", pod: pod,
            config: chained.serialized())
        XCTAssertEqual(unmapped.status, 0, unmapped.stdout)
        let removed = try Self.cni(
            "DEL", binary, topology: topology, container: container, netns: "/var/run/netns/\(netns)", pod: pod,
            config: networkConfig(agent))
        XCTAssertEqual(removed.status, 0, removed.stdout)
        XCTAssertFalse(try tcpConnect(from: world, to: node, port: 18080, timeout: 0.5).passed, "mapping gone")
    }

    /// ADD through the plugin in a new container namespace; fails the test unless it succeeds.
    private func addPod(
        _ binary: String, _ agent: AgentProcess, topology: Topology, container: String,
        pod: (namespace: String, name: String), file: StaticString = #filePath, line: UInt = #line
    ) throws -> Wired {
        let netns = try topology.addContainerNamespace()
        let result = try Self.cni(
            "ADD", binary, topology: topology, container: container, netns: "/var/run/netns/\(netns)", pod: pod,
            config: networkConfig(agent))
        XCTAssertEqual(result.status, 0, "ADD \(container): \(result.stdout) \(result.stderr)", file: file, line: line)
        let address = try XCTUnwrap(
            try JSON.parse(result.stdout)["ips"]?[0]?["address"]?.stringValue?.split(separator: "/").first,
            file: file, line: line)
        return Wired(container: container, netns: netns, pod: pod, address: String(address))
    }

    private func allocations(_ agent: AgentProcess) throws -> [JSON] {
        try agent.api(.GET, "/v1/ipam").json?["allocations"]?.arrayValue ?? []
    }

    private func hostVeths(_ topology: Topology) throws -> [String] {
        let links = try Shell.run(["ip", "-n", topology.nodeNetns, "-o", "link", "show"])
        return links.split(separator: "\n").compactMap { line in
            line.split(separator: ":").dropFirst().first.map {
                String($0.trimmingCharacters(in: .whitespaces).split(separator: "@")[0])
            }
        }.filter { $0.hasPrefix("lxc") }
    }

    /// A pod's sandbox is replaced (same namespace/pod, new container id) and the runtime's DEL of the old one
    /// comes late: it must neither release nor fail on the new sandbox's address. Addresses are owned by the
    /// container id; namespace/pod is recorded beside it.
    func testLateDelOfAnOldSandboxLeavesItsSuccessorAlone() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        let pod = (namespace: "web", name: "frontend")
        let old = try addPod(binary, agent, topology: topology, container: "old\(topology.tag)", pod: pod)
        let new = try addPod(binary, agent, topology: topology, container: "new\(topology.tag)", pod: pod)
        let client = try addPod(
            binary, agent, topology: topology, container: "cl\(topology.tag)", pod: (namespace: "web", name: "client"))
        XCTAssertNotEqual(old.address, new.address)
        let held = try allocations(agent).first { $0["ip"]?.stringValue == new.address }
        XCTAssertEqual(held?["owner"]?.stringValue, new.container, "the container id owns the address")
        XCTAssertEqual(held?["pod"]?.stringValue, "web/frontend", "namespace/pod is recorded beside it")

        let late = try Self.cni(
            "DEL", binary, topology: topology, container: old.container, netns: "/var/run/netns/\(old.netns)",
            pod: pod, config: networkConfig(agent))
        XCTAssertEqual(late.status, 0, "late DEL of the old sandbox: \(late.stdout)")
        let remaining = try allocations(agent).compactMap { $0["ip"]?.stringValue }
        XCTAssertFalse(remaining.contains(old.address), "the old sandbox's address is released: \(remaining)")
        XCTAssertTrue(remaining.contains(new.address), "the new sandbox keeps its address: \(remaining)")
        let endpoints = try agent.api(.GET, "/v1/endpoint").json?.arrayValue ?? []
        XCTAssertEqual(
            Set(endpoints.compactMap { $0["container-id"]?.stringValue }), [new.container, client.container])
        let check = try Self.cni(
            "CHECK", binary, topology: topology, container: new.container, netns: "/var/run/netns/\(new.netns)",
            pod: pod, config: networkConfig(agent))
        XCTAssertEqual(check.status, 0, "the new sandbox is intact: \(check.stdout)")
        let newHost = CNIPod(netns: new.netns, ipv4: new.address)
        _ = try TCPServer(on: newHost, port: 8080, in: topology)
        assertReachability(
            [Probe(from: CNIPod(netns: client.netns, ipv4: client.address), to: newHost, port: 8080, .passes)],
            "the new sandbox still serves")

        // A DEL for a container nobody knows succeeds and frees nothing, even under the same namespace/pod.
        let before = try allocations(agent).count
        let unknown = try Self.cni(
            "DEL", binary, topology: topology, container: "ghost\(topology.tag)", netns: nil, pod: pod,
            config: networkConfig(agent))
        XCTAssertEqual(unknown.status, 0, "DEL of an unknown container: \(unknown.stdout)")
        XCTAssertEqual(try allocations(agent).count, before)
        XCTAssertEqual(try agent.api(.GET, "/v1/endpoint").json?.arrayValue?.count, 2)
    }

    /// After an upgrade, a pod wired by the previous version holds an allocation owned by namespace/pod with no
    /// `pod` attribute. It restores, CHECK accepts it, a DEL of another container of that pod leaves it, and the DEL
    /// of its own container releases it through the container's endpoint.
    func testAllocationsFromBeforeThePodAttributeAreReleasedByTheirContainersDel() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        let pod = (namespace: "web", name: "legacy")
        let wired = try addPod(binary, agent, topology: topology, container: "leg\(topology.tag)", pod: pod)
        let endpoint = try XCTUnwrap(
            try agent.api(.GET, "/v1/endpoint").json?.arrayValue?.first?["id"]?.intValue)

        // Rewrite the allocation as the previous version recorded it, while the agent is down.
        agent.stop()
        let log = try XCTUnwrap(
            FileManager.default.enumerator(atPath: agent.stateDirectory)?.compactMap { $0 as? String }
                .first { $0.hasSuffix("ledger.log") }.map { "\(agent.stateDirectory)/\($0)" })
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        let lastSequence = try XCTUnwrap(
            lines.last.flatMap { try? JSON.parse(String($0.dropFirst(9))) }?["seq"]?.intValue)
        let record: JSON = [
            "seq": .int(lastSequence + 1),
            "put": [
                ["ip": .string(wired.address), "owner": "web/legacy", "endpoint": .int(endpoint), "allocated-at-ms": 1]
            ],
        ]
        let text = record.serialized()
        let crc = String(Self.crc32(Array(text.utf8)), radix: 16)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: log))
        try handle.seekToEnd()
        let line = String(repeating: "0", count: 8 - crc.count) + crc + " " + text + "\n"
        try handle.write(contentsOf: Data(line.utf8))
        try handle.close()
        try agent.restart()

        let restored = try allocations(agent).first { $0["ip"]?.stringValue == wired.address }
        XCTAssertEqual(restored?["owner"]?.stringValue, "web/legacy")
        XCTAssertNil(restored?["pod"])
        let check = try Self.cni(
            "CHECK", binary, topology: topology, container: wired.container, netns: "/var/run/netns/\(wired.netns)",
            pod: pod, config: networkConfig(agent))
        XCTAssertEqual(check.status, 0, check.stdout)
        let other = try Self.cni(
            "DEL", binary, topology: topology, container: "other\(topology.tag)", netns: nil, pod: pod,
            config: networkConfig(agent))
        XCTAssertEqual(other.status, 0, other.stdout)
        XCTAssertEqual(try allocations(agent).count, 1, "another container of the pod frees nothing")
        let own = try Self.cni(
            "DEL", binary, topology: topology, container: wired.container, netns: "/var/run/netns/\(wired.netns)",
            pod: pod, config: networkConfig(agent))
        XCTAssertEqual(own.status, 0, own.stdout)
        XCTAssertEqual(try allocations(agent).count, 0, "its own container's DEL releases it")
        XCTAssertEqual(try hostVeths(topology), [])
    }

    /// CRC-32 as the ledger writes it (zlib's polynomial).
    private static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// GC with `cni.dev/valid-attachments`: everything of the attachments not listed goes (endpoint, address,
    /// veth), the listed one stays and still carries traffic.
    func testGCReleasesEveryAttachmentNotListedAsValid() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        var pods: [Wired] = []
        for index in 0..<3 {
            pods.append(
                try addPod(
                    binary, agent, topology: topology, container: "gc\(topology.tag)\(index)",
                    pod: (namespace: "gc", name: "pod\(index)")))
        }
        let kept = pods[1]
        let keptVeth = try XCTUnwrap(
            try agent.api(.GET, "/v1/endpoint").json?.arrayValue?
                .first { $0["container-id"]?.stringValue == kept.container }?["interface-name"]?.stringValue)
        XCTAssertEqual(Set(try hostVeths(topology)).count, 3)

        let malformed = try Self.cni(
            "GC", binary, topology: topology, container: "", netns: nil, pod: nil,
            config: networkConfig(
                agent, extra: ["cniVersion": "1.1.0", "cni.dev/valid-attachments": [["ifname": "eth0"]]]))
        XCTAssertEqual(try JSON.parse(malformed.stdout)["code"]?.intValue, 7, malformed.stdout)
        XCTAssertTrue(malformed.stdout.contains("containerID"), malformed.stdout)
        XCTAssertEqual(try agent.api(.GET, "/v1/endpoint").json?.arrayValue?.count, 3, "a refused GC changes nothing")

        // Left by an ADD that died part-way: an address with no endpoint, a veth with no endpoint. An address some
        // other client allocated (no pod) is not the plugin's and stays.
        let leaked = try agent.api(.POST, "/v1/ipam?family=ipv4&owner=dead\(topology.tag)&pod=gc/dead")
        XCTAssertEqual(leaked.status, 201, leaked.body)
        let manual = try XCTUnwrap(
            try agent.api(.POST, "/v1/ipam?family=ipv4&owner=operator").json?["address"]?["ipv4"]?.stringValue)
        _ = try Shell.run([
            "ip", "-n", topology.nodeNetns, "link", "add", "lxc0123456789ab", "type", "veth", "peer", "name",
            "gcpeer\(topology.tag)",
        ])

        let valid: JSON = [["containerID": .string(kept.container), "ifname": "eth0"]]
        let gc = try Self.cni(
            "GC", binary, topology: topology, container: "", netns: nil, pod: nil,
            config: networkConfig(agent, extra: ["cniVersion": "1.1.0", "cni.dev/valid-attachments": valid]))
        XCTAssertEqual(gc.status, 0, "GC: \(gc.stdout) \(gc.stderr)")

        let endpoints = try agent.api(.GET, "/v1/endpoint").json?.arrayValue ?? []
        XCTAssertEqual(endpoints.compactMap { $0["container-id"]?.stringValue }, [kept.container])
        XCTAssertEqual(
            try allocations(agent).compactMap { $0["ip"]?.stringValue }.sorted(), [kept.address, manual].sorted())
        XCTAssertEqual(try hostVeths(topology), [keptVeth])

        let check = try Self.cni(
            "CHECK", binary, topology: topology, container: kept.container, netns: "/var/run/netns/\(kept.netns)",
            pod: kept.pod, config: networkConfig(agent))
        XCTAssertEqual(check.status, 0, "the valid attachment is untouched: \(check.stdout)")
        let client = try addPod(
            binary, agent, topology: topology, container: "gcc\(topology.tag)", pod: (namespace: "gc", name: "client"))
        let keptHost = CNIPod(netns: kept.netns, ipv4: kept.address)
        _ = try TCPServer(on: keptHost, port: 8080, in: topology)
        assertReachability(
            [Probe(from: CNIPod(netns: client.netns, ipv4: client.address), to: keptHost, port: 8080, .passes)],
            "the valid attachment still serves")
    }

    /// CHECK reads addresses and routes from the kernel: a pod that lost its default route, or a node that lost
    /// the route to the pod, fails CHECK even though every address is still in place.
    func testCheckVerifiesRoutesOnBothSides() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        let pod = try addPod(
            binary, agent, topology: topology, container: "chk\(topology.tag)", pod: ("default", "chk"))
        func check() throws -> CommandResult {
            try Self.cni(
                "CHECK", binary, topology: topology, container: pod.container, netns: "/var/run/netns/\(pod.netns)",
                pod: pod.pod, config: networkConfig(agent))
        }
        XCTAssertEqual(try check().status, 0)

        _ = try Shell.run(["ip", "-n", pod.netns, "route", "del", "default"])
        let noDefault = try check()
        XCTAssertNotEqual(noDefault.status, 0, "CHECK must notice the missing default route")
        XCTAssertTrue(noDefault.stdout.contains("default route"), noDefault.stdout)
        _ = try Shell.run(["ip", "-n", pod.netns, "route", "add", "default", "via", "10.250.0.1", "dev", "eth0"])
        XCTAssertEqual(try check().status, 0, "restored")

        _ = try Shell.run(["ip", "-n", topology.nodeNetns, "route", "del", "\(pod.address)/32"])
        let noHostRoute = try check()
        XCTAssertNotEqual(noHostRoute.status, 0, "CHECK must notice the node's missing route to the pod")
        XCTAssertTrue(noHostRoute.stdout.contains("no route to \(pod.address)"), noHostRoute.stdout)
    }

    /// A wiring step that fails after the veth exists (the pod already has a default route) undoes the steps
    /// before it: no veth, no address, no endpoint remain.
    func testAddFailingPartWayThroughWiringLeavesNothingBehind() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        let netns = try topology.addContainerNamespace()
        for command in [
            ["link", "add", "d0", "type", "veth", "peer", "name", "d1"], ["link", "set", "d0", "up"],
            ["address", "add", "192.0.2.1/24", "dev", "d0"], ["route", "add", "default", "via", "192.0.2.254"],
        ] {
            _ = try Shell.run(["ip", "-n", netns] + command)
        }
        let result = try Self.cni(
            "ADD", binary, topology: topology, container: "part\(topology.tag)", netns: "/var/run/netns/\(netns)",
            pod: ("default", "part"), config: networkConfig(agent))
        XCTAssertNotEqual(result.status, 0, result.stdout)
        XCTAssertEqual(try JSON.parse(result.stdout)["code"]?.intValue, 101, result.stdout)
        XCTAssertEqual(try allocations(agent).count, 0, "the address went back")
        XCTAssertEqual(try agent.api(.GET, "/v1/endpoint").json?.arrayValue?.count, 0)
        XCTAssertEqual(try hostVeths(topology), [], "the veth went away")
        let inside = try Shell.run(["ip", "-n", netns, "-o", "link", "show"])
        XCTAssertFalse(inside.contains("eth0"), inside)
    }

    /// A 0.4.0 result names each address's family in `ips[].version`; 1.0.0 dropped the field.
    func testResultsFor040CarryTheIPVersion() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        let cases: [(String, JSON?)] = [("0.4.0", .string("4")), ("1.0.0", Optional<JSON>.none)]
        for (version, expected) in cases {
            let netns = try topology.addContainerNamespace()
            let result = try Self.cni(
                "ADD", binary, topology: topology, container: "v\(version.prefix(1))\(topology.tag)",
                netns: "/var/run/netns/\(netns)", pod: ("default", "v\(version.prefix(1))"),
                config: networkConfig(agent, extra: ["cniVersion": .string(version), "mtu": 1400]))
            XCTAssertEqual(result.status, 0, result.stdout)
            let json = try JSON.parse(result.stdout)
            let host = try XCTUnwrap(json["interfaces"]?[0]?["name"]?.stringValue)
            XCTAssertTrue(try Shell.run(["ip", "-n", netns, "link", "show", "eth0"]).contains("mtu 1400"), "pod MTU")
            XCTAssertTrue(
                try Shell.run(["ip", "-n", topology.nodeNetns, "link", "show", host]).contains("mtu 1400"), "host MTU")
            XCTAssertEqual(json["cniVersion"]?.stringValue, version)
            XCTAssertEqual(json["ips"]?[0]?["version"], expected, "cniVersion \(version): \(result.stdout)")
        }
    }

    /// Median wall time of 20 ADDs, each into a fresh namespace, as a runtime sees it (process start to exit).
    func testAddLatency() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        var samples: [Double] = []
        for index in 0..<20 {
            let netns = try topology.addContainerNamespace()
            let started = ContinuousClock.now
            let result = try Self.cni(
                "ADD", binary, topology: topology, container: "lat\(topology.tag)\(index)",
                netns: "/var/run/netns/\(netns)", pod: (namespace: "bench", name: "pod\(index)"),
                config: networkConfig(agent))
            let elapsed = ContinuousClock.now - started
            XCTAssertEqual(result.status, 0, result.stdout)
            samples.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
        }
        samples.sort()
        let median = (samples[9] + samples[10]) / 2
        print(
            String(
                format: "CNI ADD latency over 20 ADDs: median %.1f ms, min %.1f ms, max %.1f ms",
                median, samples[0], samples[19]))
        XCTAssertEqual(try agent.api(.GET, "/v1/endpoint").json?.arrayValue?.count, 20)
        XCTAssertLessThan(median, 5000, "an ADD takes seconds: something waits")
    }

    func testFailedAddLeavesNothingBehind() throws {
        let topology = try makeTopology()
        let agent = try startAgentWithIPAM(in: topology)
        let binary = try cniBinary(near: agent)
        let result = try Self.cni(
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

        let badConfig = try Self.cni(
            "ADD", binary, topology: topology, container: "x", netns: "/var/run/netns/\(topology.nodeNetns)",
            pod: nil, config: "{not json")
        XCTAssertEqual(try JSON.parse(badConfig.stdout)["code"]?.intValue, 6, badConfig.stdout)
        let badVersion = try Self.cni(
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
