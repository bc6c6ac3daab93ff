import AgentAPI
import DatapathCore
import Foundation
import Glibc
import XCTest

extension XCTestCase {
    /// Fails unless `result` is the agent's error shape `{"error":{"code","message","field"?}}` with this status
    /// and code, naming `field` (when given) in `field` and, for invalid-field errors, the message, and
    /// mentioning every `mentions`.
    func assertAPIError(
        _ result: APIResult, status: Int, code: String, field: String? = nil, mentions: [String] = [],
        _ context: String = "", file: StaticString = #filePath, line: UInt = #line
    ) {
        let what = context.isEmpty ? "\(result)" : "\(context): \(result)"
        XCTAssertEqual(result.status, status, what, file: file, line: line)
        guard let error = result.json?["error"] else {
            XCTFail("no error object in \(what)", file: file, line: line)
            return
        }
        XCTAssertEqual(error["code"]?.stringValue, code, what, file: file, line: line)
        let message = error["message"]?.stringValue ?? ""
        XCTAssertFalse(message.isEmpty, "empty message: \(what)", file: file, line: line)
        if let field {
            XCTAssertEqual(error["field"]?.stringValue, field, what, file: file, line: line)
            if code == "invalid-field" {
                XCTAssertTrue(message.contains(field), "message should name \(field): \(what)", file: file, line: line)
            }
        }
        for text in mentions {
            XCTAssertTrue(message.contains(text), "message should mention \(text): \(what)", file: file, line: line)
        }
    }
}

extension AgentProcess {
    /// `GET path`, which must answer 200 with JSON.
    func getJSON(_ path: String) throws -> JSON {
        let result = try api(.GET, path)
        guard result.status == 200, let json = result.json else {
            throw AgentHarnessError("GET \(path): \(result)")
        }
        return json
    }

    /// Every entry of map `name`, read page by page (`limit` per page) through `next-cursor`.
    func mapEntries(_ name: String, pageSize: Int = 1000) throws -> [JSON] {
        var entries: [JSON] = []
        var cursor: String?
        repeat {
            let query = "limit=\(pageSize)" + (cursor.map { "&cursor=\($0)" } ?? "")
            let page = try getJSON("/v1/map/\(name)?\(query)")
            entries += page["entries"]?.arrayValue ?? []
            cursor = page["next-cursor"]?.stringValue
        } while cursor != nil
        return entries
    }

    /// The ipcache as prefix → identity. Fails when the host hash the datapath reads first (`na_ipcache_host`)
    /// does not hold exactly the trie's /32 and /128 entries, or the tables in front of it (`na_ipcache_v4`,
    /// `na_ipcache_v6`) not exactly the /32 and /128 ones (no bucket of a test's few addresses is ever full).
    func ipcache() throws -> [String: Int64] {
        let trie = try prefixIdentities("na_ipcache")
        let hosts = try prefixIdentities("na_ipcache_host")
        let trieHosts = trie.filter { $0.key.hasSuffix("/32") || $0.key.hasSuffix("/128") }
        guard hosts == trieHosts else {
            throw AgentHarnessError("na_ipcache_host \(hosts) differs from the host entries of na_ipcache \(trieHosts)")
        }
        for (map, length) in [("na_ipcache_v4", "/32"), ("na_ipcache_v6", "/128")] {
            var table: [String: Int64] = [:]
            for bucket in try mapEntries(map) {
                for entry in bucket["value"]?["entries"]?.arrayValue ?? [] {
                    if let address = entry["address"]?.stringValue, let identity = entry["identity"]?.intValue {
                        table[address + length] = identity
                    }
                }
            }
            let family = hosts.filter { $0.key.hasSuffix(length) }
            guard table == family else {
                throw AgentHarnessError(
                    "\(map) \(table) differs from the \(length) entries of na_ipcache_host \(family)")
            }
        }
        return trie
    }

    private func prefixIdentities(_ map: String) throws -> [String: Int64] {
        var result: [String: Int64] = [:]
        for entry in try mapEntries(map) {
            if let prefix = entry["key"]?["prefix"]?.stringValue, let identity = entry["value"]?["identity"]?.intValue {
                result[prefix] = identity
            }
        }
        return result
    }

    /// Imports policies given as JSON through `PUT /v1/policy` and waits until every endpoint has the new
    /// revision; returns the revision.
    @discardableResult
    func importPolicies(_ documents: [JSON]) throws -> Int64 {
        let result = try api(.PUT, "/v1/policy", .array(documents))
        guard result.status == 200, let revision = result.json?["revision"]?.intValue else {
            throw AgentHarnessError("PUT /v1/policy: \(result)")
        }
        try waitForPolicyRevision()
        return revision
    }

    /// `PATCH /v1/config`, which must succeed; waits for the endpoints to be regenerated.
    func setConfig(_ patch: JSON) throws {
        let result = try api(.PATCH, "/v1/config", patch)
        guard result.status == 200 else { throw AgentHarnessError("PATCH /v1/config \(patch.serialized()): \(result)") }
        try waitForPolicyRevision()
    }
}

/// Programs on the node side's tc hooks: clsact filters, read with `tc -n <namespace> filter show`, and the tcx
/// list where the kernel has one (iproute2 does not show it), one line "tcx bpf <name>" per program.
enum TCFilters {
    /// The hooks' programs of `interface` in namespace `netns` (point: ingress or egress).
    static func show(_ interface: String, _ point: String, in netns: String) throws -> String {
        let filters = try Shell.run(["tc", "-n", netns, "filter", "show", "dev", interface, point])
        let tcx = try Netns.perform(in: netns) { () throws -> [String] in
            let index = if_nametoindex(interface)
            guard index != 0 else { return [] }
            return try TC.tcxProgramNames(ifindex: Int32(index), point: point == "ingress" ? .ingress : .egress)
        }
        return ([filters] + tcx.map { "tcx bpf \($0)" }).joined(separator: "\n")
    }

    /// Whether a BPF program named `program` is attached at `point` of `interface`.
    static func hasProgram(_ program: String, on interface: String, _ point: String, in netns: String) throws -> Bool {
        let text = try show(interface, point, in: netns)
        return text.contains("bpf") && text.contains(program)
    }
}

extension JSON {
    /// This object with `key` set to `value` (removed when nil).
    func setting(_ key: String, _ value: JSON?) -> JSON {
        var object = objectValue ?? [:]
        object[key] = value
        return .object(object)
    }
}

/// A CiliumNetworkPolicy document as JSON.
func networkPolicy(_ namespace: String, _ name: String, spec: JSON) -> JSON {
    [
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": ["name": .string(name), "namespace": .string(namespace)], "spec": spec,
    ]
}

/// `toPorts` with one port (or range) of one protocol.
func ports(_ port: Int, endPort: Int? = nil, _ proto: String = "TCP") -> JSON {
    var entry: [String: JSON] = ["port": .string("\(port)"), "protocol": .string(proto)]
    if let endPort { entry["endPort"] = .int(Int64(endPort)) }
    return [["ports": [.object(entry)]]]
}

/// Default-deny documents as the seed's default-deny-all.yaml writes them, for any namespace.
enum SeedPolicyJSON {
    static func defaultDeny(_ namespaces: [String]) -> [JSON] {
        namespaces.map {
            networkPolicy($0, "default-deny-all", spec: ["endpointSelector": [:], "ingress": [], "egress": []])
        }
    }
}

/// An address as the agent prints it (inet_ntop's canonical form: "fd00:020c::1" reads "fd00:20c::1").
func canonicalIP(_ ip: String) -> String {
    let family = ip.contains(":") ? AF_INET6 : AF_INET
    var bytes = [UInt8](repeating: 0, count: 16)
    guard inet_pton(family, ip, &bytes) == 1 else { return ip }
    var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
    guard inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil else { return ip }
    return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The ipcache key of one address: "10.244.1.3/32", "fd00:20c::1:3/128".
func hostPrefix(_ ip: String) -> String {
    canonicalIP(ip) + (ip.contains(":") ? "/128" : "/32")
}

/// Binds a Unix socket at `path` and closes it without listening: the file a crashed server leaves behind.
func makeStaleSocketFile(at path: String) throws {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw NetnsError("socket") }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else { throw NetnsError("bind \(path)") }
}
