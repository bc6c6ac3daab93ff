import AgentAPI
import Foundation

/// ADD, DEL, CHECK, VERSION, STATUS and GC as the CNI specification (1.0/1.1) defines them.
struct Commands {
    let request: CNIRequest
    var agent: AgentCalls { AgentCalls(socket: request.socket) }
    var wiring: Wiring { Wiring(hostInterface: request.hostInterface, netns: request.netns, ifname: request.ifname) }

    func run() throws -> JSON? {
        switch request.command {
        case .version:
            return [
                "cniVersion": .string(request.cniVersion),
                "supportedVersions": .array(CNIRequest.supportedVersions.map { .string($0) }),
            ]
        case .add: return try add()
        case .del:
            try del()
            return nil
        case .check:
            try check()
            return nil
        case .status:
            do {
                try agent.isReachable()
            } catch let error as CNIError {
                throw CNIError(.pluginNotAvailable, "nodeagent is not ready", details: error.description)
            }
            return nil
        case .gc:
            try GarbageCollection(request: request, agent: agent).run()
            return nil
        }
    }

    /// Address, wiring, endpoint, in that order; a failure at any step undoes the steps before it.
    private func add() throws -> JSON {
        let agent = self.agent
        let wiring = self.wiring
        if let existing = try agent.endpoint(containerID: request.containerID, interface: request.hostInterface) {
            throw CNIError(
                .agentRejected, "container \(request.containerID) is already wired",
                details: "endpoint \(existing["id"]?.intValue ?? 0)")
        }
        let (address, gateway) = try agent.allocate(owner: request.containerID, pod: request.pod)
        var undo: [() -> Void] = [{ try? agent.release(address: address) }]
        do {
            let mtu = request.config["mtu"]?.intValue.map(Int.init)
            let (host, pod) = try wiring.add(address: address, gateway: gateway, mtu: mtu)
            undo.append { wiring.remove() }
            var body: [String: JSON] = [
                "interface-name": .string(host.name), "addressing": ["ipv4": .string(address)],
                "labels": .array(request.labels.map { .string($0) }), "container-id": .string(request.containerID),
            ]
            if let namespace = request.podNamespace { body["k8s-namespace"] = .string(namespace) }
            if let name = request.podName { body["k8s-pod-name"] = .string(name) }
            if !request.namedPorts.isEmpty { body["named-ports"] = .array(request.namedPorts) }
            _ = try agent.register(.object(body))
            return [
                "cniVersion": .string(request.cniVersion),
                "interfaces": [
                    ["name": .string(host.name), "mac": .string(host.mac)],
                    ["name": .string(pod.name), "mac": .string(pod.mac), "sandbox": .string(request.netns)],
                ],
                "ips": [ipConfig(address: address, gateway: gateway)],
                "routes": [["dst": "0.0.0.0/0", "gw": .string(gateway)]],
                "dns": [:],
            ]
        } catch {
            for step in undo.reversed() { step() }
            throw error
        }
    }

    /// One `ips` entry; results before 1.0.0 name the address family in `version` ("4" or "6").
    private func ipConfig(address: String, gateway: String) -> JSON {
        var entry: [String: JSON] = ["address": .string("\(address)/32"), "gateway": .string(gateway), "interface": 1]
        if request.cniVersion.hasPrefix("0.") { entry["version"] = .string(address.contains(":") ? "6" : "4") }
        return .object(entry)
    }

    /// Releases everything of this container that is still there; parts already gone are not an error, and a
    /// container nobody knows frees nothing.
    private func del() throws {
        let endpoint = try agent.endpoint(containerID: request.containerID, interface: request.hostInterface)
        try Self.release(containerID: request.containerID, endpoint: endpoint, agent: agent)
        wiring.remove()
    }

    /// Deletes `endpoint` (this container's), then releases the addresses the container owns. An allocation
    /// recorded before allocations carried `pod` is owned by namespace/pod, which the container's successor
    /// shares: it is released only when it is the address of this container's own endpoint.
    static func release(containerID: String, endpoint: JSON?, agent: AgentCalls) throws {
        var endpointAddresses: Set<String> = []
        if let endpoint, let id = endpoint["id"]?.intValue {
            try agent.deleteEndpoint(id: id)
            for family in ["ipv4", "ipv6"] {
                if let address = endpoint["addressing"]?[family]?.stringValue { endpointAddresses.insert(address) }
            }
        }
        for allocation in try agent.allocations()
        where allocation.owner == containerID || (allocation.pod == nil && endpointAddresses.contains(allocation.ip)) {
            try agent.release(address: allocation.ip)
        }
    }

    private func check() throws {
        guard let endpoint = try agent.endpoint(containerID: request.containerID, interface: request.hostInterface)
        else {
            throw CNIError(.unknownContainer, "no endpoint is registered for container \(request.containerID)")
        }
        guard let address = endpoint["addressing"]?["ipv4"]?.stringValue else {
            throw CNIError(.wiringFailed, "endpoint \(endpoint["id"]?.intValue ?? 0) has no IPv4 address")
        }
        let ipam = try agent.ipam()
        guard let gateway = ipam.gateway else { throw CNIError(.agentRejected, "the agent's IPAM has no IPv4 gateway") }
        try wiring.verify(address: address, gateway: gateway)
        if let previous = request.config["prevResult"]?["ips"]?.arrayValue,
            !previous.contains(where: { $0["address"]?.stringValue == "\(address)/32" })
        {
            throw CNIError(.wiringFailed, "the pod's address \(address) is not the one in prevResult")
        }
        let held = ipam.allocations.contains {
            $0.ip == address
                && ($0.owner == request.containerID || ($0.pod == nil && $0.owner == request.legacyOwner))
        }
        guard held else {
            throw CNIError(.wiringFailed, "IPAM does not hold \(address) for container \(request.containerID)")
        }
    }
}
