import CNodeABI
import DatapathCore
import XCTest

/// A frontend without backends (bpf/lib/lb_reject.h): the packet is counted and reported as a drop with its reason,
/// and turned into its refusal (a TCP RST, an ICMP(v6) port unreachable for UDP) sent back to the pod (the
/// verdict is a redirect). Every checksum of the answer is verified from scratch.
extension ServiceTranslationTests {
    /// The answer's Ethernet header: the request's addresses swapped.
    private func checkSwappedMACs(
        _ out: [UInt8], _ request: [UInt8], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(Array(out[0..<6]), Array(request[6..<12]), "to the pod's MAC", file: file, line: line)
        XCTAssertEqual(Array(out[6..<12]), Array(request[0..<6]), "from the node's MAC", file: file, line: line)
        XCTAssertEqual(Array(out[12..<14]), Array(request[12..<14]), file: file, line: line)
    }

    /// Runs from_endpoint on `request` to the empty frontend: a redirect, one drop counted and reported with
    /// NA_DROP_NO_SERVICE, nothing tracked. The answer's frame.
    private func refused(_ request: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
        let reason = NA_DROP_NO_SERVICE.rawValue
        let before = try h.metric(reason: reason, direction: NA_DIR_EGRESS.rawValue)
        _ = try h.drainEvents()
        let result = try h.program(Program.fromEndpoint.rawValue).testRun(packet: request)
        XCTAssertEqual(result.retval, Verdict.TC_ACT_REDIRECT, "sent back to the pod", file: file, line: line)
        let after = try h.metric(reason: reason, direction: NA_DIR_EGRESS.rawValue)
        XCTAssertEqual(after.packets - before.packets, 1, "counted as a drop", file: file, line: line)
        let events = try h.drainEvents()
        XCTAssertEqual(
            events.map { UInt32($0.reason) }, [reason], "one drop event naming the reason", file: file, line: line)
        XCTAssertEqual(try h.conntrack.map.keys().count, 0, "nothing tracked", file: file, line: line)
        checkSwappedMACs(result.packetOut, request, file: file, line: line)
        return result.packetOut
    }

    private func tcpFields(_ frame: [UInt8], l4: Int) -> (seq: UInt32, ack: UInt32, flags: UInt8, offset: UInt8) {
        func word(_ at: Int) -> UInt32 { frame[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) } }
        return (word(l4 + 4), word(l4 + 8), frame[l4 + 13], frame[l4 + 12] >> 4)
    }

    func testASynToAFrontendWithoutBackendsIsAnsweredWithAResetAcknowledgingIt() throws {
        for (client, frontend) in [(Net.ep4, Self.frontend4), (Net.ep6, Self.frontend6)] {
            try addService(frontend, port: 80, backends: [])
            let syn = ServiceFrame.checksummed(.tcp(client, frontend, sport: 40000, dport: 80))
            let out = try refused(syn)
            let v4 = !client.contains(":")
            XCTAssertEqual(out.count, v4 ? 54 : 74, "Ethernet, IP and a bare TCP header")
            let reset = try XCTUnwrap(ServiceFrame(out), "a TCP frame")
            XCTAssertEqual(reset.source, bytes(frontend), "from the address the pod connected to")
            XCTAssertEqual(reset.destination, bytes(client))
            XCTAssertEqual(reset.sport, 80)
            XCTAssertEqual(reset.dport, 40000)
            XCTAssertTrue(reset.ipChecksumValid, client)
            XCTAssertTrue(reset.l4ChecksumValid, client)
            let tcp = tcpFields(out, l4: v4 ? 34 : 54)
            XCTAssertEqual(tcp.flags, 0x14, "RST and ACK")
            XCTAssertEqual(tcp.seq, 0)
            XCTAssertEqual(tcp.ack, 1001, "the SYN's sequence number and the one the SYN takes")
            XCTAssertEqual(tcp.offset, 5)
            if v4 {
                XCTAssertEqual(out[22], 64, "TTL")
                XCTAssertEqual(out[23], Proto.tcp)
            } else {
                XCTAssertEqual(out[20], Proto.tcp, "next header")
                XCTAssertEqual(Array(out[18..<20]), be16(20), "payload length")
            }
        }
    }

    /// A segment with an ACK (a flow whose backends all went) is reset at the sequence number it acknowledged; a
    /// RST is never answered.
    func testASegmentWithAnAckIsResetAtItsAckNumberAndAResetIsOnlyDropped() throws {
        try addService(Self.frontend4, port: 80, backends: [])
        var ack = Packet.tcp(Net.ep4, Self.frontend4, sport: 40001, dport: 80, flags: [.ack, .psh])
        ack.payload = Array("hello".utf8)
        let out = try refused(ServiceFrame.checksummed(ack))
        let tcp = tcpFields(out, l4: 34)
        XCTAssertEqual(tcp.flags, 0x04, "RST alone")
        XCTAssertEqual(tcp.seq, 2000)
        XCTAssertEqual(ServiceFrame(out)?.l4ChecksumValid, true)
        XCTAssertEqual(out.count, 54, "the payload is gone")

        let rst = ServiceFrame.checksummed(.tcp(Net.ep4, Self.frontend4, sport: 40002, dport: 80, flags: .rst))
        XCTAssertEqual(try h.run(Program.fromEndpoint.rawValue, rst), Verdict.TC_ACT_SHOT)
    }

    func testAUDPDatagramToAFrontendWithoutBackendsIsAnsweredWithPortUnreachableQuotingIt() throws {
        for (client, frontend) in [(Net.ep4, Self.frontend4), (Net.ep6, Self.frontend6)] {
            try addService(frontend, port: 53, proto: Proto.udp, backends: [])
            let query = ServiceFrame.checksummed(.udp(client, frontend, sport: 40053, dport: 53))
            let out = try refused(query)
            let v4 = !client.contains(":")
            let ipLength = v4 ? 20 : 40
            let quote = Array(query[14..<(14 + ipLength + 8)])
            XCTAssertEqual(out.count, 14 + ipLength + 8 + quote.count, "IP, ICMP header, the quote")
            let icmp = 14 + ipLength
            XCTAssertEqual(Array(out[(icmp + 8)...]), quote, "the request's IP and UDP headers")
            if v4 {
                XCTAssertEqual(Array(out[26..<30]), bytes(frontend))
                XCTAssertEqual(Array(out[30..<34]), bytes(client))
                XCTAssertEqual(out[23], 1, "ICMP")
                XCTAssertEqual(Array(out[16..<18]), be16(UInt16(20 + 8 + quote.count)), "total length")
                XCTAssertEqual(checksum(Array(out[14..<34])), 0, "IPv4 header checksum")
                XCTAssertEqual(Array(out[icmp..<icmp + 2]), [3, 3], "destination unreachable, port")
                XCTAssertEqual(checksum(Array(out[icmp...])), 0, "ICMP checksum")
            } else {
                XCTAssertEqual(Array(out[22..<38]), bytes(frontend))
                XCTAssertEqual(Array(out[38..<54]), bytes(client))
                XCTAssertEqual(out[20], 58, "ICMPv6")
                XCTAssertEqual(Array(out[18..<20]), be16(UInt16(8 + quote.count)), "payload length")
                XCTAssertEqual(Array(out[icmp..<icmp + 2]), [1, 4], "destination unreachable, port")
                let pseudo = Array(out[22..<54]) + be32(UInt32(8 + quote.count)) + [0, 0, 0, 58]
                XCTAssertEqual(checksum(pseudo + Array(out[icmp...])), 0, "ICMPv6 checksum")
            }
        }
    }
}
