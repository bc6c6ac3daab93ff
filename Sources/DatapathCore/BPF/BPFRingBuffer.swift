import CLibbpf
import Glibc
import Synchronization

/// A reader of a BPF ring buffer map (records the datapath submits with `bpf_ringbuf_submit`), through
/// libbpf's `ring_buffer`. Each record comes back as its raw bytes (see `RingBufferRecords`).
public final class BPFRingBuffer: Sendable {
    /// Where libbpf's callback puts the records of one drain; only touched while `state` is locked.
    private final class RecordSink {
        var records = RingBufferRecords()
    }

    private struct State {
        let handle: OpaquePointer
        let sink: RecordSink
    }

    public let map: BPFMap
    private let state: Mutex<State>

    public init(_ map: BPFMap) throws {
        guard map.info.type == .ringBuffer else {
            throw AgentError.datapath("map \(map.name) is a \(map.info.typeName) map, not a ring buffer")
        }
        let sink = RecordSink()
        // The callback cannot capture: the sink travels as libbpf's context pointer, kept alive by `state`.
        let handle = ring_buffer__new(
            map.fd,
            { context, data, size in
                guard let context, let data else { return 0 }
                let sink = Unmanaged<RecordSink>.fromOpaque(context).takeUnretainedValue()
                sink.records.append(UnsafeRawBufferPointer(start: data, count: size))
                return 0
            }, Unmanaged.passUnretained(sink).toOpaque(), nil)
        guard let handle else {
            throw AgentError.datapath("opening ring buffer \(map.name): \(errnoText(errno))")
        }
        self.map = map
        state = Mutex(State(handle: handle, sink: sink))
    }

    deinit {
        state.withLock { ring_buffer__free($0.handle) }
    }

    /// Every record available now, oldest first, without waiting.
    public func drain() throws -> RingBufferRecords {
        var records = RingBufferRecords()
        try collect(waitingMilliseconds: nil, into: &records)
        return records
    }

    /// Waits up to `timeoutMilliseconds` for records (-1: indefinitely), then puts what is available into
    /// `records`, emptied first: a reader that polls again and again reuses its buffer.
    public func poll(timeoutMilliseconds: Int32, into records: inout RingBufferRecords) throws {
        try collect(waitingMilliseconds: timeoutMilliseconds, into: &records)
    }

    private func collect(waitingMilliseconds timeout: Int32?, into records: inout RingBufferRecords) throws {
        records.removeAll()
        let name = map.name
        try state.withLock { state throws in
            // The callback appends to the sink's records: lend it `records` for this read.
            swap(&state.sink.records, &records)
            defer { swap(&state.sink.records, &records) }
            let handle = state.handle
            if let timeout {
                try bpfCall("polling ring buffer \(name)") { ring_buffer__poll(handle, timeout) }
                // Producers may submit without waking the reader: a poll that timed out still collects what is there.
                if state.sink.records.isEmpty {
                    try bpfCall("reading ring buffer \(name)") { ring_buffer__consume(handle) }
                }
            } else {
                try bpfCall("reading ring buffer \(name)") { ring_buffer__consume(handle) }
            }
        }
    }
}
