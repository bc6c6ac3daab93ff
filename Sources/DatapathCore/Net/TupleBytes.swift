/// Fixed-size C arrays (imported as tuples) to and from byte arrays.
public func tupleBytes<T>(_ tuple: T) -> [UInt8] {
    withUnsafeBytes(of: tuple) { Array($0) }
}

public func setTupleBytes<T>(_ tuple: inout T, _ bytes: [UInt8]) {
    withUnsafeMutableBytes(of: &tuple) { raw in
        for index in 0..<min(raw.count, bytes.count) { raw[index] = bytes[index] }
    }
}
