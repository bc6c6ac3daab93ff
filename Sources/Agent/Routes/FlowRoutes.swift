import DatapathCore
import Synchronization

/// `GET /v1/flows`: recent flows as `{"flows":[...]}`, or with `follow=true` newline-delimited JSON, one flow per
/// line, for as long as the client stays (the server parks the stream while there is nothing new).
struct FlowRoutes {
    let store: FlowStore

    var routes: [Route] {
        [.get("/v1/flows") { request in try flows(request) }]
    }

    func flows(_ request: APIRequest) throws -> APIResponse {
        let query = try FlowQuery(query: request.query, reasons: FlowReasons.names)
        guard query.follow else {
            let flows = store.recent(matching: query.filter, last: query.last ?? FlowQuery.defaultLast)
            return .json(["flows": .array(flows.map(\.json))])
        }
        let (history, subscription) = store.follow(matching: query.filter, history: query.last)
        let stream = FlowFollowStream(subscription: subscription, history: history)
        return .streaming(contentType: "application/x-ndjson") { stream.next() }
    }
}

/// One follower's stream: first the requested history, then new flows as they come. A follower that fell behind
/// gets a line `{"lost-flows":N}` where its queue dropped N flows, so gaps are visible.
final class FlowFollowStream: Sendable {
    private let subscription: FlowSubscription
    private let history: Mutex<[Flow]?>

    init(subscription: FlowSubscription, history: [Flow]) {
        self.subscription = subscription
        self.history = Mutex(history)
    }

    /// The next bytes: lines of JSON, an empty array while nothing is new, nil when the agent is stopping.
    func next() -> [UInt8]? {
        if let flows = history.withLock({ pending -> [Flow]? in
            defer { pending = nil }
            return pending
        }), !flows.isEmpty {
            return Self.lines(flows, lost: 0)
        }
        guard let batch = subscription.next() else { return nil }
        return Self.lines(batch.flows, lost: batch.dropped)
    }

    static func lines(_ flows: [Flow], lost: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        if lost > 0 { out += Array(JSON.object(["lost-flows": .int(Int64(lost))]).serialized().utf8) + [10] }
        for flow in flows { out += Array(flow.json.serialized().utf8) + [10] }
        return out
    }
}
