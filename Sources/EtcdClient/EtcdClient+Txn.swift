import AgentAPI

/// The outcome of a transaction: whether every compare held, and the answers of the branch that ran.
public struct EtcdTxnResult: Sendable, Equatable {
    public var succeeded: Bool
    /// One per operation of the branch that ran (`success` when `succeeded`, else `failure`), in order.
    public var responses: [EtcdOpResponse]
    /// The store's revision after the transaction.
    public var revision: Int64
}

extension EtcdClient {
    /// Runs `success` when every compare holds, else `failure`, atomically.
    ///
    /// Creating a key only if it does not exist: `compare: [EtcdCompare(key: k, .createRevision(0))]`.
    public func txn(
        compare: [EtcdCompare], success: [EtcdOp], failure: [EtcdOp] = []
    ) throws(AgentError) -> EtcdTxnResult {
        let body: JSON = [
            "compare": .array(compare.map(\.json)),
            "success": .array(success.map(\.json)),
            "failure": .array(failure.map(\.json)),
        ]
        let answer = try call("/v3/kv/txn", body)
        var responses: [EtcdOpResponse] = []
        for response in answer["responses"]?.arrayValue ?? [] { responses.append(try EtcdOpResponse(json: response)) }
        // proto3 JSON leaves `succeeded: false` out.
        return EtcdTxnResult(
            succeeded: answer["succeeded"]?.boolValue ?? false, responses: responses,
            revision: try EtcdJSON.revision(answer))
    }
}
