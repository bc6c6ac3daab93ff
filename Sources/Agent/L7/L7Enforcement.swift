import DatapathCore
import FoundationEssentials
import Synchronization

/// HTTP enforcement in the kernel: the `l7` object's maps pinned under the agent's pin root, its sockops program
/// attached to a cgroup v2 directory by a link pinned under `<pin root>/l7-links`, and its stream verdict attached
/// alone (the kernel's verdict-only mode) to the pinned `na_l7_socks`.
///
/// Everything is pinned, so requests go on being decided while no agent runs. The verdict belongs to
/// the sockhash (sockmap links need 6.10): they stay attached as long as the pinned map exists, and a restarted
/// agent attaches its new programs in their place. `detach(pinRoot:)` ends it all.
public final class L7Enforcement: Sendable {
    /// The maps the object owns (the ipcache, events and metrics it shares are the endpoint object's).
    public static let mapNames = [
        "na_l7_ports", "na_l7_peers", "na_l7_rules", "na_l7_dfa", "na_l7_socks", "na_l7_conns", "na_l7_scratch",
        "na_l7_hold",
    ]
    static let sockops = "na_l7_sockops"

    public let cgroupRoot: String
    public let pinRoot: String
    /// The maps, written through `apply`/`remove`.
    public let datapath: L7Datapath
    private let link: Mutex<BPFLink?>

    private init(cgroupRoot: String, pinRoot: String, datapath: L7Datapath, link: BPFLink) {
        self.cgroupRoot = cgroupRoot
        self.pinRoot = pinRoot
        self.datapath = datapath
        self.link = Mutex(link)
    }

    static func linkDirectory(pinRoot: String) -> String { "\(pinRoot)/l7-links" }

    /// Loads the object with its maps pinned under `pinRoot` (reused when there; `maxEntries` must be the
    /// endpoint object's overrides, since the ipcache and event maps are shared by pin), attaches the verdict to
    /// the sockhash and the sockops program to `cgroupRoot`.
    public static func start(
        cgroupRoot: String = CgroupV2.defaultRoot, pinRoot: String, maxEntries: [String: UInt32] = [:]
    ) throws(AgentError) -> L7Enforcement {
        try datapathCall("starting L7 enforcement") {
            try BPFFS.prepare(root: pinRoot)
            try CgroupV2.prepare(root: cgroupRoot)
            let cgroupID = try CgroupV2.id(of: cgroupRoot)
            let object = try BPFObject.load(embedded: "l7", pinDirectory: pinRoot, maxEntries: maxEntries)
            guard let socks = object.map(named: "na_l7_socks"), let verdict = object.program(named: "na_l7_verdict"),
                let sockops = object.program(named: sockops)
            else { throw AgentError.datapath("object l7 lacks its sockhash or programs") }
            let datapath = try L7Datapath(object: object)
            // The verdict frames the requests itself; a stream parser an earlier version left on the pinned
            // sockhash would hand it messages rather than skbs.
            try BPFProgram.detachAll(from: socks, as: .streamParser)
            try verdict.attach(to: socks, as: .streamVerdict)
            let directory = linkDirectory(pinRoot: pinRoot)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let link = try BPFLink.attachPinned(
                sockops, cgroup: cgroupRoot, cgroupID: cgroupID, pin: "\(directory)/\(Self.sockops)")
            return L7Enforcement(cgroupRoot: cgroupRoot, pinRoot: pinRoot, datapath: datapath, link: link)
        }
    }

    /// The agent is going away: its descriptors close, the pins stay and requests go on being decided.
    public func stop() {
        link.withLock { $0 = nil }
    }

    /// Ends HTTP enforcement: unpins the sockops link (no new connection is enrolled) and the maps it owns. The
    /// sockhash releases its verdict and sockets once its last pin and descriptor are gone, and open
    /// connections go on unchecked. For `nodeagent cleanup`; a running `L7Enforcement` should be stopped first.
    public static func detach(pinRoot: String) throws(AgentError) {
        try datapathCall("detaching L7 enforcement") {
            let directory = linkDirectory(pinRoot: pinRoot)
            try BPFLink.unpin("\(directory)/\(sockops)")
            try? FileManager.default.removeItem(atPath: directory)
            for name in mapNames { try? FileManager.default.removeItem(atPath: "\(pinRoot)/\(name)") }
        }
    }
}
