import Foundation
import Glibc

/// Finding and removing what a run left behind. Every name a topology creates carries its tag:
/// namespaces `na<tag>-*`, interfaces `lxc<tag>*` / `ext<tag>*`, BPF pins under `/sys/fs/bpf/na-test-<tag>*`,
/// temporary directories `/tmp/na<tag>-*`, cgroups `na<tag>-*` under the cgroup v2 mount, and a run marker holding
/// the owning process id.
extension Topology {
    static let bpfDirectory = "/sys/fs/bpf"
    static let temporaryDirectory = "/tmp"

    /// Removes everything carrying `tag`: stops processes still running inside its namespaces, deletes the
    /// namespaces, pin directories, temporary directories and the run marker. Returns what could not be removed.
    @discardableResult
    static func sweep(tag: String) -> [String] {
        var problems: [String] = []
        let namespaces = Netns.names(withPrefix: "na\(tag)-")
        for pid in processes(inNamespaces: namespaces) {
            Glibc.kill(pid, SIGKILL)
        }
        for name in namespaces {
            do { try Netns.delete(name) } catch { problems.append("\(error)") }
        }
        for path in paths(inDirectory: bpfDirectory, prefix: "na-test-\(tag)")
            + paths(inDirectory: temporaryDirectory, prefix: "na\(tag)-")
        {
            do { try FileManager.default.removeItem(atPath: path) } catch {
                problems.append("remove \(path): \(error)")
            }
        }
        problems += TestCgroup.paths(tag: tag).compactMap { TestCgroup.remove($0) }
        RunMarker.release(tag)
        return problems
    }

    /// Sweeps the tags of earlier runs whose process is gone (a crashed or killed test run); runs that are still
    /// alive, ours or anyone else's, are left alone.
    static func sweepAbandoned() {
        for (tag, pid) in RunMarker.all() where pid != getpid() && Glibc.kill(pid, 0) != 0 && errno == ESRCH {
            sweep(tag: tag)
        }
    }

    /// Everything that still carries `tag`.
    static func leftovers(tag: String) -> [String] {
        var found = Netns.names(withPrefix: "na\(tag)-").map { "netns \($0)" }
        if let links = try? Shell.run(["ip", "-o", "link", "show"]) {
            for line in links.split(separator: "\n") {
                let fields = line.split(separator: ":", maxSplits: 2)
                guard fields.count > 1 else { continue }
                let name = fields[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init)
                if let name, name.hasPrefix("lxc\(tag)") || name.hasPrefix("ext\(tag)") {
                    found.append("root-namespace interface \(name)")
                }
            }
        }
        found += paths(inDirectory: bpfDirectory, prefix: "na-test-\(tag)")
        found += paths(inDirectory: temporaryDirectory, prefix: "na\(tag)-")
        found += TestCgroup.paths(tag: tag).map { "cgroup \($0)" }
        if RunMarker.all().contains(where: { $0.tag == tag }) { found.append("run marker \(tag)") }
        return found
    }

    /// A tag no current namespace, marker or directory uses.
    static func freshTag() throws -> String {
        for _ in 0..<64 {
            let tag = String(format: "%04x", UInt16.random(in: 0x1000...UInt16.max))
            if leftovers(tag: tag).isEmpty { return tag }
        }
        throw NetnsError("no free run tag after 64 attempts", errno: EEXIST)
    }

    /// Process ids whose network namespace is one of `names`: only processes a test started can be there.
    static func processes(inNamespaces names: [String]) -> [pid_t] {
        let inodes = Set(names.compactMap { try? Netns.inode(ofPath: Netns.path($0)) })
        guard !inodes.isEmpty else { return [] }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry), pid != getpid(),
                let inode = try? Netns.inode(ofPath: "/proc/\(entry)/ns/net")
            else { return nil }
            return inodes.contains(inode) ? pid : nil
        }
    }

    private static func paths(inDirectory directory: String, prefix: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix(prefix) }.sorted().map { "\(directory)/\($0)" }
    }
}

/// One file per live run, named by its tag and holding the owner's process id, so a later run can tell an
/// abandoned tag from one in use.
enum RunMarker {
    static let directory = "/tmp/nodeagent-e2e-runs"

    static func claim(_ tag: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let fd = open("\(directory)/\(tag)", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw NetnsError("claim run tag \(tag)") }
        defer { close(fd) }
        let text = Array("\(getpid())\n".utf8)
        _ = write(fd, text, text.count)
    }

    static func release(_ tag: String) {
        unlink("\(directory)/\(tag)")
    }

    static func all() -> [(tag: String, pid: pid_t)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name in
            guard let text = try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { return nil }
            return (name, pid)
        }
    }
}
