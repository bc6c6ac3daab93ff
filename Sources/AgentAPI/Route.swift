/// One API endpoint: a method, a path pattern with `{name}` segments, and the handler.
///
/// Handlers may throw; an ``AgentError`` renders as its JSON at its status, anything else as a generic 500.
public struct Route: Sendable {
    public typealias Handler = @Sendable (APIRequest) throws -> APIResponse

    public var method: HTTPMethod
    /// e.g. "/v1/endpoint/{id}".
    public var pattern: String { didSet { segments = Route.segments(of: pattern) } }
    public var handler: Handler
    private(set) var segments: [Segment]

    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    public init(_ method: HTTPMethod, _ pattern: String, handler: @escaping Handler) {
        self.method = method
        self.pattern = pattern
        self.handler = handler
        self.segments = Route.segments(of: pattern)
    }

    public static func get(_ pattern: String, handler: @escaping Handler) -> Route {
        Route(.GET, pattern, handler: handler)
    }
    public static func put(_ pattern: String, handler: @escaping Handler) -> Route {
        Route(.PUT, pattern, handler: handler)
    }
    public static func post(_ pattern: String, handler: @escaping Handler) -> Route {
        Route(.POST, pattern, handler: handler)
    }
    public static func patch(_ pattern: String, handler: @escaping Handler) -> Route {
        Route(.PATCH, pattern, handler: handler)
    }
    public static func delete(_ pattern: String, handler: @escaping Handler) -> Route {
        Route(.DELETE, pattern, handler: handler)
    }

    /// Splits a path into its non-empty segments, so "/v1/map/" and "/v1/map" are the same path.
    static func pathSegments(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    private static func segments(of pattern: String) -> [Segment] {
        pathSegments(pattern).map { segment in
            if segment.count > 2, segment.first == "{", segment.last == "}" {
                return .parameter(String(segment.dropFirst().dropLast()))
            }
            return .literal(String(segment))
        }
    }

    /// The path parameters when `path` matches this pattern, with a specificity rank: at the first segment where
    /// two matching patterns differ, a literal beats a parameter ("/v1/policy/trace" over "/v1/policy/{name}").
    func match(_ path: [Substring]) -> (parameters: [String: String], rank: [Bool])? {
        guard path.count == segments.count else { return nil }
        // Most routes differ from a request in a literal: tell so before allocating anything (every request is
        // tried against every route).
        for (segment, component) in zip(segments, path) {
            if case .literal(let literal) = segment, literal != component { return nil }
        }
        var parameters: [String: String] = [:]
        var rank: [Bool] = []
        rank.reserveCapacity(segments.count)
        for (segment, component) in zip(segments, path) {
            switch segment {
            case .literal(let literal):
                guard literal == component else { return nil }
                rank.append(true)
            case .parameter(let name):
                parameters[name] = String(component)
                rank.append(false)
            }
        }
        return (parameters, rank)
    }
}
