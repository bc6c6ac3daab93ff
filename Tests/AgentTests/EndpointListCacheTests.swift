import Policy
import XCTest

@testable import Agent

final class EndpointListCacheTests: XCTestCase {
    private func filter(_ text: String) throws -> LabelSet { try LabelSet(parsing: [text]) }

    func testAnAnswerIsGoodOnlyForItsFilterAndVersion() throws {
        var cache = EndpointListCache()
        cache.store(Array("all".utf8), for: LabelSet(), version: 3)
        cache.store(Array("web".utf8), for: try filter("k8s:app=web"), version: 3)
        XCTAssertEqual(cache.body(for: LabelSet(), version: 3), Array("all".utf8))
        XCTAssertEqual(cache.body(for: try filter("k8s:app=web"), version: 3), Array("web".utf8))
        XCTAssertNil(cache.body(for: try filter("k8s:app=db"), version: 3), "another filter")
        XCTAssertNil(cache.body(for: try filter("k8s:app=web"), version: 4), "the state moved on")
    }

    func testManyFiltersStayBoundedAndOlderVersionsGoFirst() throws {
        var cache = EndpointListCache()
        for i in 0..<EndpointListCache.capacity { cache.store([1], for: try filter("k8s:app=a\(i)"), version: 1) }
        XCTAssertEqual(cache.count, EndpointListCache.capacity)
        cache.store([2], for: try filter("k8s:app=new"), version: 2)
        XCTAssertEqual(cache.count, 1, "every answer of version 1 went")
        XCTAssertEqual(cache.body(for: try filter("k8s:app=new"), version: 2), [2])
        for i in 0..<(EndpointListCache.capacity * 2) { cache.store([3], for: try filter("k8s:app=b\(i)"), version: 2) }
        XCTAssertLessThanOrEqual(cache.count, EndpointListCache.capacity)
    }
}
