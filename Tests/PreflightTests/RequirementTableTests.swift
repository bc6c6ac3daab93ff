import Foundation
import XCTest

@testable import Preflight

/// The requirement table against the programs' sources: a map type or helper added to bpf/ without its line in
/// the table (or a line left after its last use) fails here.
final class RequirementTableTests: XCTestCase {
    static let bpfDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("bpf")

    func testTheTableNamesExactlyTheMapTypesAndHelpersTheProgramsUse() throws {
        let source = try sources()
        let mapTypes = matches(#"BPF_MAP_TYPE_([A-Z_]+)"#, in: source).map { "map-type " + $0.lowercased() }
        // Byte-order macros look like helpers but are not.
        let byteOrder: Set = ["bpf_htons", "bpf_ntohs", "bpf_htonl", "bpf_ntohl"]
        let helpers = matches(#"\b(bpf_[a-z0-9_]+)\("#, in: source).subtracting(byteOrder).map { "helper " + $0 }
        let names = PreflightReport.evaluate(RecordedKernels.complete(), for: []).items.map(\.name)

        XCTAssertEqual(Set(names.filter { $0.hasPrefix("map-type ") }), Set(mapTypes))
        XCTAssertEqual(Set(names.filter { $0.hasPrefix("helper ") }), Set(helpers))
    }

    private func sources() throws -> String {
        let files = try XCTUnwrap(FileManager.default.enumerator(atPath: Self.bpfDirectory.path))
        var text = ""
        for case let file as String in files where file.hasSuffix(".c") || file.hasSuffix(".h") {
            text += try String(contentsOf: Self.bpfDirectory.appendingPathComponent(file), encoding: .utf8)
        }
        XCTAssertTrue(text.contains("SEC(\"tc\")"), "read the endpoint programs")
        return text
    }

    private func matches(_ pattern: String, in text: String) -> Set<String> {
        let regex = try! NSRegularExpression(pattern: pattern)
        let range = NSRange(text.startIndex..., in: text)
        return Set(
            regex.matches(in: text, range: range).compactMap { match in
                Range(match.range(at: 1), in: text).map { String(text[$0]) }
            })
    }
}
