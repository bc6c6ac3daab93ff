import CLibbpf

@testable import Preflight

/// Feature sets as recorded from kernels, to evaluate the requirement table without those kernels at hand.
enum RecordedKernels {
    /// A kernel with everything the agent uses, bpffs at the pin root and cgroup v2.
    static func complete(release: String = "6.1.0-28-amd64") -> KernelFeatures {
        KernelFeatures(
            release: release, btf: true, pinRoot: "/sys/fs/bpf/nodeagent", pinRootState: .onBPFFS,
            cgroup2: "/sys/fs/cgroup",
            clsact: .available, tcx: .available, gracePeriod: .available,
            programTypes: all(Requirements.programTypes), mapTypes: all(Requirements.mapTypes),
            helpers: all(Requirements.helpers.map(\.id)),
            sysctls: [Sysctl.jitEnable: "1", Sysctl.unprivilegedBPFDisabled: "2"])
    }

    static func withoutBTF() -> KernelFeatures {
        var kernel = complete()
        kernel.btf = false
        return kernel
    }

    /// A kernel with `nohz_full` CPUs, which refuse membarrier's global command.
    static func withoutGracePeriods() -> KernelFeatures {
        var kernel = complete()
        kernel.gracePeriod = .unavailable
        return kernel
    }

    /// A pin root in an ordinary directory: nothing mounted there, and not below /sys/fs/bpf.
    static func withoutBPFFS() -> KernelFeatures {
        var kernel = complete()
        kernel.pinRoot = "/var/tmp/na/bpf"
        kernel.pinRootState = .notOnBPFFS
        return kernel
    }

    static func withoutCgroup2() -> KernelFeatures {
        var kernel = complete()
        kernel.cgroup2 = nil
        return kernel
    }

    /// A 5.4 kernel: no ring buffer map or helpers (5.8), no tcx.
    static func withoutRingBuffer() -> KernelFeatures {
        var kernel = complete(release: "5.4.0-216-generic")
        kernel.tcx = .unavailable
        kernel.mapTypes[BPF_MAP_TYPE_RINGBUF.rawValue] = .unavailable
        for helper in [BPF_FUNC_ringbuf_reserve, BPF_FUNC_ringbuf_submit, BPF_FUNC_ringbuf_query] {
            kernel.helpers[helper.rawValue] = .unavailable
        }
        return kernel
    }

    private static func all(_ ids: [UInt32]) -> [UInt32: Availability] {
        Dictionary(uniqueKeysWithValues: ids.map { ($0, Availability.available) })
    }
}
