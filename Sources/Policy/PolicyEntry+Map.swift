/// An entry as an endpoint's policy map holds it, and the changes that turn one map into another: the one model
/// from compiler to kernel (the agent encodes `Key` and the verdict into `na_policy_key`/`na_policy_value`).
extension PolicyEntry {
    /// The rule the map records for the entry: it has room for one, the lowest number (0: none).
    public var ruleID: UInt32 { ruleIDs.min() ?? 0 }

    /// The entry reduced to what the map stores: its key, the verdict and one rule.
    public var mapped: PolicyEntry {
        var entry = self
        entry.ruleIDs = ruleIDs.min().map { [$0] } ?? []
        return entry
    }

    /// Changes that turn the map holding `old` into one holding `new`: entries to write (new keys, or keys whose
    /// verdict or rule changed) and keys to delete, each in key order. Apply the writes first: traffic of a
    /// removed key then meets the new entries at once, never a moment with neither.
    public static func diff(from old: [Key: PolicyEntry], to new: [Key: PolicyEntry]) -> (
        upsert: [PolicyEntry], remove: [Key]
    ) {
        let upsert = new.values.filter { old[$0.key] != $0 }.sorted { $0.key < $1.key }
        let remove = old.keys.filter { new[$0] == nil }.sorted()
        return (upsert, remove)
    }

    /// Entries by key; a later entry with the same key replaces an earlier one.
    public static func byKey(_ entries: some Sequence<PolicyEntry>) -> [Key: PolicyEntry] {
        var result: [Key: PolicyEntry] = [:]
        for entry in entries { result[entry.key] = entry }
        return result
    }
}
