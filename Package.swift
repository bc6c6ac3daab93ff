// swift-tools-version:6.0
import PackageDescription

/// Datapath plugins: each is a module under Plugins/<Name>/ that depends on the core only.
let datapathPlugins = ["ConntrackGC", "CIDRPolicy", "NAT", "IPAMClusterPool"]

let package = Package(
    name: "nodeagent",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "nodeagent", targets: ["nodeagent"]),
        .executable(name: "nodectl", targets: ["nodectl"]),
        .executable(name: "nodeagent-cni", targets: ["nodeagent-cni"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        // C libraries from Debian, each behind a one-header shim.
        .systemLibrary(
            name: "CLibbpf", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev", "libelf-dev", "zlib1g-dev"])]),
        .systemLibrary(
            name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(name: "CJansson", pkgConfig: "jansson", providers: [.apt(["libjansson-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // libcurl's headers (libcurl4-openssl-dev); the library itself is loaded on first use.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("dl")]),
        .systemLibrary(
            name: "CNetlink", pkgConfig: "libnl-route-3.0", providers: [.apt(["libnl-3-dev", "libnl-route-3-dev"])]),
        // sd_notify, with libsystemd loaded only when a service manager listens.
        .target(name: "CSystemd", linkerSettings: [.linkedLibrary("dl")]),
        // glibc interfaces the Glibc module leaves out (mallopt).
        .systemLibrary(name: "CGlibc"),

        // The kernel/user ABI: bpf/include/nodeagent_abi.h, shared with the BPF programs.
        .target(
            name: "CNodeABI", path: "bpf", exclude: ["lib", "endpoint.bpf.c", "sock.bpf.c"], sources: ["abi.c"],
            publicHeadersPath: "include"),

        // Build-time compilation of bpf/*.bpf.c into objects embedded in the agent.
        .executableTarget(name: "BPFEmbed", dependencies: ["CZlib"], path: "BuildTools/BPFEmbed"),
        .plugin(
            name: "BPFCompile", capability: .buildTool(), dependencies: ["BPFEmbed"],
            path: "BuildTools/BPFCompile"),
        .target(name: "BPFObjects", dependencies: ["CZlib"], plugins: ["BPFCompile"]),

        // JSON through jansson, and the request/response/route vocabulary shared by the API layers.
        .target(name: "AgentAPI", dependencies: ["CJansson", "CGlibc"]),

        // Kernel preflight: the features the agent needs, probed through libbpf, and the report on them.
        .target(name: "Preflight", dependencies: ["CLibbpf", "AgentAPI", "CGlibc"]),
        .testTarget(name: "PreflightTests", dependencies: ["Preflight", "AgentAPI", "CLibbpf"]),

        // Datapath-manager core: BPF objects, maps, programs, pinning, tc attachment, plugin registry.
        .target(
            name: "DatapathCore",
            dependencies: [
                "CLibbpf", "CZlib", "CNodeABI", "BPFObjects", "AgentAPI", "CGlibc", "Preflight",
                .product(name: "Logging", package: "swift-log"),
            ]),

        // HTTP/JSON over a Unix socket with libmicrohttpd; knows nothing of libbpf.
        .target(
            name: "RESTServer",
            dependencies: ["CMicroHTTPD", "AgentAPI", .product(name: "Logging", package: "swift-log")]),

        // Labels, identities, CiliumNetworkPolicy parsing and compilation to datapath entries.
        .target(name: "Policy", dependencies: ["AgentAPI"]),

        // Cluster mode: this node's session, identities, pod addresses and nodes shared through etcd.
        .target(
            name: "Cluster",
            dependencies: [
                "EtcdClient", "HTTPClient", "Policy", "AgentAPI", .product(name: "Logging", package: "swift-log"),
            ]),

        // The daemon: endpoints, identities, policy, state; wires core, plugins and REST together.
        .target(
            name: "Agent",
            dependencies: [
                "DatapathCore", "RESTServer", "Policy", "Cluster", "EtcdClient", "Netlink", "AgentAPI", "CNodeABI",
                "CGlibc", "CSystemd", "Preflight",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "nodeagent",
            dependencies: [
                "Agent", "Preflight", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ] + datapathPlugins.map { .target(name: $0) },
            // Relative relocations packed (DT_RELR): the loader reads a few KiB instead of a 1.9 MiB table at
            // every start, and those pages stay resident. gold cannot pack them; lld can. The functions the agent
            // runs are laid out together (`BuildTools/nodeagent.order`, scripts/symbol-order.sh): the kernel maps
            // code 64 KiB around each fault, so code used sparsely across the binary would be resident nearly whole.
            linkerSettings: [
                .unsafeFlags([
                    "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                    "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/BuildTools/nodeagent.order",
                    "-Xlinker", "--no-warn-symbol-ordering",
                    // Nothing loads into the daemon that would bind to its symbols; exporting them all (SwiftPM's
                    // default for executables) only adds a 0.5 MiB symbol table the loader reads at start.
                    "-Xlinker", "--no-export-dynamic",
                ])
            ]),

        // HTTP requests through libcurl (Unix socket or TCP, TLS), buffered or streamed.
        .target(name: "HTTPClient", dependencies: ["CCurl"]),

        // etcd's v3 API through its JSON gateway: KV, transactions, leases, watches, members.
        .target(
            name: "EtcdClient",
            dependencies: ["HTTPClient", "AgentAPI", .product(name: "Logging", package: "swift-log")]),

        // The CLI client.
        .target(name: "NodeCtlKit", dependencies: ["AgentAPI", "HTTPClient", .product(name: "Yams", package: "Yams")]),
        .executableTarget(
            name: "nodectl",
            dependencies: [
                "NodeCtlKit", "AgentAPI", "Preflight",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // rtnetlink through libnl (links, addresses, routes): the CNI plugin's wiring, the agent's node routes.
        .target(name: "Netlink", dependencies: ["CNetlink", "AgentAPI"]),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink", "AgentAPI"]),

        // The CNI plugin a container runtime calls to wire pods to the agent.
        .executableTarget(name: "nodeagent-cni", dependencies: ["NodeCtlKit", "AgentAPI", "Netlink"]),

        .testTarget(name: "AgentAPITests", dependencies: ["AgentAPI"]),
        .testTarget(name: "DatapathCoreTests", dependencies: ["DatapathCore", "CNodeABI", "CLibbpf"]),
        .testTarget(
            name: "ConntrackGCTests",
            dependencies: ["ConntrackGC", "DatapathCore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "RESTServerTests", dependencies: ["RESTServer", "AgentAPI"]),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "AgentAPI", "NodeCtlKit"]),
        .testTarget(name: "NATTests", dependencies: ["NAT", "DatapathCore", "CLibbpf", "CNodeABI"]),
        .testTarget(name: "IPAMClusterPoolTests", dependencies: ["IPAMClusterPool", "DatapathCore"]),
        // A real etcd for tests: a single member on loopback, and certificates for its TLS.
        .target(name: "EtcdTestSupport", dependencies: ["EtcdClient", "HTTPClient"], path: "Tests/EtcdTestSupport"),
        .testTarget(
            name: "EtcdClientTests", dependencies: ["EtcdClient", "EtcdTestSupport", "HTTPClient", "AgentAPI"]),
        .testTarget(
            name: "ClusterTests", dependencies: ["Cluster", "EtcdClient", "EtcdTestSupport", "Policy", "AgentAPI"]),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "AgentAPI", "NodeCtlKit", "HTTPClient", "DatapathCore", .product(name: "Yams", package: "Yams"),
            ]),
        .testTarget(
            name: "AgentTests",
            dependencies: [
                "Agent", "DatapathCore", "Policy", "CNodeABI", "CIDRPolicy", "ConntrackGC", "NAT", "IPAMClusterPool",
                .product(name: "Yams", package: "Yams"),
            ]),
    ]
        + datapathPlugins.map {
            .target(
                name: $0, dependencies: ["DatapathCore"], path: "Plugins/\($0)")
        }
)

// Each function in a section of its own, so that the symbol ordering above can lay out the agent's code by use.
for target in package.targets where target.type == .regular || target.type == .executable {
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-Xfrontend", "-function-sections"])]
}
