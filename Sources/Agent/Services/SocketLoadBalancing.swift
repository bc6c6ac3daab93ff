import DatapathCore
import FoundationEssentials
import Synchronization

/// The socket load balancer in the kernel: the `sock` object's maps pinned under the agent's pin root, its eight
/// cgroup hooks attached to a cgroup v2 directory by links pinned under `<pin root>/sock-links`.
///
/// Everything the kernel needs is pinned, so services go on translating while no agent runs (a crash, a
/// SIGKILL, an upgrade). A restarted agent reuses the maps and swaps its programs into the pinned links, so the
/// hooks never run without a program; a link to another cgroup (the root was reconfigured) is replaced by a new
/// one before the old pin goes. `detach(pinRoot:)` is the cleanup that ends it all.
public final class SocketLoadBalancing: Sendable {
    /// The eight hooks, by program name in `bpf/sock.bpf.c`.
    public static let programNames = [
        "na_sock4_connect", "na_sock6_connect", "na_sock4_sendmsg", "na_sock6_sendmsg",
        "na_sock4_recvmsg", "na_sock6_recvmsg", "na_sock4_getpeername", "na_sock6_getpeername",
    ]
    /// The maps, pinned by these names.
    public static let mapNames = [
        "na_lb_services", "na_lb_backends", "na_lb_revnat", "na_lb_affinity", "na_lb_aff_match", "na_lb_maglev",
        "na_lb_ports",
    ]

    public let cgroupRoot: String
    public let pinRoot: String
    /// The maps, as `ServiceDatapath`.
    public let datapath: SocketLoadBalancer
    /// Maps whose pin held another layout and now hold a new, empty map: their services must be applied again.
    public let replacedPins: [String]
    private let links: Mutex<[BPFLink]>

    private init(
        cgroupRoot: String, pinRoot: String, datapath: SocketLoadBalancer, replacedPins: [String], links: [BPFLink]
    ) {
        self.cgroupRoot = cgroupRoot
        self.pinRoot = pinRoot
        self.datapath = datapath
        self.replacedPins = replacedPins
        self.links = Mutex(links)
    }

    static func linkDirectory(pinRoot: String) -> String { "\(pinRoot)/sock-links" }

    /// Loads the object with its maps pinned under `pinRoot` (reused when there), makes sure `cgroupRoot` is a
    /// cgroup v2 directory (mounting cgroup v2 there when it is not), and attaches every hook to it.
    public static func start(cgroupRoot: String = CgroupV2.defaultRoot, pinRoot: String) throws(AgentError)
        -> SocketLoadBalancing
    {
        try datapathCall("starting the socket load balancer") {
            try BPFFS.prepare(root: pinRoot)
            try CgroupV2.prepare(root: cgroupRoot)
            let cgroupID = try CgroupV2.id(of: cgroupRoot)
            let object = try BPFObject.load(embedded: "sock", pinDirectory: pinRoot)
            let datapath = try SocketLoadBalancer(object: object)
            let directory = linkDirectory(pinRoot: pinRoot)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            var links: [BPFLink] = []
            for name in programNames {
                guard let program = object.program(named: name) else {
                    throw AgentError.datapath("object sock has no program \(name)")
                }
                // While an old and a new link both exist a call may pass both programs: the second sees a backend,
                // not a frontend; `attachPinned` swaps the program into the pinned link instead where it can.
                links.append(
                    try BPFLink.attachPinned(
                        program, cgroup: cgroupRoot, cgroupID: cgroupID, pin: "\(directory)/\(name)"))
            }
            return SocketLoadBalancing(
                cgroupRoot: cgroupRoot, pinRoot: pinRoot, datapath: datapath, replacedPins: object.replacedPins,
                links: links)
        }
    }

    /// The agent is going away: its descriptors close, the pinned links and maps stay and keep translating.
    public func stop() {
        links.withLock { $0.removeAll() }
    }

    /// Ends socket load balancing: unpins the links (which detaches the hooks once no descriptor holds them) and
    /// the maps. For the agent's cleanup; a running `SocketLoadBalancing` should be stopped first.
    public static func detach(pinRoot: String) throws(AgentError) {
        try datapathCall("detaching the socket load balancer") {
            let directory = linkDirectory(pinRoot: pinRoot)
            for name in programNames { try BPFLink.unpin("\(directory)/\(name)") }
            try? FileManager.default.removeItem(atPath: directory)
            for name in mapNames { try? FileManager.default.removeItem(atPath: "\(pinRoot)/\(name)") }
        }
    }
}
