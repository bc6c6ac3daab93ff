/// A problem with what the user gave us (a file, an argument), found before anything was sent to the agent.
public struct InputError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
