import AgentAPI
import NodeCtlKit
import XCTest

/// Tables and the views built on them.
final class NodeCtlKitOutputTests: XCTestCase {
    func testTableAlignsColumnsAndUppercasesHeaders() {
        var table = Table(columns: ["Name", "Type", "Entries"])
        table.append(["na_ipcache", "lpm_trie", "5"])
        table.append(["na_ct", "lru_hash"])
        table.append(["x", "multi\nline", ""])

        XCTAssertEqual(
            table.render(),
            """
            NAME         TYPE         ENTRIES
            na_ipcache   lpm_trie     5
            na_ct        lru_hash
            x            multi line

            """)
    }

    func testOutputFormats() throws {
        let value: JSON = ["b": [1, 2], "a": "8080"]
        XCTAssertEqual(
            OutputFormat.json.render(value, table: { _ in "" }),
            """
            {
              "a": "8080",
              "b": [
                1,
                2
              ]
            }

            """)
        XCTAssertEqual(OutputFormat.yaml.render(value, table: { _ in "" }), "a: \"8080\"\nb:\n- 1\n- 2\n")
        XCTAssertEqual(OutputFormat.table.render(value, table: { "T:\($0["a"]!.stringValue!)\n" }), "T:8080\n")
    }

    func testMapList() {
        let maps: JSON = [
            "maps": [
                [
                    "name": "na_ipcache", "owner": "core", "type": "lpm_trie", "key-size": 24, "value-size": 8,
                    "max-entries": 512000, "entries": 5, "pinned": "/sys/fs/bpf/nodeagent/na_ipcache",
                ],
                [
                    "name": "na_nat", "owner": "nat", "type": "lru_hash", "key-size": 40, "value-size": 16,
                    "max-entries": 65536, "entries": 0,
                ],
            ]
        ]
        XCTAssertEqual(
            MapViews.list(maps),
            """
            NAME         OWNER   TYPE       KEY   VALUE   MAX      ENTRIES
            na_ipcache   core    lpm_trie   24    8       512000   5
            na_nat       nat     lru_hash   40    16      65536    0

            """)
    }

    func testMapEntriesShowDecodedFieldsAndHexFallback() {
        let decoded: JSON = [
            "name": "na_ipcache",
            "entries": [
                ["key": ["prefix": "10.0.1.5/32"], "value": ["identity": 256, "flags": 0]],
                ["key": ["prefix": "10.0.2.0/24"], "value": ["identity": 300, "flags": 1]],
            ],
        ]
        XCTAssertEqual(
            MapViews.entries(decoded),
            """
            PREFIX        FLAGS   IDENTITY
            10.0.1.5/32   0       256
            10.0.2.0/24   1       300

            """)

        let clash: JSON = ["entries": [["key": ["id": 1], "value": ["id": 2, "count": 3]]]]
        XCTAssertEqual(MapViews.entries(clash), "KEY.ID   COUNT   VALUE.ID\n1        3       2\n")

        let raw: JSON = ["entries": [["key-hex": "0a000105", "value-hex": "00010000"]]]
        XCTAssertEqual(MapViews.entries(raw), "KEY-HEX    VALUE-HEX\n0a000105   00010000\n")

        XCTAssertEqual(MapViews.entries(["name": "na_ct", "entries": []]), "No entries in na_ct\n")
    }

    func testEndpointList() {
        let endpoints: JSON = [
            [
                "id": 12, "interface-name": "lxc1", "addressing": ["ipv4": "10.0.1.5", "ipv6": "fd00::5"],
                "labels": ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=web-tier"], "k8s-namespace": "web-tier",
                "k8s-pod-name": "frontend-0", "state": "ready", "identity": ["id": 256], "policy-revision": 3,
            ],
            [
                "id": 3, "interface-name": "lxc0", "addressing": ["ipv4": "10.0.1.3"], "labels": [],
                "state": "restoring",
                "identity": ["id": 5], "policy-revision": 0,
            ],
        ]
        XCTAssertEqual(
            EndpointViews.list(endpoints),
            """
            ID   NAMESPACE   POD          INTERFACE   IPV4       IPV6      IDENTITY   STATE       REVISION   LABELS
            3    -           -            lxc0        10.0.1.3   -         5          restoring   0          -
            12   web-tier    frontend-0   lxc1        10.0.1.5   fd00::5   256        ready       3          \
            k8s:app=frontend,k8s:io.kubernetes.pod.namespace=web-tier

            """)
    }

    func testEndpointPolicy() {
        let realized: JSON = [
            "endpoint": 12, "revision": 3, "ingress-enforced": true, "egress-enforced": false,
            "entries": [
                [
                    "direction": "egress", "identity": 300, "protocol": "TCP", "port": 8080, "end-port": 8080,
                    "deny": false, "rules": ["web-tier/allow-frontend-to-backend egress[0]"],
                ],
                [
                    "direction": "ingress", "identity": 0, "protocol": "UDP", "port": 5000, "end-port": 5010,
                    "deny": true, "rules": ["a/b ingressDeny[0]", "a/c ingressDeny[1]"],
                ],
            ],
        ]
        XCTAssertEqual(
            EndpointViews.policy(realized),
            """
            Endpoint 12, policy revision 3
            Ingress enforced: true
            Egress enforced:  false

            DIRECTION   IDENTITY   PROTOCOL   PORT        VERDICT   RULES
            egress      300        TCP        8080        allow     web-tier/allow-frontend-to-backend egress[0]
            ingress     any        UDP        5000-5010   deny      a/b ingressDeny[0], a/c ingressDeny[1]

            """)
    }

    func testEndpointPolicyWithHTTPRules() {
        let realized: JSON = [
            "endpoint": 12, "revision": 3, "ingress-enforced": true, "egress-enforced": false,
            "entries": [
                [
                    "direction": "ingress", "identity": 300, "protocol": "TCP", "port": 8080, "end-port": 8080,
                    "deny": false, "rules": ["api-tier/l7 ingress[0]"],
                ]
            ],
            "http": [
                [
                    "port": 8080, "protocol": "TCP",
                    "rules": [
                        [
                            "index": 0, "rule-id": 7, "rule": "api-tier/l7 ingress[0]", "method": "GET",
                            "path": "/api/v1/public/.*", "headers": [],
                        ],
                        ["index": 1, "rule-id": 7, "rule": "api-tier/l7 ingress[0]", "headers": ["x-token: 7"]],
                    ],
                    "peers": [
                        ["identity": 0, "access": "rules", "rules": [0]],
                        ["identity": 300, "access": "rules", "rules": [0, 1]],
                        ["identity": 301, "access": "unrestricted"],
                    ],
                ]
            ],
        ]
        XCTAssertEqual(
            EndpointViews.policy(realized),
            """
            Endpoint 12, policy revision 3
            Ingress enforced: true
            Egress enforced:  false

            DIRECTION   IDENTITY   PROTOCOL   PORT   VERDICT   RULES
            ingress     300        TCP        8080   allow     api-tier/l7 ingress[0]

            HTTP rules on TCP/8080:
            #   METHOD   PATH                HOST   HEADERS      RULE
            0   GET      /api/v1/public/.*   *      -            api-tier/l7 ingress[0]
            1   *        *                   *      x-token: 7   api-tier/l7 ingress[0]

            IDENTITY   REQUESTS
            any        rules 0
            300        rules 0,1
            301        all (unrestricted)

            """)
    }

    func testPolicyTraceWithHTTPRequest() {
        let trace: JSON = [
            "verdict": "denied", "reason": "HTTP policy of the destination: denied",
            "egress": nil, "ingress": nil,
            "http": [
                "port": 8080, "unrestricted": false, "verdict": "denied", "reason": "denied: no rule matches",
                "request": ["method": "POST", "path": "/x", "host": "api"],
                "rules": [["index": 0, "rule": "api-tier/l7 ingress[0]", "method": "GET", "headers": []]],
            ],
        ]
        XCTAssertEqual(
            PolicyViews.trace(trace),
            """
            Verdict:  denied
            Reason:   HTTP policy of the destination: denied

            HTTP (TCP/8080):
              Request:  POST /x (host api)
              Verdict:  denied
              Reason:   denied: no rule matches
              #   METHOD   PATH   HOST   HEADERS   RULE
              0   GET      *      *      -         api-tier/l7 ingress[0]

            """)
    }

    func testStatus() {
        let health: JSON = [
            "status": "ok", "version": "0.1.0", "kernel": "6.8.0-45-generic",
            "bpffs": ["root": "/sys/fs/bpf/nodeagent", "mounted": true], "uptime-seconds": 3725, "endpoints": 3,
            "policy-revision": 7,
            "plugins": [
                [
                    "name": "conntrack-gc", "enabled": true, "state": "running",
                    "detail": ["interval-seconds": 300, "deleted": 12],
                ]
            ],
        ]
        XCTAssertEqual(
            StatusView.render(health),
            """
            Status:           ok
            Version:          0.1.0
            Kernel:           6.8.0-45-generic
            BPF filesystem:   /sys/fs/bpf/nodeagent (mounted)
            Uptime:           1h2m5s
            Endpoints:        3
            Policy revision:  7
            Plugins:
              NAME           ENABLED   STATE     DETAIL
              conntrack-gc   true      running   deleted=12 interval-seconds=300

            """)
        XCTAssertEqual(StatusView.formatDuration(seconds: 59), "59s")
        XCTAssertEqual(StatusView.formatDuration(seconds: 86400), "1d0h0m0s")
    }

    func testPreflightTableAndTheStatusKernelLine() {
        let kernel: JSON = [
            "version": "6.8.0-45-generic", "status": "missing", "features": ["core", "flows"],
            "checks": [
                [
                    "name": "bpffs", "status": "missing", "required": true, "needed-by": ["core"],
                    "detail": "/x/nodeagent is not on a BPF filesystem",
                ],
                [
                    "name": "tcx", "status": "ok", "required": false, "needed-by": [],
                    "detail": "available",
                ],
            ],
        ]
        XCTAssertEqual(
            PreflightView.render(kernel),
            """
            Kernel:    6.8.0-45-generic
            Features:  core,flows
            Status:    missing
            CHECK   STATUS    NEEDED BY   DETAIL
            bpffs   missing   core        /x/nodeagent is not on a BPF filesystem
            tcx     ok        -           available

            """)
        // healthz's form: statuses by name, details only for what is not ok.
        let health: JSON = [
            "kernel": [
                "version": "6.8.0-45-generic", "status": "missing", "features": ["core", "flows"],
                "checks": ["bpffs": "missing", "tcx": "ok"], "problems": [kernel["checks"]?[0] ?? nil],
            ]
        ]
        XCTAssertTrue(
            StatusView.render(health).contains("Kernel:           6.8.0-45-generic (preflight: missing bpffs)\n"),
            StatusView.render(health))
    }

    func testStatusShowsTheDatapathOptions() {
        let health: JSON = [
            "status": "ok", "endpoints": 0, "policy-revision": 0, "plugins": [],
            "datapath": ["drop-event-interval": "1s", "allow-localhost": "always", "host-routing": "bpf"],
        ]
        let rendered = StatusView.render(health)
        XCTAssertTrue(rendered.contains("Drop events:      one per flow every 1s\n"), rendered)
        XCTAssertTrue(rendered.contains("Allow localhost:  always\n"), rendered)
        XCTAssertTrue(rendered.contains("Host routing:     bpf\n"), rendered)
        let every: JSON = ["datapath": ["drop-event-interval": "0s", "allow-localhost": "policy"]]
        XCTAssertTrue(StatusView.render(every).contains("Drop events:      every drop\n"), StatusView.render(every))
    }

    func testPolicyListSummarizesDirections() throws {
        let docs = try PolicyFiles.documents(
            from: Array(
                """
                kind: CiliumNetworkPolicy
                metadata: {name: default-deny-all, namespace: web-tier}
                spec: {endpointSelector: {}, ingress: [], egress: []}
                ---
                kind: CiliumNetworkPolicy
                metadata: {name: allow, namespace: api-tier}
                spec:
                  endpointSelector: {matchLabels: {app: backend-api}}
                  ingress: [{}]
                  ingressDeny: [{}, {}]
                ---
                kind: NetworkPolicy
                metadata: {name: allow, namespace: api-tier}
                spec:
                  podSelector: {matchLabels: {pod: a}}
                  ingress: [{}]
                """.utf8), source: "x")
        let response: JSON = ["revision": 8, "policies": .array(docs)]
        XCTAssertEqual(
            PolicyViews.list(response),
            """
            Revision: 8

            KIND                  NAMESPACE   NAME               SELECTOR          INGRESS           EGRESS
            CiliumNetworkPolicy   web-tier    default-deny-all   all               default deny      default deny
            CiliumNetworkPolicy   api-tier    allow              app=backend-api   1 allow, 2 deny   -
            NetworkPolicy         api-tier    allow              pod=a             1 allow           -

            """)
    }

    func testPolicyImportDeleteAndTrace() {
        XCTAssertEqual(
            PolicyViews.imported(["revision": 8, "policies": ["web-tier/a", "api-tier/b"]]),
            "Imported 2 policies (revision 8):\n  web-tier/a\n  api-tier/b\n")
        XCTAssertEqual(
            PolicyViews.deleted(["revision": 9, "deleted": ["web-tier/a"]]),
            "Deleted 1 policy (revision 9):\n  web-tier/a\n")
        XCTAssertEqual(PolicyViews.deleted(["revision": 9, "deleted": []]), "No policies matched (revision 9)\n")

        let trace: JSON = [
            "verdict": "denied", "reason": "no egress rule allows the destination",
            "egress": ["enforced": true, "rules": []], "ingress": nil,
        ]
        XCTAssertEqual(
            PolicyViews.trace(trace),
            """
            Verdict:  denied
            Reason:   no egress rule allows the destination

            Egress (source side):
              enforced:  true
              rules:     -

            """)
    }

    func testFieldListFlattensNestedValues() {
        let endpoint: JSON = [
            "id": 12, "addressing": ["ipv4": "10.0.1.5"], "labels": ["a", "b"],
            "identity": ["id": 256, "labels": ["a"]],
        ]
        XCTAssertEqual(
            EndpointViews.detail(endpoint),
            """
            addressing.ipv4:  10.0.1.5
            id:               12
            identity.id:      256
            identity.labels:  a
            labels:           a,b

            """)
    }
}
