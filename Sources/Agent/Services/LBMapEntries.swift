import DatapathCore

/// The socket load balancer's map entries (`nodeagent_abi.h`) built from and read back into the service model.
/// Ports are stored in network order, as the hooks read them from the socket address.
extension na_lb_service_key {
    /// Slot 0 (the service) or a backend slot of `frontend`.
    init(_ frontend: ServiceFrontend, slot: UInt16 = 0) {
        self.init()
        setTupleBytes(&addr, frontend.address.keyBytes)
        family = frontend.address.family.rawValue
        proto = frontend.proto
        port = frontend.port.bigEndian
        self.slot = slot
    }

    var frontend: ServiceFrontend? {
        guard let address = IPAddress(familyByte: family, key: tupleBytes(addr)) else { return nil }
        return ServiceFrontend(address: address, port: UInt16(bigEndian: port), proto: proto)
    }

    /// The same frontend at another slot.
    func at(slot: UInt16) -> na_lb_service_key {
        var key = self
        key.slot = slot
        return key
    }
}

/// A backend taking a service's new connections, as `na_lb_aff_match` holds the pair: what lets ClientIP
/// affinity send a pod back to it.
struct LBAffinityPair: Hashable {
    var backend: UInt32
    var service: UInt32

    init(backend: UInt32, service: UInt32) {
        self.backend = backend
        self.service = service
    }

    init(_ key: na_lb_aff_match_key) { self.init(backend: key.backend_id, service: key.service_id) }

    var key: na_lb_aff_match_key { na_lb_aff_match_key(backend_id: backend, service_id: service) }
}

/// Which of the two banks of backend slots a service uses: a new backend set goes into the other one, and slot 0
/// flips to it in one update.
enum LBSlotBank: Equatable {
    case zero
    case one

    init(flags: UInt16) { self = flags & UInt16(NA_LB_F_BANK1) != 0 ? .one : .zero }

    var other: LBSlotBank { self == .zero ? .one : .zero }
    var flag: UInt16 { self == .one ? UInt16(NA_LB_F_BANK1) : 0 }

    /// The slot number of the backend at `index` (0-based) of this bank.
    func slot(_ index: Int) -> UInt16 {
        (self == .one ? UInt16(NA_LB_SLOT_BANK1) : 0) + 1 + UInt16(index)
    }

    /// How many slots each backend taking new connections gets, so that a random slot picks backends in
    /// proportion to their weights (all above 0): the weights divided by their greatest common divisor (1, 1, 2
    /// and 3, 3, 6 both take 4 slots), and when those add up to more than `room`, scaled down with every backend
    /// keeping at least one slot (`room` is at least the number of weights: a bank holds every backend once).
    static func slotCounts(weights: [UInt16], room: Int) -> [Int] {
        let divisor = weights.reduce(0) { gcd($0, Int($1)) }
        guard divisor > 0 else { return weights.map { _ in 1 } }
        let reduced = weights.map { Int($0) / divisor }
        let total = reduced.reduce(0, +)
        guard total > room else { return reduced }
        // One slot each, and what room is left shared in proportion: never more than `room` in all.
        let spare = room - reduced.count
        return reduced.map { 1 + $0 * spare / total }
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}

extension ServiceBackendState {
    init?(abi: UInt8) {
        switch UInt32(abi) {
        case NA_LB_BACKEND_ACTIVE.rawValue: self = .active
        case NA_LB_BACKEND_TERMINATING.rawValue: self = .terminating
        case NA_LB_BACKEND_QUARANTINED.rawValue: self = .quarantined
        case NA_LB_BACKEND_MAINTENANCE.rawValue: self = .maintenance
        default: return nil
        }
    }

    var abi: UInt8 {
        switch self {
        case .active: UInt8(NA_LB_BACKEND_ACTIVE.rawValue)
        case .terminating: UInt8(NA_LB_BACKEND_TERMINATING.rawValue)
        case .quarantined: UInt8(NA_LB_BACKEND_QUARANTINED.rawValue)
        case .maintenance: UInt8(NA_LB_BACKEND_MAINTENANCE.rawValue)
        }
    }
}

extension na_lb_backend {
    init(_ backend: ServiceBackend, proto: UInt8) {
        self.init()
        setTupleBytes(&addr, backend.address.keyBytes)
        family = backend.address.family.rawValue
        self.proto = proto
        port = backend.port.bigEndian
        state = backend.state.abi
        weight = backend.weight
    }

    var backend: ServiceBackend? {
        guard let address = IPAddress(familyByte: family, key: tupleBytes(addr)),
            let state = ServiceBackendState(abi: state)
        else { return nil }
        return ServiceBackend(address: address, port: UInt16(bigEndian: port), weight: weight, state: state)
    }

    /// What an id stands for: backends with the same address, port and protocol share one id.
    var identity: LBBackendIdentity? {
        guard let address = IPAddress(familyByte: family, key: tupleBytes(addr)) else { return nil }
        return LBBackendIdentity(address: address, port: UInt16(bigEndian: port), proto: proto)
    }
}

/// A backend as ids are allocated for it: the same address, port and protocol in any service is one id.
struct LBBackendIdentity: Hashable {
    var address: IPAddress
    var port: UInt16
    var proto: UInt8

    init(address: IPAddress, port: UInt16, proto: UInt8) {
        self.address = address
        self.port = port
        self.proto = proto
    }

    init(_ backend: ServiceBackend, proto: UInt8) {
        self.init(address: backend.address, port: backend.port, proto: proto)
    }
}
