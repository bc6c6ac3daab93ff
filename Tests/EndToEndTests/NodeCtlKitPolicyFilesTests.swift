import AgentAPI
import NodeCtlKit
import XCTest

/// Policy files: the seed's multi-document YAML as written, JSON, and the scalar typing rules.
final class NodeCtlKitPolicyFilesTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    private func fixture(_ name: String) -> String {
        Self.fixtures.appendingPathComponent(name).path
    }

    private func documents(_ text: String) throws -> [JSON] {
        try PolicyFiles.documents(from: Array(text.utf8), source: "test.yaml")
    }

    func testSeedDefaultDenyHasThreeNamespacesWithExplicitEmptyDirections() throws {
        let docs = try PolicyFiles.load(paths: [fixture("default-deny-all.yaml")])

        XCTAssertEqual(docs.map { $0["metadata"]?["namespace"] }, ["web-tier", "api-tier", "data-tier"])
        for doc in docs {
            XCTAssertEqual(doc["apiVersion"], "cilium.io/v2")
            XCTAssertEqual(doc["kind"], "CiliumNetworkPolicy")
            XCTAssertEqual(doc["metadata"]?["name"], "default-deny-all")
            // Present and empty is what makes a direction default-deny: it must not become null or vanish.
            XCTAssertEqual(doc["spec"], ["endpointSelector": [:], "ingress": [], "egress": []])
        }
    }

    func testSeedAllowPolicyWithTrailingSpaceSeparatorsAndComments() throws {
        let docs = try PolicyFiles.load(paths: [fixture("allow-traffic-policy.yaml")])

        XCTAssertEqual(
            docs.map { "\($0["metadata"]!["namespace"]!.stringValue!)/\($0["metadata"]!["name"]!.stringValue!)" },
            [
                "web-tier/allow-frontend-to-backend", "api-tier/allow-backend-to-database",
                "api-tier/allow-ingress-to-backend", "data-tier/allow-ingress-to-database",
            ])
        let expectedEgress: JSON = [
            [
                "toEndpoints": [
                    ["matchLabels": ["k8s:io.kubernetes.pod.namespace": "api-tier", "app": "backend-api"]]
                ],
                // The seed quotes the port: it stays a string.
                "toPorts": [["ports": [["port": "8080", "protocol": "TCP"]]]],
            ]
        ]
        XCTAssertEqual(docs[0]["spec"]?["egress"], expectedEgress)
        XCTAssertEqual(docs[0]["spec"]?["endpointSelector"], ["matchLabels": ["app": "frontend"]])
        XCTAssertEqual(docs[1]["spec"]?["egress"]?[0]?["toPorts"]?[0]?["ports"]?[0]?["port"], "5432")
        XCTAssertNil(docs[2]["spec"]?["egress"])
        XCTAssertEqual(
            docs[3]["spec"]?["ingress"]?[0]?["fromEndpoints"]?[0]?["matchLabels"]?["app"], "backend-api")
    }

    func testBothSeedFilesInOneImportKeepOrder() throws {
        let docs = try PolicyFiles.load(paths: [fixture("default-deny-all.yaml"), fixture("allow-traffic-policy.yaml")])
        XCTAssertEqual(docs.count, 7)
        XCTAssertEqual(docs[3]["metadata"]?["name"], "allow-frontend-to-backend")
    }

    func testScalarTypes() throws {
        let docs = try documents(
            """
            a: 8080
            b: "8080"
            c: '8080'
            d: true
            e: "true"
            f: null
            g: ~
            h:
            i: 1.5
            j: 0x1F
            k: hello
            l: [1, "2", x]
            m: -7
            """)
        XCTAssertEqual(
            docs,
            [
                [
                    "a": 8080, "b": "8080", "c": "8080", "d": true, "e": "true", "f": nil, "g": nil, "h": nil, "i": 1.5,
                    "j": 31, "k": "hello", "l": [1, "2", "x"], "m": -7,
                ]
            ])
    }

    func testEmptyDocumentsAreSkipped() throws {
        let docs = try documents("---\n# nothing here\n---\n--- \nkind: A\n---\n...\n")
        XCTAssertEqual(docs, [["kind": "A"]])
    }

    func testCommentsOnlyFileIsAnError() throws {
        XCTAssertThrowsError(try PolicyFiles.load(paths: ["-"], standardInput: { Array("# nothing\n".utf8) })) {
            XCTAssertEqual("\($0)", "standard input: no policy documents found")
        }
    }

    func testListOfPoliciesAndKubernetesListAreFlattened() throws {
        let docs = try documents(
            """
            - kind: A
            - kind: B
            ---
            kind: CiliumNetworkPolicyList
            items:
            - kind: C
            """)
        XCTAssertEqual(docs, [["kind": "A"], ["kind": "B"], ["kind": "C"]])
    }

    func testNonObjectDocumentIsNamed() throws {
        XCTAssertThrowsError(try documents("kind: A\n---\njust a string\n")) {
            XCTAssertEqual("\($0)", "test.yaml: document 2: expected a policy object, found string")
        }
    }

    func testAnchorsAliasesAndMergeKeys() throws {
        let docs = try documents(
            """
            base: &sel
              app: web
              tier: front
            spec:
              endpointSelector:
                matchLabels: *sel
              other:
                <<: *sel
                tier: back
            """)
        XCTAssertEqual(docs[0]["spec"]?["endpointSelector"]?["matchLabels"], ["app": "web", "tier": "front"])
        XCTAssertEqual(docs[0]["spec"]?["other"], ["app": "web", "tier": "back"])
    }

    func testDuplicateKeysAreRejected() throws {
        XCTAssertThrowsError(try documents("a: 1\na: 2\n")) { error in
            XCTAssertTrue("\(error)".hasPrefix("test.yaml: "), "\(error)")
            XCTAssertTrue("\(error)".contains("'a'"), "\(error)")
        }
    }

    func testYAMLSyntaxErrorNamesFileAndLine() throws {
        XCTAssertThrowsError(try documents("a: [1, 2\nb: 3\n")) { error in
            XCTAssertTrue("\(error)".hasPrefix("test.yaml: 2:2: error: parser"), "\(error)")
        }
    }

    func testJSONObjectAndArray() throws {
        XCTAssertEqual(try documents(#"  {"kind":"A","spec":{"port":"80"}}"#), [["kind": "A", "spec": ["port": "80"]]])
        XCTAssertEqual(try documents(#"[{"kind":"A"},{"kind":"B"}]"#), [["kind": "A"], ["kind": "B"]])
        XCTAssertThrowsError(try documents(#"[{"kind":"A"}, 3]"#)) {
            XCTAssertEqual("\($0)", "test.yaml, item 1: expected a policy object, found number")
        }
    }

    func testInvalidJSONSaysWhere() throws {
        XCTAssertThrowsError(try documents("{\"kind\": }")) { error in
            XCTAssertTrue("\(error)".hasPrefix("test.yaml: invalid JSON at line 1, column 10"), "\(error)")
        }
    }

    func testStandardInputIsReadOnce() throws {
        let docs = try PolicyFiles.load(paths: ["-"], standardInput: { Array("kind: A\n".utf8) })
        XCTAssertEqual(docs, [["kind": "A"]])
        XCTAssertThrowsError(try PolicyFiles.load(paths: ["-", "-"], standardInput: { Array("kind: A\n".utf8) })) {
            XCTAssertEqual("\($0)", "standard input ('-') given more than once")
        }
    }

    func testMissingFile() {
        let path = "/nonexistent/nodectl/policy.yaml"
        XCTAssertThrowsError(try PolicyFiles.load(paths: [path])) {
            XCTAssertEqual("\($0)", "\(path): No such file or directory")
        }
    }

    func testYAMLOutputReadsBackAsTheSameJSON() throws {
        let value: JSON = [
            "port": "8080", "number": 8080, "flag": "true", "on": true, "none": nil, "empty": "", "list": [],
            "nested": ["k8s:io.kubernetes.pod.namespace": "web-tier", "ratio": 0.25, "multi": "a\nb"],
            "tilde": "~", "octal": "0o17", "colon": "a: b", "dash": "- x",
        ]
        let yaml = YAMLConversion.yaml(from: value)
        XCTAssertTrue(yaml.contains("port: \"8080\"\n"), yaml)
        XCTAssertTrue(yaml.contains("number: 8080\n"), yaml)
        XCTAssertEqual(try documents(yaml), [value])
    }
}
