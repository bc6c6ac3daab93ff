import AgentAPI
import Foundation

/// What must survive a restart unchanged: endpoints, identities (numbers), the policy revision and documents, and
/// the contents of the maps that hold configuration (not na_ct or na_metrics, which traffic changes).
struct AgentSnapshot: Equatable, CustomStringConvertible {
    var endpoints: JSON
    var identities: JSON
    var policy: JSON
    /// Map name → every entry, all pages.
    var maps: [String: [JSON]]

    /// Names of the per-endpoint policy maps in use: an endpoint's, or holding entries. Left out are the empty maps
    /// the agent keeps under ids no endpoint has yet (spares made ahead of creates).
    var policyMaps: [String] {
        let ids = Set((endpoints.arrayValue ?? []).compactMap { $0["id"]?.intValue })
        return maps.keys.filter { name in
            guard name.hasPrefix("na_pol_") else { return false }
            let owned = Int64(name.dropFirst("na_pol_".count)).map { ids.contains($0) } ?? true
            return owned || !(maps[name]?.isEmpty ?? true)
        }.sorted()
    }

    var description: String {
        "endpoints: \(endpoints)\nidentities: \(identities)\npolicy: \(policy)\nmaps: "
            + maps.keys.sorted().map { "\($0): \(maps[$0]!.count) entries" }.joined(separator: ", ")
    }

    /// The fields that differ from `other`, for a failure message.
    func differences(from other: AgentSnapshot) -> [String] {
        var out: [String] = []
        if endpoints != other.endpoints { out.append("endpoints: \(other.endpoints) → \(endpoints)") }
        if identities != other.identities { out.append("identities: \(other.identities) → \(identities)") }
        if policy["revision"] != other.policy["revision"] {
            out.append("policy revision: \(other.policy["revision"] ?? nil) → \(policy["revision"] ?? nil)")
        } else if policy != other.policy {
            out.append("policy documents differ")
        }
        for name in Set(maps.keys).union(other.maps.keys).sorted() where maps[name] != other.maps[name] {
            out.append(
                "map \(name): \(other.maps[name].map { "\($0)" } ?? "absent") → "
                    + "\(maps[name].map { "\($0)" } ?? "absent")")
        }
        return out
    }

    /// Reads everything over one keep-alive connection; `extra` names maps to read beside the usual ones.
    static func take(socketPath: String, alsoMaps extra: Set<String> = []) throws -> AgentSnapshot {
        let client = try KeepAliveClient(socketPath: socketPath)
        func get(_ path: String) throws -> JSON {
            let response = try client.request("GET", path)
            guard response.status == 200, let json = response.json else {
                throw AgentHarnessError("GET \(path): \(response)")
            }
            return json
        }
        let mapList = try get("/v1/map")["maps"]?.arrayValue ?? []
        let names = mapList.compactMap { $0["name"]?.stringValue }.filter {
            ["na_endpoints", "na_ipcache", "na_ipcache_host", "na_policy", "na_policy_exact", "na_ptable"].contains($0)
                || extra.contains($0)
                || $0.hasPrefix("na_pol_") || $0.hasPrefix("na_polh_")
        }
        var maps: [String: [JSON]] = [:]
        for name in names {
            var entries: [JSON] = []
            var cursor: String?
            repeat {
                let page = try get("/v1/map/\(name)?limit=10000" + (cursor.map { "&cursor=\($0)" } ?? ""))
                entries += page["entries"]?.arrayValue ?? []
                cursor = page["next-cursor"]?.stringValue
            } while cursor != nil
            maps[name] = entries.sorted { $0.serialized() < $1.serialized() }
        }
        return AgentSnapshot(
            endpoints: try get("/v1/endpoint"), identities: try get("/v1/identity"), policy: try get("/v1/policy"),
            maps: maps)
    }
}
