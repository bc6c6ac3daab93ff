import AgentAPI
import XCTest

@testable import Policy

/// A namespaced policy's endpoint selector always applies in the policy's own namespace: a match naming another
/// namespace is removed with a warning instead of silently selecting nothing.
final class PolicyNamespaceTests: XCTestCase {
    private let ingress = #""ingress": [{"fromEndpoints": [{"matchLabels": {"app": "x"}}]}]"#

    private func parsed(_ selector: String, kind: String = "CiliumNetworkPolicy", namespace: String? = "web")
        throws -> PolicyDocument
    {
        let metadata = namespace.map { #"{"name": "p", "namespace": "\#($0)"}"# } ?? #"{"name": "p"}"#
        let text = """
            {"apiVersion": "cilium.io/v2", "kind": "\(kind)", "metadata": \(metadata),
             "spec": {"endpointSelector": \(selector), \(ingress)}}
            """
        return try XCTUnwrap(PolicyParser.parse(JSON.parse(text)).first)
    }

    private let webApp = labels("k8s:app=api", "k8s:io.kubernetes.pod.namespace=web")
    private let otherApp = labels("k8s:app=api", "k8s:io.kubernetes.pod.namespace=other")

    /// A selector of app=api with one match expression.
    private func apiWith(_ expression: String) -> String {
        #"{"matchLabels": {"app": "api"}, "matchExpressions": ["# + expression + "]}"
    }

    func testAMatchOnAnotherNamespaceIsRemovedWithAWarning() throws {
        let selectors = [
            #"{"matchLabels": {"app": "api", "k8s:io.kubernetes.pod.namespace": "other"}}"#,
            #"{"matchLabels": {"app": "api", "io.kubernetes.pod.namespace": "other"}}"#,
            #"{"matchLabels": {"app": "api", "any:io.kubernetes.pod.namespace": "other"}}"#,
            apiWith(#"{"key": "k8s:io.kubernetes.pod.namespace", "operator": "In", "values": ["other", "third"]}"#),
            apiWith(#"{"key": "io.kubernetes.pod.namespace", "operator": "NotIn", "values": ["web"]}"#),
            apiWith(#"{"key": "io.kubernetes.pod.namespace", "operator": "DoesNotExist"}"#),
            // Its own namespace among others: the others could never apply.
            apiWith(#"{"key": "io.kubernetes.pod.namespace", "operator": "In", "values": ["web", "other"]}"#),
        ]
        for selector in selectors {
            let document = try parsed(selector)
            let rule = try XCTUnwrap(document.rules.first)
            XCTAssertTrue(rule.endpointSelector.matches(webApp), "applies to its namespace's pods: \(selector)")
            XCTAssertFalse(rule.endpointSelector.matches(otherApp), "never to another namespace's: \(selector)")
            XCTAssertFalse(rule.endpointSelector.matches(labels("k8s:app=db", "k8s:io.kubernetes.pod.namespace=web")))
            XCTAssertEqual(document.warnings.count, 1, selector)
            let warning = document.warnings.first ?? ""
            XCTAssertTrue(warning.hasPrefix("web/p: spec.endpointSelector: "), warning)
            XCTAssertTrue(warning.contains("io.kubernetes.pod.namespace"), warning)
            XCTAssertTrue(warning.contains("namespace \"web\""), warning)
        }
    }

    func testAMatchEveryPodOfTheNamespaceSatisfiesIsNoWarning() throws {
        let selectors = [
            #"{"matchLabels": {"app": "api"}}"#,
            #"{"matchLabels": {"app": "api", "k8s:io.kubernetes.pod.namespace": "web"}}"#,
            apiWith(#"{"key": "io.kubernetes.pod.namespace", "operator": "Exists"}"#),
            apiWith(#"{"key": "io.kubernetes.pod.namespace", "operator": "NotIn", "values": ["other"]}"#),
        ]
        for selector in selectors {
            let document = try parsed(selector)
            XCTAssertEqual(document.warnings, [], selector)
            XCTAssertTrue(try XCTUnwrap(document.rules.first).endpointSelector.matches(webApp), selector)
            XCTAssertFalse(try XCTUnwrap(document.rules.first).endpointSelector.matches(otherApp), selector)
        }
    }

    func testEveryRuleOfSpecsIsConfinedAndNamedInItsWarning() throws {
        let text = """
            {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "p", "namespace": "web"},
             "specs": [{"endpointSelector": {"matchLabels": {"app": "api"}}, \(ingress)},
                       {"endpointSelector": {"matchLabels": {"io.kubernetes.pod.namespace": "kube-system"}},
                        \(ingress)}]}
            """
        let document = try XCTUnwrap(PolicyParser.parse(JSON.parse(text)).first)
        XCTAssertEqual(document.warnings.count, 1)
        XCTAssertTrue(document.warnings[0].hasPrefix("web/p: specs[1].endpointSelector: "), document.warnings[0])
        XCTAssertTrue(document.rules[1].endpointSelector.matches(labels("k8s:io.kubernetes.pod.namespace=web")))
        XCTAssertFalse(
            document.rules[1].endpointSelector.matches(labels("k8s:io.kubernetes.pod.namespace=kube-system")))
    }

    func testAClusterwidePolicyKeepsItsNamespaceMatch() throws {
        let document = try parsed(
            #"{"matchLabels": {"app": "api", "k8s:io.kubernetes.pod.namespace": "other"}}"#,
            kind: "CiliumClusterwideNetworkPolicy", namespace: nil)
        XCTAssertEqual(document.warnings, [])
        let rule = try XCTUnwrap(document.rules.first)
        XCTAssertTrue(rule.endpointSelector.matches(otherApp), "selecting a namespace is what clusterwide does")
        XCTAssertFalse(rule.endpointSelector.matches(webApp))
    }

    func testPeerSelectorsMayNameOtherNamespaces() throws {
        let text = policy(
            "p", namespace: "web",
            spec: #"""
                {"endpointSelector": {"matchLabels": {"app": "api"}},
                 "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "other"}}]}]}
                """#)
        let document = try XCTUnwrap(PolicyParser.parse(JSON.parse(text)).first)
        XCTAssertEqual(document.warnings, [], "allowing peers of another namespace is legal")
    }
}
