import CGlibc
import CLibbpf
import Glibc

/// Which tc hook of an interface.
public enum TCAttachPoint: String, Sendable, CaseIterable {
    /// Packets the interface receives: on a host-side veth, what the endpoint sends.
    case ingress
    /// Packets the interface transmits: on a host-side veth, what the endpoint receives.
    case egress

    var libbpf: bpf_tc_attach_point { self == .ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS }
}

/// Attaches programs to an interface's clsact qdisc as direct-action filters through libbpf's netlink helpers.
///
/// Every program of ours sits at one fixed handle and priority, so attaching again atomically replaces the
/// program (no window without a filter) and detaching removes only ours.
public enum TC {
    static let handle: UInt32 = 0x4e41  // "NA"
    static let priority: UInt32 = 1

    /// What the kernel answers about a hook or filter that is not there: no filter (ENOENT), no clsact qdisc
    /// ("Parent Qdisc doesn't exists", EINVAL), no interface (ENODEV). Nothing to remove, nothing to report.
    static let absent: Set<Int32> = [ENOENT, EINVAL, ENODEV]

    /// Attaches `program` at `point` of `ifindex` (creating the clsact qdisc when needed), replacing ours if present.
    /// A failure carries the kernel's own message.
    public static func attach(_ program: BPFProgram, ifindex: Int32, point: TCAttachPoint) throws {
        try withKernelMessages {
            try bpfCall("creating clsact qdisc on ifindex \(ifindex)") { cbpf_tc_hook_create(ifindex, point.libbpf) }
            try bpfCall("attaching \(program.name) to tc \(point.rawValue) of ifindex \(ifindex)") {
                cbpf_tc_attach(ifindex, point.libbpf, program.fd, handle, priority)
            }
        }
    }

    /// Removes our filter from `point` of `ifindex`. Returns false when none was attached, the interface has no
    /// clsact qdisc or is gone: not an error, and nothing is logged.
    @discardableResult
    public static func detach(ifindex: Int32, point: TCAttachPoint) throws -> Bool {
        let rc = try withKernelMessages {
            try bpfCall("detaching from tc \(point.rawValue) of ifindex \(ifindex)", tolerating: absent) {
                cbpf_tc_detach(ifindex, point.libbpf, handle, priority)
            }
        }
        return rc >= 0
    }

    /// The id of the program attached at our handle, or nil when there is none (or no hook to hold one).
    public static func attachedProgramID(ifindex: Int32, point: TCAttachPoint) -> UInt32? {
        let (rc, messages) = LibbpfLog.holding { cbpf_tc_query(ifindex, point.libbpf, handle, priority) }
        if rc < 0 && !absent.contains(-rc) {
            LibbpfLog.warn(messages, context: "querying tc \(point.rawValue) of ifindex \(ifindex)")
        }
        return rc > 0 ? UInt32(rc) : nil
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

    public static func isAttached(ifindex: Int32, point: TCAttachPoint) -> Bool {
        attachedProgramID(ifindex: ifindex, point: point) != nil
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
