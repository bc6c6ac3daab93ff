import AgentAPI
import XCTest

@testable import Policy

/// Labels an endpoint may not claim: reserved ones, and a namespace other than its own.
final class EndpointLabelsTests: XCTestCase {
    func testReservedLabelsAreRefusedNamingTheElement() throws {
        for text in ["reserved:host", "reserved:world", "reserved:health=x", "reserved:anything"] {
            let error = try XCTUnwrap(
                agentError { try EndpointLabels.parse(["k8s:app=a", text], namespace: "web") }, text)
            XCTAssertEqual(error.code, .invalidField, text)
            XCTAssertEqual(error.status, 400, text)
            XCTAssertEqual(error.field, "labels[1]", text)
            XCTAssertTrue(error.message.contains("\"\(text)\""), error.message)
            XCTAssertTrue(error.message.contains("reserved"), error.message)
        }
    }

    func testANamespaceLabelOfAnySourceMustBeTheEndpointsNamespace() throws {
        for text in [
            "k8s:io.kubernetes.pod.namespace=kube-system", "container:io.kubernetes.pod.namespace=kube-system",
            "io.kubernetes.pod.namespace=kube-system", "k8s:io.kubernetes.pod.namespace=",
        ] {
            let error = try XCTUnwrap(agentError { try EndpointLabels.parse([text], namespace: "web") }, text)
            XCTAssertEqual(error.field, "labels[0]", text)
            XCTAssertTrue(error.message.contains(":io.kubernetes.pod.namespace"), error.message)
            XCTAssertTrue(error.message.contains("k8s-namespace \"web\""), error.message)
        }
        // Without k8s-namespace no namespace label is believed.
        let unset = try XCTUnwrap(
            agentError { try EndpointLabels.parse(["k8s:io.kubernetes.pod.namespace=web"], namespace: nil) })
        XCTAssertEqual(unset.field, "labels[0]")
        XCTAssertTrue(unset.message.contains("needs k8s-namespace"), unset.message)
    }

    func testTheEndpointsOwnNamespaceIsRedundantAndAdded() throws {
        let given = try EndpointLabels.parse(
            ["k8s:app=a", "k8s:io.kubernetes.pod.namespace=web", "container:io.kubernetes.pod.namespace=web"],
            namespace: "web")
        XCTAssertEqual(
            given.strings,
            ["k8s:app=a", "container:io.kubernetes.pod.namespace=web", "k8s:io.kubernetes.pod.namespace=web"])
        XCTAssertEqual(
            try EndpointLabels.parse(["k8s:app=a"], namespace: "web").strings,
            ["k8s:app=a", "k8s:io.kubernetes.pod.namespace=web"], "the namespace label comes from k8s-namespace")
        XCTAssertEqual(try EndpointLabels.parse(["k8s:app=a"], namespace: nil).strings, ["k8s:app=a"])
        // Other keys that merely contain the namespace key, and other sources' ordinary labels, are fine.
        XCTAssertNoThrow(
            try EndpointLabels.parse(["k8s:io.kubernetes.pod.namespace.x=other", "container:app=x"], namespace: "web"))
    }

    func testCheckNamesTheFieldItIsGiven() throws {
        let labels = [try Label(parsing: "k8s:app=a"), try Label(parsing: "reserved:host")]
        let error = try XCTUnwrap(agentError { try EndpointLabels.check(labels, namespace: "web", field: "add") })
        XCTAssertEqual(error.field, "add[1]")
        XCTAssertTrue(error.message.hasPrefix("add[1]: label \"reserved:host\""), error.message)
    }
}
