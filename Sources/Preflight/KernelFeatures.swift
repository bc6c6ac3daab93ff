/// What a kernel offers the agent, as probed or as recorded: the facts the requirement table is evaluated
/// against. Tests evaluate recorded sets (a kernel without BTF, without the ring buffer, ...); the agent and
/// `nodectl preflight` evaluate what `LiveKernelProbe` finds on the machine.
public struct KernelFeatures: Sendable, Equatable {
    /// uname's release: reported, never used to infer a feature.
    public var release: String
    /// /sys/kernel/btf/vmlinux exists.
    public var btf: Bool
    /// The configured pin root and what it lies on.
    public var pinRoot: String
    public var pinRootState: PinRootState
    /// Where cgroup v2 is mounted: /sys/fs/cgroup (unified), /sys/fs/cgroup/unified (systemd's hybrid layout,
    /// v1 controllers at /sys/fs/cgroup), or nil.
    public var cgroup2: String?
    /// A clsact qdisc and a SCHED_CLS filter on it (how endpoints get their programs).
    public var clsact: Availability
    /// tcx attachment (6.6+): reported, not used.
    public var tcx: Availability
    /// RCU grace periods on request (membarrier's global command), which the array copies of endpoint rows and
    /// IPv4 ipcache entries wait for before an element is reused.
    public var gracePeriod: Availability
    /// By `bpf_prog_type`, `bpf_map_type` and `bpf_func_id` (helpers as seen from SCHED_CLS programs).
    public var programTypes: [UInt32: Availability]
    public var mapTypes: [UInt32: Availability]
    public var helpers: [UInt32: Availability]
    /// Sysctls by dotted name; absent when the file does not exist.
    public var sysctls: [String: String]

    public init(
        release: String, btf: Bool, pinRoot: String, pinRootState: PinRootState, cgroup2: String?,
        clsact: Availability, tcx: Availability, gracePeriod: Availability, programTypes: [UInt32: Availability],
        mapTypes: [UInt32: Availability], helpers: [UInt32: Availability], sysctls: [String: String]
    ) {
        self.release = release
        self.btf = btf
        self.pinRoot = pinRoot
        self.pinRootState = pinRootState
        self.cgroup2 = cgroup2
        self.clsact = clsact
        self.tcx = tcx
        self.gracePeriod = gracePeriod
        self.programTypes = programTypes
        self.mapTypes = mapTypes
        self.helpers = helpers
        self.sysctls = sysctls
    }
}

/// Whether the kernel has one feature. `unprobed` is a probe that could not run (e.g. without CAP_BPF), with
/// the reason; the report shows it as `unknown`.
public enum Availability: Sendable, Equatable {
    case available
    case unavailable
    case unprobed(String)

    /// From libbpf's probe results: 1 supported, 0 not, a negative errno when the probe itself failed.
    init(libbpfProbe result: Int32) {
        switch result {
        case 1...: self = .available
        case 0: self = .unavailable
        default: self = .unprobed(errnoText(-result))
        }
    }
}

/// Where the facts come from: the machine (`LiveKernelProbe`) or a recording (`KernelFeatures` itself).
public protocol KernelProbe: Sendable {
    func features() -> KernelFeatures
}

extension KernelFeatures: KernelProbe {
    public func features() -> KernelFeatures { self }
}
