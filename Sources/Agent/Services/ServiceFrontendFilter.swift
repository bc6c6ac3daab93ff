import AgentAPI

/// `GET /v1/service?frontend=...`: the text a frontend prints as (`10.96.0.10:53/UDP`, `[fd00::a]:80/TCP`), the
/// protocol optional (both TCP and UDP match without it).
struct ServiceFrontendFilter: Sendable, Equatable {
    var address: AddressPort
    var proto: UInt8?

    init(parsing text: String, field: String = "frontend") throws(AgentError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = AddressPort(String(parts[0])) else {
            throw .invalidField(
                field, "expected IP:PORT/PROTOCOL (10.96.0.10:80/TCP, [fd00::a]:80/TCP), got \"\(text)\"")
        }
        self.address = address
        guard parts.count == 2 else { return }
        guard let number = IPProtocol.number(of: String(parts[1])), number == IPProtocol.tcp || number == IPProtocol.udp
        else { throw .invalidField(field, "\"\(parts[1])\" is not one of TCP, UDP") }
        proto = number
    }

    func matches(_ frontend: ServiceFrontend) -> Bool {
        frontend.address == address.address && frontend.port == address.port
            && (proto ?? frontend.proto) == frontend.proto
    }
}
