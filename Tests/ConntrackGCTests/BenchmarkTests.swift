import ConntrackGC
import DatapathCore
import Foundation
import XCTest

/// Sweep cost on a table of a million entries; run by bench/ct-gc.sh (NODEAGENT_BENCH=1, release build, root).
/// Skipped otherwise: it needs about 300 MB of kernel memory and half a minute.
final class BenchmarkTests: XCTestCase {
    static let entries = 1_000_000
    static let rounds = 3

    func testBenchmarkSweepOfOneMillionEntries() throws {
        try XCTSkipUnless(
            ProcessInfo.processInfo.environment["NODEAGENT_BENCH"] == "1", "set NODEAGENT_BENCH=1 to run the benchmark")
        let datapath = try loadDatapath(conntrackEntries: 1_048_576)
        try datapath.addEndpoint(id: 1, ifindex: 10)
        let map = try datapath.map("na_ct")
        let keys = Self.keys(count: Self.entries)

        var rows: [String] = []
        // The agent's sweep (in the kernel) and its fallback (every entry read into user space), in the same run.
        let modes = [("kernel", true), ("user space", false)]
        // Every n-th entry expired; 0: none (the steady cost of a sweep over long-lived flows).
        let scenarios = [("100% expired", 1), ("10% expired", 10), ("none expired", 0)]
        for ((mode, inKernel), (scenario, expiredEvery)) in modes.flatMap({ m in scenarios.map { (m, $0) } }) {
            let sweeper = try ConntrackSweeper(
                conntrack: map, endpoints: datapath.map("na_endpoints"), inKernel: inKernel)
            XCTAssertEqual(sweeper.kernelSweepProblem, inKernel ? nil : "disabled")
            let label = "\(mode), \(scenario)"
            var wall: [Double] = []
            var cpu: [Double] = []
            var last = SweepStats()
            for _ in 0..<Self.rounds {
                // Start each round from an empty table so rounds are alike; neither the flush nor the fill is timed.
                _ = try sweeper.purge { _, _ in true }
                let now = MonotonicClock.seconds()
                let expired = bytesOf(ctValue(expiresIn: -1, endpoint: 1, now: now))
                let live = bytesOf(ctValue(expiresIn: 3600, endpoint: 1, now: now))
                let values = (0..<Self.entries).map { expiredEvery > 0 && $0 % expiredEvery == 0 ? expired : live }
                try map.updateBatch(keys: keys, values: values)

                let cpuBefore = Self.threadCPUSeconds()
                last = try sweeper.sweep(now: now)
                cpu.append(Self.threadCPUSeconds() - cpuBefore)
                XCTAssertEqual(last.scanned, Self.entries, "the fill or the walk lost entries")
                XCTAssertEqual(last.deleted, expiredEvery > 0 ? Self.entries / expiredEvery : 0)
                let (seconds, attoseconds) = last.duration.components
                wall.append(Double(seconds) + Double(attoseconds) / 1e18)
            }
            wall.sort()
            cpu.sort()
            let median = wall[wall.count / 2]
            rows.append(
                "| \(label.padding(toLength: 24, withPad: " ", startingAt: 0)) "
                    + String(
                        format: "| %9d | %9d | %7.0f ms | %5.0f–%-5.0f ms | %11.0f | %7.0f ms |", last.scanned,
                        last.deleted, median * 1000, wall.first! * 1000, wall.last! * 1000,
                        Double(last.scanned) / median, cpu[cpu.count / 2] * 1000))
        }
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3)
        let table =
            [
                "Conntrack GC sweep of \(Self.entries) entries (na_ct max 1048576), \(Self.rounds) rounds each, "
                    + "\(ProcessInfo.processInfo.activeProcessorCount) CPUs, load average "
                    + (load?.joined(separator: " ") ?? "?"),
                "| sweep, scenario          |   scanned |   deleted |    median |   min–max      |   entries/s "
                    + "|  CPU time |",
                "|--------------------------|-----------|-----------|-----------|----------------|-------------"
                    + "|-----------|",
            ] + rows
            + ["Wall time from the sweep's own clock; CPU time (user + kernel) of the sweeping thread, median."]
        print(table.joined(separator: "\n"))
        fflush(nil)
        _ = try ConntrackSweeper(conntrack: map, endpoints: nil, inKernel: false).purge { _, _ in true }
    }

    /// CPU time of the calling thread, syscalls included: what a sweep costs regardless of other load on the host.
    static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// `count` distinct IPv4 TCP tuples, every 8th of them IPv6.
    static func keys(count: Int) -> [[UInt8]] {
        (0..<count).map { index in
            let v6 = index % 8 == 0
            let flow = Flow(
                source: v6
                    ? "fd00::\(String(index >> 16, radix: 16)):\(String(index & 0xffff, radix: 16))"
                    : "10.\((index >> 16) & 0xff).\((index >> 8) & 0xff).\(index & 0xff)",
                destination: v6 ? "fd00::1" : "10.255.0.1", sourcePort: UInt16(truncatingIfNeeded: 1024 + index),
                destinationPort: 443)
            return bytesOf(flow.key)
        }
    }
}
