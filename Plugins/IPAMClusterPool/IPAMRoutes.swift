import DatapathCore

/// The REST routes, as Cilium's agent serves IPAM:
/// - `GET /v1/ipam`: allocations and per-family counts;
/// - `POST /v1/ipam?family=ipv4|ipv6&owner=<container id>&pod=ns/pod` (header `expiration: true`): allocate
///   (both configured families when `family` is absent) → 201;
/// - `GET /v1/ipam/{ip}`: one allocation;
/// - `POST /v1/ipam/{ip}?owner=<container id>&pod=ns/pod`: allocate that address → 201 (200 when the same owner
///   holds it already);
/// - `DELETE /v1/ipam/{ip}`: release, idempotent → 200 with `released` true or false;
/// - `POST /v1/ipam/gc?dry-run=true`: allocations whose endpoint is gone, released unless a dry run.
struct IPAMRoutes {
    /// The service as configured now (the plugin may be reconfigured before it starts).
    let service: @Sendable () -> IPAM

    var routes: [Route] {
        let service = self.service
        return [
            .get("/v1/ipam") { request in
                try Self.checkQuery(request, allowed: [])
                let ipam = service()
                return .json(IPAMResponses.listing(try ipam.listing(), config: ipam.config))
            },
            .post("/v1/ipam") { request in
                try Self.checkQuery(request, allowed: ["family", "owner", "pod", "pool"])
                let ipam = service()
                var families = ipam.config.families
                if let name = request.query["family"] {
                    guard let family = IPAddress.Family(name: name) else {
                        throw AgentError.invalidField("family", "expected ipv4 or ipv6, got \"\(name)\"")
                    }
                    families = [family]
                }
                if families.isEmpty { throw IPAM.unconfiguredError }
                let allocations = try ipam.allocate(
                    families: families, owner: try Self.owner(request), pod: try Self.pod(request),
                    expiring: try Self.expiring(request))
                return .json(IPAMResponses.allocated(allocations, config: ipam.config), status: 201)
            },
            .get("/v1/ipam/{ip}") { request in
                try Self.checkQuery(request, allowed: [])
                let address = try Self.address(request)
                let ipam = service()
                guard let allocation = try ipam.allocation(address) else {
                    throw AgentError.notFound("\(address) is not allocated")
                }
                return .json(IPAMResponses.allocation(allocation, now: IPAM.wallClockMs()))
            },
            .post("/v1/ipam/{ip}") { request in
                try Self.checkQuery(request, allowed: ["owner", "pod", "pool"])
                let address = try Self.address(request)
                let ipam = service()
                let (allocation, created) = try ipam.claim(
                    address, owner: try Self.owner(request), pod: try Self.pod(request),
                    expiring: try Self.expiring(request))
                return .json(IPAMResponses.allocated([allocation], config: ipam.config), status: created ? 201 : 200)
            },
            .delete("/v1/ipam/{ip}") { request in
                try Self.checkQuery(request, allowed: ["pool"])
                let address = try Self.address(request)
                return .json(IPAMResponses.released(address, try service().release(address)))
            },
            .post("/v1/ipam/gc") { request in
                try Self.checkQuery(request, allowed: ["dry-run"])
                let dryRun = try request.queryBool("dry-run") ?? false
                let orphans = try service().collectGarbage(dryRun: dryRun)
                return .json(IPAMResponses.garbage(orphans, dryRun: dryRun, now: IPAM.wallClockMs()))
            },
        ]
    }

    /// Rejects unknown query parameters (a misspelt `owner` must not silently allocate without one) and pools
    /// other than Cilium's "default": this agent has one pool.
    static func checkQuery(_ request: APIRequest, allowed: Set<String>) throws(AgentError) {
        try KnownKeys.check(request.query.keys, known: allowed, kind: "query parameter")
        if let pool = request.query["pool"], !pool.isEmpty, pool != "default" {
            throw AgentError.invalidField("pool", "only the \"default\" pool exists, got \"\(pool)\"")
        }
    }

    static func address(_ request: APIRequest) throws(AgentError) -> IPAddress {
        let text = try request.pathParameter("ip")
        guard let address = IPAddress(text) else {
            throw AgentError.invalidField("ip", "expected an IPv4 or IPv6 address, got \"\(text)\"")
        }
        return address
    }

    /// `owner`, the container id for the CNI plugin: printable, at most 256 bytes; nil when absent or empty.
    static func owner(_ request: APIRequest) throws(AgentError) -> String? {
        try printable(request, "owner")
    }

    /// `pod`, `namespace/pod`: the same rules as `owner`.
    static func pod(_ request: APIRequest) throws(AgentError) -> String? {
        try printable(request, "pod")
    }

    private static func printable(_ request: APIRequest, _ name: String) throws(AgentError) -> String? {
        guard let value = request.query[name], !value.isEmpty else { return nil }
        guard value.utf8.count <= 256 else { throw AgentError.invalidField(name, "longer than 256 bytes") }
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw AgentError.invalidField(name, "contains control characters")
        }
        return value
    }

    /// The `expiration` header: true makes the allocation expire unless an endpoint claims it in time.
    static func expiring(_ request: APIRequest) throws(AgentError) -> Bool {
        guard let raw = request.header("expiration") else { return false }
        switch raw.lowercased() {
        case "true", "1": return true
        case "false", "0", "": return false
        default: throw AgentError.invalidField("expiration", "header must be true or false, got \"\(raw)\"")
        }
    }
}
