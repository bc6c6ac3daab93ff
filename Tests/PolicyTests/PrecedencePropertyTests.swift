import XCTest

@testable import Policy

/// Checks the precedence rewrite against the policy's meaning on random entry sets: whatever the prefixes, the
/// datapath's two longest-prefix lookups over the compiled entries must give the verdict the rules mean (a deny
/// matching the flow wins, else an allow matching it allows, else default deny).
final class PrecedencePropertyTests: XCTestCase {
    /// A small deterministic generator (SplitMix64), so a failure reproduces.
    struct Generator {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
    }

    private func randomEntry(_ g: inout Generator, id: UInt32) -> PolicyEntry {
        let identity: UInt32 = [0, 300, 301][g.next(3)]
        let deny = g.next(3) == 0
        switch g.next(4) {
        case 0:
            return PolicyEntry(identity: identity, direction: .ingress, deny: deny, ruleIDs: [id])
        case 1:
            return PolicyEntry(
                identity: identity, direction: .ingress, proto: [6, 17][g.next(2)], deny: deny, ruleIDs: [id])
        default:
            // Ranges within 0...63 so they overlap often.
            let low = UInt16(g.next(64))
            let high = min(63, low + UInt16(g.next(20)))
            let prefixes = PortPrefix.split(low...high)
            let prefix = prefixes[g.next(prefixes.count)]
            return PolicyEntry(
                identity: identity, direction: .ingress, proto: [6, 17][g.next(2)], port: prefix.port,
                portPrefixBits: prefix.bits, deny: deny, ruleIDs: [id])
        }
    }

    private func meaning(_ raw: [PolicyEntry], identity: UInt32, proto: UInt8, port: UInt16) -> PolicyDecision.Verdict {
        let matching = raw.filter {
            ($0.identity == identity || $0.identity == 0) && $0.matches(proto: proto, port: port)
        }
        if matching.contains(where: \.deny) { return .denied }
        return matching.isEmpty ? .denied : .allowed
    }

    func testCompiledEntriesDecideAsTheRulesMean() {
        var g = Generator(state: 42)
        for round in 0..<400 {
            let raw = (0..<(1 + g.next(8))).map { randomEntry(&g, id: UInt32($0 + 1)) }
            let compiled = EndpointPolicy(
                ingressEnforced: true, egressEnforced: false, entries: PolicyCompiler.resolvePrecedence(raw))
            XCTAssertLessThanOrEqual(compiled.entries.count, raw.count)
            XCTAssertEqual(Set(compiled.entries.map(\.key)).count, compiled.entries.count, "duplicate keys")
            for identity: UInt32 in [300, 301, 302] {
                for proto: UInt8 in [6, 17, 1] {
                    for port in UInt16(0)...70 {
                        let expected = meaning(raw, identity: identity, proto: proto, port: port)
                        let got = compiled.decide(identity: identity, direction: .ingress, proto: proto, port: port)
                        if got.verdict != expected {
                            XCTFail(
                                "round \(round): \(identity) \(proto)/\(port): got \(got.verdict), want \(expected)\n"
                                    + "raw: \(raw)\ncompiled: \(compiled.entries)")
                            return
                        }
                    }
                }
            }
        }
    }
}
