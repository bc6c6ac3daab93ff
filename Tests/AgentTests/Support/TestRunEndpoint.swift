import AgentAPI
import DatapathCore
import XCTest

/// An unpinned endpoint object holding one endpoint at loopback, where BPF_PROG_TEST_RUN runs tc programs (ifindex
/// 1; see DatapathHarness in DatapathCoreTests): it enforces nothing, so every flow is allowed and tracked, and
/// packets from `client` pass its source check. For suites that send packets through `from_endpoint` with the maps
/// as the agent's writers leave them.
enum TestRunEndpoint {
    static let ifindex: UInt32 = 1

    static func load(client: String, maxEntries: [String: UInt32]) throws -> BPFObject {
        let object = try BPFObject.load(embedded: "endpoint", pinDirectory: nil, maxEntries: maxEntries)
        var endpoint = na_endpoint_info()
        endpoint.ep_id = 12
        endpoint.identity = 256
        endpoint.flags = UInt32(NA_EP_HAS_IPV4)
        setTupleBytes(&endpoint.ipv4, try XCTUnwrap(IPAddress(client)).bytes)
        try TypedMap<UInt32, na_endpoint_info>(XCTUnwrap(object.map(named: "na_endpoints"))).update(ifindex, endpoint)
        return object
    }

    /// An Ethernet + IPv4 + TCP SYN from `client` to `destination` (checksums do not matter to the programs).
    static func syn(from client: String, to destination: IPAddress, sport: UInt16, dport: UInt16) -> [UInt8] {
        let port = { (p: UInt16) in [UInt8(p >> 8), UInt8(p & 0xff)] }
        var ip: [UInt8] = [0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0]
        ip += IPAddress(client)!.bytes + destination.bytes
        let tcp = port(sport) + port(dport) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]
        return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00] + ip + tcp
    }
}
