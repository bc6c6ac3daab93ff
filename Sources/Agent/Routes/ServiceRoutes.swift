import AgentAPI

/// `/v1/service...`: Cilium's service API (integer ids, ServiceSpec bodies), each answer a `Service` with its
/// `status.realized`.
extension NodeAgent {
    var serviceRoutes: [Route] {
        [
            .get("/v1/service") { [self] request in
                try KnownKeys.check(request.query.keys, known: ["frontend"], kind: "parameter")
                var filter: ServiceFrontendFilter?
                if let text = request.query["frontend"] { filter = try ServiceFrontendFilter(parsing: text) }
                return .json(.array(services(matching: filter).map(\.json)))
            },
            .get("/v1/service/{id}") { [self] request in
                let id = try serviceID(request)
                guard let service = service(id: id) else { throw AgentError.notFound("service \(id) does not exist") }
                return .json(service.json)
            },
            .put("/v1/service/{id}") { [self] request in
                let spec = try ServiceSpec(json: try request.jsonBody(), id: try serviceID(request))
                let (service, created) = try putService(spec)
                return .json(service.json, status: created ? 201 : 200)
            },
            .delete("/v1/service/{id}") { [self] request in .json(try deleteService(id: try serviceID(request)).json) },
        ]
    }

    func serviceID(_ request: APIRequest) throws(AgentError) -> UInt32 {
        let text = try request.pathParameter("id")
        guard let id = UInt32(text), Self.serviceIDs.contains(id) else {
            throw .invalidField("id", "\"\(text)\" is not a service id (1-65535)")
        }
        return id
    }
}
