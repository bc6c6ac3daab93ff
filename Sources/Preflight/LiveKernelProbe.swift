import AgentAPI
import CGlibc
import CLibbpf
import Dispatch
import FoundationEssentials
import Glibc

/// The running kernel's features, asked of the kernel itself: libbpf's probes load a tiny program or create a
/// tiny map of each kind, and the tc attachment is tried in a throwaway network namespace. Needs the privileges
/// the agent runs with (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN); without, probes come back `unprobed`.
public struct LiveKernelProbe: KernelProbe {
    public let pinRoot: String

    public init(pinRoot: String) {
        self.pinRoot = pinRoot
    }

    public func features() -> KernelFeatures {
        // libbpf's probes read any failed load or map creation as "not supported", EPERM included: first make
        // sure this process may load a program and create a map at all, else the answers would be wrong.
        let programsDenied = Self.denied(cbpf_load_probe_sched_cls())
        let mapsDenied = Self.denied(cbpf_map_create(BPF_MAP_TYPE_ARRAY, "na_probe", 4, 4, 1, 0))
        return KernelFeatures(
            release: Self.release(), btf: FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux"),
            pinRoot: pinRoot, pinRootState: KernelFilesystems.pinRootState(pinRoot),
            cgroup2: KernelFilesystems.cgroup2Mount(),
            clsact: Self.probeClsact(), tcx: Self.probeTCX(), gracePeriod: Self.probeGracePeriod(),
            programTypes: Self.probe(Requirements.programTypes, denied: programsDenied) {
                libbpf_probe_bpf_prog_type(bpf_prog_type(rawValue: $0), nil)
            },
            mapTypes: Self.probe(Requirements.mapTypes, denied: mapsDenied) {
                libbpf_probe_bpf_map_type(bpf_map_type(rawValue: $0), nil)
            },
            helpers: Requirements.helpers.reduce(into: [:]) { probed, helper in
                probed[helper.id] =
                    programsDenied.map(Availability.unprobed)
                    ?? Availability(
                        libbpfProbe: libbpf_probe_bpf_helper(
                            bpf_prog_type(rawValue: helper.programType), bpf_func_id(rawValue: helper.id), nil))
            },
            sysctls: [Sysctl.jitEnable, Sysctl.unprivilegedBPFDisabled].reduce(into: [:]) { $0[$1] = Sysctl.read($1) })
    }

    /// Why this process may not use bpf(2) (EPERM, EACCES), from the fd or negative errno of an attempt that
    /// works on every kernel with BPF; nil when it may. The fd is closed.
    private static func denied(_ result: Int32) -> String? {
        if result >= 0 {
            close(result)
            return nil
        }
        return result == -EPERM || result == -EACCES ? errnoText(-result) : nil
    }

    static func release() -> String {
        var uts = utsname()
        uname(&uts)
        return withUnsafeBytes(of: uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    private static func probe(
        _ ids: [UInt32], denied: String?, _ body: (UInt32) -> Int32
    ) -> [UInt32: Availability] {
        ids.reduce(into: [:]) { $0[$1] = denied.map(Availability.unprobed) ?? Availability(libbpfProbe: body($1)) }
    }

    /// tcx answers a read-only query of loopback's ingress hook (ifindex 1 in every namespace) where the kernel
    /// knows it, since Linux 6.6, and EINVAL before.
    public static func probeTCX() -> Availability {
        switch cbpf_tcx_query(1, UInt32(CBPF_TCX_INGRESS), nil, 0) {
        case 0: .available
        case -EINVAL: .unavailable
        case let error: .unprobed(errnoText(-error))
        }
    }

    /// membarrier's query, which waits for nothing: the global command is offered or not.
    static func probeGracePeriod() -> Availability {
        switch cglibc_grace_period_offered() {
        case 1: .available
        case 0, -ENOSYS: .unavailable
        case let error: .unprobed(errnoText(-error))
        }
    }

    /// Creates a clsact qdisc on loopback and attaches a minimal SCHED_CLS program to it, in a network namespace
    /// of a thread of its own: nothing of the machine's namespaces is touched, and the namespace, its qdisc and
    /// its filter are gone when the thread ends.
    static func probeClsact() -> Availability {
        let result = ResultBox()
        BackgroundThread.start(name: "probe-clsact") {
            defer { result.done.signal() }
            let unshared = cbpf_unshare_net()
            guard unshared == 0 else {
                result.value = .unprobed("a network namespace for the probe: \(errnoText(-unshared))")
                return
            }
            let program = cbpf_load_probe_sched_cls()
            guard program >= 0 else {
                result.value = .unprobed("loading a SCHED_CLS program: \(errnoText(-program))")
                return
            }
            defer { close(program) }
            let loopback: Int32 = 1
            guard cbpf_tc_hook_create(loopback, BPF_TC_INGRESS) == 0,
                cbpf_tc_attach(loopback, BPF_TC_INGRESS, program, 1, 1) == 0
            else {
                result.value = .unavailable
                return
            }
            result.value = .available
        }
        result.done.wait()
        return result.value
    }

    /// The probe thread's answer, read after `done` is signalled.
    private final class ResultBox: @unchecked Sendable {
        var value = Availability.unprobed("the probe did not run")
        let done = DispatchSemaphore(value: 0)
    }
}
