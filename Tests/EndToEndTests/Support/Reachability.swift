import Foundation
import XCTest

/// What a TCP connection is expected to do.
enum Verdict: String, Sendable {
    /// Connects, and the payload comes back.
    case passes
    /// The handshake gets no answer at all: dropped on the way, not refused.
    case dropped
}

/// One expected exchange of a reachability matrix: a TCP connection, or a UDP datagram that an echo server
/// answers (`passes`) or that gets no answer at all (`dropped`).
struct Probe: Sendable, CustomStringConvertible {
    var source: any NetworkHost
    var destination: any NetworkHost
    var port: UInt16
    var expected: Verdict
    var ipv6 = false
    var udp = false

    init(
        from source: any NetworkHost, to destination: any NetworkHost, port: UInt16, _ expected: Verdict,
        ipv6: Bool = false
    ) {
        self.source = source
        self.destination = destination
        self.port = port
        self.expected = expected
        self.ipv6 = ipv6
    }

    /// The same, over UDP.
    static func udp(
        from source: any NetworkHost, to destination: any NetworkHost, port: UInt16, _ expected: Verdict,
        ipv6: Bool = false
    ) -> Probe {
        var probe = Probe(from: source, to: destination, port: port, expected, ipv6: ipv6)
        probe.udp = true
        return probe
    }

    var description: String {
        "\(udp ? "UDP " : "")\(Probe.name(source)) → \(Probe.name(destination)):\(port)\(ipv6 ? " (IPv6)" : "")"
    }

    private static func name(_ host: any NetworkHost) -> String {
        (host as? Pod).map { "\($0)" } ?? (host as? ExternalHost).map { "\($0)" } ?? host.netns
    }

    /// Connects once and says whether the outcome matches; the message describes a mismatch.
    func run(timeout: TimeInterval) -> String? {
        if udp { return runUDP(timeout: timeout) }
        let result: TCPResult
        do {
            result = try tcpConnect(
                from: source.netns, to: try destination.address(ipv6: ipv6), port: port, timeout: timeout)
        } catch {
            return "\(self): could not probe: \(error)"
        }
        switch expected {
        case .passes where !result.passed:
            return "\(self) should pass, got \(result)"
        case .dropped where !result.dropped:
            let hint = result.outcome == .refused ? " (a reset answered: not dropped on the way)" : ""
            return "\(self) should be dropped, got \(result)\(hint)"
        default:
            return nil
        }
    }

    private func runUDP(timeout: TimeInterval) -> String? {
        do {
            let result = try udpExchange(
                from: source.netns, to: try destination.address(ipv6: ipv6), port: port, timeout: timeout)
            switch expected {
            case .passes where !result.passed: return "\(self) should get its echo, got \(result)"
            case .dropped where result.outcome != .timedOut: return "\(self) should be dropped, got \(result)"
            default: return nil
            }
        } catch {
            return "\(self): could not probe: \(error)"
        }
    }
}

extension XCTestCase {
    /// Runs every probe at once (each expected drop costs its whole timeout) and records one failure per probe
    /// whose outcome differs, prefixed by `context`.
    func assertReachability(
        _ probes: [Probe], timeout: TimeInterval = 1, _ context: String, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let failures = Locked<[Int: String]>([:])
        let group = DispatchGroup()
        for (index, probe) in probes.enumerated() {
            group.enter()
            Thread {
                if let failure = probe.run(timeout: timeout) { failures.withLock { $0[index] = failure } }
                group.leave()
            }.start()
        }
        group.wait()
        for (_, failure) in failures.current.sorted(by: { $0.key < $1.key }) {
            XCTFail("\(context): \(failure)", file: file, line: line)
        }
    }
}
