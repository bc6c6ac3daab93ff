import DatapathCore
import Glibc

/// One change to the allocations, written to the ledger as one record: all of it survives a crash or none does.
struct LedgerChange: Sendable, Equatable {
    /// Allocations created or changed (owner, endpoint, expiration).
    var put: [Allocation] = []
    var release: [IPAddress] = []
    /// Where round-robin allocation continues, per family.
    var cursors: [IPAddress.Family: IPAddress] = [:]

    var isEmpty: Bool { put.isEmpty && release.isEmpty && cursors.isEmpty }
}

/// What the ledger says is allocated.
struct LedgerContents: Sendable, Equatable {
    var allocations: [IPAddress: Allocation] = [:]
    var cursors: [IPAddress.Family: IPAddress] = [:]

    mutating func apply(_ change: LedgerChange) {
        for address in change.release { allocations[address] = nil }
        for allocation in change.put { allocations[allocation.address] = allocation }
        cursors.merge(change.cursors) { _, new in new }
    }
}

/// The allocation ledger on disk: a snapshot plus an append-only log of changes since.
///
/// `append` returns only once the record is on disk (write, then fdatasync), so whatever an API answer reports
/// survives a crash at any later moment. A crash during `append` can leave a torn last record; it was never
/// acknowledged, and `load` drops it (each record carries a CRC-32). After `compactAfter` records, `compact`
/// writes the whole ledger as a snapshot (atomically: temporary file, fsync, rename) and empties the log; records
/// carry a sequence number, so a crash between the two steps replays nothing twice.
///
/// Appending one small record costs one fdatasync (about 5 ms on this project's test machine) however many
/// allocations exist, where rewriting the whole ledger each time would grow with it.
///
/// Not thread-safe: its owner serializes calls (the IPAM lock).
final class Ledger {
    static let snapshotName = "ledger-snapshot.json"
    static let logName = "ledger.log"
    static let version: Int64 = 1

    let directory: String
    let compactAfter: Int
    var snapshotPath: String { "\(directory)/\(Self.snapshotName)" }
    var logPath: String { "\(directory)/\(Self.logName)" }

    private var fd: Int32 = -1
    private var logSize: off_t = 0
    private(set) var sequence: UInt64 = 0
    private(set) var recordsInLog = 0
    /// Set when a write failed in a way that leaves the log's content unknown: no more changes are accepted.
    private(set) var failure: String?
    /// Whether `load` dropped a torn last record.
    private(set) var droppedTornRecord = false

    init(directory: String, compactAfter: Int = 1024) {
        self.directory = directory
        self.compactAfter = compactAfter
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    var needsCompaction: Bool { recordsInLog >= compactAfter }

    // MARK: Loading

    /// Reads the snapshot and replays the log; cuts off a torn last record; opens the log for appending.
    /// Throws when anything but the last record is damaged: guessing could hand out an address twice.
    func load() throws(AgentError) -> LedgerContents {
        var contents = LedgerContents()
        var snapshotSequence: UInt64 = 0
        if let bytes = try DurableFile.read(snapshotPath) {
            (contents, snapshotSequence) = try Self.parseSnapshot(bytes, path: snapshotPath)
        }
        sequence = snapshotSequence
        let bytes = try DurableFile.read(logPath) ?? []
        var goodLength = 0
        var records = 0
        var firstBad: (line: Int, reason: String)?
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            lineNumber += 1
            guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) else {
                firstBad = firstBad ?? (lineNumber, "incomplete record")
                break
            }
            switch Self.parseRecord(bytes[start..<end]) {
            case .failure(let reason):
                firstBad = firstBad ?? (lineNumber, reason.description)
            case .success(let (recordSequence, change)):
                if let bad = firstBad {
                    throw AgentError.internal(
                        "IPAM ledger \(logPath) is damaged at line \(bad.line) (\(bad.reason)) with intact records "
                            + "after it; refusing to allocate from a ledger that may have lost allocations")
                }
                if recordSequence > snapshotSequence {
                    contents.apply(change)
                    sequence = max(sequence, recordSequence)
                }
                records += 1
                goodLength = end + 1
            }
            start = end + 1
        }
        try openLog(truncatingTo: firstBad == nil ? nil : off_t(goodLength))
        droppedTornRecord = firstBad != nil
        recordsInLog = records
        logSize = off_t(goodLength)
        return contents
    }

    private func openLog(truncatingTo length: off_t?) throws(AgentError) {
        close()
        let existed = access(logPath, F_OK) == 0
        fd = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DurableFile.failure("opening \(logPath)") }
        if let length {
            guard ftruncate(fd, length) == 0, fdatasync(fd) == 0 else {
                throw DurableFile.failure("cutting the torn last record off \(logPath)")
            }
        }
        if !existed {
            // The plugin's state directory may itself be new (and its parent): make the path to the log durable
            // before anything written to it is acknowledged.
            var path = logPath
            for _ in 0..<3 {
                DurableFile.syncDirectory(containing: path)
                guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { break }
                path = String(path[..<slash])
            }
        }
    }

    // MARK: Writing

    /// Writes `change` as one record and returns once it is on disk.
    func append(_ change: LedgerChange) throws(AgentError) {
        if let failure { throw AgentError.unavailable(failure) }
        guard fd >= 0 else { throw AgentError.unavailable("the IPAM ledger is not open") }
        let next = sequence + 1
        let line = Self.recordLine(sequence: next, change: change)
        do {
            try DurableFile.writeAll(fd, line, path: logPath)
        } catch {
            // Take back a partial record so the next one does not follow garbage; if even that fails, the log's
            // end is unknown and no further change may be acknowledged.
            if ftruncate(fd, logSize) != 0 {
                failure = "the IPAM ledger \(logPath) could not be repaired after a failed write; restart the agent"
            }
            throw error
        }
        guard fdatasync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            // After a failed fdatasync the kernel may have dropped the dirty pages: nothing about the file is known.
            failure = "syncing the IPAM ledger \(logPath) failed (\(reason)); restart the agent"
            throw AgentError.internal("syncing \(logPath): \(reason)")
        }
        logSize += off_t(line.count)
        sequence = next
        recordsInLog += 1
    }

    /// Writes `contents` (the state after every appended record) as the snapshot and empties the log.
    func compact(_ contents: LedgerContents) throws(AgentError) {
        let allocations = contents.allocations.values.sorted { $0.address < $1.address }.map(\.ledgerJSON)
        let snapshot: JSON = [
            "version": .int(Self.version), "sequence": .int(Int64(sequence)), "allocations": .array(allocations),
            "cursors": Self.cursorsJSON(contents.cursors),
        ]
        try DurableFile.replace(snapshotPath, with: Array(snapshot.serialized().utf8))
        // The snapshot now covers every record; a crash before the log is emptied only leaves records it skips.
        guard fd >= 0, ftruncate(fd, 0) == 0, fdatasync(fd) == 0 else {
            throw DurableFile.failure("emptying \(logPath) after a snapshot")
        }
        logSize = 0
        recordsInLog = 0
    }

    // MARK: Encoding

    /// `<crc32 hex> <json>\n`, the checksum over the JSON text.
    static func recordLine(sequence: UInt64, change: LedgerChange) -> [UInt8] {
        var object: [String: JSON] = ["seq": .int(Int64(sequence))]
        if !change.put.isEmpty { object["put"] = .array(change.put.map(\.ledgerJSON)) }
        if !change.release.isEmpty { object["release"] = .array(change.release.map { .string($0.description) }) }
        if !change.cursors.isEmpty { object["cursors"] = cursorsJSON(change.cursors) }
        let json = Array(JSON.object(object).serialized().utf8)
        let hex = String(CRC32.checksum(json), radix: 16)
        return Array((String(repeating: "0", count: 8 - hex.count) + hex + " ").utf8) + json + [UInt8(ascii: "\n")]
    }

    static func parseRecord(_ line: ArraySlice<UInt8>) -> Result<(UInt64, LedgerChange), RecordError> {
        guard line.count > 9, line[line.startIndex + 8] == UInt8(ascii: " "),
            let stored = UInt32(String(decoding: line.prefix(8), as: UTF8.self), radix: 16)
        else { return .failure(RecordError("no checksum")) }
        let json = line.dropFirst(9)
        guard CRC32.checksum(json) == stored else { return .failure(RecordError("checksum mismatch")) }
        guard let record = try? JSON.parse(Array(json)), let sequence = record["seq"]?.intValue, sequence > 0 else {
            return .failure(RecordError("not a ledger record"))
        }
        var change = LedgerChange()
        for item in record["put"]?.arrayValue ?? [] {
            guard let allocation = Allocation(ledgerJSON: item) else { return .failure(RecordError("bad allocation")) }
            change.put.append(allocation)
        }
        for item in record["release"]?.arrayValue ?? [] {
            guard let address = item.stringValue.flatMap(IPAddress.init) else {
                return .failure(RecordError("bad address"))
            }
            change.release.append(address)
        }
        change.cursors = parseCursors(record["cursors"])
        return .success((UInt64(sequence), change))
    }

    struct RecordError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    static func parseSnapshot(_ bytes: [UInt8], path: String) throws(AgentError) -> (LedgerContents, UInt64) {
        let unreadable = { (why: String) in
            AgentError.internal(
                "IPAM ledger snapshot \(path) is unreadable (\(why)); refusing to allocate from a ledger that may "
                    + "have lost allocations")
        }
        let json: JSON
        do {
            json = try JSON.parse(bytes)
        } catch {
            throw unreadable(error.message)
        }
        guard json["version"]?.intValue == version else { throw unreadable("unknown version") }
        guard let sequence = json["sequence"]?.intValue, sequence >= 0 else { throw unreadable("no sequence") }
        var contents = LedgerContents()
        for item in json["allocations"]?.arrayValue ?? [] {
            guard let allocation = Allocation(ledgerJSON: item) else { throw unreadable("bad allocation") }
            contents.allocations[allocation.address] = allocation
        }
        contents.cursors = parseCursors(json["cursors"])
        return (contents, UInt64(sequence))
    }

    static func cursorsJSON(_ cursors: [IPAddress.Family: IPAddress]) -> JSON {
        .object(Dictionary(uniqueKeysWithValues: cursors.map { ($0.key.name, JSON.string($0.value.description)) }))
    }

    static func parseCursors(_ json: JSON?) -> [IPAddress.Family: IPAddress] {
        var cursors: [IPAddress.Family: IPAddress] = [:]
        for (name, value) in json?.objectValue ?? [:] {
            if let family = IPAddress.Family(name: name), let address = value.stringValue.flatMap(IPAddress.init),
                address.family == family
            {
                cursors[family] = address
            }
        }
        return cursors
    }
}
