import AgentAPI
import XCTest

@testable import Policy

final class LabelTests: XCTestCase {
    func testParsingSourcesKeysAndValues() throws {
        let k8s = try Label(parsing: "k8s:app=frontend")
        XCTAssertEqual([k8s.source, k8s.key, k8s.value], ["k8s", "app", "frontend"])
        let host = try Label(parsing: "reserved:host")
        XCTAssertEqual([host.source, host.key, host.value], ["reserved", "host", ""])
        let bare = try Label(parsing: "app=x")
        XCTAssertEqual([bare.source, bare.key, bare.value], ["unspec", "app", "x"])
        let empty = try Label(parsing: "k8s:app=")
        XCTAssertEqual(empty.value, "")
        // The colon of a source must come before the '=': here it is part of the value.
        let colonInValue = try Label(parsing: "url=http://x")
        XCTAssertEqual([colonInValue.source, colonInValue.key, colonInValue.value], ["unspec", "url", "http://x"])
        let ns = try Label(parsing: "k8s:io.kubernetes.pod.namespace=web-tier")
        XCTAssertEqual(ns.key, "io.kubernetes.pod.namespace")
        XCTAssertEqual(ns.description, "k8s:io.kubernetes.pod.namespace=web-tier")
        XCTAssertEqual(host.description, "reserved:host")
    }

    func testInvalidLabelsAreNamedInTheError() throws {
        let cases: [(String, String)] = [
            ("k8s:=x", "key must not be empty"),
            ("=x", "key must not be empty"),
            ("k8s:my app=x", "key must not contain whitespace"),
            ("k8s:app=a b", "value must not contain whitespace"),
            (":app=x", "source must not be empty"),
            ("K8S:app=x", "source \"K8S\" may contain only"),
            ("any:app=x", "only valid in selectors"),
            ("k8s:" + String(repeating: "k", count: 318), "key is longer than 317"),
            ("k8s:app=" + String(repeating: "v", count: 256), "value is longer than 255"),
        ]
        for (text, reason) in cases {
            let error = try XCTUnwrap(agentError { try Label(parsing: text, field: "labels[3]") }, text)
            XCTAssertEqual(error.code, .invalidField, text)
            XCTAssertEqual(error.field, "labels[3]", text)
            XCTAssertTrue(error.message.hasPrefix("labels[3]: label \"\(text)\": "), error.message)
            XCTAssertTrue(error.message.contains(reason), "\(text): \(error.message)")
        }
        let error = try XCTUnwrap(agentError { try Label(source: "k8s", key: "a b", value: "x") })
        XCTAssertEqual(error.message, "labels: label \"k8s:a b=x\": key must not contain whitespace")
    }

    func testLabelSetIsCanonical() throws {
        let a = labels("k8s:io.kubernetes.pod.namespace=web", "k8s:app=x", "container:app=y")
        let b = labels("container:app=y", "k8s:app=x", "k8s:io.kubernetes.pod.namespace=web", "k8s:app=x")
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.hashValue, b.hashValue)
        XCTAssertEqual(a.strings, ["container:app=y", "k8s:app=x", "k8s:io.kubernetes.pod.namespace=web"])
        XCTAssertEqual(Array(a.values(forKey: "app", source: nil)), ["y", "x"])
        XCTAssertEqual(Array(a.values(forKey: "app", source: "k8s")), ["x"])
        XCTAssertEqual(Array(a.inserting(try Label(parsing: "k8s:app=z")).values(forKey: "app", source: "k8s")), ["z"])
        XCTAssertEqual(a.removing(source: "k8s", key: "app").count, 2)
    }

    func testLabelSetRejectsConflictingValuesByIndex() throws {
        let error = try XCTUnwrap(agentError { try LabelSet(parsing: ["k8s:app=x", "k8s:team=t", "k8s:app=y"]) })
        XCTAssertEqual(error.field, "labels[2]")
        XCTAssertTrue(error.message.contains("conflicts with \"k8s:app=x\""), error.message)
        let bad = try XCTUnwrap(agentError { try LabelSet(parsing: ["k8s:app=x", "k8s: bad"]) })
        XCTAssertEqual(bad.field, "labels[1]")
    }

    func testDefaultFilterDropsPodUniqueLabelsFromAnySource() throws {
        let pod = labels(
            "k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod", "k8s:pod-template-hash=5d8f7c",
            "k8s:controller-revision-hash=web-7c9", "k8s:statefulset.kubernetes.io/pod-name=web-0",
            "k8s:apps.kubernetes.io/pod-index=0", "k8s:batch.kubernetes.io/job-completion-index=3",
            "k8s:controller-uid=1234", "k8s:batch.kubernetes.io/controller-uid=1234", "k8s:job-name=backup",
            "container:io.kubernetes.pod.uid=abcd", "container:io.kubernetes.pod.name=web-0",
            "unspec:pod-template-hash=zz")
        let kept = LabelFilter.default.apply(pod)
        XCTAssertEqual(
            kept.strings, ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod", "k8s:job-name=backup"])
        // Two replicas of a Deployment from different rollouts keep one identity's labels.
        let other = labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod", "k8s:pod-template-hash=99aa")
        XCTAssertEqual(
            LabelFilter.default.apply(other), labels("k8s:app=web", "k8s:io.kubernetes.pod.namespace=prod"))
    }

    func testCustomFilterPatterns() throws {
        let filter = try LabelFilter(parsing: ["k8s:team", "annotation.*", "any:build-id"])
        XCTAssertFalse(filter.isRelevant(try Label(parsing: "k8s:team=a")))
        XCTAssertTrue(filter.isRelevant(try Label(parsing: "container:team=a")))
        XCTAssertFalse(filter.isRelevant(try Label(parsing: "k8s:annotation.foo=1")))
        XCTAssertFalse(filter.isRelevant(try Label(parsing: "container:build-id=7")))
        XCTAssertTrue(filter.isRelevant(try Label(parsing: "k8s:app=a")))
        // Reserved labels decide reserved identities and are never dropped.
        let all = try LabelFilter(parsing: ["*"])
        XCTAssertTrue(all.isRelevant(try Label(parsing: "reserved:host")))
        XCTAssertFalse(all.isRelevant(try Label(parsing: "k8s:app=a")))

        let error = try XCTUnwrap(agentError { try LabelFilter(parsing: ["ok", "a*b"]) })
        XCTAssertEqual(error.field, "label-filter[1]")
        XCTAssertNotNil(agentError { try LabelFilter(parsing: ["app=x"]) })
        XCTAssertNotNil(agentError { try LabelFilter(parsing: ["my key"]) })
    }
}
