import CGlibc
import CLibbpf
import Glibc
import Preflight

/// Which tc hook of an interface.
public enum TCAttachPoint: String, Sendable, CaseIterable {
    /// Packets the interface receives: on a host-side veth, what the endpoint sends.
    case ingress
    /// Packets the interface transmits: on a host-side veth, what the endpoint receives.
    case egress

    var libbpf: bpf_tc_attach_point { self == .ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS }
}

/// Attaches our programs to an interface's tc hooks: through tcx links where the kernel has tcx (Linux 6.6), as
/// direct-action filters on the clsact qdisc through libbpf's netlink helpers before that.
///
/// tcx runs a hook's programs without the clsact classifier's layers (about 1 µs of CPU per connection on the
/// datapath benchmark). Either attachment outlives the agent: a clsact filter stays in the kernel, a tcx link stays
/// while it is pinned, in `links` (`linkDirectory(pinRoot:)`), one pin per hook. Attaching again atomically
/// replaces ours (no window without a program), detaching removes only ours (the filter at our handle and
/// priority, the link we pinned); other tools' programs on the hook stay, and ours runs after them.
public enum TC {
    static let handle: UInt32 = 0x4e41  // "NA"
    static let priority: UInt32 = 1

    /// What the kernel answers about a hook or filter that is not there: no filter (ENOENT), no clsact qdisc
    /// ("Parent Qdisc doesn't exists", EINVAL), no interface (ENODEV). Nothing to remove, nothing to report.
    static let absent: Set<Int32> = [ENOENT, EINVAL, ENODEV]

    /// Whether programs go to tcx: where the preflight's probe finds it (Linux 6.6).
    public static let usesTCX: Bool = LiveKernelProbe.probeTCX() == .available

    /// Where the tcx links of a pin root are pinned.
    public static func linkDirectory(pinRoot: String) -> String { "\(pinRoot)/tc-links" }

    /// Attaches `program` at `point` of `ifindex`, replacing ours if present. Through tcx (its link pinned in
    /// `links`; nil: held by this process only), a clsact filter an older agent left there is removed once ours
    /// is attached: tcx decides first, and our programs never hand a packet on, so the filter no longer ran.
    /// A failure carries the kernel's own message.
    public static func attach(_ program: BPFProgram, ifindex: Int32, point: TCAttachPoint, links: String?) throws {
        guard usesTCX else { return try attachFilter(program, ifindex: ifindex, point: point) }
        try TCXLinks(directory: links).attach(program, ifindex: ifindex, point: point)
        try detachFilter(ifindex: ifindex, point: point)
    }

    /// Attaches `program` at `point` of `ifindex` without waiting for the kernel: swapped into our tcx link when
    /// the hook has one, else as our clsact filter. Returns true when the hook is left on a filter that `attach`
    /// would move onto a link (see `TCXMoves`).
    static func attachWithoutWaiting(
        _ program: BPFProgram, ifindex: Int32, point: TCAttachPoint, links: String?
    ) throws -> Bool {
        if usesTCX, try TCXLinks(directory: links).replace(with: program, ifindex: ifindex, point: point) {
            return false
        }
        try attachFilter(program, ifindex: ifindex, point: point)
        return usesTCX
    }

    /// Removes ours from `point` of `ifindex`: the tcx link and the clsact filter. Returns false when none was
    /// attached, the interface has no hook or is gone: not an error, and nothing is logged.
    @discardableResult
    public static func detach(ifindex: Int32, point: TCAttachPoint, links: String?) throws -> Bool {
        let link = usesTCX ? try TCXLinks(directory: links).detach(ifindex: ifindex, point: point) : false
        let filter = try detachFilter(ifindex: ifindex, point: point)
        return link || filter
    }

    /// The id of our program at `point` of `ifindex` (the tcx link's, else the clsact filter's), or nil when there
    /// is none (or no hook to hold one).
    public static func attachedProgramID(ifindex: Int32, point: TCAttachPoint, links: String?) -> UInt32? {
        if usesTCX, let id = try? TCXLinks(directory: links).programID(ifindex: ifindex, point: point) { return id }
        return filterProgramID(ifindex: ifindex, point: point)
    }

    /// The id of the program our clsact filter at `point` of `ifindex` runs, or nil when there is none.
    static func filterProgramID(ifindex: Int32, point: TCAttachPoint) -> UInt32? {
        let (rc, messages) = LibbpfLog.holding { cbpf_tc_query(ifindex, point.libbpf, handle, priority) }
        if rc < 0 && !absent.contains(-rc) {
            LibbpfLog.warn(messages, context: "querying tc \(point.rawValue) of ifindex \(ifindex)")
        }
        return rc > 0 ? UInt32(rc) : nil
    }

    /// The names of the programs in the tcx list at `point` of `ifindex`, in the order they run, whoever attached
    /// them; empty on a kernel without tcx. Opening programs by id needs CAP_SYS_ADMIN: a diagnostic, not a path
    /// the agent takes.
    public static func tcxProgramNames(ifindex: Int32, point: TCAttachPoint) throws -> [String] {
        guard usesTCX else { return [] }
        var ids = [UInt32](repeating: 0, count: 64)
        let count = try bpfCall("listing the programs of tcx \(point.rawValue) of ifindex \(ifindex)") {
            cbpf_tcx_query(ifindex, point.tcxAttachType, &ids, UInt32(ids.count))
        }
        return try ids.prefix(Int(count)).map { id in
            let fd = try bpfCall("opening program \(id)") { bpf_prog_get_fd_by_id(id) }
            defer { close(fd) }
            let info = try BPFProgram.info(fd: fd, of: "program \(id)").info
            return withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
    }

    /// Attaches `program` as our filter on the clsact qdisc (created when needed), replacing ours if present.
    private static func attachFilter(_ program: BPFProgram, ifindex: Int32, point: TCAttachPoint) throws {
        try withKernelMessages {
            try bpfCall("creating clsact qdisc on ifindex \(ifindex)") { cbpf_tc_hook_create(ifindex, point.libbpf) }
            try bpfCall("attaching \(program.name) to tc \(point.rawValue) of ifindex \(ifindex)") {
                cbpf_tc_attach(ifindex, point.libbpf, program.fd, handle, priority)
            }
        }
    }

    /// Removes our clsact filter; false when there was none.
    @discardableResult
    private static func detachFilter(ifindex: Int32, point: TCAttachPoint) throws -> Bool {
        let rc = try withKernelMessages {
            try bpfCall("detaching from tc \(point.rawValue) of ifindex \(ifindex)", tolerating: absent) {
                cbpf_tc_detach(ifindex, point.libbpf, handle, priority)
            }
        }
        return rc >= 0
    }

    /// Runs `body` with libbpf's messages held: dropped when it succeeds (or meets only an absent hook), appended
    /// to its error when it fails, so the kernel's reason is in the error rather than on stderr.
    private static func withKernelMessages<T>(_ body: () throws -> T) throws -> T {
        var failure: Error?
        let (value, messages) = LibbpfLog.holding { () -> T? in
            do {
                return try body()
            } catch {
                failure = error
                return nil
            }
        }
        if let value { return value }
        guard var error = failure as? AgentError else { throw failure! }
        if !messages.isEmpty { error.message += " (\(messages.joined(separator: "; ")))" }
        throw error
    }

    public static func isAttached(ifindex: Int32, point: TCAttachPoint, links: String?) -> Bool {
        attachedProgramID(ifindex: ifindex, point: point, links: links) != nil
    }
}

/// Interface names and indexes in the agent's network namespace.
public enum Interfaces {
    /// The index of `name`, or nil when no such interface exists.
    public static func index(of name: String) -> Int32? {
        let index = if_nametoindex(name)
        return index == 0 ? nil : Int32(index)
    }

    /// Drivers of interfaces that can be an endpoint's host side: one end of a pair whose other end is in a pod.
    /// Anything else (the node's uplink, lo, a bridge) would put the node's own traffic under a pod's policy.
    public static let endpointDrivers: Set<String> = ["veth", "netkit"]

    /// The kernel driver behind interface `name` ("veth", "netkit", "dummy"...), asked in the calling thread's
    /// network namespace; nil when the interface does not exist or has no driver (lo).
    public static func driver(of name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        let rc = buffer.withUnsafeMutableBufferPointer { cglibc_interface_driver(name, $0.baseAddress, $0.count) }
        return rc == 0 ? String(cString: buffer) : nil
    }

    /// The name of interface `index`, or nil.
    public static func name(of index: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(UInt32(index), &buffer) != nil else { return nil }
        return String(cString: buffer)
    }
}
