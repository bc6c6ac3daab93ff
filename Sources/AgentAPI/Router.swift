/// Dispatches requests to routes by path pattern and method.
///
/// An unknown path is a 404 `not-found` naming the path; a known path with another method is a 405
/// `method-not-allowed` listing (and sending in `Allow`) the methods it accepts. HEAD falls back to GET.
public struct Router: Sendable {
    public let routes: [Route]
    /// Told about handler errors that are not ``AgentError`` (they reach the client only as a generic 500),
    /// so the owner can log them.
    public var onUnexpectedError: (@Sendable (APIRequest, any Error) -> Void)?
    /// The routes of each path that literal patterns (no `{name}` segment) name, written as "/" and its segments
    /// joined by "/". A literal pattern outranks every parameter pattern of its path, so a request for exactly that
    /// path has its matches in one lookup instead of a split of its path and a try of every route.
    private let literalPaths: [String: [Route]]

    public init(routes: [Route], onUnexpectedError: (@Sendable (APIRequest, any Error) -> Void)? = nil) {
        self.routes = routes
        self.onUnexpectedError = onUnexpectedError
        var literalPaths: [String: [Route]] = [:]
        for route in routes where route.segments.allSatisfy({ if case .literal = $0 { true } else { false } }) {
            literalPaths["/" + Route.pathSegments(route.pattern).joined(separator: "/"), default: []].append(route)
        }
        self.literalPaths = literalPaths
    }

    /// Every (method, pattern), in registration order.
    public var patterns: [(HTTPMethod, String)] { routes.map { ($0.method, $0.pattern) } }

    /// Finds the route and runs its handler; never throws: every failure becomes an error response.
    public func route(_ request: APIRequest) -> APIResponse {
        var matches: [(route: Route, parameters: [String: String], rank: [Bool])] = []
        if let literal = literalPaths[request.path] {
            let rank = [Bool](repeating: true, count: literal[0].segments.count)
            matches = literal.map { ($0, [:], rank) }
        } else {
            let path = Route.pathSegments(request.path)
            for route in routes {
                if let match = route.match(path) { matches.append((route, match.parameters, match.rank)) }
            }
            guard !matches.isEmpty else { return .error(.notFound("no API path \(request.path)")) }
            matches = Router.mostSpecific(matches)
        }

        var forMethod = matches.filter { $0.route.method == request.method }
        if forMethod.isEmpty, request.method == .HEAD {
            forMethod = matches.filter { $0.route.method == .GET }
        }
        guard let best = forMethod.max(by: { $0.rank.lexicographicallyPrecedes($1.rank, by: Router.lessSpecific) })
        else {
            return methodNotAllowed(request.method.rawValue, path: request.path, allowed: methods(of: matches))
        }

        var request = request
        request.pathParameters = best.parameters
        do {
            return try best.route.handler(request)
        } catch let error as AgentError {
            return .error(error)
        } catch {
            onUnexpectedError?(request, error)
            return .error(.internal("internal error while handling \(request.method.rawValue) \(request.path)"))
        }
    }

    /// The methods some route accepts for `path` (HEAD wherever GET is), in a fixed order; empty for an unknown path.
    public func allowedMethods(for path: String) -> [HTTPMethod] {
        let segments = Route.pathSegments(path)
        let matches = routes.compactMap { route in route.match(segments).map { (route, $0.parameters, $0.rank) } }
        return methods(of: Router.mostSpecific(matches))
    }

    /// The 405 response for a method (possibly one this API does not know at all, like OPTIONS) on a known path,
    /// with the `Allow` header; 404 when the path is unknown.
    public func methodNotAllowed(_ method: String, path: String) -> APIResponse {
        let allowed = allowedMethods(for: path)
        guard !allowed.isEmpty else { return .error(.notFound("no API path \(path)")) }
        return methodNotAllowed(method, path: path, allowed: allowed)
    }

    private func methodNotAllowed(_ method: String, path: String, allowed: [HTTPMethod]) -> APIResponse {
        let names = allowed.map(\.rawValue)
        var response = APIResponse.error(.methodNotAllowed(method, path: path, allowed: names))
        response.headers["Allow"] = names.joined(separator: ", ")
        return response
    }

    private func methods(of matches: [(route: Route, parameters: [String: String], rank: [Bool])]) -> [HTTPMethod] {
        var allowed = Set(matches.map(\.route.method))
        if allowed.contains(.GET) { allowed.insert(.HEAD) }
        return HTTPMethod.allCases.filter(allowed.contains)
    }

    /// The matches of the most specific pattern shape: a path a literal pattern names (`/v1/ipam/gc`) belongs to
    /// that pattern alone, for every method, rather than also to a parameter pattern (`/v1/ipam/{ip}`).
    private static func mostSpecific(
        _ matches: [(route: Route, parameters: [String: String], rank: [Bool])]
    ) -> [(route: Route, parameters: [String: String], rank: [Bool])] {
        guard let best = matches.map(\.rank).max(by: { $0.lexicographicallyPrecedes($1, by: lessSpecific) }) else {
            return matches
        }
        return matches.filter { $0.rank == best }
    }

    /// A parameter segment (false) ranks below a literal one (true).
    private static func lessSpecific(_ a: Bool, _ b: Bool) -> Bool { !a && b }
}
