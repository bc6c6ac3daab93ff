/// An IP prefix ("10.0.0.0/8"), bits beyond its length cleared.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) else { return nil }
        let length: Int
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...address.bitLength).contains(value) else { return nil }
            length = value
        } else {
            length = address.bitLength
        }
        self.init(address: address, length: length)
    }

    public init(address: IPAddress, length: Int) {
        let masked = address.bytes.enumerated().map { index, byte -> UInt8 in
            let bits = min(max(length - index * 8, 0), 8)
            return bits == 8 ? byte : byte & ~(UInt8(0xFF) >> bits)
        }
        self.address = IPAddress(family: address.family, bytes: masked)
        self.length = length
    }

    public var description: String { "\(address)/\(length)" }

    public func contains(_ other: IPAddress) -> Bool {
        other.family == address.family && IPPrefix(address: other, length: length).address == address
    }
}
