import AgentAPI

// The service routes (see openapi/openapi.yaml, tag service).
extension AgentClient {
    /// `GET /v1/service`, only the services on `frontend` (`IP:PORT/PROTOCOL`) when given.
    public func services(frontend: String? = nil) throws(ClientError) -> JSON {
        try request(.GET, "/v1/service", query: frontend.map { [("frontend", $0)] } ?? [])
    }

    /// `GET /v1/service/{id}`.
    public func service(id: Int64) throws(ClientError) -> JSON {
        try request(.GET, "/v1/service/\(id)")
    }

    /// `PUT /v1/service/{id}` with a ServiceSpec; `created` is true for 201, false for 200 (replaced).
    public func putService(id: Int64, _ spec: JSON) throws(ClientError) -> (service: JSON, created: Bool) {
        let path = "/v1/service/\(id)"
        let response = try sendRaw(.PUT, path, body: spec)
        return (try decode(response, method: .PUT, path: path), response.status == 201)
    }

    /// `DELETE /v1/service/{id}`; returns the service as it was.
    public func deleteService(id: Int64) throws(ClientError) -> JSON {
        try request(.DELETE, "/v1/service/\(id)")
    }
}
