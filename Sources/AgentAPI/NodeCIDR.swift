/// The node's pod CIDR derived from the cluster pool, as Cilium's operator hands them out: each pool CIDR is cut
/// into subnets of the mask size in address order, the first pool's subnets first, and node N gets subnet N (the
/// IPAM plugin's `node-index`; cluster mode claims the first subnet no node holds).
public enum NodeCIDR {
    /// Subnet `index` (from 0) of `maskSize` across `pools`; nil when the pools hold fewer subnets.
    public static func derive(pools: [IPPrefix], maskSize: Int, index: UInt64) -> IPPrefix? {
        var remaining = index
        for pool in pools where pool.length <= maskSize {
            let count = subnetCount(pool, maskSize: maskSize)
            if remaining < count {
                let shift = pool.address.bitLength - maskSize
                guard let bytes = adding(remaining, shiftedLeftBy: shift, to: pool.address.bytes) else { return nil }
                return IPPrefix(address: IPAddress(family: pool.address.family, bytes: bytes), length: maskSize)
            }
            remaining -= count
        }
        return nil
    }

    /// How many subnets of `maskSize` the pool holds; saturates at UInt64.max.
    public static func subnetCount(_ pool: IPPrefix, maskSize: Int) -> UInt64 {
        let bits = maskSize - pool.length
        return bits >= 64 ? .max : 1 << UInt64(bits)
    }

    /// Subnets across all pools, saturating.
    public static func totalSubnets(pools: [IPPrefix], maskSize: Int) -> UInt64 {
        pools.reduce(0) { total, pool in
            let (sum, overflow) = total.addingReportingOverflow(subnetCount(pool, maskSize: maskSize))
            return overflow ? .max : sum
        }
    }

    /// Big-endian `bytes` plus `value << shift`; nil when the sum does not fit.
    public static func adding(_ value: UInt64, shiftedLeftBy shift: Int, to bytes: [UInt8]) -> [UInt8]? {
        var result = bytes
        // value << (shift % 8), least significant byte first: at most 9 bytes.
        var addend: [UInt8] = []
        var spill: UInt16 = 0
        var rest = value
        for _ in 0..<8 {
            let widened = UInt16(rest & 0xFF) << UInt16(shift % 8) | spill
            addend.append(UInt8(widened & 0xFF))
            spill = widened >> 8
            rest >>= 8
        }
        addend.append(UInt8(spill))
        var index = bytes.count - 1 - shift / 8
        var carry: UInt16 = 0
        for byte in addend {
            guard index >= 0 else {
                if byte != 0 { return nil }
                continue
            }
            let sum = UInt16(result[index]) + UInt16(byte) + carry
            result[index] = UInt8(sum & 0xFF)
            carry = sum >> 8
            index -= 1
        }
        while carry != 0 {
            guard index >= 0 else { return nil }
            let sum = UInt16(result[index]) + carry
            result[index] = UInt8(sum & 0xFF)
            carry = sum >> 8
            index -= 1
        }
        return result
    }
}
