import AgentAPI
import Foundation
import XCTest

/// The built `nodectl` binary: exit codes, standard error, and output against a scripted agent.
final class NodeCtlKitCommandTests: XCTestCase {
    /// The binary sits next to the test bundle in the build products directory.
    private static var binary: URL {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        // On Linux the bundle is the test executable itself; if inside a .xctest directory, go up to it.
        while directory.pathExtension == "xctest" || directory.lastPathComponent == "MacOS" {
            directory = directory.deletingLastPathComponent()
        }
        return directory.appendingPathComponent("nodectl")
    }

    private struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    private func run(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws
        -> Outcome
    {
        let binary = Self.binary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            XCTFail("nodectl not built at \(binary.path): run 'swift build --build-tests' (it builds nodectl too)")
            return Outcome(status: -1, stdout: "", stderr: "")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NODEAGENT_SOCK"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    func testMissingAgentExitsOneWithTheReason() throws {
        let path = "/tmp/nodectl-test-absent-\(getpid()).sock"
        let invocations = [
            ["--socket", path, "status"], ["status", "--socket", path],
            ["-o", "json", "--socket", path, "map", "list"],
        ]
        for arguments in invocations {
            let outcome = try run(arguments)
            XCTAssertEqual(outcome.status, 1, "\(arguments)")
            XCTAssertEqual(
                outcome.stderr,
                "Error: cannot connect to nodeagent at \(path): No such file or directory (is the agent running?)\n")
            XCTAssertEqual(outcome.stdout, "")
        }
    }

    func testSocketComesFromTheEnvironment() throws {
        let path = "/tmp/nodectl-test-env-\(getpid()).sock"
        let outcome = try run(["identity", "list"], environment: ["NODEAGENT_SOCK": path])
        XCTAssertEqual(outcome.status, 1)
        XCTAssertTrue(outcome.stderr.contains("at \(path):"), outcome.stderr)
    }

    func testUsageErrorsExit64() throws {
        let cases: [([String], String)] = [
            (["policy", "delete"], "Error: nothing selected: give --namespace NS [--name NAME], or --all"),
            (["policy", "delete", "--name", "x"], "Error: --name needs --namespace"),
            (["policy", "delete", "--namespace", "a", "--kind", "NetworkPolicy"], "Error: --kind needs --name"),
            (
                ["policy", "delete", "--all", "--namespace", "a"],
                "Error: --all cannot be combined with --namespace or --name"
            ),
            (
                ["policy", "trace", "--src", "a", "--dst", "b", "--dport", "8080/icmp"],
                "Error: --dport: protocol must be tcp, udp or sctp, got \"icmp\""
            ),
            (["-o", "xml", "status"], "Error: The value 'xml' is invalid for '-o <output>'"),
            (["config", "set", "=x"], "Error: expected key=value, got \"=x\""),
            (["endpoint", "labels", "3"], "Error: nothing to change: give --add and/or --delete"),
            (["map", "get", "na_ct", "--limit", "0"], "Error: --limit must be a positive number, got 0"),
        ]
        for (arguments, message) in cases {
            let outcome = try run(arguments)
            XCTAssertEqual(outcome.status, 64, "\(arguments): \(outcome.stderr)")
            XCTAssertTrue(outcome.stderr.hasPrefix(message), "\(arguments): \(outcome.stderr)")
        }
    }

    func testHelpDescribesExitStatusAndTraceVerdicts() throws {
        let root = try run(["--help"])
        XCTAssertEqual(root.status, 0)
        XCTAssertTrue(root.stdout.contains("USAGE: nodectl [--socket <path>] [--output <output>] <subcommand>"))
        for command in ["status", "map", "config", "endpoint", "identity", "policy"] {
            XCTAssertTrue(root.stdout.contains("\n  \(command) "), "missing \(command) in help")
        }
        let trace = try run(["policy", "trace", "--help"])
        let words = trace.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ")
        XCTAssertTrue(words.contains("The exit status is 0 whether the traffic is allowed or denied"), trace.stdout)
    }

    func testStatusAgainstAScriptedAgent() throws {
        let body =
            #"{"status":"ok","version":"0.1.0","kernel":"6.8.0","#
            + #""bpffs":{"root":"/sys/fs/bpf/nodeagent","mounted":true},"#
            + #""uptime-seconds":12,"endpoints":3,"policy-revision":7,"plugins":[]}"#
        let server = try NodeCtlKitFakeServer(response: NodeCtlKitFakeServer.jsonResponse(body), pieces: 3)
        defer { server.stop() }

        let table = try run(["--socket", server.path, "status"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.hasPrefix("Status:           ok\nVersion:          0.1.0\n"), table.stdout)
        XCTAssertTrue(table.stdout.contains("BPF filesystem:   /sys/fs/bpf/nodeagent (mounted)\n"), table.stdout)

        let json = try run(["-o", "json", "--socket", server.path, "status"])
        XCTAssertEqual(json.status, 0)
        XCTAssertEqual(try JSON.parse(json.stdout), try JSON.parse(body))
    }

    func testAgentErrorExitsOneWithItsMessage() throws {
        let body = #"{"error":{"code":"not-found","message":"endpoint 7 not found"}}"#
        let server = try NodeCtlKitFakeServer(
            response: NodeCtlKitFakeServer.jsonResponse(body, status: 404, reason: "Not Found"))
        defer { server.stop() }

        let outcome = try run(["endpoint", "get", "7", "--socket", server.path])
        XCTAssertEqual(outcome.status, 1)
        XCTAssertEqual(outcome.stderr, "Error: endpoint 7 not found\n")
        XCTAssertEqual(server.requests.map(\.target), ["/v1/endpoint/7"])
    }

    func testPolicyImportFromStandardInputSendsOneArray() throws {
        let server = try NodeCtlKitFakeServer(
            response: NodeCtlKitFakeServer.jsonResponse(#"{"revision":4,"policies":["ns/a","ns/b"]}"#))
        defer { server.stop() }
        let yaml =
            "metadata: {name: a, namespace: ns}\nspec: {ports: [\"80\", 81]}\n--- \n"
            + "metadata: {name: b, namespace: ns}\n"

        let outcome = try run(["policy", "import", "-", "--socket", server.path], stdin: yaml)

        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertEqual(outcome.stdout, "Imported 2 policies (revision 4):\n  ns/a\n  ns/b\n")
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual("\(request.method) \(request.target)", "PUT /v1/policy")
        XCTAssertEqual(
            try JSON.parse(request.body),
            [
                ["metadata": ["name": "a", "namespace": "ns"], "spec": ["ports": ["80", 81]]],
                ["metadata": ["name": "b", "namespace": "ns"]],
            ])
    }

    func testTraceSendsParsedPortAndExitsZeroWhenDenied() throws {
        let server = try NodeCtlKitFakeServer(
            response: NodeCtlKitFakeServer.jsonResponse(#"{"verdict":"denied","reason":"default deny"}"#))
        defer { server.stop() }

        let outcome = try run(
            [
                "policy", "trace", "--src", "web-tier/frontend-0", "--dst", "k8s:app=db", "--dport", "5432",
                "--socket", server.path,
            ])

        XCTAssertEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stdout.hasPrefix("Verdict:  denied\n"), outcome.stdout)
        XCTAssertEqual(
            server.requests.map(\.target),
            ["/v1/policy/trace?src=web-tier/frontend-0&dst=k8s:app%3Ddb&dport=5432&protocol=TCP"])
    }

    func testConfigSetTypesValues() throws {
        let server = try NodeCtlKitFakeServer(response: NodeCtlKitFakeServer.jsonResponse(#"{"log-level":"debug"}"#))
        defer { server.stop() }

        let outcome = try run(
            [
                "config", "set", "log-level=debug", "ct-gc-interval=30", "debug=true", "name=\"123\"", "-o", "yaml",
                "--socket", server.path,
            ])

        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertEqual(outcome.stdout, "log-level: debug\n")
        XCTAssertEqual(
            try JSON.parse(try XCTUnwrap(server.requests.first).body),
            ["log-level": "debug", "ct-gc-interval": 30, "debug": true, "name": "123"])
    }
}
