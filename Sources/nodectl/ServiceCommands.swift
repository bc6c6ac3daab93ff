import AgentAPI
import ArgumentParser
import NodeCtlKit

struct ServiceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "List, show, create or replace, and delete load-balanced services.",
        subcommands: [List.self, Get.self, Update.self, Delete.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List services: id, frontend, type and one row per backend, as cilium-dbg service list.")

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("Only services on this frontend.", valueName: "ip:port[/proto]"))
        var frontend: String?

        func run() throws {
            global.emit(try global.client.services(frontend: frontend), table: ServiceViews.list)
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one service and whether it is realized.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Service id (1-65535).") var id: Int64

        func validate() throws { try validateServiceID(id) }

        func run() throws {
            global.emit(try global.client.service(id: id), table: ServiceViews.detail)
        }
    }

    struct Update: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a service, or replace it, from flags or from a ServiceSpec file.",
            discussion: """
                With flags: --id, --frontend IP:PORT and --backends IP:PORT,... ([IPv6]:PORT for IPv6), the \
                protocol TCP unless --protocol says UDP. With --file: a ServiceSpec in YAML or JSON ('-' reads \
                standard input), its id taken from --id or from the file's 'id'.
                """)

        @OptionGroup var global: GlobalOptions

        @Option(help: "Service id (1-65535).")
        var id: Int64?

        @Option(help: ArgumentHelp("A ServiceSpec file, YAML or JSON; '-' for standard input.", valueName: "file"))
        var file: String?

        @Option(help: ArgumentHelp("Frontend address and port.", valueName: "ip:port"))
        var frontend: String?

        @Option(help: ArgumentHelp("Backends (repeat, or comma-separate).", valueName: "ip:port,..."))
        var backends: [String] = []

        @Option(name: .customLong("protocol"), help: "TCP or UDP (default TCP).")
        var transport: String?

        @Option(help: "ClusterIP, NodePort, ExternalIPs or LoadBalancer (default ClusterIP).")
        var type: String?

        @Option(
            help: ArgumentHelp(
                "Backend states, one for each backend or one for all: active, terminating, quarantined, maintenance.",
                valueName: "state,..."))
        var states: [String] = []

        @Option(help: "The service's name.")
        var name: String?

        @Option(help: "The service's namespace.")
        var namespace: String?

        @Option(help: "None or ClientIP (default None).")
        var sessionAffinity: String?

        @Option(help: "Seconds a client keeps its backend with ClientIP affinity (default 10800).")
        var sessionAffinityTimeout: Int?

        private var specFlagsGiven: Bool {
            frontend != nil || !backends.isEmpty || transport != nil || type != nil || !states.isEmpty || name != nil
                || namespace != nil || sessionAffinity != nil || sessionAffinityTimeout != nil
        }

        func validate() throws {
            if let id { try validateServiceID(id) }
            if file != nil {
                guard !specFlagsGiven else {
                    throw ValidationError("--file cannot be combined with --frontend, --backends or other spec flags")
                }
                return
            }
            guard id != nil else { throw ValidationError("give --id (or --file with an id)") }
            guard frontend != nil else { throw ValidationError("give --frontend IP:PORT, or --file") }
        }

        func run() throws {
            let spec: JSON
            if let file {
                spec = try ServiceSpecInput.load(path: file)
            } else {
                spec = try ServiceSpecInput.spec(
                    frontend: frontend ?? "", backends: backends, protocol: transport, type: type, states: states,
                    name: name, namespace: namespace, sessionAffinity: sessionAffinity,
                    sessionAffinityTimeout: sessionAffinityTimeout)
            }
            guard let serviceID = id ?? spec["id"]?.intValue else {
                throw ValidationError("the service id is missing: give --id or an 'id' in the file")
            }
            try validateServiceID(serviceID)
            let (service, created) = try global.client.putService(id: serviceID, spec)
            global.emit(service) { service in
                (created ? "Created" : "Updated") + " service \(serviceID)\n" + ServiceViews.detail(service)
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a service.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "Service id (1-65535).") var id: Int64

        func validate() throws { try validateServiceID(id) }

        func run() throws {
            global.emit(try global.client.deleteService(id: id), table: ServiceViews.deleted)
        }
    }
}

func validateServiceID(_ id: Int64) throws {
    guard (1...65535).contains(id) else { throw ValidationError("service id must be between 1 and 65535, got \(id)") }
}
