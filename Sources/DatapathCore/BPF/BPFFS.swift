import AgentAPI
import CLibbpf
import FoundationEssentials
import Glibc
import Preflight

/// The BPF filesystem, where maps are pinned so they outlive the agent.
public enum BPFFS {
    public static let defaultMountPoint = KernelFilesystems.bpfMountPoint

    /// Whether `path` lies on a bpffs mount.
    public static func isBPFFS(_ path: String) -> Bool {
        KernelFilesystems.isBPFFS(path)
    }

    /// Makes sure `root` (e.g. /sys/fs/bpf/nodeagent) exists on bpffs: mounts bpffs at /sys/fs/bpf when nothing
    /// is mounted there and `root` lies below it, then creates `root`.
    public static func prepare(root: String) throws {
        let parent = FilePath.parent(of: root)
        if !isBPFFS(parent) && !isBPFFS(root) {
            if root.hasPrefix(defaultMountPoint + "/") && !isBPFFS(defaultMountPoint) {
                try mountBPFFS(at: defaultMountPoint)
            }
        }
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        } catch {
            throw AgentError.datapath("creating BPF pin directory \(root): \(error)")
        }
        guard isBPFFS(root) else {
            throw AgentError.datapath(KernelFilesystems.notOnBPFFS(root))
        }
    }

    static func mountBPFFS(at path: String) throws {
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try bpfCall("mounting bpffs at \(path)") { mount("bpf", path, "bpf", 0, nil) }
    }

    /// Removes `root` and everything pinned below it.
    public static func removeAll(root: String) {
        try? FileManager.default.removeItem(atPath: root)
    }
}
