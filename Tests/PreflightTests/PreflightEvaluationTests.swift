import AgentAPI
import CLibbpf
import XCTest

@testable import Preflight

/// The requirement table evaluated on recorded kernels: what is ok, what is missing, who needs it, and the exact
/// words the agent's refusal, the API and nodectl show.
final class PreflightEvaluationTests: XCTestCase {
    let standalone = AgentFeature.configured(plugins: [:], cluster: false)

    func testACompleteKernelPassesAndEveryCheckIsReported() {
        let report = PreflightReport.evaluate(RecordedKernels.complete(), for: standalone)
        XCTAssertTrue(report.passed)
        XCTAssertNil(report.refusal)
        XCTAssertEqual(report.items.filter { $0.status != .ok }, [])
        XCTAssertEqual(
            report.items.map(\.name),
            [
                "kernel-version", "bpffs", "program-type sched_cls", "tc-clsact", "tcx", "btf", "rcu-grace-period",
                "cgroup2",
                "map-type hash", "map-type array", "map-type hash_of_maps", "map-type lpm_trie", "map-type lru_hash",
                "map-type percpu_array", "map-type prog_array", "map-type ringbuf", "helper bpf_map_lookup_elem",
                "helper bpf_map_update_elem", "helper bpf_map_delete_elem", "helper bpf_ktime_get_ns",
                "helper bpf_ktime_get_coarse_ns",
                "helper bpf_get_prandom_u32", "helper bpf_skb_pull_data", "helper bpf_skb_store_bytes",
                "helper bpf_l3_csum_replace", "helper bpf_l4_csum_replace", "helper bpf_csum_diff",
                "helper bpf_skb_load_bytes", "helper bpf_skb_change_tail", "helper bpf_redirect_peer",
                "helper bpf_redirect", "helper bpf_fib_lookup", "helper bpf_tail_call",
                "helper bpf_ringbuf_reserve", "helper bpf_ringbuf_submit", "helper bpf_ringbuf_query",
                "program-type cgroup_sock_addr", "helper bpf_get_socket_cookie", "helper bpf_get_netns_cookie",
                "helper bpf_set_retval", "map-type sockhash", "program-type sock_ops", "program-type sk_skb",
                "helper bpf_sock_hash_update", "helper bpf_sk_redirect_hash", "helper bpf_skc_to_tcp_sock",
                "helper bpf_loop",
                "helper bpf_skb_change_head", "helper bpf_skb_adjust_room", "helper bpf_sock_ops_cb_flags_set",
                "program-type syscall", "helper bpf_for_each_map_elem", "sysctl net.core.bpf_jit_enable",
                "sysctl kernel.unprivileged_bpf_disabled",
            ])
        XCTAssertEqual(
            report.lines().prefix(5),
            [
                "ok       kernel-version: 6.1.0-28-amd64 (supported from 5.11); reported only: features are probed, "
                    + "not inferred from the version",
                "ok       bpffs (needed by core): /sys/fs/bpf/nodeagent is on bpffs",
                "ok       program-type sched_cls (needed by core): the endpoint programs (tc)",
                "ok       tc-clsact (needed by core): a clsact qdisc takes a SCHED_CLS filter (endpoint programs "
                    + "attach to a clsact qdisc where there is no tcx)",
                "ok       tcx: available (the tc programs attach there when it is present; clsact otherwise)",
            ])
    }

    func testWithoutGracePeriodsNothingIsRefusedAndTheReportSaysWhatSlowsDown() {
        let report = PreflightReport.evaluate(RecordedKernels.withoutGracePeriods(), for: standalone)
        XCTAssertTrue(report.passed)
        XCTAssertEqual(
            report.items.filter { $0.status != .ok },
            [
                .init(
                    name: "rcu-grace-period", status: .missing, neededBy: [],
                    detail:
                        "membarrier(MEMBARRIER_CMD_GLOBAL) is not offered (nohz_full CPUs, or no CONFIG_MEMBARRIER): "
                        + "packets read endpoint rows and IPv4 ipcache entries from their hashes, slower, enforced the "
                        + "same")
            ])
    }

    func testWithoutBTFNothingIsRefused() {
        let report = PreflightReport.evaluate(RecordedKernels.withoutBTF(), for: standalone)
        XCTAssertTrue(report.passed)
        XCTAssertEqual(
            report.items.filter { $0.status != .ok },
            [
                .init(
                    name: "btf", status: .missing, neededBy: [],
                    detail: "/sys/kernel/btf/vmlinux is absent (CONFIG_DEBUG_INFO_BTF); HTTP rules: the verdict reads "
                        + "the server socket's tcp_sock.write_seq, placed from the kernel's BTF")
            ])
    }

    func testWithoutBPFFSAtThePinRootTheStartIsRefused() {
        let report = PreflightReport.evaluate(RecordedKernels.withoutBPFFS(), for: standalone)
        XCTAssertFalse(report.passed)
        XCTAssertEqual(report.refusal, "kernel preflight on 6.1.0-28-amd64: 1 required feature(s) missing: bpffs")
        XCTAssertEqual(
            report.lines(onlyMissing: true),
            [
                "missing  bpffs (needed by core): /var/tmp/na/bpf is not on a BPF filesystem (mount one with: "
                    + "mount -t bpf bpf /var/tmp/na); maps are pinned there so they outlive an agent restart"
            ])
        let bpffs = report.json["checks"]?.arrayValue?.first { $0["name"] == "bpffs" }
        XCTAssertEqual(bpffs?["status"], "missing")
        XCTAssertEqual(bpffs?["required"], true)
        XCTAssertEqual(bpffs?["needed-by"], ["core"])
        XCTAssertEqual(report.json["status"], "missing")
        XCTAssertEqual(report.json["version"], "6.1.0-28-amd64")
    }

    func testAPinRootBelowAnEmptySysFsBPFIsMountedByTheAgent() {
        var kernel = RecordedKernels.complete()
        kernel.pinRootState = .mountedAtStart
        let report = PreflightReport.evaluate(kernel, for: standalone)
        XCTAssertTrue(report.passed)
        XCTAssertEqual(
            report.items.first { $0.name == "bpffs" }?.detail,
            "nothing is mounted at /sys/fs/bpf yet: the agent mounts bpffs there when it starts, then pins below "
                + "/sys/fs/bpf/nodeagent")
    }

    func testWithoutCgroup2NothingIsRefused() {
        let report = PreflightReport.evaluate(RecordedKernels.withoutCgroup2(), for: standalone)
        XCTAssertTrue(report.passed)
        XCTAssertEqual(
            report.lines().filter { !$0.hasPrefix("ok ") },
            [
                "missing  cgroup2: no cgroup v2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified; the socket load "
                    + "balancer mounts cgroup v2 at services.cgroup-root when no mount is there"
            ])
        var hybrid = RecordedKernels.complete()
        hybrid.cgroup2 = "/sys/fs/cgroup/unified"
        XCTAssertEqual(
            PreflightReport.evaluate(hybrid, for: standalone).items.first { $0.name == "cgroup2" },
            .init(
                name: "cgroup2", status: .ok, neededBy: [],
                detail: "cgroup v2 at /sys/fs/cgroup/unified (hybrid layout, v1 controllers at /sys/fs/cgroup)"))
    }

    func testWithoutTheRingBufferTheStartIsRefusedNamingWhatNeedsIt() {
        let report = PreflightReport.evaluate(RecordedKernels.withoutRingBuffer(), for: standalone)
        XCTAssertEqual(
            report.refusal,
            "kernel preflight on 5.4.0-216-generic: 4 required feature(s) missing: map-type ringbuf, "
                + "helper bpf_ringbuf_reserve, helper bpf_ringbuf_submit, helper bpf_ringbuf_query")
        XCTAssertEqual(
            report.lines(onlyMissing: true),
            [
                "missing  map-type ringbuf (needed by core, flows): not supported by this kernel, so the endpoint "
                    + "programs cannot load (na_events: flow and drop events)",
                "missing  helper bpf_ringbuf_reserve (needed by core, flows): not supported by this kernel, so the "
                    + "endpoint programs cannot load (flow and drop events)",
                "missing  helper bpf_ringbuf_submit (needed by core, flows): not supported by this kernel, so the "
                    + "endpoint programs cannot load (flow and drop events)",
                "missing  helper bpf_ringbuf_query (needed by core, flows): not supported by this kernel, so the "
                    + "endpoint programs cannot load (event backpressure)",
            ])
        XCTAssertEqual(
            report.lines().filter { $0.hasPrefix("missing  kernel-version") || $0.hasPrefix("missing  tcx") },
            [
                "missing  kernel-version: 5.4.0-216-generic is older than the supported 5.11 (5.8 at the least, "
                    + "for the BPF ring buffer); reported only: features are probed, not inferred from the version",
                "missing  tcx: not available, before Linux 6.6 (the tc programs attach there when it is present; "
                    + "clsact otherwise)",
            ])
    }

    func testNeededByNamesOnlyConfiguredFeatures() {
        let withoutNAT = AgentFeature.configured(plugins: ["nat": ["enabled": false]], cluster: true)
        XCTAssertEqual(withoutNAT, [.core, .flows, .conntrackGC, .cidrPolicy, .ipam, .cluster])
        let kernel = RecordedKernels.complete()
        let csum = { (features: Set<AgentFeature>) in
            PreflightReport.evaluate(kernel, for: features).items.first { $0.name == "helper bpf_l4_csum_replace" }
        }
        XCTAssertEqual(csum(withoutNAT)?.neededBy, [.core])
        XCTAssertEqual(csum(self.standalone)?.neededBy, [.core, .nat])
        XCTAssertEqual(PreflightReport.evaluate(kernel, for: []).features, [.core, .flows], "always on")
    }

    func testAProbeThatCouldNotRunIsUnknownAndRefusesNothing() {
        var kernel = RecordedKernels.complete()
        kernel.clsact = .unprobed("a network namespace for the probe: Operation not permitted (errno 1)")
        let report = PreflightReport.evaluate(kernel, for: standalone)
        XCTAssertTrue(report.passed)
        XCTAssertEqual(
            report.lines().filter { $0.hasPrefix("unknown") },
            [
                "unknown  tc-clsact (needed by core): could not be probed, a network namespace for the probe: "
                    + "Operation not permitted (errno 1) (endpoint programs attach to a clsact qdisc where there is "
                    + "no tcx)"
            ])
    }

    func testAKernelWithoutSetRetvalIsReportedWithoutServicesAndRefusedWithThem() {
        var kernel = RecordedKernels.complete(release: "5.15.0-1-amd64")
        kernel.helpers[BPF_FUNC_set_retval.rawValue] = .unavailable
        let report = PreflightReport.evaluate(kernel, for: standalone)
        XCTAssertTrue(report.passed, "services.enabled false: nothing the agent starts needs it")
        XCTAssertEqual(
            report.lines().first { $0.contains("bpf_set_retval") },
            "missing  helper bpf_set_retval: not supported by this kernel, so the socket load balancer cannot load "
                + "(refusing a service without backends (Linux 5.18))")

        let withServices = PreflightReport.evaluate(
            kernel, for: AgentFeature.configured(plugins: [:], cluster: false, services: true))
        XCTAssertFalse(withServices.passed)
        XCTAssertEqual(
            withServices.refusal,
            "kernel preflight on 5.15.0-1-amd64: 1 required feature(s) missing: helper bpf_set_retval; services need "
                + "them: set services.enabled to false to run without the socket load balancer")
        XCTAssertEqual(
            withServices.lines(onlyMissing: true),
            [
                "missing  helper bpf_set_retval (needed by services): not supported by this kernel, so the socket load "
                    + "balancer cannot load (refusing a service without backends (Linux 5.18))"
            ])
    }

    func testAKernelWithoutCgroupSockAddrRefusesServicesOnly() {
        var kernel = RecordedKernels.complete()
        kernel.programTypes[BPF_PROG_TYPE_CGROUP_SOCK_ADDR.rawValue] = .unavailable
        XCTAssertTrue(PreflightReport.evaluate(kernel, for: standalone).passed)
        let withServices = PreflightReport.evaluate(
            kernel, for: AgentFeature.configured(plugins: [:], cluster: false, services: true))
        XCTAssertEqual(withServices.missing.map(\.name), ["program-type cgroup_sock_addr"])
        XCTAssertEqual(withServices.missing.map(\.neededBy), [[.services]])
        XCTAssertTrue(
            withServices.refusal?.hasSuffix("set services.enabled to false to run without the socket load balancer")
                == true)
    }

    func testTheJITSysctlIsReportedButNeverRefuses() {
        var kernel = RecordedKernels.complete()
        kernel.sysctls[Sysctl.jitEnable] = "0"
        let report = PreflightReport.evaluate(kernel, for: standalone)
        XCTAssertTrue(report.passed)
        XCTAssertEqual(
            report.items.first { $0.name == "sysctl net.core.bpf_jit_enable" }?.detail,
            "0: the programs run in the interpreter, slower (sysctl -w net.core.bpf_jit_enable=1)")
        XCTAssertEqual(
            report.items.first { $0.name == "sysctl kernel.unprivileged_bpf_disabled" }?.detail,
            "2 (informational: the agent runs privileged)")
    }
}
