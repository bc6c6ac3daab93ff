import AgentAPI

/// How the datapath picks the backend of a new flow to a service.
public enum BackendSelection: Hashable, Sendable {
    /// A backend taking new connections, uniformly at random.
    case random
    /// The entry of the service's Maglev table for the flow's hash (`Maglev`): a flow keeps its backend when
    /// other backends come and go.
    case maglev(tableSize: Int)

    /// Cilium's default table size: prime, and over 100 times the backends a service usually has.
    public static let defaultMaglevTableSize = 16381

    /// The names the configuration gives them (`services.backend-selection`).
    public enum Name: String, Sendable, CaseIterable {
        case random
        case maglev
    }

    public var name: Name {
        switch self {
        case .random: .random
        case .maglev: .maglev
        }
    }
}

/// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
/// NSDI 2016, section 3.4): a lookup table of prime size M where each backend fills positions in the order of
/// its own permutation of 0..<M, taking turns, so each gets an equal share (within one position) and removing a
/// backend mostly frees only its own positions.
///
/// A backend's permutation comes from two hashes of its name, "ip:port" (`AddressPort`): offset = h1 mod M,
/// skip = h2 mod (M - 1) + 1, position j = (offset + j * skip) mod M. The hashes are FNV-1a, which is stable
/// across runs and machines (Swift's `Hasher` is seeded per process), so every agent builds the same table.
/// Weights are respected by letting each backend take `weight` turns per round.
public enum Maglev {
    /// One backend as the table builder sees it.
    public struct Backend: Hashable, Sendable {
        public var name: String
        public var weight: Int

        public init(name: String, weight: Int = 1) {
            self.name = name
            self.weight = weight
        }

        public init(address: IPAddress, port: UInt16, weight: Int = 1) {
            self.init(name: AddressPort(address: address, port: port).description, weight: weight)
        }
    }

    /// The table: for each of the `size` positions, the index in `backends` of the backend it names. Backends of
    /// weight 0 take no position; with none left every position is nil. `size` must be prime (`isPrime`): only
    /// then is every skip coprime with it and each permutation a full one.
    public static func table(_ backends: [Backend], size: Int) -> [Int?] {
        precondition(size > 1 && isPrime(size), "a Maglev table size must be a prime, not \(size)")
        var table = [Int?](repeating: nil, count: size)
        // Turns go in the order of the names, so the table does not depend on the order backends were listed in.
        let members = backends.indices.filter { backends[$0].weight > 0 }.sorted {
            (backends[$0].name, $0) < (backends[$1].name, $1)
        }
        guard !members.isEmpty else { return table }
        let permutations = members.map { permutation(of: backends[$0].name, size: size) }
        // Turns per round in lowest terms (weights 100 and 300 take 1 and 3): shorter rounds interleave finer.
        let common = members.reduce(0) { gcd($0, backends[$1].weight) }
        let turns = members.map { backends[$0].weight / common }
        var next = [Int](repeating: 0, count: members.count)
        var filled = 0
        while true {
            for (member, index) in members.enumerated() {
                for _ in 0..<turns[member] {
                    let (offset, skip) = permutations[member]
                    var position = (offset + next[member] * skip) % size
                    while table[position] != nil {
                        next[member] += 1
                        position = (offset + next[member] * skip) % size
                    }
                    table[position] = index
                    next[member] += 1
                    filled += 1
                    if filled == size { return table }
                }
            }
        }
    }

    /// The offset and skip of a backend's permutation.
    static func permutation(of name: String, size: Int) -> (offset: Int, skip: Int) {
        let offset = Int(hash(name, basis: 0xcbf2_9ce4_8422_2325) % UInt64(size))
        let skip = Int(hash(name, basis: 0x84222325_cbf29ce4) % UInt64(size - 1)) + 1
        return (offset, skip)
    }

    /// FNV-1a (64 bits) of the name's UTF-8 bytes from `basis`, then murmur3's finalizer: FNV alone leaves
    /// names that differ in their last byte too close for the modulo of a small table.
    static func hash(_ name: String, basis: UInt64) -> UInt64 {
        var h = basis
        for byte in name.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x0000_0100_0000_01b3
        }
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        return h ^ (h >> 33)
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    public static func isPrime(_ n: Int) -> Bool {
        guard n >= 2 else { return false }
        if n < 4 { return true }
        if n % 2 == 0 { return false }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }
}
