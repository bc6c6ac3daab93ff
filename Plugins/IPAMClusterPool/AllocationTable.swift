import DatapathCore

/// The ledger's allocations with the pod CIDRs they are handed out from: counts per family and the search for
/// the next free address.
///
/// Allocation is round-robin: the search starts after the address last handed out and wraps around, so an
/// address just released is the last to be handed out again. A pod that is deleted and recreated does not get the
/// address whose conntrack entries and peers' caches may still point at its predecessor.
struct AllocationTable: Sendable {
    private(set) var contents: LedgerContents
    let podCIDRs: [IPAddress.Family: PodCIDR]
    /// Allocations inside each family's pod CIDR (the ledger may hold others from an earlier configuration).
    private(set) var inUse: [IPAddress.Family: UInt64] = [:]

    init(contents: LedgerContents = LedgerContents(), podCIDRs: [IPAddress.Family: PodCIDR]) {
        self.contents = contents
        self.podCIDRs = podCIDRs
        for allocation in contents.allocations.values where isInside(allocation.address) {
            inUse[allocation.family, default: 0] += 1
        }
    }

    subscript(address: IPAddress) -> Allocation? { contents.allocations[address] }

    var allocations: [Allocation] { contents.allocations.values.sorted { $0.address < $1.address } }

    func isInside(_ address: IPAddress) -> Bool {
        podCIDRs[address.family]?.offset(of: address) != nil
    }

    mutating func apply(_ change: LedgerChange) {
        for address in change.release where contents.allocations[address] != nil && isInside(address) {
            inUse[address.family, default: 0] -= 1
        }
        for allocation in change.put where contents.allocations[allocation.address] == nil {
            if isInside(allocation.address) { inUse[allocation.family, default: 0] += 1 }
        }
        contents.apply(change)
    }

    /// The next address to hand out in `family`: after the cursor, skipping allocated addresses and those
    /// `isTaken` reports (addresses live endpoints use without an allocation). nil when none is free.
    func nextFree(_ family: IPAddress.Family, isTaken: (IPAddress) -> Bool) -> IPAddress? {
        guard let cidr = podCIDRs[family], inUse[family, default: 0] < cidr.capacity else { return nil }
        var offset = contents.cursors[family].flatMap { cidr.offset(of: $0) } ?? PodCIDR.gatewayOffset
        if offset < cidr.firstUsable || offset > cidr.lastUsable { offset = cidr.firstUsable - 1 }
        // Ends at the first free address: at most (taken addresses + 1) steps.
        var remaining = cidr.capacity
        while remaining > 0 {
            offset = offset >= cidr.lastUsable ? cidr.firstUsable : offset + 1
            let address = cidr.address(at: offset)
            if contents.allocations[address] == nil && !isTaken(address) { return address }
            remaining -= 1
        }
        return nil
    }
}
