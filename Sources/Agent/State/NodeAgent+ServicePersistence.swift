import DatapathCore

/// Services as saved state: one document each under `services/`, the spec as the API renders it plus a version,
/// written before a change is answered. At start they are read back and applied to the load balancer again; what
/// its maps hold that no saved service explains (a crash between programming and saving) is taken out.
extension NodeAgent {
    static let serviceDirectory = "services"
    static let serviceVersion: Int64 = 1

    static func serviceDocument(_ id: UInt32) -> String { "\(serviceDirectory)/\(id)" }

    func persistService(_ spec: ServiceSpec) throws {
        var object = spec.json.objectValue ?? [:]
        object["version"] = .int(Self.serviceVersion)
        try store.write(Self.serviceDocument(spec.id), .object(object))
    }

    func forgetService(_ id: UInt32) throws {
        try store.remove(Self.serviceDocument(id))
    }

    /// Reads every saved service and programs it again. A service the datapath refuses now is kept with
    /// `realized: false` and the reason, so the agent still starts and the service can be fixed through the API.
    func restoreServices() throws {
        var specs: [ServiceSpec] = []
        for name in store.names(in: Self.serviceDirectory) {
            guard let document = try store.read("\(Self.serviceDirectory)/\(name)") else { continue }
            do {
                guard let id = UInt32(name), Self.serviceIDs.contains(id) else {
                    throw AgentError.invalidField("id", "\"\(name)\" is not a service id")
                }
                let spec = try ServiceSpec(json: document.removingKeys(["version"]), id: id)
                if let holder = specs.first(where: { $0.frontend == spec.frontend }) {
                    throw AgentError.invalidField(
                        "frontend-address", "frontend \(spec.frontend) belongs to service \(holder.id)")
                }
                specs.append(spec)
            } catch let error as AgentError where error.code == .invalidField {
                // Only a hand-edited or foreign file gets here: this version wrote nothing it would refuse.
                logger.error(
                    "saved service is refused; removing it", metadata: ["file": "\(name)", "error": "\(error.message)"])
                try store.remove("\(Self.serviceDirectory)/\(name)")
            }
        }
        let (count, realized) = state.withLock { state -> (Int, Int) in
            removeUnexplainedServices(keeping: specs)
            for spec in specs.sorted(by: { $0.id < $1.id }) {
                let status: ServiceStatus
                do throws(AgentError) {
                    status = try program(spec, replacing: nil)
                } catch {
                    logger.error(
                        "restored service could not be programmed",
                        metadata: ["service": "\(spec.id)", "error": "\(error.message)"])
                    status = .failed(error)
                }
                state.services[spec.id] = Service(spec: spec, status: status)
            }
            return (state.services.count, state.services.values.filter(\.status.realized).count)
        }
        logger.info("services restored", metadata: ["services": "\(count)", "realized": "\(realized)"])
    }

    /// Services in the load balancer's maps that no saved one explains: another id, or another frontend.
    private func removeUnexplainedServices(keeping specs: [ServiceSpec]) {
        guard let serviceDatapath else { return }
        let wanted = Dictionary(specs.map { ($0.id, $0.frontend) }, uniquingKeysWith: { first, _ in first })
        do {
            for service in try serviceDatapath.programmed() where wanted[service.id] != service.frontend {
                try serviceDatapath.remove(service)
                logger.warning(
                    "removed a service the state does not hold",
                    metadata: ["service": "\(service.id)", "frontend": "\(service.frontend)"])
            }
        } catch {
            logger.error("reading the services the datapath holds failed", metadata: ["error": "\(error.message)"])
        }
    }
}
