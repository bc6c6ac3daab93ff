import Dispatch
import FoundationEssentials
import Glibc
import Logging
import Synchronization

/// The loaded datapath: the endpoint BPF object with its maps pinned under the bpf root, the per-endpoint
/// inner maps, and the catalogue of who owns which map and how its entries read as JSON.
public final class Datapath: Sendable {
    public let root: String
    public let object: BPFObject
    private let catalog = Mutex(MapCatalog())
    private let innerMaps = Mutex<[String: BPFMap]>([:])
    /// tc hooks attached without waiting, on their way to tcx links (`attachTC(deferringLinks: true)`).
    public let tcxMoves: TCXMoves
    /// Copies of the endpoint rows the programs read without a hash lookup (`na_ep_slots`).
    public let endpointSlots: EndpointSlots

    /// Loads the embedded `endpoint` object, pinning its maps under `root` (reusing maps already pinned there).
    public init(root: String, maxEntries: [String: UInt32] = [:], objectName: String = "endpoint") throws {
        try BPFFS.prepare(root: root)
        try Ownership.markBPFRoot(root)
        self.root = root
        tcxMoves = TCXMoves(links: TC.linkDirectory(pinRoot: root))
        object = try BPFObject.load(embedded: objectName, pinDirectory: root, maxEntries: maxEntries)
        endpointSlots = try EndpointSlots(object: object)
        catalog.withLock { catalog in
            for map in object.maps { catalog.owners[map.name] = "core" }
        }
    }

    /// Loads without pinning (tests).
    public init(unpinned objectName: String = "endpoint", maxEntries: [String: UInt32] = [:]) throws {
        root = ""
        tcxMoves = TCXMoves(links: nil)
        object = try BPFObject.load(embedded: objectName, pinDirectory: nil, maxEntries: maxEntries)
        endpointSlots = try EndpointSlots(object: object)
        catalog.withLock { catalog in
            for map in object.maps { catalog.owners[map.name] = "core" }
        }
    }

    public func map(_ name: String) throws -> BPFMap {
        if let map = object.map(named: name) ?? innerMaps.withLock({ $0[name] }) { return map }
        throw AgentError.notFound("map \(name) does not exist")
    }

    public func typedMap<Key: BitwiseCopyable, Value: BitwiseCopyable>(
        _ name: String, _ key: Key.Type = Key.self, _ value: Value.Type = Value.self
    ) throws -> TypedMap<Key, Value> {
        try TypedMap(map(name))
    }

    public func program(_ name: String) throws -> BPFProgram {
        guard let program = object.program(named: name) else {
            throw AgentError.datapath("program \(name) is not in the datapath object")
        }
        return program
    }

    // MARK: Ownership and decoding

    /// Records that `owner` (a plugin name or "core") owns map `name`.
    public func setOwner(_ owner: String, ofMap name: String) {
        catalog.withLock { $0.owners[name] = owner }
    }

    /// Registers how entries of maps whose name starts with `prefix` read as JSON.
    public func registerDecoder(prefix: String, _ decoder: MapDecoder) {
        catalog.withLock { $0.decoders.append((prefix, decoder)) }
    }

    public func owner(ofMap name: String) -> String {
        catalog.withLock { catalog in
            catalog.owners[name] ?? catalog.owners.first { name.hasPrefix($0.key + "_") }?.value ?? "core"
        }
    }

    public func decoder(forMap name: String) -> MapDecoder? {
        catalog.withLock { catalog in
            catalog.decoders.filter { name.hasPrefix($0.prefix) }.max { $0.prefix.count < $1.prefix.count }?.decoder
        }
    }

    /// All maps: the object's, then the inner maps, sorted by name.
    public var allMaps: [BPFMap] {
        object.maps + innerMaps.withLock { $0.values.sorted { $0.name < $1.name } }
    }

    // MARK: Inner maps (map-in-map)

    /// The inner map stored under `key` in the hash-of-maps `outer`, pinned as `<root>/<name>`: opened from its pin
    /// when it exists, else created from `template` (when given) and inserted into `outer`.
    public func innerMap(
        outer: String, key: UInt32, name: String, create template: InnerMapTemplate?
    ) throws -> BPFMap? {
        if let cached = innerMaps.withLock({ $0[name] }) { return cached }
        let outerMap = try TypedMap<UInt32, UInt32>(map(outer))
        let pinPath = root.isEmpty ? nil : "\(root)/\(name)"
        var inner = try pinPath.flatMap { path throws in try BPFMap.openPinned(path) }
        if inner == nil, let template {
            let created = try BPFMap.create(
                type: template.type, name: name, keySize: template.keySize, valueSize: template.valueSize,
                maxEntries: template.maxEntries, flags: template.flags)
            if let pinPath { try created.pin(at: pinPath) }
            inner = created
        }
        guard let inner else { return nil }
        // The outer map takes the inner map's fd on update and reads back its id. Every update of a map-in-map
        // waits for an RCU grace period (milliseconds), so one that already holds this map is left alone: a restart
        // reopening a thousand pinned maps would otherwise take seconds.
        if try outerMap.lookup(key) != inner.info.id {
            try outerMap.update(key, UInt32(bitPattern: inner.fd))
        }
        innerMaps.withLock { $0[name] = inner }
        return inner
    }

    /// Creates an empty inner map from `template` under each of `keys` in `outer` that holds none yet, pinned as
    /// `<root>/<name(key)>`, all inserted by one batch update. The kernel waits for an RCU grace period after every
    /// update call of a map-in-map (10-15 ms, whatever the batch's size), so maps made ahead of need in one call
    /// spare each later `innerMap` that wait. Returns the keys that hold a map now.
    @discardableResult
    public func insertInnerMaps(
        outer: String, keys: [UInt32], name: (UInt32) -> String, template: InnerMapTemplate
    ) throws -> [UInt32] {
        let outerMap = try TypedMap<UInt32, UInt32>(map(outer))
        var made: [(key: UInt32, name: String, map: BPFMap)] = []
        var present: [UInt32] = []
        for key in keys {
            let mapName = name(key)
            if innerMaps.withLock({ $0[mapName] }) != nil {
                present.append(key)
                continue
            }
            let pinPath = root.isEmpty ? nil : "\(root)/\(mapName)"
            let pinned = try pinPath.flatMap { path throws in try BPFMap.openPinned(path) }
            let current = try outerMap.lookup(key)
            if let pinned, current == pinned.info.id {
                innerMaps.withLock { $0[mapName] = pinned }
                present.append(key)
                continue
            }
            guard current == nil else { continue }  // another map is there: not this call's
            // Pinned before it is inserted: a crash in between leaves a pin that a restart finds and inserts.
            let map =
                try pinned
                ?? BPFMap.create(
                    type: template.type, name: mapName, keySize: template.keySize, valueSize: template.valueSize,
                    maxEntries: template.maxEntries, flags: template.flags)
            if pinned == nil, let pinPath { try map.pin(at: pinPath) }
            made.append((key, mapName, map))
        }
        guard !made.isEmpty else { return present }
        do {
            try outerMap.map.updateBatch(
                keys: made.map { bytesOf($0.key) }, values: made.map { bytesOf(UInt32(bitPattern: $0.map.fd)) })
        } catch {
            for item in made {
                _ = try? outerMap.delete(item.key)
                if !root.isEmpty { unlink("\(root)/\(item.name)") }
            }
            throw error
        }
        innerMaps.withLock { cache in
            for item in made { cache[item.name] = item.map }
        }
        return present + made.map(\.key)
    }

    /// Puts `inner` under `key` in `outer` in place of the map there (one update: lookups see the old map or the new
    /// one, never none) and pins it as `<root>/<name>` instead, e.g. a larger copy of a map that filled up.
    public func replaceInnerMap(outer: String, key: UInt32, name: String, with inner: BPFMap) throws {
        try replaceInnerMaps(outer: outer, [(key, name, inner)])
    }

    /// `replaceInnerMap` for several maps of `outer`, all put in place by one batch update: one grace period.
    public func replaceInnerMaps(outer: String, _ maps: [(key: UInt32, name: String, map: BPFMap)]) throws {
        guard !maps.isEmpty else { return }
        try map(outer).updateBatch(
            keys: maps.map { bytesOf($0.key) }, values: maps.map { bytesOf(UInt32(bitPattern: $0.map.fd)) })
        for item in maps {
            if !root.isEmpty {
                unlink("\(root)/\(item.name)")
                try item.map.pin(at: "\(root)/\(item.name)")
            }
            innerMaps.withLock { $0[item.name] = item.map }
        }
    }

    /// Lets go of the descriptor of the inner map pinned as `<root>/<name>`: the map stays pinned and in its outer
    /// map, and `innerMap` opens it again from the pin. Each map held open costs a descriptor, and thousands of
    /// endpoints' maps would otherwise reach the process's limit. Nothing happens without pins (nothing to reopen).
    public func closeInnerMap(name: String) {
        guard !root.isEmpty else { return }
        innerMaps.withLock { _ = $0.removeValue(forKey: name) }
    }

    /// Removes inner maps (each from its outer map, and its pin) all at once: the kernel waits for an RCU grace
    /// period after every delete call of a map-in-map (10-15 ms), so each outer map gets one batch delete for all
    /// of its keys, and the outer maps' deletes run on threads of their own to share that wait.
    public func removeInnerMaps(_ maps: [(outer: String, key: UInt32, name: String)]) throws {
        let byOuter = Array(Dictionary(grouping: maps, by: \.outer))
        let failure = Mutex<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: byOuter.count) { index in
            let (outer, inner) = byOuter[index]
            do {
                try map(outer).deleteBatch(inner.map { withUnsafeBytes(of: $0.key) { Array($0) } })
            } catch {
                // Pins stay with maps that may still be in place, so a restart finds them as orphans.
                failure.withLock { $0 = $0 ?? error }
                return
            }
            innerMaps.withLock { open in
                for map in inner { open.removeValue(forKey: map.name) }
            }
            if !root.isEmpty { for map in inner { unlink("\(root)/\(map.name)") } }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Names of inner maps pinned under the root whose names start with `prefix` (for restore).
    public func pinnedInnerMapNames(prefix: String) -> [String] {
        guard !root.isEmpty, let names = try? FileManager.default.contentsOfDirectory(atPath: root) else { return [] }
        return names.filter { $0.hasPrefix(prefix) }.sorted()
    }
}

/// How to create an inner map.
public struct InnerMapTemplate: Sendable {
    public var type: BPFMapType
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: Int
    public var flags: UInt32

    public init(type: BPFMapType, keySize: Int, valueSize: Int, maxEntries: Int, flags: UInt32 = 0) {
        self.type = type
        self.keySize = keySize
        self.valueSize = valueSize
        self.maxEntries = maxEntries
        self.flags = flags
    }
}

/// Turns a raw entry of a map into JSON fields.
public struct MapDecoder: Sendable {
    public var decode: @Sendable (_ key: [UInt8], _ value: [UInt8], _ map: BPFMap) -> (key: JSON, value: JSON)
    /// Which elements a dump leaves out: an array map has every key, and a slot that holds nothing is no entry.
    public var omits: (@Sendable (_ value: [UInt8]) -> Bool)?

    public init(
        omitting omits: (@Sendable (_ value: [UInt8]) -> Bool)? = nil,
        _ decode: @escaping @Sendable (_ key: [UInt8], _ value: [UInt8], _ map: BPFMap) -> (key: JSON, value: JSON)
    ) {
        self.decode = decode
        self.omits = omits
    }
}

struct MapCatalog {
    var owners: [String: String] = [:]
    var decoders: [(prefix: String, decoder: MapDecoder)] = []
}

extension InnerMapTemplate {
    /// BPF_F_NO_PREALLOC: required for LPM tries, memory allocated per entry instead of up front.
    public static let noPrealloc: UInt32 = 1
}
