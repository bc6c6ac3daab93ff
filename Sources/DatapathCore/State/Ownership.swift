import FoundationEssentials
import Glibc

/// Marks the directories the agent owns, so `nodeagent cleanup` removes only those: a mistyped `--state-dir /` or
/// a bpf root shared with other software must not be deleted wholesale.
///
/// The agent marks its state directory and its bpf root when it starts. A directory without the marker is still
/// the agent's when it holds nothing but the agent's own layout: what an installation from before markers existed
/// leaves behind.
public enum Ownership {
    /// The state directory's marker, a file.
    public static let markerName = ".nodeagent-owned"
    /// The bpf root's marker, a directory: bpffs holds only pins and directories, and refuses names with a dot.
    public static let bpfMarkerName = "nodeagent-owned"

    /// Entries of a state directory that only the agent writes (documents, their temporary files, subdirectories).
    static let stateLayout: Set<String> = [
        "endpoints", "plugins", "policy.json", "config.json", "agent-state.json", "cluster.json",
    ]
    /// Prefix of every name the agent pins.
    static let pinPrefix = "na_"

    /// Marks `path` as the agent's state directory.
    public static func markStateDirectory(_ path: String) throws(AgentError) {
        let marker = "\(path)/\(markerName)"
        let fd = open(marker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DurableFile.failure("marking state directory \(path)") }
        close(fd)
    }

    /// Marks `path` as the agent's bpf root.
    public static func markBPFRoot(_ path: String) throws(AgentError) {
        guard mkdir("\(path)/\(bpfMarkerName)", 0o700) == 0 || errno == EEXIST else {
            throw DurableFile.failure("marking bpf root \(path)")
        }
    }

    /// Why cleanup may not remove the state directory `path`; nil when it may (also when it does not exist).
    public static func refusal(stateDirectory path: String) -> String? {
        refusal(path, marker: markerName, type: S_IFREG) { name in
            stateLayout.contains(name) || stateLayout.contains(String(name.dropLast(".tmp".count)))
        }
    }

    /// Why cleanup may not remove the bpf root `path`; nil when it may (also when it does not exist).
    public static func refusal(bpfRoot path: String) -> String? {
        if canonical(path) == BPFFS.defaultMountPoint { return "is the BPF filesystem's mount point, shared by all" }
        return refusal(path, marker: bpfMarkerName, type: S_IFDIR) { $0.hasPrefix(pinPrefix) }
    }

    private static func refusal(_ path: String, marker: String, type: mode_t, isAgents: (String) -> Bool) -> String? {
        guard path.hasPrefix("/") else { return "is not an absolute path" }
        if canonical(path) == "/" { return "is the root directory" }
        var info = stat()
        guard lstat(path, &info) == 0 else { return errno == ENOENT ? nil : "cannot be examined: \(errnoText(errno))" }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: break
        case S_IFLNK: return "is a symbolic link"
        default: return "is not a directory"
        }
        if lstat("\(path)/\(marker)", &info) == 0, info.st_mode & S_IFMT == type { return nil }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            return "cannot be listed: \(error)"
        }
        if let foreign = entries.sorted().first(where: { !isAgents($0) }) {
            return "has no \(marker) marker and holds \(foreign), which is not the agent's"
        }
        return nil
    }

    /// `path` with symbolic links and `..` resolved, or as given when it does not exist.
    private static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
