import AgentAPI
import XCTest

final class KnownKeysTests: XCTestCase {
    func testFirstUnknownKeyInSortedOrderIsNamedWithItsPrefix() {
        XCTAssertNoThrow(try KnownKeys.check(["a", "b"], known: ["a", "b", "c"], kind: "option"))
        XCTAssertThrowsError(
            try KnownKeys.check(["z", "y", "a"], known: ["a", "b"], prefix: "plugins.nat", kind: "option")
        ) {
            let error = $0 as? AgentError
            XCTAssertEqual(error?.field, "plugins.nat.y")
            XCTAssertEqual(error?.message, "plugins.nat.y: unknown option (known: a, b)")
        }
        XCTAssertThrowsError(try KnownKeys.check(["x"], known: [String](), kind: "parameter")) {
            XCTAssertEqual(($0 as? AgentError)?.message, "x: unknown parameter (known: none)")
        }
    }
}
