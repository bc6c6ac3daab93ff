import AgentAPI
import ArgumentParser
import NodeCtlKit

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Import, show, delete and trace CiliumNetworkPolicies and Kubernetes NetworkPolicies.",
        subcommands: [Import.self, Get.self, Delete.self, Trace.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import policies from YAML or JSON files.",
            discussion: """
                Each FILE holds one or more YAML documents separated by '---', or JSON (one policy object or an \
                array of them); '-' reads standard input. All documents of all files go to the agent in one \
                request, so either all are imported or none is.
                """)

        @OptionGroup var global: GlobalOptions

        @Argument(help: ArgumentHelp("Policy files, '-' for standard input.", valueName: "file"))
        var files: [String]

        @Flag(help: "Print the policies as they would be sent, without contacting the agent.")
        var dryRun = false

        func validate() throws {
            guard !files.isEmpty else { throw ValidationError("give at least one policy file ('-' for stdin)") }
        }

        func run() throws {
            let documents = try PolicyFiles.load(paths: files)
            if dryRun {
                let value = JSON.array(documents)
                global.emit(value, table: { _ in value.serialized(pretty: true) + "\n" })
                return
            }
            global.emit(try global.client.putPolicy(.array(documents)), table: PolicyViews.imported)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the policy revision and the stored policies (-o yaml or json for the full documents).")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            global.emit(try global.client.policies(), table: PolicyViews.list)
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete one policy, all policies of a namespace, or all policies.",
            discussion: "With no selection the command refuses, so a bare 'delete' never empties the agent.")

        @OptionGroup var global: GlobalOptions

        @Option(help: "Namespace of the policies to delete.")
        var namespace: String?

        @Option(help: "Name of the policy to delete (needs --namespace).")
        var name: String?

        @Option(
            help: ArgumentHelp(
                "Kind of the policy to delete (NetworkPolicy or CiliumNetworkPolicy), when both have the name.",
                valueName: "kind"))
        var kind: String?

        @Flag(help: "Delete every policy in every namespace.")
        var all = false

        func validate() throws {
            _ = try selection()
        }

        func selection() throws -> PolicySelection {
            if kind != nil && name == nil { throw ValidationError("--kind needs --name") }
            if all {
                guard namespace == nil, name == nil else {
                    throw ValidationError("--all cannot be combined with --namespace or --name")
                }
                return .all
            }
            if let name {
                guard let namespace else { throw ValidationError("--name needs --namespace") }
                guard !name.isEmpty, !namespace.isEmpty else {
                    throw ValidationError("--namespace and --name must not be empty")
                }
                return .one(namespace: namespace, name: name, kind: kind)
            }
            if let namespace {
                guard !namespace.isEmpty else { throw ValidationError("--namespace must not be empty") }
                return .namespace(namespace)
            }
            throw ValidationError("nothing selected: give --namespace NS [--name NAME], or --all")
        }

        func run() throws {
            global.emit(try global.client.deletePolicies(selection()), table: PolicyViews.deleted)
        }
    }

    struct Trace: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Would the agent allow traffic from SRC to DST? Prints the verdict and the deciding rules.",
            discussion: """
                SRC and DST are an endpoint id, namespace/pod, an IP address, or labels \
                (k8s:app=x,k8s:io.kubernetes.pod.namespace=ns). The exit status is 0 whether the traffic is \
                allowed or denied: read the verdict from the output (-o json: .verdict). To a TCP port with HTTP \
                rules, --http-method, --http-path and --http-host trace one request as the kernel decides it.
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("Source selector.", valueName: "selector"))
        var src: String

        @Option(help: ArgumentHelp("Destination selector.", valueName: "selector"))
        var dst: String

        @Option(
            help: ArgumentHelp(
                "Destination port and protocol, e.g. 8080/tcp (protocol defaults to tcp).",
                valueName: "port[/proto]"))
        var dport: String?

        @Option(help: ArgumentHelp("Also decide this request's method against HTTP rules.", valueName: "method"))
        var httpMethod: String?

        @Option(help: ArgumentHelp("Also decide this request-target (path and query).", valueName: "path"))
        var httpPath: String?

        @Option(help: ArgumentHelp("Also decide this Host header value.", valueName: "host"))
        var httpHost: String?

        func validate() throws {
            guard !src.isEmpty, !dst.isEmpty else { throw ValidationError("--src and --dst must not be empty") }
            if let dport { _ = try PortSpec(parsing: dport) }
        }

        func run() throws {
            let port = try dport.map { try PortSpec(parsing: $0) }
            let request = TraceRequest(
                source: src, destination: dst, port: port?.port, transport: port?.transport, httpMethod: httpMethod,
                httpPath: httpPath, httpHost: httpHost)
            global.emit(try global.client.tracePolicy(request), table: PolicyViews.trace)
        }
    }
}

/// "8080", "8080/tcp", "53/UDP": a port and the protocol it is for.
struct PortSpec: Equatable {
    static let protocols = ["TCP", "UDP", "SCTP"]

    var port: UInt16
    var transport: String

    init(parsing text: String) throws {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let port = UInt16(parts[0]), port > 0 else {
            throw ValidationError("--dport: expected a port between 1 and 65535, got \"\(parts[0])\"")
        }
        let transport = parts.count > 1 ? parts[1].uppercased() : "TCP"
        guard Self.protocols.contains(transport) else {
            throw ValidationError("--dport: protocol must be tcp, udp or sctp, got \"\(parts[1])\"")
        }
        self.port = port
        self.transport = transport
    }
}
