import AgentAPI
import CLibbpf
import FoundationEssentials

/// The kernel filesystems the agent looks at, told apart by statfs(2)'s magic (include/uapi/linux/magic.h).
public enum KernelFilesystems {
    /// BPF_FS_MAGIC: bpffs, where maps are pinned so they outlive the agent.
    public static let bpfMagic: Int = 0xcafe_4a11
    /// CGROUP2_SUPER_MAGIC: the unified cgroup hierarchy.
    public static let cgroup2Magic: Int = 0x6367_7270
    /// Where bpffs is mounted by convention, and where the agent mounts it when nothing is.
    public static let bpfMountPoint = "/sys/fs/bpf"
    /// The agent's pin root unless configured otherwise.
    public static let defaultPinRoot = "/sys/fs/bpf/nodeagent"
    public static let cgroupMountPoint = "/sys/fs/cgroup"

    /// Whether `path` lies on a bpffs mount.
    public static func isBPFFS(_ path: String) -> Bool {
        cbpf_fs_type(path) == bpfMagic
    }

    /// Where cgroup v2 is mounted: at /sys/fs/cgroup, or at /sys/fs/cgroup/unified in systemd's hybrid layout.
    public static func cgroup2Mount() -> String? {
        [cgroupMountPoint, cgroupMountPoint + "/unified"].first { cbpf_fs_type($0) == cgroup2Magic }
    }

    /// The one wording of a pin root off bpffs, from the preflight and from the datapath's own last check alike.
    public static func notOnBPFFS(_ root: String) -> String {
        let parent = FilePath.parent(of: root)
        return "\(root) is not on a BPF filesystem (mount one with: mount -t bpf bpf \(parent))"
    }

    /// What a pin root will be when the agent starts: on bpffs already (or below a bpffs directory it creates it
    /// in), on bpffs once the agent mounts it at /sys/fs/bpf (as `BPFFS.prepare` does when nothing is mounted
    /// there), or elsewhere.
    public static func pinRootState(_ root: String) -> PinRootState {
        var path = root
        while !FileManager.default.fileExists(atPath: path) && path != "/" && !path.isEmpty {
            path = FilePath.parent(of: path)
        }
        if isBPFFS(path) { return .onBPFFS }
        if root.hasPrefix(bpfMountPoint + "/") && !isBPFFS(bpfMountPoint) { return .mountedAtStart }
        return .notOnBPFFS
    }
}

/// Whether maps can be pinned at the configured root.
public enum PinRootState: String, Sendable, Equatable {
    case onBPFFS = "on-bpffs"
    case mountedAtStart = "mounted-at-start"
    case notOnBPFFS = "not-on-bpffs"
}
