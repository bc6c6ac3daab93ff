import DatapathCore

/// What one walk over na_ct found and removed.
public struct SweepStats: Sendable, Equatable {
    /// Entries read.
    public var scanned = 0
    /// Entries deleted (expired + orphaned, or those a purge selected).
    public var deleted = 0
    /// Deleted because their lifetime had passed.
    public var expired = 0
    /// Deleted because their endpoint no longer exists in na_endpoints.
    public var orphaned = 0
    /// Entries left by the walk (scanned − deleted; the datapath may have added some meanwhile).
    public var remaining = 0
    /// Wall time of the walk.
    public var duration: Duration = .zero

    public init() {}
}

/// Walks the conntrack map and deletes what is no longer needed, IPv4 and IPv6 alike: the key's family does not
/// matter here. The sweep runs in the kernel (``ConntrackKernelSweep``) when the kernel loads it; otherwise, and
/// for purges and the confirmation of orphans, the walk reads a batch of entries per syscall and deletes in
/// batches (BPF_MAP_LOOKUP_BATCH, BPF_MAP_DELETE_BATCH).
///
/// Deleting the entries of a batch before reading the next is safe: the hash map's batch cursor is a bucket
/// index, and the deleted entries all lie in buckets already read.
public struct ConntrackSweeper: Sendable {
    /// na_ct.
    public let conntrack: BPFMap
    /// na_endpoints (ifindex → na_endpoint_info): the endpoints the datapath serves; nil disables the orphan check.
    public let endpoints: BPFMap?

    /// The in-kernel sweep; nil when this kernel could not load it (`kernelSweepProblem` says why).
    let kernelSweep: ConntrackKernelSweep?
    public let kernelSweepProblem: String?

    /// `inKernel: false` keeps every sweep in user space (the way to compare the two).
    public init(conntrack: BPFMap, endpoints: BPFMap?, inKernel: Bool = true) throws {
        guard conntrack.info.keySize == MemoryLayout<na_ct_key>.size,
            conntrack.info.valueSize == MemoryLayout<na_ct_value>.size
        else {
            throw AgentError.datapath(
                "map \(conntrack.name) holds \(conntrack.info.keySize)-byte keys and \(conntrack.info.valueSize)-byte "
                    + "values, not na_ct_key (\(MemoryLayout<na_ct_key>.size)) and na_ct_value "
                    + "(\(MemoryLayout<na_ct_value>.size))")
        }
        if let endpoints, endpoints.info.valueSize != MemoryLayout<na_endpoint_info>.size {
            throw AgentError.datapath("map \(endpoints.name) does not hold na_endpoint_info values")
        }
        self.conntrack = conntrack
        self.endpoints = endpoints
        var problem: String? = inKernel ? nil : "disabled"
        var sweep: ConntrackKernelSweep?
        if inKernel {
            do {
                sweep = try ConntrackKernelSweep(conntrack: conntrack)
            } catch {
                problem = "\(error)"
            }
        }
        kernelSweep = sweep
        kernelSweepProblem = problem
    }

    public var maxEntries: Int { conntrack.info.maxEntries }

    /// The garbage collection proper: deletes entries whose lifetime is before `now` (CLOCK_MONOTONIC seconds)
    /// and entries of endpoints that are not in na_endpoints.
    ///
    /// An endpoint counts as gone only if it is missing both before and after the walk: one added while the walk
    /// runs may already own entries the walk reads, and must not lose them.
    public func sweep(now: UInt32) throws -> SweepStats {
        let started = ContinuousClock.now
        let liveBefore = try liveEndpointIDs()
        var stats = SweepStats()
        if let kernelSweep {
            let result = try kernelSweep.run(now: now, live: liveBefore)
            stats.scanned = result.scanned
            stats.expired = result.expired
            if result.suspects > 0, let liveBefore {
                stats.orphaned = try deleteStillOrphaned(try suspects(now: now, liveBefore: liveBefore))
            }
        } else {
            var suspects: [Suspect] = []
            try conntrack.forEachBatch { keys, values in
                var doomed: [[UInt8]] = []
                for index in keys.indices {
                    let value: na_ct_value = valueFrom(values[index], at: 0)
                    if value.lifetime < now {
                        doomed.append(keys[index])
                    } else if let liveBefore, !liveBefore.contains(value.ep_id) {
                        suspects.append((keys[index], value.ep_id))
                    }
                }
                stats.scanned += keys.count
                stats.expired += try conntrack.deleteBatch(doomed)
                return true
            }
            stats.orphaned = try deleteStillOrphaned(suspects)
        }
        stats.deleted = stats.expired + stats.orphaned
        stats.remaining = max(stats.scanned - stats.deleted, 0)
        stats.duration = ContinuousClock.now - started
        return stats
    }

    /// A live entry whose endpoint was missing when the walk began, and that endpoint.
    private typealias Suspect = (key: [UInt8], owner: UInt32)

    /// The entries the in-kernel sweep counted as suspects, found again: live entries of endpoints missing before
    /// the sweep.
    private func suspects(now: UInt32, liveBefore: Set<UInt32>) throws -> [Suspect] {
        var suspects: [Suspect] = []
        try conntrack.forEachBatch { keys, values in
            for index in keys.indices {
                let value: na_ct_value = valueFrom(values[index], at: 0)
                if value.lifetime >= now, !liveBefore.contains(value.ep_id) {
                    suspects.append((keys[index], value.ep_id))
                }
            }
            return true
        }
        return suspects
    }

    /// Deletes the suspects whose endpoint is still missing now that the walk is over; returns how many.
    private func deleteStillOrphaned(_ suspects: [Suspect]) throws -> Int {
        guard !suspects.isEmpty, let liveAfter = try liveEndpointIDs() else { return 0 }
        return try conntrack.deleteBatch(suspects.filter { !liveAfter.contains($0.owner) }.map(\.key))
    }

    /// Deletes every entry `select` picks, e.g. all of one endpoint's.
    public func purge(where select: (na_ct_key, na_ct_value) -> Bool) throws -> SweepStats {
        let started = ContinuousClock.now
        var stats = SweepStats()
        try conntrack.forEachBatch { keys, values in
            var doomed: [[UInt8]] = []
            for index in keys.indices where select(valueFrom(keys[index], at: 0), valueFrom(values[index], at: 0)) {
                doomed.append(keys[index])
            }
            stats.scanned += keys.count
            stats.deleted += try conntrack.deleteBatch(doomed)
            return true
        }
        stats.remaining = max(stats.scanned - stats.deleted, 0)
        stats.duration = ContinuousClock.now - started
        return stats
    }

    /// Deletes the entries owned by endpoint `id`.
    public func purge(endpoint id: UInt32) throws -> SweepStats {
        try purge { _, value in value.ep_id == id }
    }

    /// Ids of the endpoints in na_endpoints, or nil when that map is not known.
    public func liveEndpointIDs() throws -> Set<UInt32>? {
        guard let endpoints else { return nil }
        var ids = Set<UInt32>()
        try endpoints.forEachBatch { _, values in
            for value in values {
                let info: na_endpoint_info = valueFrom(value, at: 0)
                ids.insert(info.ep_id)
            }
            return true
        }
        return ids
    }
}
