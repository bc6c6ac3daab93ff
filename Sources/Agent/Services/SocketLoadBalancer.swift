import DatapathCore
import Synchronization

/// `ServiceDatapath` over the socket load balancer's maps (`sock.bpf.c`).
///
/// A new backend set never shows half-written: its backends are written first, then its slots in the bank of
/// slots the service does not use, then slot 0 flips to that bank in one element update (a hash map update
/// replaces the element as a whole under RCU); only then are the old bank's slots and the ids no frontend uses any
/// more deleted. A hook that read the old slot 0 and finds its slot gone reads slot 0 again. Removing a service
/// deletes slot 0 first, so its frontend stops translating before anything else goes.
///
/// A random slot picks among the backends taking new connections (`ServiceBackend.takesNewConnections`), each
/// in as many slots as its weight asks (`LBSlotBank.slotCounts`). With a ClientIP affinity timeout the hooks
/// first send a pod back to the backend it had (`na_lb_affinity`), while `na_lb_aff_match`, written here
/// with each set (new pairs before the flip, old ones deleted after it), says that backend still takes the
/// service's new connections. `na_lb_ports` (`LBFrontendPorts`) has the bit of every frontend's port from before its
/// slot 0 is written until after it is deleted.
public final class SocketLoadBalancer: ServiceDatapath {
    let services: TypedMap<na_lb_service_key, na_lb_service_value>
    let backends: TypedMap<UInt32, na_lb_backend>
    let revnat: TypedMap<na_lb_revnat_key, na_lb_revnat_value>
    let affinityMatch: TypedMap<na_lb_aff_match_key, UInt8>
    private let ids: Mutex<LBBackendIDs>
    /// Taken inside `ids`'s lock, by the writers that hold it.
    private let ports: Mutex<LBFrontendPorts>
    /// `na_lb_maglev` when the object has it, and the tables kept there while backends are chosen by Maglev.
    let maglevMap: BPFMap?
    let maglev = Mutex<MaglevTables?>(nil)

    /// Over the maps of a loaded `sock` object. What the maps already hold is kept: ids are learned from them, and
    /// what an interrupted update left behind (slots outside a service's bank, backends no slot names) is deleted.
    public init(object: BPFObject) throws(AgentError) {
        let maps = try datapathCall("opening the load balancer maps") {
            guard let services = object.map(named: "na_lb_services"),
                let backends = object.map(named: "na_lb_backends"),
                let revnat = object.map(named: "na_lb_revnat"),
                let match = object.map(named: "na_lb_aff_match"), let ports = object.map(named: "na_lb_ports")
            else { throw AgentError.datapath("object \(object.name) has no load balancer maps") }
            return (
                services: try TypedMap<na_lb_service_key, na_lb_service_value>(services),
                backends: try TypedMap<UInt32, na_lb_backend>(backends),
                revnat: try TypedMap<na_lb_revnat_key, na_lb_revnat_value>(revnat),
                match: try TypedMap<na_lb_aff_match_key, UInt8>(match), ports: ports
            )
        }
        let learned = try datapathCall("reading the load balancer maps") {
            try SocketLoadBalancer.reconcile(services: maps.services, backends: maps.backends, match: maps.match)
        }
        let ports = try datapathCall("writing the frontend ports") {
            try LBFrontendPorts(map: maps.ports, frontends: learned.frontends)
        }
        services = maps.services
        backends = maps.backends
        revnat = maps.revnat
        affinityMatch = maps.match
        ids = Mutex(learned.ids)
        self.ports = Mutex(ports)
        maglevMap = object.map(named: "na_lb_maglev")
    }

    public func apply(_ service: LoadBalancedService) throws(AgentError) {
        try Self.validate(service)
        try ids.withLock { (ids) throws(AgentError) in
            try datapathCall("programming service \(service.frontend)") {
                try write(service, ids: &ids)
                try maglevFollow(service.frontend, serviceID: service.id)
            }
        }
    }

    public func remove(_ service: LoadBalancedService) throws(AgentError) {
        let key = na_lb_service_key(service.frontend)
        try ids.withLock { (ids) throws(AgentError) in
            try datapathCall("removing service \(service.frontend)") {
                guard let current = try services.lookup(key) else { return }
                try services.delete(key)
                try ports.withLock { try $0.remove(service.frontend) }
                let bank = LBSlotBank(flags: current.flags)
                var released = Set<UInt32>()
                for index in 0..<(Int(current.count) + Int(current.inactive)) {
                    let slotKey = key.at(slot: bank.slot(index))
                    if let slot = try services.lookup(slotKey) {
                        try services.delete(slotKey)
                        let id = slot.backend_id
                        if index < Int(current.count) {
                            try affinityMatch.delete(LBAffinityPair(backend: id, service: current.service_id).key)
                        }
                        guard released.insert(id).inserted else { continue }
                        if ids.release(id, by: service.frontend) { try backends.delete(id) }
                    }
                }
                try maglevFollow(service.frontend, serviceID: current.service_id, removed: true)
            }
        }
    }

    public func programmed() throws(AgentError) -> [LoadBalancedService] {
        try ids.withLock { (_) throws(AgentError) in
            try datapathCall("reading the load balancer maps") {
                try services.entries().filter { $0.key.slot == 0 }.compactMap { entry in
                    try readService(entry.key, entry.value)
                }
                .sorted { $0.id < $1.id }
            }
        }
    }

    // MARK: Writing

    private func write(_ service: LoadBalancedService, ids: inout LBBackendIDs) throws {
        let key = na_lb_service_key(service.frontend)
        let current = try services.lookup(key)
        let oldBank = current.map { LBSlotBank(flags: $0.flags) }
        let bank = oldBank?.other ?? .zero
        var oldIDs: [UInt32] = []
        var oldMatches = Set<LBAffinityPair>()
        if let current, let oldBank {
            for index in 0..<(Int(current.count) + Int(current.inactive)) {
                guard let slot = try services.lookup(key.at(slot: oldBank.slot(index))) else { continue }
                oldIDs.append(slot.backend_id)
                if index < Int(current.count) {
                    oldMatches.insert(LBAffinityPair(backend: slot.backend_id, service: current.service_id))
                }
            }
        }

        // Backends taking new connections first, in as many slots as their weights ask: the hooks pick among
        // slots 1...count of the bank. The others follow, one slot each.
        let positioned = Array(service.backends.enumerated())
        let taking = positioned.filter { $0.element.takesNewConnections }
        let ordered = taking + positioned.filter { !$0.element.takesNewConnections }
        let counts = LBSlotBank.slotCounts(
            weights: taking.map(\.element.weight), room: Int(NA_LB_MAX_BACKENDS) - (ordered.count - taking.count))
        let slotted =
            counts.enumerated().flatMap { Array(repeating: $0.offset, count: $0.element) }
            + Array(taking.count..<ordered.count)
        var acquired: [(id: UInt32, isNew: Bool)] = []
        var written: [na_lb_service_key] = []
        var matches = Set<LBAffinityPair>()
        var portAdded = false
        do {
            for (_, backend) in ordered {
                let identity = LBBackendIdentity(backend, proto: service.frontend.proto)
                let id = try ids.acquire(identity, for: service.frontend)
                acquired.append(id)
                try backends.update(id.id, na_lb_backend(backend, proto: service.frontend.proto))
            }
            for (slotIndex, index) in slotted.enumerated() {
                var slot = na_lb_service_value()
                slot.backend_id = acquired[index].id
                slot.position = UInt16(ordered[index].offset)
                let slotKey = key.at(slot: bank.slot(slotIndex))
                try services.update(slotKey, slot)
                written.append(slotKey)
            }
            // Affinity may name a backend of the new set once slot 0 flips to it: the pairs go in first.
            for index in 0..<taking.count {
                let match = LBAffinityPair(backend: acquired[index].id, service: service.id)
                if matches.insert(match).inserted, !oldMatches.contains(match) {
                    try affinityMatch.update(match.key, 1)
                }
            }
            var head = na_lb_service_value()
            head.service_id = service.id
            head.affinity_timeout = service.affinityTimeout ?? 0
            head.count = UInt16(counts.reduce(0, +))
            head.inactive = UInt16(ordered.count - taking.count)
            head.flags = bank.flag | (service.external ? UInt16(NA_LB_F_EXTERNAL) : 0)
            if current == nil {
                try ports.withLock { try $0.add(service.frontend) }
                portAdded = true
            }
            try services.update(key, head)
        } catch {
            // Slot 0 still names the old bank: undo what only the new set used.
            if portAdded { try? ports.withLock { try $0.remove(service.frontend) } }
            for slotKey in written { _ = try? services.delete(slotKey) }
            for match in matches where !oldMatches.contains(match) { _ = try? affinityMatch.delete(match.key) }
            let kept = Set(oldIDs)
            for id in acquired where !kept.contains(id.id) {
                if ids.release(id.id, by: service.frontend) { _ = try? backends.delete(id.id) }
            }
            throw error
        }

        if let current, let oldBank {
            for index in 0..<(Int(current.count) + Int(current.inactive)) {
                try services.delete(key.at(slot: oldBank.slot(index)))
            }
        }
        for match in oldMatches where !matches.contains(match) { try affinityMatch.delete(match.key) }
        let now = Set(acquired.map(\.id))
        for id in Set(oldIDs) where !now.contains(id) {
            if ids.release(id, by: service.frontend) { try backends.delete(id) }
        }
    }

    static func validate(_ service: LoadBalancedService) throws(AgentError) {
        let frontend = service.frontend
        guard frontend.proto == IPProtocol.tcp || frontend.proto == IPProtocol.udp else {
            throw .invalidField("frontend-address.protocol", "the socket load balancer serves TCP and UDP only")
        }
        guard service.backends.count <= Int(NA_LB_MAX_BACKENDS) else {
            throw .invalidField("backend-addresses", "at most \(NA_LB_MAX_BACKENDS) backends per service")
        }
        var seen = Set<LBBackendIdentity>()
        for (index, backend) in service.backends.enumerated() {
            guard backend.address.family == frontend.address.family else {
                throw .invalidField(
                    "backend-addresses[\(index)].ip", "\(backend.address) is not of the frontend's family")
            }
            guard seen.insert(LBBackendIdentity(backend, proto: frontend.proto)).inserted else {
                throw .invalidField(
                    "backend-addresses[\(index)]", "\(backend.address) port \(backend.port) is listed twice")
            }
        }
    }

    // MARK: Reading

    private func readService(_ key: na_lb_service_key, _ head: na_lb_service_value) throws -> LoadBalancedService? {
        guard let frontend = key.frontend else { return nil }
        let bank = LBSlotBank(flags: head.flags)
        var listed: [(position: UInt16, backend: ServiceBackend)] = []
        var seen = Set<UInt16>()
        for index in 0..<(Int(head.count) + Int(head.inactive)) {
            // A backend repeated for its weight is listed once.
            guard let slot = try services.lookup(key.at(slot: bank.slot(index))), !seen.contains(slot.position),
                let backend = try backends.lookup(slot.backend_id)?.backend
            else { continue }
            seen.insert(slot.position)
            listed.append((slot.position, backend))
        }
        return LoadBalancedService(
            id: head.service_id, frontend: frontend,
            backends: listed.sorted { $0.position < $1.position }.map(\.backend),
            affinityTimeout: head.affinity_timeout == 0 ? nil : head.affinity_timeout,
            external: head.flags & UInt16(NA_LB_F_EXTERNAL) != 0)
    }

    /// The ids the maps hold, after deleting slots no service's bank covers, backends no slot names and affinity
    /// pairs no slot taking new connections backs; and the frontends whose slot 0 the maps hold.
    private static func reconcile(
        services: TypedMap<na_lb_service_key, na_lb_service_value>, backends: TypedMap<UInt32, na_lb_backend>,
        match: TypedMap<na_lb_aff_match_key, UInt8>
    ) throws -> (ids: LBBackendIDs, frontends: [ServiceFrontend]) {
        var ids = LBBackendIDs(capacity: UInt32(backends.map.info.maxEntries))
        let entries = try services.entries()
        var heads: [ServiceFrontend: na_lb_service_value] = [:]
        for entry in entries where entry.key.slot == 0 {
            if let frontend = entry.key.frontend { heads[frontend] = entry.value }
        }
        let known = Dictionary(try backends.entries().map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        var backed = Set<LBAffinityPair>()
        for entry in entries where entry.key.slot != 0 {
            let head = entry.key.frontend.flatMap { heads[$0] }
            let covered = head.map { head -> Bool in
                let bank = LBSlotBank(flags: head.flags)
                let total = Int(head.count) + Int(head.inactive)
                return total > 0 && (bank.slot(0)...bank.slot(total - 1)).contains(entry.key.slot)
            }
            guard covered == true, let frontend = entry.key.frontend,
                let identity = known[entry.value.backend_id]?.identity
            else {
                try services.delete(entry.key)
                continue
            }
            ids.adopt(entry.value.backend_id, identity, usedBy: frontend)
            if let head, Int(entry.key.slot) < Int(LBSlotBank(flags: head.flags).slot(0)) + Int(head.count) {
                backed.insert(LBAffinityPair(backend: entry.value.backend_id, service: head.service_id))
            }
        }
        for id in known.keys where !ids.isUsed(id) { try backends.delete(id) }
        for pair in try match.entries() where !backed.contains(LBAffinityPair(pair.key)) { try match.delete(pair.key) }
        return (ids, Array(heads.keys))
    }
}

/// Runs map work that throws untyped errors, keeping `AgentError`s and naming anything else.
func datapathCall<T>(_ what: String, _ body: () throws -> T) throws(AgentError) -> T {
    do {
        return try body()
    } catch let error as AgentError {
        throw error
    } catch {
        throw .datapath("\(what): \(error)")
    }
}
