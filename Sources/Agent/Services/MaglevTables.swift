import CLibbpf
import DatapathCore
import Synchronization

/// The services' Maglev tables in `na_lb_maglev` (service id -> an array: element 0 the size M, 1...M backend
/// ids), read by the endpoint programs' service translation (`bpf/lib/lb_xlate.h`).
///
/// A table is built from what the load balancer maps hold for the service once its new backend set is switched
/// in (the backends in the slots taking new connections, with their weights), written into a new inner array, and
/// installed by one update of the outer map: a lookup sees the old table or the new one, never a mix. An old table
/// may name a backend the new set dropped for the moment between the two; the datapath then picks a random slot.
final class MaglevTables: Sendable {
    let outer: TypedMap<UInt32, UInt32>
    let services: TypedMap<na_lb_service_key, na_lb_service_value>
    let backends: TypedMap<UInt32, na_lb_backend>
    let tableSize: Int

    /// Over `na_lb_maglev` and the load balancer's maps; `tableSize` must be a prime the inner arrays have room for.
    init(
        outer: BPFMap, services: TypedMap<na_lb_service_key, na_lb_service_value>,
        backends: TypedMap<UInt32, na_lb_backend>, tableSize: Int
    ) throws(AgentError) {
        guard Maglev.isPrime(tableSize) else {
            throw .invalidField("maglev-table-size", "\(tableSize) is not a prime")
        }
        guard tableSize <= Int(NA_LB_MAGLEV_MAX_SIZE) else {
            throw .invalidField("maglev-table-size", "at most \(NA_LB_MAGLEV_MAX_SIZE) positions")
        }
        self.outer = try datapathCall("opening the Maglev tables") { try TypedMap(outer) }
        self.services = services
        self.backends = backends
        self.tableSize = tableSize
    }

    /// Builds the table of the service at `frontend` from the maps and installs it; a service whose backends all
    /// stopped taking new connections loses its table (the datapath then drops its new flows).
    func sync(_ frontend: ServiceFrontend) throws {
        let key = na_lb_service_key(frontend)
        guard let head = try services.lookup(key) else { return }
        let bank = LBSlotBank(flags: head.flags)
        var members: [(id: UInt32, backend: Maglev.Backend)] = []
        var seen: Set<UInt32> = []
        for index in 0..<Int(head.count) {
            // A backend holds as many slots as its weight asks (random selection); its weight counts once here.
            guard let slot = try services.lookup(key.at(slot: bank.slot(index))),
                seen.insert(slot.backend_id).inserted,
                let backend = try backends.lookup(slot.backend_id)?.backend, backend.takesNewConnections
            else { continue }
            members.append(
                (
                    slot.backend_id,
                    Maglev.Backend(address: backend.address, port: backend.port, weight: Int(backend.weight))
                ))
        }
        guard !members.isEmpty else {
            try remove(serviceID: head.service_id)
            return
        }
        let positions = Maglev.table(members.map(\.backend), size: tableSize)
        let inner = try BPFMap.create(
            type: .array, name: "na_lb_mg_\(head.service_id)", keySize: 4, valueSize: 4, maxEntries: tableSize + 1,
            flags: UInt32(BPF_F_INNER_MAP))
        let ids = [UInt32(tableSize)] + positions.map { $0.map { members[$0].id } ?? 0 }
        try inner.updateBatch(keys: ids.indices.map { bytesOf(UInt32($0)) }, values: ids.map { bytesOf($0) })
        try outer.update(head.service_id, UInt32(bitPattern: inner.fd))
    }

    /// Takes the table of service `serviceID` out; nothing to do when it has none.
    func remove(serviceID: UInt32) throws {
        _ = try outer.delete(serviceID)
    }
}

extension SocketLoadBalancer {
    /// Chooses how the endpoint programs pick backends for new flows: with `.maglev` every programmed service gets
    /// a table now and with each change; with `.random` the tables go. Not the socket hooks' concern: they pick a
    /// random backend either way.
    public func useBackendSelection(_ selection: BackendSelection) throws(AgentError) {
        var tables: MaglevTables?
        if case .maglev(let size) = selection {
            guard let maglevMap else { throw .datapath("the load balancer's object has no na_lb_maglev map") }
            tables = try MaglevTables(outer: maglevMap, services: services, backends: backends, tableSize: size)
        }
        let services = try programmed()
        try maglev.withLock { (current) throws(AgentError) in
            try datapathCall("writing the Maglev tables") {
                if let tables {
                    for service in services { try tables.sync(service.frontend) }
                } else if let maglevMap {
                    // Tables of an earlier selection, or of an earlier run (the map is pinned), go.
                    for key in try maglevMap.keys() { _ = try maglevMap.delete(key: key) }
                }
            }
            current = tables
        }
    }

    /// After the service at `frontend` was written or removed: its table follows the backends in the maps, or goes
    /// when backends are not chosen by Maglev, so a table an earlier run left never outlives a change.
    func maglevFollow(_ frontend: ServiceFrontend, serviceID: UInt32, removed: Bool = false) throws {
        try maglev.withLock { tables in
            if let tables, !removed {
                try tables.sync(frontend)
            } else if let maglevMap {
                _ = try maglevMap.delete(key: bytesOf(serviceID))
            }
        }
    }
}
