import Foundation
import XCTest

@testable import Policy

/// The regex subset of HTTP rules: what each construct matches, what is refused and why, the size limits, and a
/// differential check against Python's `re.fullmatch` on random strings.
final class HTTPRegexTests: XCTestCase {
    private func dfa(_ pattern: String, file: StaticString = #filePath, line: UInt = #line) -> ByteDFA? {
        do {
            return try HTTPRegex.compile(pattern)
        } catch {
            XCTFail("\(pattern): \(error)", file: file, line: line)
            return nil
        }
    }

    private func refusal(_ pattern: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try HTTPRegex.compile(pattern)
            XCTFail("\(pattern) compiled; expected a refusal", file: file, line: line)
        } catch {
            return error.message
        }
        return ""
    }

    func testMatchesTable() {
        let cases: [(pattern: String, matching: [String], notMatching: [String])] = [
            ("GET", ["GET"], ["", "GE", "GETT", "get", "POST"]),
            ("/api/v1/public/.*", ["/api/v1/public/", "/api/v1/public/a?b=c"], ["/api/v1/public", "/api/v1/admin/x"]),
            ("GET|POST", ["GET", "POST"], ["GETPOST", "", "PUT"]),
            ("^/users/[0-9]+$", ["/users/1", "/users/0042"], ["/users/", "/users/1a", "x/users/1"]),
            ("[a-z0-9_-]+", ["a-b_9", "-"], ["", "A", "a.b"]),
            ("[^/]+", ["abc", "a\nb"], ["", "a/b"]),
            ("[]a]", ["]", "a"], ["b", "[]a]"]),
            ("[a-]", ["a", "-"], ["b"]),
            ("\\d{3}", ["123"], ["12", "1234", "abc"]),
            ("\\D\\W\\S", ["a-x", "b!x"], ["1-x", "aax", "a- "]),
            ("\\w+\\s\\w+", ["foo bar", "a\tb"], ["foo  bar", "foo-bar"]),
            ("a{2,4}", ["aa", "aaa", "aaaa"], ["a", "aaaaa"]),
            ("a{2,}", ["aa", String(repeating: "a", count: 300)], ["a", ""]),
            ("(ab)?c", ["c", "abc"], ["ababc", "ac"]),
            ("(?:ab|cd)*", ["", "ab", "abcdab"], ["a", "abc"]),
            ("(?P<v>v[12])/x", ["v1/x", "v2/x"], ["v3/x"]),
            ("a|", ["a", ""], ["aa"]),
            ("(|a)b", ["b", "ab"], ["aab"]),
            ("()", [""], ["a"]),
            (".", ["a", "\u{7f}", "/"], ["\n", "", "ab"]),
            ("\\.\\*\\\\\\/", [".*\\/"], ["a*\\/"]),
            ("\\x41\\x{42}\\t", ["AB\t"], ["AB "]),
            ("a{", ["a{"], ["a"]),
            ("a{x}", ["a{x}"], ["a"]),
            ("é+", ["é", "éé"], ["e", ""]),
            ("^GET$|^HEAD$", ["GET", "HEAD"], ["GETHEAD"]),
            ("(a|aa)*", ["", "a", "aaaaa"], ["b", "aab"]),
            ("(a*)*b", ["b", "aaab"], ["aaa"]),
            ("(a+)+$", ["a", "aaaa"], ["", "aab"]),
            ("[^\\x00-\\x7f]*", ["", "é"], ["a"]),
        ]
        for (pattern, matching, notMatching) in cases {
            guard let automaton = dfa(pattern) else { continue }
            for value in matching {
                XCTAssertTrue(automaton.matches(Array(value.utf8)), "\(pattern) should match \(value.debugDescription)")
            }
            for value in notMatching {
                XCTAssertFalse(
                    automaton.matches(Array(value.utf8)), "\(pattern) should not match \(value.debugDescription)")
            }
        }
    }

    func testRefusalsNameTheConstruct() {
        let cases: [(pattern: String, says: String)] = [
            ("(a)\\1", "backreference \\1"),
            ("(?P<x>a)(?P=x)", "backreference (?P=...)"),
            ("a(?=b)", "lookahead (?="),
            ("a(?!b)", "lookahead (?!"),
            ("(?<=a)b", "lookbehind (?<="),
            ("(?<!a)b", "lookbehind (?<!"),
            ("a*?", "lazy quantifier *?"),
            ("a+?", "lazy quantifier +?"),
            ("a{2,3}?", "lazy quantifier {2,3}?"),
            ("a*+", "possessive quantifier *+"),
            ("a**", "repeated quantifier **"),
            ("(?i)get", "flags (?i)"),
            ("(?i:get)", "flags (?i)"),
            ("\\bapi", "word boundary \\b"),
            ("\\p{L}+", "unicode class \\p"),
            ("\\Aapi", "anchor \\A"),
            ("a^b", "anchor ^ at offset 1"),
            ("a$b", "anchor $ at offset 1"),
            ("(^a)", "anchor ^"),
            ("(a$)", "anchor $"),
            ("a{1000}", "exceeds 255"),
            ("a{3,2}", "maximum is below its minimum"),
            ("*a", "nothing to repeat"),
            ("a|+", "nothing to repeat"),
            ("{2}", "nothing to repeat"),
            ("(ab", "missing )"),
            ("ab)", "unmatched )"),
            ("[abc", "missing ]"),
            ("[]", "missing ]"),
            ("[z-a]", "invalid range z-a"),
            ("[a-\\d]", "invalid range"),
            ("[[:alpha:]]", "POSIX class"),
            ("[é]", "non-ASCII character"),
            ("\\xff", "not ASCII"),
            ("\\xg1", "invalid hex escape"),
            ("a\\x4", "invalid hex escape"),
            ("\\x{+4}", "invalid hex escape"),
            ("a\\", "trailing \\"),
            ("\\k", "unknown escape \\k"),
            ("\\0", "octal escape"),
            ("\\Qa.b\\E", "quoting \\Q"),
        ]
        for (pattern, says) in cases {
            let message = refusal(pattern)
            XCTAssertTrue(message.contains(says), "\(pattern): \(message.debugDescription) should say \(says)")
        }
    }

    func testStateBudgetAndExpansionLimits() {
        // (a|b)*a(a|b){n}: the classic exponential DFA, 2^(n+1) states.
        XCTAssertNotNil(dfa("(a|b)*a(a|b){8}"))
        XCTAssertTrue(refusal("(a|b)*a(a|b){12}").contains("more than 4096 automaton states"))
        XCTAssertTrue(refusal("((a{255}){255}){255}").contains("more than 100000 states"))
        // Within the budget after minimisation: a long chain is one state per byte.
        guard let chain = dfa("x{255}") else { return }
        XCTAssertEqual(chain.states.count, 257)
        XCTAssertTrue(chain.matches(Array(repeating: UInt8(ascii: "x"), count: 255)))
        XCTAssertFalse(chain.matches(Array(repeating: UInt8(ascii: "x"), count: 254)))
    }

    func testAutomatonIsMinimalAndShapedForTheKernel() throws {
        // The dead state first, the start second, every transition in range.
        for pattern in ["GET", "(a|aa)*", "/api/v[0-9]+/.*", "[^\\s\\S]", "a{0}"] {
            let automaton = try HTTPRegex.compile(pattern)
            XCTAssertTrue(automaton.states[0].next.allSatisfy { $0 == 0 } && !automaton.states[0].accepting)
            for state in automaton.states { XCTAssertTrue(state.next.allSatisfy { Int($0) < automaton.states.count }) }
        }
        // Minimal sizes (dead state included): (a|aa)* is a*; a literal is one state per byte plus accept.
        XCTAssertEqual(try HTTPRegex.compile("(a|aa)*").states.count, 2)
        XCTAssertEqual(try HTTPRegex.compile("(a*)*").states.count, 2)
        XCTAssertEqual(try HTTPRegex.compile("GET").states.count, 5)
        XCTAssertEqual(try HTTPRegex.compile("GET"), ByteDFA(literal: Array("GET".utf8)))
        XCTAssertEqual(try HTTPRegex.compile("GET|GET|(?:GET)"), ByteDFA(literal: Array("GET".utf8)))
        // Nothing matches: a start that leads nowhere.
        let nothing = try HTTPRegex.compile("[^\\s\\S]")
        XCTAssertEqual(nothing.states.count, 2)
        XCTAssertFalse(nothing.matches([]))
    }

    /// Python's `re.fullmatch` agrees on random ASCII strings for every regex of the list (the syntax of the list
    /// means the same in Python and RE2).
    func testAgreesWithPythonFullmatch() throws {
        let patterns = [
            "/api/v1/public/.*", "GET|HEAD|POST", "[a-z]+(-[a-z0-9]+)*\\.example\\.com", "/users/\\d{1,4}(/.*)?",
            "(a|ab)(c|bcd)(d*)", "(a|aa)*b?", "(a*)*", "[^a-c]{2,3}x?", "\\w+\\s*=\\s*\\W", "a{2,}b{0,2}c{3}",
            "(?:x|y|)+z", "[]a-]+", ".*\\?q=[0-9a-f]{4}", "(ab|a)(bc|c)?", "[\\d\\s]+", "\\S+\\.\\w{2,3}",
            "(/[a-z]{1,3})+/?", "^(?:foo|bar)baz$", "(a|b)*a(a|b){3}", "[-.a]*\\.",
        ]
        let alphabet = Array("abcdxyz0129-./?= \t\nABq_\\]".utf8)
        var generator = PrecedencePropertyTests.Generator(state: 0x5EED_0015)
        var cases: [(pattern: String, inputs: [String])] = []
        for pattern in patterns {
            // Strings built from the pattern's own bytes and a few others, so matches are not all rare.
            let own = Array(pattern.utf8).filter { $0 != UInt8(ascii: "\\") }
            var inputs: [String] = []
            for _ in 0..<400 {
                let length = generator.next(12)
                let bytes = (0..<length).map { _ in
                    generator.next(3) == 0 ? alphabet[generator.next(alphabet.count)] : own[generator.next(own.count)]
                }
                inputs.append(String(decoding: bytes, as: UTF8.self))
            }
            cases.append((pattern, inputs))
        }
        let python = try pythonFullmatch(cases)
        var matched = 0
        for (index, (pattern, inputs)) in cases.enumerated() {
            let automaton = try HTTPRegex.compile(pattern)
            for (input, expected) in zip(inputs, python[index]) {
                if expected { matched += 1 }
                XCTAssertEqual(
                    automaton.matches(Array(input.utf8)), expected, "\(pattern) on \(input.debugDescription)")
            }
        }
        // The inputs must exercise both outcomes for the comparison to mean something.
        XCTAssertGreaterThan(matched, 200)
        XCTAssertLessThan(matched, patterns.count * 400 - 200)
    }

    /// Random regexes of the subset: Python agrees on random strings, and every automaton is minimal (all states
    /// reachable, no two equivalent, checked by a refinement independent of the compiler's).
    func testRandomRegexesAgreeWithPythonAndAreMinimal() throws {
        var generator = PrecedencePropertyTests.Generator(state: 0xD_FA15)
        func regex(_ depth: Int) -> String {
            switch generator.next(depth > 3 ? 3 : 9) {
            case 0: return ["a", "b", "c"][generator.next(3)]
            case 1: return [".", "[ab]", "[^a]", "\\d", "[a-c0-1]", "\\.", "\\W"][generator.next(7)]
            case 2: return "a"
            case 3, 4: return regex(depth + 1) + regex(depth + 1)
            case 5: return "(" + regex(depth + 1) + "|" + (generator.next(4) == 0 ? "" : regex(depth + 1)) + ")"
            case 6:
                let quantifiers = ["*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}"]
                return "(?:" + regex(depth + 1) + ")" + quantifiers[generator.next(quantifiers.count)]
            case 7: return "(" + regex(depth + 1) + ")*"
            default: return regex(depth + 1) + "|" + regex(depth + 1)
            }
        }
        let alphabet = Array("abc01.\n-".utf8)
        var cases: [(pattern: String, inputs: [String])] = []
        for _ in 0..<150 {
            let inputs = (0..<150).map { _ in
                String(
                    decoding: (0..<generator.next(9)).map { _ in alphabet[generator.next(alphabet.count)] },
                    as: UTF8.self)
            }
            cases.append((regex(0), inputs))
        }
        let python = try pythonFullmatch(cases)
        var outcomes: Set<Bool> = []
        for (index, (pattern, inputs)) in cases.enumerated() {
            let automaton = try HTTPRegex.compile(pattern)
            for (input, expected) in zip(inputs, python[index]) {
                outcomes.insert(expected)
                XCTAssertEqual(
                    automaton.matches(Array(input.utf8)), expected, "\(pattern) on \(input.debugDescription)")
            }
            XCTAssertEqual(Self.minimalStateCount(automaton), automaton.states.count, "\(pattern) is not minimal")
        }
        XCTAssertEqual(outcomes, [true, false])
    }

    /// The number of states of the minimal automaton equivalent to `dfa`, by Moore's refinement over its reachable
    /// states (the dead state counted, as `ByteDFA` always has it).
    private static func minimalStateCount(_ dfa: ByteDFA) -> Int {
        var reachable: Set<Int> = [0, 1]
        var stack = [1]
        while let state = stack.popLast() {
            for next in Set(dfa.states[state].next) where reachable.insert(Int(next)).inserted {
                stack.append(Int(next))
            }
        }
        let states = reachable.sorted()
        var block = Dictionary(uniqueKeysWithValues: states.map { ($0, dfa.states[$0].accepting ? 1 : 0) })
        while true {
            var numbering: [[Int]: Int] = [:]
            var refined: [Int: Int] = [:]
            for state in states {
                let signature = [block[state]!] + dfa.states[state].next.map { block[Int($0)]! }
                if numbering[signature] == nil { numbering[signature] = numbering.count }
                refined[state] = numbering[signature]!
            }
            if Set(refined.values).count == Set(block.values).count { return numbering.count }
            block = refined
        }
    }

    /// `re.fullmatch(pattern, input)` for every input, through `python3`.
    private func pythonFullmatch(_ cases: [(pattern: String, inputs: [String])]) throws -> [[Bool]] {
        let script = """
            import json, re, sys
            cases = json.load(sys.stdin)
            json.dump([[re.fullmatch(c["pattern"], s) is not None for s in c["inputs"]] for c in cases], sys.stdout)
            """
        let input = try JSONSerialization.data(
            withJSONObject: cases.map { ["pattern": $0.pattern, "inputs": $0.inputs] })
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "python3 failed")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: output) as? [[Bool]])
    }
}
