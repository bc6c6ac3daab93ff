import AgentAPI
import Foundation
import Glibc
import XCTest

/// The shipped deployment files against the real agent: the DaemonSet's pinned images, the per-node config its
/// render-config init container writes (pod CIDR by node name, metrics on the node's IP, scraped from another
/// host), and the capabilities it and the systemd unit grant, which must be enough and each one needed.
final class DeploymentTests: EndToEndTestCase {
    /// A directory for this test's scripts and files, removed with the topology.
    private func workDirectory(_ topology: Topology) throws -> String {
        let directory = "\(Topology.temporaryDirectory)/na\(topology.tag)-deploy"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        topology.onDestroy { try? FileManager.default.removeItem(atPath: directory) }
        return directory
    }

    private func agentBinary() throws -> String {
        guard let binary = AgentProcess.locate("nodeagent") else { throw XCTSkip("nodeagent binary not built") }
        return binary
    }

    func testImagesArePinnedToTheAgentVersionAndOnlyTheMountIsPrivileged() throws {
        let version = try Shell.run([try agentBinary(), "--version"]).trimmingCharacters(in: .whitespacesAndNewlines)
        let spec = try DeployFiles.podSpec()
        let containers = (spec["initContainers"]?.arrayValue ?? []) + (spec["containers"]?.arrayValue ?? [])
        XCTAssertEqual(containers.count, 4)
        for container in containers {
            let name = container["name"]?.stringValue ?? "?"
            XCTAssertEqual(container["image"]?.stringValue, "localhost/nodeagent:\(version)", name)
            XCTAssertEqual(container["imagePullPolicy"]?.stringValue, "IfNotPresent", name)
            let privileged = container["securityContext"]?["privileged"]?.boolValue ?? false
            XCTAssertEqual(privileged, name == "mount-bpf-fs", "\(name): privileged only to mount bpffs on the host")
        }
        let agent = try DeployFiles.container("nodeagent")
        XCTAssertEqual(agent["ports"]?[0]?["containerPort"]?.intValue, 9962)
        let annotations = try DeployFiles.resource("kubernetes/daemonset.yaml", kind: "DaemonSet", name: "nodeagent")[
            "spec"]?["template"]?["metadata"]?["annotations"]
        XCTAssertEqual(annotations?["prometheus.io/scrape"]?.stringValue, "true")
        XCTAssertEqual(annotations?["prometheus.io/port"]?.stringValue, "9962")
    }

    /// Runs the DaemonSet's render-config script as its container would, with the files it reads in `directory`.
    private func renderConfig(
        nodeName: String, hostIP: String, cidrs: [String: String], directory: String,
        template file: String = "kubernetes/configmap.yaml"
    ) throws -> (result: CommandResult, config: String) {
        let container = try DeployFiles.container("render-config")
        guard let script = container["args"]?[0]?.stringValue else { throw AgentHarnessError("no script") }
        var environment: [String: String] = [:]
        for variable in container["env"]?.arrayValue ?? [] {
            if let name = variable["name"]?.stringValue, let value = variable["value"]?.stringValue {
                environment[name] = value
            }
        }
        XCTAssertEqual(environment["METRICS_PORT"], "9962")
        let template = try DeployFiles.resource(file, kind: "ConfigMap", name: "nodeagent-config")
        guard let templateText = template["data"]?["config.json"]?.stringValue else {
            throw AgentHarnessError("ConfigMap nodeagent-config has no config.json")
        }
        let cidrDirectory = "\(directory)/node-cidrs"
        try? FileManager.default.removeItem(atPath: cidrDirectory)
        try FileManager.default.createDirectory(atPath: cidrDirectory, withIntermediateDirectories: true)
        for (node, cidr) in cidrs {
            try cidr.write(toFile: "\(cidrDirectory)/\(node)", atomically: true, encoding: .utf8)
        }
        try templateText.write(toFile: "\(directory)/template.json", atomically: true, encoding: .utf8)
        let output = "\(directory)/config.json"
        try? FileManager.default.removeItem(atPath: output)
        environment.merge(
            [
                "NODE_NAME": nodeName, "HOST_IP": hostIP, "NODE_CIDRS": cidrDirectory,
                "CONFIG_TEMPLATE": "\(directory)/template.json", "CONFIG_OUT": output,
            ], uniquingKeysWith: { $1 })
        let result = try Shell.capture(
            ["env", "-i"] + environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                + ["/bin/sh", "-c", script])
        return (result, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    func testRenderedNodeConfigGivesThePodCIDRAndServesMetricsOnTheNodeIP() throws {
        let topology = try makeTopology()
        let directory = try workDirectory(topology)
        // The scraper: another host that reaches the node only through the node's own address on their link.
        let scraper = try topology.addExternalHost(ipv4: "172.31.9.2", nodeIPv4: "172.31.9.1", routeToPods: false)
        let cidrs = ["node-a": "10.244.7.0/24", "node-b": "10.244.8.0/24"]

        let missing = try renderConfig(nodeName: "node-c", hostIP: scraper.nodeIPv4, cidrs: cidrs, directory: directory)
        XCTAssertNotEqual(missing.result.status, 0)
        XCTAssertTrue(missing.result.stderr.contains("node node-c has no pod CIDR"), missing.result.stderr)
        XCTAssertEqual(missing.config, "", "nothing is written for a node without a pod CIDR")

        let rendered = try renderConfig(
            nodeName: "node-b", hostIP: scraper.nodeIPv4, cidrs: cidrs, directory: directory)
        XCTAssertEqual(rendered.result.status, 0, rendered.result.stderr)
        let config = try JSON.parse(rendered.config)
        XCTAssertEqual(config["metrics-address"]?.stringValue, "172.31.9.1:9962")
        XCTAssertEqual(config["plugins"]?["ipam"]?["pod-cidr-ipv4"]?.stringValue, "10.244.8.0/24")

        // The config's socket, state and pin paths give way to the harness's own through the flags.
        let agent = try AgentProcess(topology: topology, configFile: "\(directory)/config.json")
        let health = try agent.api(.GET, "/v1/healthz")
        let ipam = health.json?["plugins"]?.arrayValue?.first { $0["name"] == "ipam" }
        XCTAssertEqual(ipam?["state"], "running", "\(health)")
        XCTAssertEqual(ipam?["detail"]?["ipv4"]?["pod-cidr"], "10.244.8.0/24")
        let allocation = try agent.api(.POST, "/v1/ipam?family=ipv4&owner=default/web")
        XCTAssertEqual(allocation.status, 201, "\(allocation)")
        XCTAssertEqual(allocation.json?["address"]?["ipv4"], "10.244.8.2", "\(allocation)")

        let scrape = try Shell.capture([
            "nsenter", "--net=\(Netns.path(scraper.netns))", "curl", "--silent", "--max-time", "5",
            "--write-out", "\n%{http_code}", "http://172.31.9.1:9962/metrics",
        ])
        XCTAssertEqual(scrape.status, 0, scrape.stderr)
        XCTAssertTrue(scrape.stdout.hasSuffix("\n200"), String(scrape.stdout.suffix(80)))
        XCTAssertTrue(scrape.stdout.contains("\nnodeagent_endpoints 0\n"), String(scrape.stdout.prefix(400)))
        XCTAssertTrue(
            agent.stderrTail().contains("metrics listening beyond this host, without authentication"),
            agent.stderrTail())
    }

    /// The cluster-mode ConfigMap renders without a pod CIDR entry (the node claims one in etcd), naming the node
    /// and its address; the agent reads its cluster section and refuses to start without the etcd certificate
    /// Secret, naming the option, rather than running standalone.
    func testClusterModeConfigRendersWithoutAPodCIDRAndNeedsItsEtcdCertificates() throws {
        let topology = try makeTopology()
        let directory = try workDirectory(topology)
        let rendered = try renderConfig(
            nodeName: "node-b", hostIP: "192.168.86.2", cidrs: [:], directory: directory,
            template: "kubernetes/configmap-cluster.yaml")
        XCTAssertEqual(rendered.result.status, 0, rendered.result.stderr)
        XCTAssertTrue(rendered.result.stdout.contains("pod CIDR claimed in etcd"), rendered.result.stdout)
        let config = try JSON.parse(rendered.config)
        XCTAssertEqual(config["cluster"]?["node-name"]?.stringValue, "node-b")
        XCTAssertEqual(config["cluster"]?["node-address"]?.stringValue, "192.168.86.2")
        XCTAssertEqual(config["metrics-address"]?.stringValue, "192.168.86.2:9962")
        XCTAssertNil(config["plugins"]?["ipam"]?["pod-cidr-ipv4"])
        XCTAssertFalse(rendered.config.contains("@"), "every placeholder replaced: \(rendered.config)")

        let agent = try AgentProcess(topology: topology, configFile: "\(directory)/config.json", start: false)
        XCTAssertThrowsError(try agent.start(timeout: 5))
        XCTAssertTrue(agent.stderrTail().contains("cluster.etcd.ca-file"), agent.stderrTail())
    }

    /// The capabilities the DaemonSet adds, and the systemd unit's bounding set: the same, as setpriv spells them.
    private func listedCapabilities() throws -> [String] {
        let added =
            (try DeployFiles.container("nodeagent")["securityContext"]?["capabilities"]?["add"]?.arrayValue)?
            .compactMap { $0.stringValue?.lowercased() } ?? []
        let bounding = try DeployFiles.unitValues("nodeagent.service", "CapabilityBoundingSet")
            .flatMap { $0.split(separator: " ") }.map { $0.lowercased().replacingOccurrences(of: "cap_", with: "") }
        XCTAssertEqual(Set(added), Set(bounding), "DaemonSet and systemd unit grant the same capabilities")
        XCTAssertFalse(added.isEmpty)
        return added.sorted()
    }

    /// An agent whose bounding set holds `capabilities` only: as root it then has exactly those.
    private func restrictedAgent(_ topology: Topology, _ capabilities: [String], directory: String, start: Bool)
        throws -> AgentProcess
    {
        let set = (["-all"] + capabilities.map { "+\($0)" }).joined(separator: ",")
        let name = capabilities.joined(separator: "-")
        let wrapper = try DeployFiles.wrapper(
            at: "\(directory)/agent-\(name).sh",
            "setpriv --inh-caps=-all --bounding-set=\(set) -- \(try agentBinary())")
        return try AgentProcess(topology: topology, binary: wrapper, start: start)
    }

    func testListedCapabilitiesAreEnoughAndEachIsNeeded() throws {
        try XCTSkipIf((try? Shell.executablePath("setpriv")) == nil, "needs setpriv (util-linux)")
        let topology = try makeTopology()
        let directory = try workDirectory(topology)
        let capabilities = try listedCapabilities()
        let client = try topology.addPod(namespace: "default", name: "client", dualStack: false)
        let server = try topology.addPod(namespace: "default", name: "server", dualStack: false)

        let agent = try restrictedAgent(topology, capabilities, directory: directory, start: true)
        let status = try String(contentsOfFile: "/proc/\(agent.pid ?? 0)/status", encoding: .utf8)
        let effective = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }
        XCTAssertEqual(
            effective.map { String($0.split(separator: "\t").last ?? "") }, capabilityMask(capabilities),
            "the agent runs with the listed capabilities only")
        try agent.registerEndpoint(id: 1, pod: client, labels: ["k8s:app=client"])
        try agent.registerEndpoint(id: 2, pod: server, labels: ["k8s:app=server"])
        let filters = try TCFilters.show(client.hostInterface, "ingress", in: topology.nodeNetns)
        XCTAssertTrue(filters.contains("from_endpoint"), "the endpoint program is attached: \(filters)")
        let imported = try agent.nodectl("policy", "import", try fixture("default-deny-all.yaml"))
        XCTAssertEqual(imported.status, 0, imported.stderr)
        try agent.waitForPolicyRevision()
        agent.cleanup()

        for missing in capabilities {
            let fewer = capabilities.filter { $0 != missing }
            let weaker = try restrictedAgent(topology, fewer, directory: directory, start: false)
            var failed = false
            do {
                try weaker.start(timeout: 10)
                let answer = try weaker.api(
                    .PUT, "/v1/endpoint/1",
                    [
                        "interface-name": .string(client.hostInterface), "addressing": ["ipv4": .string(client.ipv4)],
                        "labels": ["k8s:app=client"],
                    ])
                failed = answer.status >= 400
            } catch {
                failed = true
            }
            XCTAssertTrue(failed, "the agent works without CAP_\(missing.uppercased()): it need not be listed")
            weaker.cleanup()
        }
    }

    /// The unit's file-system sandbox as a mount namespace: everything read-only (as `ProtectSystem=strict` and
    /// `ProtectKernelTunables=` make it, and the DaemonSet's read-only root) but the directory holding the agent's
    /// socket and state (the unit's runtime and state directories) and bpffs; then no_new_privs and the capability
    /// bounding set, as `NoNewPrivileges=` and `CapabilityBoundingSet=` do.
    func testAgentWorksInsideTheUnitsSandbox() throws {
        try XCTSkipIf((try? Shell.executablePath("setpriv")) == nil, "needs setpriv (util-linux)")
        try XCTSkipIf((try? Shell.executablePath("unshare")) == nil, "needs unshare (util-linux)")
        let unit = "nodeagent.service"
        XCTAssertEqual(try DeployFiles.unitValues(unit, "ProtectSystem"), ["strict"])
        XCTAssertEqual(try DeployFiles.unitValues(unit, "ProtectKernelTunables"), ["yes"])
        XCTAssertEqual(try DeployFiles.unitValues(unit, "PrivateTmp"), ["yes"])
        XCTAssertEqual(try DeployFiles.unitValues(unit, "NoNewPrivileges"), ["yes"])
        XCTAssertEqual(try DeployFiles.unitValues(unit, "ReadWritePaths"), ["/sys/fs/bpf"])
        XCTAssertEqual(try DeployFiles.unitValues(unit, "Type"), ["notify"])
        let topology = try makeTopology()
        let directory = try workDirectory(topology)
        let set = (["-all"] + (try listedCapabilities()).map { "+\($0)" }).joined(separator: ",")
        // The harness keeps socket and state in one directory, the parent of --state-dir.
        let sandbox = [
            "for a; do if [ \"$p\" = --state-dir ]; then dir=$(dirname \"$a\"); fi; p=$a; done",
            "mount --bind \"$dir\" \"$dir\"", "mount -o remount,bind,ro /", "mount -o remount,bind,ro /sys",
            "mount --bind /proc/sys /proc/sys", "mount -o remount,bind,ro /proc/sys",
            "exec setpriv --no-new-privs --inh-caps=-all --bounding-set=\(set) -- \(try agentBinary()) \"$@\"",
        ].joined(separator: "; ")
        let wrapper = try DeployFiles.wrapper(
            at: "\(directory)/agent-sandboxed.sh", "unshare --mount --propagation private /bin/sh -e -c '\(sandbox)' sh"
        )
        let client = try topology.addPod(namespace: "default", name: "client", dualStack: false)

        let agent = try AgentProcess(topology: topology, binary: wrapper)
        let mounts = try String(contentsOfFile: "/proc/\(agent.pid ?? 0)/mountinfo", encoding: .utf8)
        let root = mounts.split(separator: "\n").map { $0.split(separator: " ") }.first { $0.count > 5 && $0[4] == "/" }
        XCTAssertTrue(root?[5].hasPrefix("ro") ?? false, "the agent sees / read-only: \(root ?? [])")
        let status = try String(contentsOfFile: "/proc/\(agent.pid ?? 0)/status", encoding: .utf8)
        XCTAssertTrue(status.contains("NoNewPrivs:\t1"), "no_new_privs is set")

        try agent.registerEndpoint(id: 5, pod: client, labels: ["k8s:app=client"])
        let imported = try agent.nodectl("policy", "import", try fixture("default-deny-all.yaml"))
        XCTAssertEqual(imported.status, 0, imported.stderr)
        try agent.waitForPolicyRevision()
        try agent.restart()
        let endpoints = try agent.api(.GET, "/v1/endpoint")
        XCTAssertEqual(endpoints.json?.arrayValue?.compactMap { $0["id"]?.intValue }, [5], "\(endpoints)")
        XCTAssertFalse(agent.stderrTail().contains("Read-only file system"), agent.stderrTail())
    }

    /// The CapEff mask (16 hex digits, as /proc shows it) of the named capabilities.
    private func capabilityMask(_ names: [String]) -> String {
        let numbers = ["net_admin": 12, "sys_admin": 21, "sys_resource": 24, "perfmon": 38, "bpf": 39, "net_raw": 13]
        let mask = names.reduce(UInt64(0)) { $0 | (UInt64(1) << UInt64(numbers[$1] ?? 63)) }
        return String(format: "%016llx", mask)
    }
}
