import CLibbpf

/// What each check concludes from the facts, in the words the report, the logs and the API show.
extension PreflightReport {
    /// The oldest kernel the project supports; the programs' ring buffer alone needs 5.8.
    static let supportedKernel = (5, 11)

    static func judge(_ requirement: Requirement, _ facts: KernelFeatures) -> (status: Status, detail: String) {
        let purpose = requirement.purpose
        switch requirement.check {
        case .kernelVersion:
            let floor = "\(supportedKernel.0).\(supportedKernel.1)"
            guard let version = majorMinor(facts.release), version < supportedKernel else {
                return (.ok, "\(facts.release) (supported from \(floor)); \(purpose)")
            }
            return (
                .missing,
                "\(facts.release) is older than the supported \(floor) (5.8 at the least, for the BPF ring buffer); "
                    + purpose
            )
        case .btf:
            return facts.btf
                ? (.ok, "/sys/kernel/btf/vmlinux is present")
                : (.missing, "/sys/kernel/btf/vmlinux is absent (CONFIG_DEBUG_INFO_BTF); \(purpose)")
        case .bpffs:
            switch facts.pinRootState {
            case .onBPFFS: return (.ok, "\(facts.pinRoot) is on bpffs")
            case .mountedAtStart:
                return (
                    .ok,
                    "nothing is mounted at \(KernelFilesystems.bpfMountPoint) yet: the agent mounts bpffs there when "
                        + "it starts, then pins below \(facts.pinRoot)"
                )
            case .notOnBPFFS: return (.missing, "\(KernelFilesystems.notOnBPFFS(facts.pinRoot)); \(purpose)")
            }
        case .cgroup2:
            switch facts.cgroup2 {
            case KernelFilesystems.cgroupMountPoint: return (.ok, "\(KernelFilesystems.cgroupMountPoint) is cgroup v2")
            case let path?: return (.ok, "cgroup v2 at \(path) (hybrid layout, v1 controllers at /sys/fs/cgroup)")
            case nil: return (.missing, "no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified; \(purpose)")
            }
        case .clsact:
            return availability(
                facts.clsact, ok: "a clsact qdisc takes a SCHED_CLS filter", purpose: purpose,
                missing: "no clsact qdisc or BPF tc filter (CONFIG_NET_SCH_INGRESS, CONFIG_NET_CLS_BPF): "
                    + "endpoint programs cannot be attached")
        case .tcx:
            return availability(
                facts.tcx, ok: "available", purpose: purpose, missing: "not available, before Linux 6.6 (\(purpose))")
        case .gracePeriod:
            return availability(
                facts.gracePeriod, ok: "membarrier(MEMBARRIER_CMD_GLOBAL) is offered", purpose: purpose,
                missing: "membarrier(MEMBARRIER_CMD_GLOBAL) is not offered (nohz_full CPUs, or no CONFIG_MEMBARRIER): "
                    + "packets read endpoint rows and IPv4 ipcache entries from their hashes, slower, enforced the same"
            )
        case .programType(let id):
            return object(facts.programTypes[id], purpose, of: id)
        case .mapType(let id):
            return object(facts.mapTypes[id], purpose)
        case .helper(let id, _, let programType):
            return object(facts.helpers[id], purpose, of: programType)
        case .sysctl(let name) where name == Sysctl.jitEnable:
            guard let value = facts.sysctls[name] else {
                return (.missing, "absent: this kernel has no BPF JIT, the programs run in the interpreter")
            }
            return value == "0"
                ? (.missing, "0: the programs run in the interpreter, slower (sysctl -w \(name)=1)")
                : (.ok, "\(value): the programs are JIT-compiled")
        case .sysctl(let name):
            return (.ok, "\(facts.sysctls[name] ?? "absent") (\(purpose))")
        }
    }

    /// A map type, program type or helper of a BPF object, which loads whole or not at all: the endpoint object
    /// (tc programs, and every map type) or the socket load balancer's (cgroup hooks).
    private static func object(
        _ availability: Availability?, _ purpose: String,
        of programType: UInt32 = BPF_PROG_TYPE_SCHED_CLS.rawValue
    ) -> (status: Status, detail: String) {
        let programs =
            programType == BPF_PROG_TYPE_CGROUP_SOCK_ADDR.rawValue ? "socket load balancer" : "endpoint programs"
        return Self.availability(
            availability ?? .unprobed("not probed"), ok: nil, purpose: purpose,
            missing: "not supported by this kernel, so the \(programs) cannot load (\(purpose))")
    }

    private static func availability(
        _ availability: Availability, ok: String?, purpose: String, missing: String
    ) -> (status: Status, detail: String) {
        switch availability {
        case .available: (.ok, ok.map { "\($0) (\(purpose))" } ?? purpose)
        case .unavailable: (.missing, missing)
        case .unprobed(let reason): (.unknown, "could not be probed, \(reason) (\(purpose))")
        }
    }

    /// "6.18.44-fc" -> (6, 18); nil for a release that does not start with two numbers.
    static func majorMinor(_ release: String) -> (Int, Int)? {
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }
}
