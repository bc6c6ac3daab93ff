import DatapathCore

/// The conntrack sweep run in the kernel (`bpf/ct_gc.bpf.c`): one BPF_PROG_TEST_RUN visits every entry of na_ct
/// where it lies and deletes the expired ones there, and counts the entries whose endpoint was not live when the
/// sweep started. Nothing is copied out, which is what made a user-space sweep of a million entries cost seconds.
struct ConntrackKernelSweep: Sendable {
    static let objectName = "ct_gc"

    private let program: BPFProgram
    /// na_ct_gc_owners: one element, a bitmap of NA_CT_GC_OWNER_IDS bits (too large an array for Swift to import
    /// the struct's field, so it is written as bytes).
    private let owners: BPFMap
    private static let ownerBytes = Int(NA_CT_GC_OWNER_IDS) / 8

    /// Loads the sweep on the given na_ct (taken by descriptor, so the program walks that very map).
    init(conntrack: BPFMap) throws {
        let object = try BPFObject.load(
            embedded: Self.objectName, pinDirectory: nil, reusing: [conntrack.name: conntrack])
        guard let program = object.program(named: "na_ct_sweep"), let owners = object.map(named: "na_ct_gc_owners")
        else { throw AgentError.datapath("object \(Self.objectName) lacks na_ct_sweep or na_ct_gc_owners") }
        guard owners.info.keySize == 4, owners.info.valueSize == Self.ownerBytes else {
            throw AgentError.datapath("map na_ct_gc_owners is not a \(Self.ownerBytes)-byte bitmap")
        }
        self.program = program
        self.owners = owners
    }

    /// What one run found: the entries it read, deleted, and the live entries of endpoints outside `live`.
    struct Result: Sendable, Equatable {
        var scanned: Int
        var expired: Int
        var suspects: Int
    }

    /// Deletes the entries whose lifetime is before `now` (CLOCK_MONOTONIC seconds). With `live` (the endpoint ids
    /// in na_endpoints), counts the other entries whose endpoint is not among them; ids beyond the owners bitmap
    /// always count, so the caller's own check decides them.
    func run(now: UInt32, live: Set<UInt32>?) throws -> Result {
        var args = na_ct_sweep_args()
        args.now = now
        if let live {
            var bitmap = [UInt8](repeating: 0, count: Self.ownerBytes)
            for id in live where id < UInt32(NA_CT_GC_OWNER_IDS) {
                bitmap[Int(id / 8)] |= UInt8(1) << (id % 8)
            }
            try owners.update(key: bytesOf(UInt32(0)), value: bitmap)
            args.check_owners = 1
        }
        try program.run(context: &args)
        return Result(scanned: Int(args.scanned), expired: Int(args.expired), suspects: Int(args.suspects))
    }
}
