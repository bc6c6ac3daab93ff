import Foundation
import Glibc

/// cgroup v2 directories of a run's own, `na<tag>-*` under the machine's cgroup v2 mount: each test agent attaches
/// its socket load balancer to one (`--cgroup-root`), never to the machine's root cgroup, whose every process's
/// sockets it would translate. Clients that should see services join it (`TestCgroup.command`).
enum TestCgroup {
    /// The cgroup v2 mount: /sys/fs/cgroup (unified layout) or /sys/fs/cgroup/unified (hybrid); nil without one.
    static let mount: String? = {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return nil }
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.count > 2, fields[2] == "cgroup2" { return String(fields[1]) }
        }
        return nil
    }()

    /// Creates `<mount>/<name>`; `name` carries the run tag so a sweep finds it.
    static func create(_ name: String) throws -> String {
        guard let mount else { throw AgentHarnessError("no cgroup v2 mount in /proc/self/mounts") }
        let path = "\(mount)/\(name)"
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw AgentHarnessError("creating cgroup \(path): \(String(cString: strerror(errno)))")
        }
        return path
    }

    /// Kills what is still inside `path` (cgroup.kill, Linux 5.14; one by one before) and removes it once empty.
    /// Returns a problem, or nil when it is gone.
    @discardableResult
    static func remove(_ path: String) -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        if FileManager.default.fileExists(atPath: "\(path)/cgroup.kill") {
            try? "1".write(toFile: "\(path)/cgroup.kill", atomically: false, encoding: .utf8)
        } else {
            for pid in processes(in: path) { Glibc.kill(pid, SIGKILL) }
        }
        // The kernel empties the cgroup once the killed processes have exited.
        for _ in 0..<100 {
            if rmdir(path) == 0 || errno == ENOENT { return nil }
            usleep(50_000)
        }
        return "remove cgroup \(path): \(String(cString: strerror(errno))) (processes \(processes(in: path)))"
    }

    static func processes(in path: String) -> [pid_t] {
        let text = (try? String(contentsOfFile: "\(path)/cgroup.procs", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Run-tagged cgroups that still exist.
    static func paths(tag: String) -> [String] {
        guard let mount else { return [] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: mount)) ?? []
        return names.filter { $0.hasPrefix("na\(tag)-") }.sorted().map { "\(mount)/\($0)" }
    }

    /// `arguments` run inside network namespace `netns` and cgroup `cgroup`: the shell joins the cgroup, then
    /// becomes nsenter, which becomes the command; every socket it opens is under the cgroup's hooks.
    static func command(_ arguments: [String], netns: String, cgroup: String) -> [String] {
        [
            "/bin/sh", "-c", "echo $$ > \"$0\"/cgroup.procs && n=$1 && shift && exec nsenter --net=\"$n\" -- \"$@\"",
            cgroup,
            Netns.path(netns),
        ] + arguments
    }
}
