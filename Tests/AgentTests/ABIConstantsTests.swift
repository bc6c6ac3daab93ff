import CNodeABI
import XCTest

@testable import Policy

/// The Policy module has no C dependency, so it spells a few of the datapath ABI's numbers itself: they must be the
/// header's.
final class ABIConstantsTests: XCTestCase {
    func testReservedIdentitiesAreTheHeaders() {
        let header: [(UInt32, UInt32)] = [
            (ReservedIdentity.unknown, NA_ID_UNKNOWN.rawValue), (ReservedIdentity.host, NA_ID_HOST.rawValue),
            (ReservedIdentity.world, NA_ID_WORLD.rawValue), (ReservedIdentity.unmanaged, NA_ID_UNMANAGED.rawValue),
            (ReservedIdentity.health, NA_ID_HEALTH.rawValue), (ReservedIdentity.initializing, NA_ID_INIT.rawValue),
            (ReservedIdentity.remoteNode, NA_ID_REMOTE_NODE.rawValue),
            (ReservedIdentity.kubeAPIServer, NA_ID_KUBE_APISERVER.rawValue),
            (ReservedIdentity.ingress, NA_ID_INGRESS.rawValue), (ReservedIdentity.worldIPv4, NA_ID_WORLD_IPV4.rawValue),
            (ReservedIdentity.worldIPv6, NA_ID_WORLD_IPV6.rawValue),
        ]
        for (swift, c) in header { XCTAssertEqual(swift, c) }
        XCTAssertEqual(ReservedIdentity.all.count, header.count - 1, "every reserved identity but unknown is named")
    }

    func testIdentityRangesAreTheHeaders() {
        XCTAssertEqual(IdentityAllocator.firstLocal, UInt32(NA_ID_ALLOC_MIN))
        XCTAssertEqual(IdentityAllocator.lastLocal, UInt32(NA_ID_LOCAL_CIDR_BASE) - 1)
        XCTAssertEqual(PeerUniverse.firstCIDRIdentity, UInt32(NA_ID_LOCAL_CIDR_BASE))
    }

    func testPolicyKeyPrefixLengthsAreTheHeaders() {
        XCTAssertEqual(PolicyEntry(identity: 5, direction: .egress).prefixLength, UInt32(NA_POLICY_PREFIX_FULL))
        XCTAssertEqual(
            PolicyEntry(identity: 5, direction: .egress, proto: 6).prefixLength, UInt32(NA_POLICY_PREFIX_PROTO))
        XCTAssertEqual(
            PolicyEntry(identity: 5, direction: .egress, proto: 6, port: 80, portPrefixBits: 16).prefixLength,
            UInt32(NA_POLICY_PREFIX_PORT))
    }
}
