/// What a request or a configuration names but nothing reads: a misspelt key must fail loudly, never be ignored
/// (a misspelt filter would match everything, a misspelt option silently keep its default).
public enum KnownKeys {
    /// 400 naming the first unknown key, in sorted order so the answer is stable: the field is `prefix.key` (or
    /// `key` without a prefix), and the message lists what is known, e.g. `unknown option (known: a, b)`.
    public static func check(
        _ keys: some Sequence<String>, known: some Collection<String>, prefix: String? = nil, kind: String
    ) throws(AgentError) {
        guard let unknown = keys.sorted().first(where: { !known.contains($0) }) else { return }
        let list = known.isEmpty ? "none" : known.sorted().joined(separator: ", ")
        throw .invalidField(prefix.map { "\($0).\(unknown)" } ?? unknown, "unknown \(kind) (known: \(list))")
    }
}
