import CZlib
import FoundationEssentials

/// The BPF objects compiled from bpf/*.bpf.c at build time and carried inside the binary, deflated.
public enum BPFObjects {
    /// Names of the embedded objects (the source file name without `.bpf.c`).
    public static var names: [String] { embeddedObjects.keys.sorted() }

    /// The ELF bytes of the object compiled from `bpf/<name>.bpf.c`, or nil when there is none.
    public static func object(named name: String) -> [UInt8]? {
        guard let embedded = embeddedObjects[name], let deflated = Data(base64Encoded: embedded.deflated) else {
            return nil
        }
        return [UInt8](unsafeUninitializedCapacity: embedded.size) { buffer, count in
            var size = uLong(embedded.size)
            let rc = deflated.withUnsafeBytes {
                uncompress(
                    buffer.baseAddress, &size, $0.baseAddress!.assumingMemoryBound(to: Bytef.self), uLong($0.count))
            }
            // The build wrote both: anything else is a broken binary.
            precondition(rc == Z_OK && size == embedded.size, "the embedded BPF object \(name) does not inflate")
            count = embedded.size
        }
    }
}
