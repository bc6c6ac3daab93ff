import Policy

/// Serialized `GET /v1/endpoint` answers, per label filter (the empty filter: every endpoint), each with the state
/// version it shows. An answer is good while the version has not moved. Automation polls a few filters over and
/// over; a flood of distinct filters is bounded: once `capacity` filters are held, answers for older versions go,
/// and if none are older, all go.
struct EndpointListCache {
    static let capacity = 32

    private var answers: [LabelSet: (version: UInt64, body: [UInt8])] = [:]

    func body(for filter: LabelSet, version: UInt64) -> [UInt8]? {
        guard let answer = answers[filter], answer.version == version else { return nil }
        return answer.body
    }

    mutating func store(_ body: [UInt8], for filter: LabelSet, version: UInt64) {
        if answers[filter] == nil, answers.count >= Self.capacity {
            answers = answers.filter { $0.value.version == version }
            if answers.count >= Self.capacity { answers.removeAll() }
        }
        answers[filter] = (version, body)
    }

    var count: Int { answers.count }
}
