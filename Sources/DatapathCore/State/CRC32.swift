import CZlib

/// CRC-32 (IEEE 802.3, zlib's and gzip's), to tell a state record torn by a crash from a whole one.
public enum CRC32 {
    public static func checksum<Bytes: Collection>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        let contiguous = bytes.withContiguousStorageIfAvailable { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
        return contiguous ?? checksum(Array(bytes))
    }
}
