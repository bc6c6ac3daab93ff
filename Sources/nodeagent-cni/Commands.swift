import AgentAPI
import Foundation

/// ADD, DEL, CHECK, VERSION and STATUS as the CNI specification (1.0/1.1) defines them.
struct Commands {
    let request: CNIRequest
    var agent: AgentCalls { AgentCalls(socket: request.socket) }
    var wiring: Wiring { Wiring(hostInterface: request.hostInterface, netns: request.netns, ifname: request.ifname) }

    func run() throws -> JSON? {
        switch request.command {
        case .version:
            return ["cniVersion": .string(request.cniVersion), "supportedVersions": .array(CNIRequest.supportedVersions.map { .string($0) })]
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
        let (address, gateway) = try agent.allocate(owner: request.owner)
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
            _ = try agent.register(.object(body))
            return [
                "cniVersion": .string(request.cniVersion),
                "interfaces": [
                    ["name": .string(host.name), "mac": .string(host.mac)],
                    ["name": .string(pod.name), "mac": .string(pod.mac), "sandbox": .string(request.netns)],
                ],
                "ips": [["address": .string("\(address)/32"), "gateway": .string(gateway), "interface": 1]],
                "routes": [["dst": "0.0.0.0/0", "gw": .string(gateway)]],
                "dns": [:],
            ]
        } catch {
            for step in undo.reversed() { step() }
            throw error
        }
    }

    /// Releases everything that is still there; parts already gone are not an error.
    private func del() throws {
        let agent = self.agent
        if let endpoint = try agent.endpoint(containerID: request.containerID, interface: request.hostInterface),
            let id = endpoint["id"]?.intValue
        {
            try agent.deleteEndpoint(id: id)
        }
        for address in try agent.addresses(ownedBy: request.owner) {
            try agent.release(address: address)
        }
        wiring.remove()
    }

    private func check() throws {
        guard let endpoint = try agent.endpoint(containerID: request.containerID, interface: request.hostInterface) else {
            throw CNIError(.unknownContainer, "no endpoint is registered for container \(request.containerID)")
        }
        guard let address = endpoint["addressing"]?["ipv4"]?.stringValue else {
            throw CNIError(.wiringFailed, "endpoint \(endpoint["id"]?.intValue ?? 0) has no IPv4 address")
        }
        try wiring.verify(address: address)
        if let previous = request.config["prevResult"]?["ips"]?.arrayValue,
            !previous.contains(where: { $0["address"]?.stringValue == "\(address)/32" })
        {
            throw CNIError(.wiringFailed, "the pod's address \(address) is not the one in prevResult")
        }
        guard try agent.addresses(ownedBy: request.owner).contains(address) else {
            throw CNIError(.wiringFailed, "IPAM does not hold \(address) for \(request.owner)")
        }
    }
}
