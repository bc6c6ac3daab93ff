/// An entry as an endpoint's policy map holds it (`PolicyMapEntries` is a whole map): the one model from compiler
/// to kernel (the agent encodes `Key` and the verdict into `na_policy_key`/`na_policy_value`).
extension PolicyEntry {
    /// The entry reduced to what the map stores: its key, the verdict and one rule.
    public var mapped: PolicyEntry {
        var entry = self
        let id = ruleID
        entry.ruleIDs = id == 0 ? [] : [id]
        return entry
    }
}
