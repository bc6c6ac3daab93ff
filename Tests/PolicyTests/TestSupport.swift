import AgentAPI
import XCTest

@testable import Policy

/// A label set from text labels; the tests' labels are valid, a typo fails the test loudly.
func labels(_ texts: String...) -> LabelSet {
    do {
        return try LabelSet(parsing: texts)
    } catch {
        fatalError("bad test labels \(texts): \(error)")
    }
}

/// A repository holding the given JSON documents (each an object or an array).
func repository(_ documents: String...) throws -> PolicyRepository {
    var repo = PolicyRepository()
    for text in documents { try repo.apply(JSON.parse(text)) }
    return repo
}

/// The error a throwing call raised, failing the test when it did not throw an AgentError.
func agentError<T>(
    _ body: () throws -> T, file: StaticString = #filePath, line: UInt = #line
) -> AgentError? {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
    } catch let error as AgentError {
        return error
    } catch {
        XCTFail("unexpected error type \(error)", file: file, line: line)
    }
    return nil
}

/// Parses one policy document given as JSON text, returning the error it raised.
func parseError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> AgentError? {
    agentError({ try PolicyParser.parse(JSON.parse(text)) }, file: file, line: line)
}

/// A CiliumNetworkPolicy document in namespace `ns` with the given `spec` JSON text.
func policy(_ name: String = "p", namespace ns: String = "web-tier", spec: String) -> String {
    """
    {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
     "metadata": {"name": "\(name)", "namespace": "\(ns)"}, "spec": \(spec)}
    """
}

let tcp: UInt8 = 6
let udp: UInt8 = 17
let sctp: UInt8 = 132
