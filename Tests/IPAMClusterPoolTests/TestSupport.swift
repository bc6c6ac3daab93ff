import DatapathCore
import Foundation
import Synchronization
import XCTest

@testable import IPAMClusterPool

/// A clock the test moves by hand (Unix milliseconds).
final class FakeClock: Sendable {
    private let value: Mutex<Int64>

    init(_ start: Int64 = 1_800_000_000_000) { value = Mutex(start) }

    var now: Int64 { value.withLock { $0 } }
    func advance(seconds: Int64) { value.withLock { $0 += seconds * 1000 } }
    var function: @Sendable () -> Int64 { { [self] in now } }
}

/// A fresh directory under the system's temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let path = "\(NSTemporaryDirectory())/ipam-test-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// A config parsed from JSON text; a bad test config fails loudly.
func config(_ text: String) throws -> IPAMConfig {
    try IPAMConfig(parsing: JSON.parse(text))
}

/// A ready service over `directory` with the given endpoints in the datapath.
func readyIPAM(
    _ configText: String, directory: String, clock: FakeClock = FakeClock(), compactAfter: Int = 1024,
    endpoints: [UInt32: [IPAddress]] = [:]
) throws -> IPAM {
    let ipam = IPAM(config: try config(configText), clock: clock.function, compactAfter: compactAfter)
    try ipam.load(directory: directory)
    try ipam.syncEndpoints(endpoints)
    return ipam
}

func ip(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
    return address
}

/// The AgentError a call threw, failing the test when it threw nothing or something else.
func agentError<T>(_ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line) -> AgentError? {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
    } catch let error as AgentError {
        return error
    } catch {
        XCTFail("expected an AgentError, got \(error)", file: file, line: line)
    }
    return nil
}

let v4Node = #"{"pod-cidr-ipv4": "10.0.1.0/24"}"#
