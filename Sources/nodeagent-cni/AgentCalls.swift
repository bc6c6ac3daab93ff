import AgentAPI
import NodeCtlKit

/// The agent's API as the CNI plugin uses it: IPAM, endpoints.
struct AgentCalls {
    let client: AgentClient

    init(socket: String) {
        client = AgentClient(socketPath: socket, connectTimeout: .seconds(5), responseTimeout: .seconds(30))
    }

    /// An IPv4 address from the agent's IPAM held by `owner` (the container id) for `pod` (namespace/pod), with
    /// the gateway.
    func allocate(owner: String, pod: String?) throws -> (address: String, gateway: String) {
        var query = [("family", "ipv4"), ("owner", owner)]
        if let pod { query.append(("pod", pod)) }
        let answer = try call { try client.request(.POST, "/v1/ipam", query: query) }
        guard let address = answer["address"]?["ipv4"]?.stringValue ?? answer["ipv4"]?["ip"]?.stringValue,
            let gateway = answer["ipv4"]?["gateway"]?.stringValue
                ?? answer["host-addressing"]?["ipv4"]?["ip"]?.stringValue
        else {
            throw CNIError(
                .agentRejected, "the agent's IPAM answer has no IPv4 address and gateway", details: answer.serialized())
        }
        return (address, gateway)
    }

    func release(address: String) throws {
        _ = try call { try client.request(.DELETE, "/v1/ipam/\(address)") }
    }

    /// An allocation as GET /v1/ipam lists it.
    struct Allocation {
        var ip: String
        var owner: String?
        var pod: String?
    }

    /// Every allocation the agent's IPAM holds.
    func allocations() throws -> [Allocation] {
        try ipam().allocations
    }

    /// GET /v1/ipam: the allocations and the IPv4 gateway of the pod CIDR.
    func ipam() throws -> (allocations: [Allocation], gateway: String?) {
        let listing = try call { try client.request(.GET, "/v1/ipam") }
        let allocations = (listing["allocations"]?.arrayValue ?? []).compactMap { item -> Allocation? in
            guard let ip = item["ip"]?.stringValue else { return nil }
            return Allocation(ip: ip, owner: item["owner"]?.stringValue, pod: item["pod"]?.stringValue)
        }
        return (allocations, listing["ipv4"]?["gateway"]?.stringValue)
    }

    /// Registers the endpoint under the lowest free id; another ADD racing for the same id gets a conflict and the
    /// next id is tried.
    func register(_ body: JSON) throws -> JSON {
        for _ in 0..<16 {
            let endpoints = try call { try client.request(.GET, "/v1/endpoint") }.arrayValue ?? []
            let used = Set(endpoints.compactMap { $0["id"]?.intValue })
            guard let id = (1...65535).first(where: { !used.contains(Int64($0)) }) else {
                throw CNIError(.agentRejected, "no free endpoint id")
            }
            do {
                return try client.request(.PUT, "/v1/endpoint/\(id)", body: body)
            } catch ClientError.server(let error) where error.code == .conflict && error.field == "interface-name" {
                continue
            } catch {
                throw Self.translate(error)
            }
        }
        throw CNIError(.tryAgainLater, "could not claim an endpoint id after 16 attempts")
    }

    /// Every endpoint the agent has.
    func endpoints() throws -> [JSON] {
        try call { try client.request(.GET, "/v1/endpoint") }.arrayValue ?? []
    }

    /// The endpoint registered for `containerID`, if any.
    func endpoint(containerID: String, interface: String) throws -> JSON? {
        try endpoints().first {
            $0["container-id"]?.stringValue == containerID || $0["interface-name"]?.stringValue == interface
        }
    }

    func deleteEndpoint(id: Int64) throws {
        do {
            _ = try client.request(.DELETE, "/v1/endpoint/\(id)")
        } catch ClientError.server(let error) where error.code == .notFound {
            return
        } catch {
            throw Self.translate(error)
        }
    }

    func isReachable() throws {
        _ = try call { try client.request(.GET, "/v1/healthz") }
    }

    private func call(_ body: () throws -> JSON) throws -> JSON {
        do {
            return try body()
        } catch {
            throw Self.translate(error)
        }
    }

    static func translate(_ error: any Error) -> CNIError {
        switch error as? ClientError {
        case .server(let agentError)?:
            return CNIError(
                .agentRejected, "nodeagent refused: \(agentError.message)", details: agentError.code.rawValue)
        case .notRunning(let path, let reason)?:
            return CNIError(.tryAgainLater, "nodeagent is not reachable at \(path)", details: reason)
        case let other?:
            return CNIError(.tryAgainLater, "talking to nodeagent failed", details: "\(other)")
        case nil:
            return error as? CNIError ?? CNIError(.ioFailure, "\(error)")
        }
    }
}
