import AgentAPI

/// A CNI error result (CNI spec "Error"): printed as JSON on stdout with a non-zero exit.
struct CNIError: Error, CustomStringConvertible {
    /// Well-known codes from the CNI specification, and ours from 100 up.
    enum Code: Int {
        case incompatibleVersion = 1
        case unsupportedField = 2
        case unknownContainer = 3
        case invalidEnvironment = 4
        case ioFailure = 5
        case decodeFailure = 6
        case invalidConfig = 7
        case tryAgainLater = 11
        case pluginNotAvailable = 50
        case agentRejected = 100
        case wiringFailed = 101
    }

    var code: Code
    var message: String
    var details: String = ""

    init(_ code: Code, _ message: String, details: String = "") {
        self.code = code
        self.message = message
        self.details = details
    }

    var description: String { details.isEmpty ? message : "\(message): \(details)" }

    func json(cniVersion: String) -> JSON {
        [
            "cniVersion": .string(cniVersion), "code": .int(Int64(code.rawValue)), "msg": .string(message),
            "details": .string(details),
        ]
    }
}

extension CNIError {
    /// Runs rtnetlink calls, reporting their failures (`AgentError`s naming the operation) as `code`.
    static func netlink<T>(_ code: Code, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as AgentError {
            throw CNIError(code, error.message)
        }
    }
}
