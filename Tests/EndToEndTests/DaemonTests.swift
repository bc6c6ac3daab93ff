import AgentAPI
import Foundation
import Glibc
import XCTest

/// The daemon itself, built and run in a node namespace, driven over its socket by curl and nodectl: health,
/// runtime configuration, routing errors, the map API, process lifecycle (signals, a second agent, stale sockets,
/// cleanup).
final class DaemonTests: EndToEndTestCase {
    static let coreMaps = [
        "na_endpoints": "hash", "na_ipcache": "lpm_trie", "na_policy": "hash_of_maps", "na_ct": "lru_hash",
        "na_metrics": "percpu_array", "na_config": "array", "na_ipcache_host": "hash",
        "na_policy_exact": "hash_of_maps",
    ]

    /// Core maps a plugin manages; the rest belong to the core.
    static let owners = ["na_ct": "conntrack-gc"]

    func testHealthzReportsVersionKernelBPFFSAndPlugins() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)

        let health = try agent.getJSON("/v1/healthz")
        XCTAssertEqual(health["status"], "ok")
        let version = try Shell.run([agent.binary, "--version"]).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(health["version"]?.stringValue, version, "the version the binary reports")
        let kernel = try Shell.run(["uname", "-r"]).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(health["kernel"]?["version"]?.stringValue, kernel)
        XCTAssertEqual(health["kernel"]?["status"], "ok", "\(health["kernel"] ?? nil)")
        let checks = health["kernel"]?["checks"]?.objectValue ?? [:]
        XCTAssertEqual(
            health["kernel"]?["problems"]?.arrayValue?.filter { $0["required"] == true }, [],
            "every required check passes here")
        XCTAssertEqual(checks["map-type ringbuf"], "ok")
        // The same checks, with their details, as the preflight without an agent reports them.
        let local = try agent.nodectl("preflight", "--bpf-root", agent.bpfRoot, "-o", "json")
        XCTAssertEqual(local.status, 0, local.stderr)
        let detailed = try JSON.parse(local.stdout)["checks"]?.arrayValue ?? []
        XCTAssertEqual(Set(checks.keys), Set(detailed.compactMap { $0["name"]?.stringValue }))
        XCTAssertEqual(detailed.first { $0["name"] == "map-type ringbuf" }?["needed-by"], ["core", "flows"])
        XCTAssertEqual(
            detailed.first { $0["name"] == "bpffs" }?["detail"]?.stringValue, "\(agent.bpfRoot) is on bpffs")
        XCTAssertEqual(health["bpffs"]?["root"]?.stringValue, agent.bpfRoot)
        XCTAssertEqual(health["bpffs"]?["mounted"], true)
        XCTAssertEqual(health["endpoints"], 0)
        XCTAssertNotNil(health["policy-revision"]?.intValue, "\(health)")
        XCTAssertGreaterThanOrEqual(health["uptime-seconds"]?.intValue ?? -1, 0, "\(health)")
        let plugins = health["plugins"]?.arrayValue ?? []
        XCTAssertEqual(
            Set(plugins.compactMap { $0["name"]?.stringValue }), ["conntrack-gc", "cidr-policy", "nat", "ipam"],
            "RouteSpecParityTests loads exactly these plugins: a newly linked plugin's routes belong there and in "
                + "openapi.yaml")
        let cidr = plugins.first { $0["name"] == "cidr-policy" }
        XCTAssertEqual(cidr?["enabled"], true, "\(plugins)")
        XCTAssertEqual(cidr?["state"], "running", "\(plugins)")

        let status = try agent.nodectl("status")
        XCTAssertEqual(status.status, 0, status.stderr)
        for text in ["ok", version, "\(kernel) (preflight ok)", "\(agent.bpfRoot) (mounted)", "cidr-policy", "running"]
        {
            XCTAssertTrue(status.stdout.contains(text), "nodectl status should show \(text):\n\(status.stdout)")
        }
        let json = try agent.nodectl("-o", "json", "status")
        XCTAssertEqual(json.status, 0, json.stderr)
        let parsed = try JSON.parse(json.stdout)
        XCTAssertEqual(parsed["kernel"], health["kernel"])
        XCTAssertEqual(parsed["plugins"]?.arrayValue?.count, plugins.count)
    }

    /// healthz is built at most once per second of uptime, yet a new endpoint or a runtime option shows at once.
    func testHealthzAnswersWithinASecondAreSharedButStateChangesShowAtOnce() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        let pod = try topology.addPod(namespace: "default", name: "probe", dualStack: false)

        var shared = false
        for _ in 0..<20 where !shared {
            let first = try agent.api(.GET, "/v1/healthz").body
            let second = try agent.api(.GET, "/v1/healthz").body
            shared = first == second
        }
        XCTAssertTrue(shared, "two answers in the same second are the same bytes")
        let before = try agent.getJSON("/v1/healthz")
        XCTAssertEqual(before["endpoints"], 0)
        _ = try agent.registerEndpoint(id: 1, pod: pod, labels: ["k8s:app=probe"])
        let after = try agent.getJSON("/v1/healthz")
        XCTAssertEqual(after["endpoints"], 1, "the new endpoint shows in the next answer: \(after)")
        XCTAssertNotEqual(after["policy-revision"], nil)

        XCTAssertEqual(try agent.api(.PATCH, "/v1/config", ["drop-event-interval": "7s"]).status, 200)
        XCTAssertEqual(try agent.getJSON("/v1/healthz")["datapath"]?["drop-event-interval"], "7s")
    }

    /// A pin root off bpffs (a directory of the test's own, on /tmp's disk) is a missing kernel requirement: the agent
    /// refuses to start, naming it and what needs it, before it creates or loads anything; `nodectl preflight`
    /// finds the same without an agent.
    func testRefusesToStartWhenAKernelRequirementIsMissing() throws {
        let topology = try makeTopology()
        guard AgentProcess.locate("nodeagent") != nil else { throw XCTSkip("nodeagent binary not built") }
        let directory = "\(Topology.temporaryDirectory)/na\(topology.tag)-pins"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pins = "\(directory)/nodeagent"
        // The last --bpf-root wins over the one the harness passes.
        let agent = try AgentProcess(topology: topology, extraArguments: ["--bpf-root", pins], start: false)
        let expected =
            "missing  bpffs (needed by core): \(pins) is not on a BPF filesystem (mount one with: mount -t bpf bpf "
            + "\(directory)); maps are pinned there so they outlive an agent restart"

        XCTAssertThrowsError(try agent.start()) { error in
            XCTAssertTrue("\(error)".contains("exited with status 1"), "\(error)")
        }
        XCTAssertEqual(agent.exitStatus, .exited(1))
        let stderr = agent.stderrTail()
        XCTAssertTrue(stderr.contains("kernel preflight: \(expected)"), stderr)
        XCTAssertTrue(stderr.contains("agent refuses to start: kernel preflight on "), stderr)
        XCTAssertTrue(stderr.contains(": 1 required feature(s) missing: bpffs"), stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: pins), "nothing is created before the preflight")
        XCTAssertFalse(FileManager.default.fileExists(atPath: agent.socketPath), "the API never served")

        let offline = try agent.nodectl("preflight", "--bpf-root", pins)
        XCTAssertEqual(offline.status, 1, offline.stderr)
        XCTAssertTrue(offline.stdout.contains("Status:    missing"), offline.stdout)
        XCTAssertTrue(offline.stderr.contains("1 required feature(s) missing: bpffs"), offline.stderr)
        let json = try agent.nodectl("-o", "json", "preflight", "--bpf-root", pins)
        let bpffs = try JSON.parse(json.stdout)["checks"]?.arrayValue?.first { $0["name"] == "bpffs" }
        XCTAssertEqual(bpffs?["status"], "missing")
        XCTAssertEqual(bpffs?["needed-by"], ["core"])

        let onBPFFS = try agent.nodectl("-o", "json", "preflight", "--bpf-root", agent.bpfRoot)
        XCTAssertEqual(onBPFFS.status, 0, onBPFFS.stdout + onBPFFS.stderr)
        XCTAssertEqual(try JSON.parse(onBPFFS.stdout)["status"], "ok")
        // Unprivileged, the probes cannot run: they are unknown, which refuses nothing and says so.
        if (try? Shell.executablePath("setpriv")) != nil, let nodectl = agent.nodectlBinary {
            let nobody = try Shell.capture(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", nodectl, "-o", "json", "preflight"])
            let checks = try JSON.parse(nobody.stdout)["checks"]?.arrayValue ?? []
            XCTAssertEqual(checks.first { $0["name"] == "map-type ringbuf" }?["status"], "unknown", nobody.stdout)
            XCTAssertEqual(nobody.status, 0, nobody.stderr)
            XCTAssertTrue(nobody.stderr.contains("could not be probed"), nobody.stderr)
            XCTAssertTrue(nobody.stderr.contains("run as root, as the agent runs"), nobody.stderr)
        }
        let daemon = try Shell.capture([agent.binary, "preflight", "--bpf-root", pins])
        XCTAssertEqual(daemon.status, 1, daemon.stdout)
        XCTAssertTrue(daemon.stdout.contains(expected), daemon.stdout)
    }

    func testConfigChangesAreValidatedAtomicAndSurviveARestart() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)

        let initial = try agent.getJSON("/v1/config")
        XCTAssertEqual(initial["policy-enforcement"], "default")
        XCTAssertEqual(initial["log-level"], "info")
        XCTAssertEqual(initial["allowed-flow-sampling"], 1, "every allowed new connection is reported")

        let patched = try agent.api(.PATCH, "/v1/config", ["policy-enforcement": "always", "log-level": "debug"])
        XCTAssertEqual(patched.status, 200, "\(patched)")
        let full: JSON = [
            "policy-enforcement": "always", "log-level": "debug", "allowed-flow-sampling": 1,
            "drop-event-interval": "1s", "allow-localhost": "always", "host-routing": "bpf",
        ]
        XCTAssertEqual(patched.json, full, "the full new config")
        for bad: JSON in [-1, 1_000_001, "all", 1.5] {
            assertAPIError(
                try agent.api(.PATCH, "/v1/config", ["allowed-flow-sampling": bad]), status: 400,
                code: "invalid-field", field: "allowed-flow-sampling", "\(bad)")
        }

        assertAPIError(
            try agent.api(.PATCH, "/v1/config", ["no-such-option": 1]), status: 400, code: "invalid-field",
            field: "no-such-option")
        assertAPIError(
            try agent.api(.PATCH, "/v1/config", ["log-level": "loud"]), status: 400, code: "invalid-field",
            field: "log-level", mentions: ["loud"])
        assertAPIError(
            try agent.api(.PATCH, "/v1/config", ["policy-enforcement": 3]), status: 400, code: "invalid-field",
            field: "policy-enforcement")
        assertAPIError(
            try agent.api(.PATCH, "/v1/config", ["log-level": "error", "policy-enforcement": "sometimes"]),
            status: 400, code: "invalid-field", field: "policy-enforcement", "one bad value in the patch")
        assertAPIError(
            try agent.api(.PATCH, "/v1/config", rawBody: "{bad"), status: 400, code: "invalid-json",
            mentions: ["line 1", "column", "byte"])
        assertAPIError(try agent.api(.PATCH, "/v1/config", rawBody: ""), status: 400, code: "invalid-json")
        assertAPIError(
            try agent.api(.PATCH, "/v1/config", ["array"]), status: 400, code: "invalid-field", "not an object")
        XCTAssertEqual(
            try agent.getJSON("/v1/config"), full, "rejected patches change nothing, not even their valid parts")

        XCTAssertEqual(agent.stop(), .exited(0))
        try agent.start()
        XCTAssertEqual(try agent.getJSON("/v1/config"), full, "the change persisted across a restart")
        let config = try agent.nodectl("-o", "json", "config", "get")
        XCTAssertEqual(config.status, 0, config.stderr)
        XCTAssertEqual(try JSON.parse(config.stdout)["policy-enforcement"], "always")
    }

    func testUnknownRoutesAre404AndWrongMethods405InTheErrorShape() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)

        assertAPIError(
            try agent.api(.GET, "/v1/no-such-route"), status: 404, code: "not-found", mentions: ["/v1/no-such-route"])
        assertAPIError(try agent.api(.GET, "/v2/healthz"), status: 404, code: "not-found")
        assertAPIError(try agent.api(.GET, "/v1/endpoint/1/nothing"), status: 404, code: "not-found")
        assertAPIError(
            try agent.api(.DELETE, "/v1/healthz"), status: 405, code: "method-not-allowed", mentions: ["DELETE", "GET"])
        assertAPIError(
            try agent.api(.POST, "/v1/endpoint/5"), status: 405, code: "method-not-allowed",
            mentions: ["GET", "PUT", "DELETE"])
        assertAPIError(
            try agent.api(.PUT, "/v1/config", ["log-level": "info"]), status: 405, code: "method-not-allowed")

        // The Allow header of a 405, as a raw HTTP client sees it.
        let headers = try Shell.run([
            "curl", "--silent", "--include", "--unix-socket", agent.socketPath, "--request", "DELETE",
            "http://localhost/v1/config",
        ])
        let allow = headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("allow:") }
        XCTAssertNotNil(allow, headers)
        for method in ["GET", "PATCH"] { XCTAssertTrue(allow?.contains(method) ?? false, "\(allow ?? "")") }
    }

    func testMapListShowsTheCoreMapsPinnedUnderTheBPFRoot() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)

        let maps = try agent.getJSON("/v1/map")["maps"]?.arrayValue ?? []
        let byName = Dictionary(maps.compactMap { map in map["name"]?.stringValue.map { ($0, map) } }) { a, _ in a }
        XCTAssertEqual(byName.count, maps.count, "map names are unique")
        for (name, type) in Self.coreMaps {
            guard let map = byName[name] else {
                XCTFail("GET /v1/map lacks \(name): \(byName.keys.sorted())")
                continue
            }
            XCTAssertEqual(map["type"]?.stringValue, type, name)
            XCTAssertEqual(map["owner"]?.stringValue, Self.owners[name] ?? "core", name)
            XCTAssertGreaterThan(map["max-entries"]?.intValue ?? 0, 0, name)
            XCTAssertGreaterThan(map["key-size"]?.intValue ?? 0, 0, name)
            let pin = "\(agent.bpfRoot)/\(name)"
            XCTAssertEqual(map["pinned"]?.stringValue, pin, name)
            var info = stat()
            XCTAssertEqual(stat(pin, &info), 0, "stat \(pin): \(String(cString: strerror(errno)))")
        }
        XCTAssertEqual(byName["na_config"]?["entries"], 1, "the config array has its one slot")
        XCTAssertEqual(byName["na_ipcache"]?["max-entries"], 512000)

        let table = try agent.nodectl("map", "list")
        XCTAssertEqual(table.status, 0, table.stderr)
        for name in Self.coreMaps.keys {
            XCTAssertTrue(table.stdout.contains(name), "nodectl map list shows \(name):\n\(table.stdout)")
        }
        let json = try agent.nodectl("-o", "json", "map", "list")
        XCTAssertEqual(json.status, 0, json.stderr)
        let listed = try JSON.parse(json.stdout)["maps"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        XCTAssertEqual(Set(listed), Set(byName.keys), "nodectl -o json map list lists what the API does")
    }

    func testMapDumpPagesWithACursorAndUnknownMapsAre404() throws {
        let topology = try makeTopology()
        let a = try topology.addPod(namespace: "web-tier", name: "a")
        let b = try topology.addPod(namespace: "web-tier", name: "b")
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 1, pod: a, labels: ["k8s:app=a"])
        try agent.registerEndpoint(id: 2, pod: b, labels: ["k8s:app=b"])

        let all = try agent.getJSON("/v1/map/na_ipcache")
        XCTAssertEqual(all["name"], "na_ipcache")
        XCTAssertEqual(all["next-cursor"], .null, "one page holds everything")
        let everything = all["entries"]?.arrayValue ?? []
        XCTAssertGreaterThanOrEqual(everything.count, 4, "both pods' IPv4 and IPv6 addresses: \(everything)")

        var paged: [JSON] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try agent.getJSON("/v1/map/na_ipcache?limit=1" + (cursor.map { "&cursor=\($0)" } ?? ""))
            let entries = page["entries"]?.arrayValue ?? []
            XCTAssertEqual(entries.count, 1, "limit=1 gives one entry per page: \(page)")
            paged += entries
            cursor = page["next-cursor"]?.stringValue
            pages += 1
        } while cursor != nil && pages <= everything.count
        XCTAssertEqual(pages, everything.count, "one page per entry, the last without next-cursor")
        XCTAssertEqual(Set(paged.map { $0.serialized() }), Set(everything.map { $0.serialized() }))

        let cache = try agent.ipcache()
        for (pod, endpoint) in [(a, try agent.getJSON("/v1/endpoint/1")), (b, try agent.getJSON("/v1/endpoint/2"))] {
            XCTAssertEqual(cache[hostPrefix(pod.ipv4)], endpoint["identity"]?["id"]?.intValue, "\(pod) in \(cache)")
            XCTAssertEqual(
                cache[hostPrefix(pod.ipv6 ?? "")], endpoint["identity"]?["id"]?.intValue, "\(pod) in \(cache)")
        }

        assertAPIError(
            try agent.api(.GET, "/v1/map/na_nothing"), status: 404, code: "not-found", mentions: ["na_nothing"])
        assertAPIError(
            try agent.api(.GET, "/v1/map/na_ipcache?cursor=xyz"), status: 400, code: "invalid-field", field: "cursor")
        assertAPIError(
            try agent.api(.GET, "/v1/map/na_ipcache?limit=0"), status: 400, code: "invalid-field", field: "limit")

        let get = try agent.nodectl("map", "get", "na_endpoints")
        XCTAssertEqual(get.status, 0, get.stderr)
        for index in [a.hostIfindex, b.hostIfindex] {
            XCTAssertTrue(get.stdout.contains("\(index)"), "nodectl map get na_endpoints shows ifindex \(index)")
        }
    }

    func testSIGTERMExitsCleanlyRemovingTheSocketAndKeepingPinsAndPrograms() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "a")
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 7, pod: pod, labels: ["k8s:app=a"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: agent.socketPath))

        XCTAssertEqual(agent.stop(), .exited(0), agent.stderrTail())
        XCTAssertFalse(FileManager.default.fileExists(atPath: agent.socketPath), "the socket is removed on exit")
        for name in Array(Self.coreMaps.keys) + ["na_pol_00007"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(agent.bpfRoot)/\(name)"), "pin \(name) is kept")
        }
        XCTAssertTrue(
            try TCFilters.hasProgram("from_endpoint", on: pod.hostInterface, "ingress", in: topology.nodeNetns))
        XCTAssertTrue(try TCFilters.hasProgram("to_endpoint", on: pod.hostInterface, "egress", in: topology.nodeNetns))
        XCTAssertTrue(agent.stderrTail().contains("shutting down"), agent.stderrTail())
    }

    func testASecondAgentOnTheSameSocketIsRefused() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        let otherRoot = agent.bpfRoot + "-second"
        defer { try? FileManager.default.removeItem(atPath: otherRoot) }

        let second = try Shell.capture(
            [
                "nsenter", "--net=\(Netns.path(topology.nodeNetns))", agent.binary, "--socket", agent.socketPath,
                "--state-dir", "\(agent.directory)/second-state", "--bpf-root", otherRoot,
            ], timeout: 10)
        XCTAssertNotEqual(second.status, 0, "a second agent must not start: \(second.stderr)")
        XCTAssertTrue(second.stderr.contains("another agent"), second.stderr)
        XCTAssertTrue(second.stderr.contains(agent.socketPath), second.stderr)
        XCTAssertTrue(agent.isRunning)
        XCTAssertEqual(try agent.api(.GET, "/v1/healthz").status, 200, "the first agent still serves")
    }

    func testAStaleSocketFileIsReplaced() throws {
        let topology = try makeTopology()
        let agent = try startAgent(in: topology)
        agent.kill(signal: SIGKILL)
        XCTAssertEqual(agent.waitForExit(), .signaled(SIGKILL))
        if FileManager.default.fileExists(atPath: agent.socketPath) {
            XCTAssertEqual(unlink(agent.socketPath), 0)
        }
        try makeStaleSocketFile(at: agent.socketPath)
        let refused = try Shell.capture(["curl", "--silent", "--unix-socket", agent.socketPath, "http://localhost/"])
        XCTAssertNotEqual(refused.status, 0, "nothing listens on the stale socket")

        try agent.start()
        XCTAssertEqual(try agent.api(.GET, "/v1/healthz").status, 200)
    }

    func testCleanupRemovesProgramsPinsAndState() throws {
        let topology = try makeTopology()
        let pod = try topology.addPod(namespace: "web-tier", name: "a")
        let agent = try startAgent(in: topology)
        try agent.registerEndpoint(id: 3, pod: pod, labels: ["k8s:app=a"])
        XCTAssertTrue(
            try TCFilters.hasProgram("from_endpoint", on: pod.hostInterface, "ingress", in: topology.nodeNetns))
        XCTAssertEqual(agent.stop(), .exited(0))

        let cleanup = try Shell.capture([
            "nsenter", "--net=\(Netns.path(topology.nodeNetns))", agent.binary, "cleanup", "--socket", agent.socketPath,
            "--state-dir", agent.stateDirectory, "--bpf-root", agent.bpfRoot,
        ])
        XCTAssertEqual(cleanup.status, 0, cleanup.stderr)
        XCTAssertTrue(cleanup.stdout.contains("removed 2 tc programs"), cleanup.stdout)
        for point in ["ingress", "egress"] {
            let filters = try TCFilters.show(pod.hostInterface, point, in: topology.nodeNetns)
            XCTAssertFalse(filters.contains("bpf"), "\(point) of \(pod.hostInterface) after cleanup:\n\(filters)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: agent.bpfRoot), "pins removed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: agent.stateDirectory), "state removed")
    }
}
