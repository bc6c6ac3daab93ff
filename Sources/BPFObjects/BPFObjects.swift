import FoundationEssentials

/// The BPF objects compiled from bpf/*.bpf.c at build time and carried inside the binary.
public enum BPFObjects {
    /// Names of the embedded objects (the source file name without `.bpf.c`).
    public static var names: [String] { embeddedObjectsBase64.keys.sorted() }

    /// The ELF bytes of the object compiled from `bpf/<name>.bpf.c`, or nil when there is none.
    public static func object(named name: String) -> [UInt8]? {
        guard let encoded = embeddedObjectsBase64[name], let data = Data(base64Encoded: encoded) else { return nil }
        return [UInt8](data)
    }
}
