import CNodeABI
import DatapathCore
import XCTest

/// Hairpin on the tc path (bpf/lib/lb_xlate.h): a pod whose flow to a frontend goes to itself reaches itself from
/// 169.254.42.1, its answer there comes out of the pod and goes back to its own address, and to_endpoint gives it
/// the frontend back. The pod's ingress policy, which allows nothing here, does not judge its traffic to itself.
extension ServiceTranslationTests {
    static let hairpinAddress = "169.254.42.1"

    func testAPodReachingAServiceBackedByItselfGetsItsAnswerFromTheFrontend() throws {
        try addService(Self.frontend4, port: 80, backends: [(Net.ep4, 8080)])
        try h.changePolicy([.egress(0, Proto.tcp)])
        let syn = ServiceFrame.checksummed(.tcp(Net.ep4, Self.frontend4, sport: 40000, dport: 80))
        let (retval, out) = try run(.fromEndpoint, syn)
        XCTAssertEqual(retval, Verdict.TC_ACT_OK)
        XCTAssertEqual(out.source, bytes(Self.hairpinAddress), "the pod reaches itself from the hairpin address")
        XCTAssertEqual(out.destination, bytes(Net.ep4))
        XCTAssertEqual(out.sport, 40000)
        XCTAssertEqual(out.dport, 8080)
        XCTAssertTrue(out.ipChecksumValid)
        XCTAssertTrue(out.l4ChecksumValid)

        // The kernel routes it back to the pod: to_endpoint lets it in although ingress allows nothing.
        let inbound = ServiceFrame.checksummed(.tcp(Self.hairpinAddress, Net.ep4, sport: 40000, dport: 8080))
        XCTAssertEqual(try h.run(Program.toEndpoint.rawValue, inbound), Verdict.TC_ACT_OK)
        let stranger = ServiceFrame.checksummed(.tcp(Net.world4, Net.ep4, sport: 40000, dport: 8080))
        XCTAssertEqual(try h.run(Program.toEndpoint.rawValue, stranger), Verdict.TC_ACT_SHOT, "ingress allows nothing")

        // The pod answers the hairpin address: the answer goes back to the pod's own address...
        let synAck = ServiceFrame.checksummed(
            .tcp(Net.ep4, Self.hairpinAddress, sport: 8080, dport: 40000, flags: [.syn, .ack]))
        let (answerVerdict, answer) = try run(.fromEndpoint, synAck)
        XCTAssertEqual(answerVerdict, Verdict.TC_ACT_OK)
        XCTAssertEqual(answer.source, bytes(Net.ep4))
        XCTAssertEqual(answer.destination, bytes(Net.ep4))
        XCTAssertEqual(answer.dport, 40000)
        XCTAssertTrue(answer.l4ChecksumValid)

        // ...and reaches it from the frontend, as any backend's reply.
        let back = ServiceFrame.checksummed(.tcp(Net.ep4, Net.ep4, sport: 8080, dport: 40000, flags: [.syn, .ack]))
        let (replyVerdict, reply) = try run(.toEndpoint, back)
        XCTAssertEqual(replyVerdict, Verdict.TC_ACT_OK)
        XCTAssertEqual(reply.source, bytes(Self.frontend4))
        XCTAssertEqual(reply.sport, 80)
        XCTAssertEqual(reply.destination, bytes(Net.ep4))
        XCTAssertTrue(reply.l4ChecksumValid)

        // The pod's next segment keeps both rewrites.
        let ack = ServiceFrame.checksummed(.tcp(Net.ep4, Self.frontend4, sport: 40000, dport: 80, flags: .ack))
        let (_, next) = try run(.fromEndpoint, ack)
        XCTAssertEqual(next.source, bytes(Self.hairpinAddress))
        XCTAssertEqual(next.destination, bytes(Net.ep4))
    }
}
