import CLibbpf
import FoundationEssentials
import Glibc
import Preflight

/// The cgroup v2 hierarchy, where socket programs attach: a program on a directory sees the sockets of every
/// process in it and below it.
public enum CgroupV2 {
    /// Where the agent mounts cgroup v2 when its configured root is not one (Cilium mounts /run/cilium/cgroupv2).
    /// cgroup v2 has one hierarchy: a second mount shows the same root cgroup as /sys/fs/cgroup(/unified).
    public static let defaultRoot = "/run/nodeagent/cgroupv2"

    public static func isCgroup2(_ path: String) -> Bool {
        cbpf_fs_type(path) == KernelFilesystems.cgroup2Magic
    }

    /// Makes sure `root` is a cgroup v2 directory: an existing directory of the hierarchy is used as it is,
    /// anything else gets cgroup v2 mounted on it (created first).
    public static func prepare(root: String) throws {
        if isCgroup2(root) { return }
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        } catch {
            throw AgentError.datapath("creating the cgroup v2 mount point \(root): \(error)")
        }
        try bpfCall("mounting cgroup2 at \(root)") { mount("none", root, "cgroup2", 0, nil) }
    }

    /// The cgroup id of a cgroup v2 directory (its inode number), as BPF links report it.
    public static func id(of path: String) throws -> UInt64 {
        var info = stat()
        try bpfCall("reading cgroup \(path)") { stat(path, &info) }
        return UInt64(info.st_ino)
    }
}
