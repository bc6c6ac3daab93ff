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
}
