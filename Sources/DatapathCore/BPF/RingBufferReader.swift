import AgentAPI
import CLibbpf
import Dispatch
import FoundationEssentials
import Glibc
import Synchronization

/// Consumes a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) on a dedicated thread and hands its records to a handler.
///
/// The thread waits in `ring_buffer__poll` at most `pollTimeout` at a time, so `stop()` returns within about that
/// long. Records that one poll returns are delivered together, in ring order, after the poll: a handler that needs
/// a lock or a snapshot takes it once per batch, not once per record. The handler runs on the reader's thread; while
/// it runs, the kernel keeps filling the ring (and counts what does not fit as lost), so it should be quick.
/// The thread is batch work to the scheduler (`BackgroundThread.Scheduling.batch`): the records wait in the ring
/// for it anyway, and waking to a batch of them it must not preempt the requests that made them.
public final class RingBufferReader: Sendable {
    /// Gets the records of one poll, each the raw bytes the BPF program submitted.
    public typealias Handler = @Sendable (_ records: RingBufferRecords) -> Void

    public let map: BPFMap
    public let pollTimeout: Duration
    private let handler: Handler
    private let threadName: String
    private let control = Mutex(Control())
    private let finished = DispatchSemaphore(value: 0)

    private struct Control {
        var started = false
        var stopping = false
        var records: UInt64 = 0
        var pollErrors: UInt64 = 0
        var lastError: String?
    }

    /// A reader of `map`, which must be a ring buffer; nothing is opened until `start()`.
    public init(
        map: BPFMap, pollTimeout: Duration = .milliseconds(100), threadName: String = "ringbuf-reader",
        handler: @escaping Handler
    ) {
        self.map = map
        self.pollTimeout = pollTimeout
        self.threadName = threadName
        self.handler = handler
    }

    /// Opens the ring buffer (mmap of its pages) and starts the reader thread. Throws when the map is not a ring
    /// buffer or libbpf cannot set it up; calling it again after a successful start does nothing.
    public func start() throws {
        guard map.info.type == .ringBuffer else {
            throw AgentError.datapath("map \(map.name) is a \(map.info.typeName) map, not a ring buffer")
        }
        let alreadyStarted = control.withLock { control in
            defer { control.started = true }
            return control.started
        }
        guard !alreadyStarted else { return }
        let ring: BPFRingBuffer
        do {
            ring = try BPFRingBuffer(map)
        } catch {
            control.withLock { $0.started = false }
            throw error
        }
        BackgroundThread.start(name: threadName, scheduling: .batch) { [self] in
            run(ring)
            finished.signal()
        }
    }

    /// Stops the thread and releases the ring buffer; waits at most about one poll timeout. Idempotent. A started
    /// reader lives (its thread holds it) until this is called.
    public func stop() {
        let (started, wasStopping) = control.withLock { control in
            defer { control.stopping = true }
            return (control.started, control.stopping)
        }
        guard started, !wasStopping else { return }
        finished.wait()
    }

    /// Records handed to the handler so far.
    public var recordsRead: UInt64 { control.withLock { $0.records } }

    /// Polls that failed (other than being interrupted), and the last failure's text.
    public var pollErrors: (count: UInt64, last: String?) { control.withLock { ($0.pollErrors, $0.lastError) } }

    private var isStopping: Bool { control.withLock { $0.stopping } }

    private func run(_ ring: BPFRingBuffer) {
        let timeoutMS = Int32(
            clamping: pollTimeout.components.seconds * 1000 + pollTimeout.components.attoseconds / 1_000_000_000_000_000
        )
        var records = RingBufferRecords()
        while !isStopping {
            do {
                try ring.poll(timeoutMilliseconds: max(timeoutMS, 1), into: &records)
            } catch {
                control.withLock { control in
                    control.pollErrors += 1
                    control.lastError = "\(error)"
                }
                // A failing epoll would otherwise spin: back off for one timeout.
                usleep(UInt32(max(timeoutMS, 1)) * 1000)
                continue
            }
            guard !records.isEmpty else { continue }
            control.withLock { $0.records += UInt64(records.count) }
            handler(records)
        }
    }
}
