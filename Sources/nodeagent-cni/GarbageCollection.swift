import AgentAPI

/// GC (CNI 1.1): the runtime names the attachments that must stay (`cni.dev/valid-attachments`, each
/// `{"containerID", "ifname"}`); every endpoint, address and host veth this plugin made for any other attachment
/// is released.
///
/// What this plugin made: endpoints with a container id on an `lxc` + 12 hex digits interface, those host veths,
/// and addresses owned by a container id (with a `pod` attribute, which only CNI allocations carry here) that no
/// live endpoint uses.
struct GarbageCollection {
    let request: CNIRequest
    let agent: AgentCalls

    struct Attachment: Hashable {
        var containerID: String
        var ifname: String
    }

    /// The attachments to keep. libcni writes the list under both names; a GC without either is refused rather
    /// than taken as "keep nothing".
    static func validAttachments(_ config: JSON) throws -> [Attachment] {
        let key = ["cni.dev/valid-attachments", "cni.dev/attachments"].first { config[$0] != nil }
        guard let key, let list = config[key]?.arrayValue else {
            throw CNIError(.invalidConfig, "GC needs cni.dev/valid-attachments, a list of {containerID, ifname}")
        }
        return try list.enumerated().map { index, item in
            guard let containerID = item["containerID"]?.stringValue, !containerID.isEmpty else {
                throw CNIError(.invalidConfig, "\(key)[\(index)].containerID must be a non-empty string")
            }
            guard let ifname = item["ifname"]?.stringValue, !ifname.isEmpty else {
                throw CNIError(.invalidConfig, "\(key)[\(index)].ifname must be a non-empty string")
            }
            return Attachment(containerID: containerID, ifname: ifname)
        }
    }

    func run() throws {
        let valid = try Self.validAttachments(request.config)
        let keptInterfaces = Set(valid.map { CNIRequest.hostInterface(containerID: $0.containerID, ifname: $0.ifname) })
        let keptContainers = Set(valid.map(\.containerID))

        var liveAddresses: Set<String> = []
        for endpoint in try agent.endpoints() {
            guard let interface = endpoint["interface-name"]?.stringValue,
                let containerID = endpoint["container-id"]?.stringValue, !containerID.isEmpty,
                CNIRequest.isHostInterface(interface), !keptInterfaces.contains(interface)
            else {
                for family in ["ipv4", "ipv6"] {
                    if let address = endpoint["addressing"]?[family]?.stringValue { liveAddresses.insert(address) }
                }
                continue
            }
            try Commands.release(containerID: containerID, endpoint: endpoint, agent: agent)
        }
        // Addresses left by an ADD that died between allocating and registering its endpoint.
        for allocation in try agent.allocations() {
            guard let owner = allocation.owner, allocation.pod != nil, !keptContainers.contains(owner),
                !liveAddresses.contains(allocation.ip)
            else { continue }
            try agent.release(address: allocation.ip)
        }
        for interface in try Wiring.hostInterfaces() where !keptInterfaces.contains(interface) {
            Wiring.remove(hostInterface: interface)
        }
    }
}
