import DatapathCore
import Synchronization

/// Counts and times API requests by route pattern (`/v1/endpoint/{id}`, not the raw path, so the label set stays
/// bounded), method and status. Wraps each route's handler, so it measures the handler: for a streaming response,
/// the time until the stream starts, not how long it is followed. Requests for paths no route matches (404) and
/// methods a path does not accept (405) are answered by the router before any handler and are not counted.
final class APIMetrics: Sendable {
    private struct Series: Hashable {
        var route: String
        var method: String
        var status: Int
    }

    private struct Timing: Hashable {
        var route: String
        var method: String
    }

    private struct State {
        var requests: [Series: UInt64] = [:]
        var durations: [Timing: Histogram] = [:]
    }

    private let state = Mutex(State())

    /// `routes` with handlers that record every call.
    func instrument(_ routes: [Route]) -> [Route] {
        routes.map { route in
            var wrapped = route
            let handler = route.handler
            let pattern = route.pattern
            wrapped.handler = { [self] request in
                let started = ContinuousClock.now
                do {
                    let response = try handler(request)
                    record(pattern, request.method.rawValue, response.status, since: started)
                    return response
                } catch let error as AgentError {
                    record(pattern, request.method.rawValue, error.status, since: started)
                    throw error
                } catch {
                    record(pattern, request.method.rawValue, 500, since: started)
                    throw error
                }
            }
            return wrapped
        }
    }

    func record(_ route: String, _ method: String, _ status: Int, since started: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        state.withLock { state in
            state.requests[Series(route: route, method: method, status: status), default: 0] += 1
            state.durations[Timing(route: route, method: method), default: Histogram()].observe(seconds)
        }
    }

    var samples: [MetricSample] {
        let (requests, durations) = state.withLock { ($0.requests, $0.durations) }
        var result: [MetricSample] = []
        for (series, count) in requests.sorted(by: {
            ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status)
        }) {
            result.append(
                MetricSample(
                    name: "nodeagent_api_requests_total",
                    labels: ["route": series.route, "method": series.method, "status": String(series.status)],
                    value: Double(count), help: "API requests handled, by route pattern, method and status.",
                    type: "counter"))
        }
        for (timing, histogram) in durations.sorted(by: {
            ($0.key.route, $0.key.method) < ($1.key.route, $1.key.method)
        }) {
            result += histogram.samples(
                name: "nodeagent_api_request_duration_seconds",
                labels: ["route": timing.route, "method": timing.method],
                help: "Time API handlers took to produce a response (for streams: until the stream starts).")
        }
        return result
    }
}
