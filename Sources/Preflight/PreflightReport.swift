import AgentAPI
import CLibbpf

/// The requirement table evaluated against a kernel's features for the configured features: each check ok or
/// missing, and whether a configured feature needs it. A missing required check refuses the agent's start.
public struct PreflightReport: Sendable, Equatable {
    /// `unknown`: the probe could not run (e.g. without CAP_SYS_ADMIN for a throwaway network namespace). It
    /// never refuses a start: what it stands for fails later with its own error if it is really absent.
    public enum Status: String, Sendable, Equatable {
        case ok
        case missing
        case unknown
    }

    public struct Item: Sendable, Equatable {
        public var name: String
        public var status: Status
        /// The configured features that need it; empty: reported only.
        public var neededBy: [AgentFeature]
        public var detail: String

        public var required: Bool { !neededBy.isEmpty }

        var json: JSON {
            [
                "name": .string(name), "status": .string(status.rawValue), "required": .bool(required),
                "needed-by": .array(neededBy.map { .string($0.rawValue) }), "detail": .string(detail),
            ]
        }
    }

    /// uname's release.
    public var kernel: String
    public var features: [AgentFeature]
    public var items: [Item]

    /// The required checks that failed: any one refuses the start.
    public var missing: [Item] { items.filter { $0.required && $0.status == .missing } }
    public var passed: Bool { missing.isEmpty }

    /// Evaluates `Requirements.table` against what `probe` reports, for `features` (the always-on ones added).
    public static func evaluate(_ probe: any KernelProbe, for features: Set<AgentFeature>) -> PreflightReport {
        let facts = probe.features()
        let configured = features.union(AgentFeature.always)
        let items = Requirements.table.map { requirement in
            let (status, detail) = Self.judge(requirement, facts)
            return Item(
                name: name(of: requirement.check), status: status,
                neededBy: requirement.neededBy.filter(configured.contains).sorted(), detail: detail)
        }
        return PreflightReport(kernel: facts.release, features: configured.sorted(), items: items)
    }

    /// The report as `GET /v1/healthz` shows it under `kernel`: each check's status by name, and what needs a
    /// check that is not ok and why. healthz is asked often (a liveness probe): the full details of every check
    /// would make it six times larger; `nodectl preflight` shows them.
    public var summaryJSON: JSON {
        [
            "version": .string(kernel), "status": passed ? "ok" : "missing",
            "features": .array(features.map { .string($0.rawValue) }),
            "checks": .object(items.reduce(into: [:]) { $0[$1.name] = .string($1.status.rawValue) }),
            "problems": .array(items.filter { $0.status != .ok }.map(\.json)),
        ]
    }

    /// The whole report, as `nodectl preflight -o json` shows it.
    public var json: JSON {
        [
            "version": .string(kernel), "status": passed ? "ok" : "missing",
            "features": .array(features.map { .string($0.rawValue) }),
            "checks": .array(items.map(\.json)),
        ]
    }

    /// One line per check, as the agent logs a refusal and `nodeagent preflight` prints the report:
    /// `missing  bpffs (needed by core): /tmp/x is not on a BPF filesystem (...)`.
    public func lines(onlyMissing: Bool = false) -> [String] {
        (onlyMissing ? missing : items).map { item in
            let needed = item.required ? " (needed by \(item.neededBy.map(\.rawValue).joined(separator: ", ")))" : ""
            let status = item.status.rawValue.padded(to: 8)
            return "\(status) \(item.name)\(needed): \(item.detail)"
        }
    }

    /// The required checks whose probe could not run: they refuse nothing, but prove nothing either.
    public var unknown: [Item] { items.filter { $0.required && $0.status == .unknown } }

    /// Why the agent refuses to start, naming each missing requirement; nil when nothing required is missing.
    public var refusal: String? {
        guard !passed else { return nil }
        let names = missing.map(\.name).joined(separator: ", ")
        let refusal = "kernel preflight on \(kernel): \(missing.count) required feature(s) missing: \(names)"
        // Services are the one feature on by default that a kernel may lack: say how to run without them.
        guard missing.contains(where: { $0.neededBy.contains(.services) }) else { return refusal }
        return refusal + "; services need them: set services.enabled to false to run without the socket load balancer"
    }

    static func name(of check: Check) -> String {
        switch check {
        case .kernelVersion: "kernel-version"
        case .btf: "btf"
        case .bpffs: "bpffs"
        case .cgroup2: "cgroup2"
        case .clsact: "tc-clsact"
        case .tcx: "tcx"
        case .gracePeriod: "rcu-grace-period"
        // libbpf's names, as bpftool prints them.
        case .programType(let id):
            "program-type " + (libbpf_bpf_prog_type_str(bpf_prog_type(rawValue: id)).map(String.init) ?? "\(id)")
        case .mapType(let id):
            "map-type " + (libbpf_bpf_map_type_str(bpf_map_type(rawValue: id)).map(String.init) ?? "\(id)")
        case .helper(_, let name, _): "helper \(name)"
        case .sysctl(let name): "sysctl \(name)"
        }
    }
}
