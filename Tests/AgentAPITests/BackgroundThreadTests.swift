import Dispatch
import Glibc
import Synchronization
import XCTest

@testable import AgentAPI

final class BackgroundThreadTests: XCTestCase {
    /// The scheduling policy (`sched_getscheduler`) and name (`/proc/thread-self/comm`) a thread started with
    /// `scheduling` runs under.
    private func observe(_ scheduling: BackgroundThread.Scheduling, name: String) -> (policy: Int32, name: String) {
        let seen = Mutex<(Int32, String)>((-1, ""))
        let done = DispatchSemaphore(value: 0)
        BackgroundThread.start(name: name, scheduling: scheduling) {
            let policy = sched_getscheduler(0)
            var comm = [CChar](repeating: 0, count: 32)
            let fd = open("/proc/thread-self/comm", O_RDONLY)
            if fd >= 0 {
                _ = read(fd, &comm, comm.count - 1)
                close(fd)
            }
            let bytes = comm.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }
            let text = String(decoding: bytes, as: UTF8.self)
            seen.withLock { $0 = (policy, text) }
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success, "the thread did not run")
        return seen.withLock { $0 }
    }

    func testBatchThreadRunsUnderSchedBatchAndNormalOnesAsOthers() {
        let batch = observe(.batch, name: "test-batch")
        XCTAssertEqual(batch.policy, 3, "SCHED_BATCH is 3")
        XCTAssertEqual(batch.name, "test-batch")
        let normal = observe(.normal, name: "test-normal")
        XCTAssertEqual(normal.policy, SCHED_OTHER)
        XCTAssertEqual(normal.name, "test-normal")
    }
}
