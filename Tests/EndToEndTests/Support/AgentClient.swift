import AgentAPI
import Foundation

/// An HTTP answer from the agent.
struct APIResult: Sendable, CustomStringConvertible {
    var status: Int
    var body: String
    /// The body parsed as JSON; nil when it is not JSON.
    var json: JSON?

    var description: String { "\(status) \(body)" }
}

extension AgentProcess {
    /// Sends a request over the agent's Unix socket with curl (a real HTTP client, independent of our server)
    /// and returns status and body. Throws when curl cannot talk to the agent at all.
    func api(_ method: HTTPMethod, _ path: String, _ body: JSON? = nil, timeout: TimeInterval = 10) throws
        -> APIResult
    {
        try api(method, path, rawBody: body?.serialized(), timeout: timeout)
    }

    /// Like `api(_:_:_:)` with a body sent exactly as given (for malformed-input tests).
    func api(_ method: HTTPMethod, _ path: String, rawBody: String?, timeout: TimeInterval = 10) throws -> APIResult {
        var arguments = [
            "curl", "--silent", "--show-error", "--max-time", "\(Int(timeout.rounded(.up)))",
            "--unix-socket", socketPath, "--write-out", "\n%{http_code}",
        ]
        arguments += method == .HEAD ? ["--head"] : ["--request", method.rawValue]
        if rawBody != nil {
            arguments += ["--header", "Content-Type: application/json", "--data-binary", "@-"]
        }
        arguments.append("http://localhost\(path)")
        let output = try Shell.run(arguments, input: rawBody, timeout: timeout + 5)
        guard let split = output.lastIndex(of: "\n"), let status = Int(output[output.index(after: split)...]) else {
            throw AgentHarnessError("unexpected curl output for \(method) \(path): \(output)")
        }
        let body = String(output[..<split])
        return APIResult(status: status, body: body, json: try? JSON.parse(body))
    }

    /// Runs the built `nodectl --socket <agent socket> <arguments>` and returns its status and output
    /// (a non-zero exit is a result, not an error).
    func nodectl(_ arguments: String..., input: String? = nil) throws -> CommandResult {
        try nodectl(arguments, input: input)
    }

    func nodectl(_ arguments: [String], input: String? = nil) throws -> CommandResult {
        guard let nodectlBinary else {
            throw AgentHarnessError("no nodectl binary found near \(binary) or in \(AgentProcess.searchDirectories())")
        }
        return try Shell.capture([nodectlBinary, "--socket", socketPath] + arguments, input: input)
    }

    /// Registers `pod` as endpoint `id` (`PUT /v1/endpoint/{id}`) with `labels` plus its namespace label, and
    /// returns the endpoint the agent answered with; throws unless the agent answers 200 or 201.
    @discardableResult
    func registerEndpoint(id: Int, pod: Pod, labels: [String]) throws -> JSON {
        let namespaceLabel = "k8s:io.kubernetes.pod.namespace=\(pod.k8sNamespace)"
        var addressing: [String: JSON] = ["ipv4": .string(pod.ipv4)]
        if let ipv6 = pod.ipv6 { addressing["ipv6"] = .string(ipv6) }
        let request: JSON = [
            "interface-name": .string(pod.hostInterface),
            "addressing": .object(addressing),
            "labels": JSON(labels.contains(namespaceLabel) ? labels : labels + [namespaceLabel]),
            "k8s-namespace": .string(pod.k8sNamespace),
            "k8s-pod-name": .string(pod.name),
            "container-id": .string("e2e-\(pod.netns)"),
        ]
        let answer = try api(.PUT, "/v1/endpoint/\(id)", request)
        guard answer.status == 200 || answer.status == 201, let endpoint = answer.json else {
            throw AgentHarnessError("PUT /v1/endpoint/\(id) for \(pod): \(answer)")
        }
        return endpoint
    }

    /// Waits until every endpoint reports the current policy revision (`GET /v1/policy`), so traffic checks see
    /// the datapath of the latest change; throws with the laggards after `timeout`.
    func waitForPolicyRevision(timeout: TimeInterval = 5) throws {
        let policy = try api(.GET, "/v1/policy")
        guard policy.status == 200, let revision = policy.json?["revision"]?.intValue else {
            throw AgentHarnessError("GET /v1/policy: \(policy)")
        }
        let deadline = Date() + timeout
        var behind: [String] = []
        repeat {
            let endpoints = try api(.GET, "/v1/endpoint")
            guard endpoints.status == 200, let list = endpoints.json?.arrayValue else {
                throw AgentHarnessError("GET /v1/endpoint: \(endpoints)")
            }
            behind = list.filter { ($0["policy-revision"]?.intValue ?? -1) < revision }.map {
                "endpoint \($0["id"]?.description ?? "?") at revision \($0["policy-revision"]?.description ?? "?")"
            }
            if behind.isEmpty { return }
            usleep(50_000)
        } while Date() < deadline
        throw AgentHarnessError("policy revision \(revision) not reached within \(timeout) s: \(behind)")
    }
}
