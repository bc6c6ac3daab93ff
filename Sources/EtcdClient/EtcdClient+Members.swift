import AgentAPI
import Dispatch
import FoundationEssentials
import HTTPClient
import Synchronization

/// A member of the etcd cluster.
public struct EtcdMember: Sendable, Equatable {
    public var id: UInt64
    /// Empty while a member is added but not started.
    public var name: String
    public var clientURLs: [String]
    public var peerURLs: [String]
}

/// What one endpoint says of itself (`/v3/maintenance/status`).
public struct EtcdStatus: Sendable, Equatable {
    public var endpoint: String
    /// The etcd server version, e.g. "3.4.23".
    public var version: String
    /// The member ID of this endpoint and of the leader it follows (0: no leader).
    public var memberID: UInt64
    public var leader: UInt64
    public var revision: Int64
    public var dbSize: Int64
}

/// One endpoint's health for `/v1/healthz`: its status, or why it could not be had.
public struct EtcdEndpointHealth: Sendable, Equatable {
    public var endpoint: String
    public var status: EtcdStatus?
    /// Why the endpoint is not healthy; nil when it answered and has a leader.
    public var error: String?

    public var isHealthy: Bool { error == nil }
}

extension EtcdClient {
    /// The cluster's members as the answering endpoint knows them.
    public func memberList() throws(AgentError) -> [EtcdMember] {
        let answer = try call("/v3/cluster/member/list", [:])
        var members: [EtcdMember] = []
        for member in answer["members"]?.arrayValue ?? [] {
            members.append(
                EtcdMember(
                    id: try EtcdJSON.decodeUInt64(member["ID"], field: "members.ID"),
                    name: member["name"]?.stringValue ?? "",
                    clientURLs: (member["clientURLs"]?.arrayValue ?? []).compactMap(\.stringValue),
                    peerURLs: (member["peerURLs"]?.arrayValue ?? []).compactMap(\.stringValue)))
        }
        return members
    }

    /// The status of `endpoint` itself (no failover to another member), within `timeout` (by default
    /// `requestTimeout`).
    public func status(endpoint: String, timeout: Duration? = nil) throws(AgentError) -> EtcdStatus {
        let timeout = timeout ?? requestTimeout
        let response: HTTPResponse
        do {
            response = try send(
                "/v3/maintenance/status", [:], to: endpoint, connectTimeout: timeout, totalTimeout: timeout)
        } catch let error as TransferError {
            throw .unavailable("etcd endpoint \(endpoint) is unreachable: \(describe(error))")
        } catch {
            throw .internal("etcd endpoint \(endpoint): \(error)")
        }
        let answer = try EtcdGatewayError.decode(response, path: "/v3/maintenance/status")
        return EtcdStatus(
            endpoint: endpoint, version: answer["version"]?.stringValue ?? "",
            memberID: try EtcdJSON.decodeUInt64(answer["header"]?["member_id"], field: "header.member_id"),
            leader: try EtcdJSON.decodeUInt64(answer["leader"], field: "leader"),
            revision: try EtcdJSON.revision(answer),
            dbSize: try EtcdJSON.decodeInt64(answer["dbSize"], field: "dbSize"))
    }

    /// The health of every configured endpoint: reachable with a leader, or the error. The endpoints are asked at
    /// once, each within `timeout` (by default `requestTimeout`), so a hung member delays the answer by one
    /// timeout, not one per member.
    public func health(timeout: Duration? = nil) -> [EtcdEndpointHealth] {
        let results = Mutex([EtcdEndpointHealth?](repeating: nil, count: endpoints.count))
        let group = DispatchGroup()
        for (index, endpoint) in endpoints.enumerated() {
            DispatchQueue.global().async(group: group) { [self] in
                let health: EtcdEndpointHealth
                do throws(AgentError) {
                    let status = try status(endpoint: endpoint, timeout: timeout)
                    let error = status.leader == 0 ? "etcd endpoint \(endpoint) has no leader" : nil
                    health = EtcdEndpointHealth(endpoint: endpoint, status: status, error: error)
                } catch {
                    health = EtcdEndpointHealth(endpoint: endpoint, status: nil, error: error.message)
                }
                results.withLock { $0[index] = health }
            }
        }
        group.wait()
        return results.withLock { $0.compactMap { $0 } }
    }
}
