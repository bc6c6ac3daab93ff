import AgentAPI

extension PolicyParser {
    /// A Kubernetes LabelSelector: `matchLabels` (each an `In` of one value) and `matchExpressions`.
    static func selector(_ r: FieldReader) throws(AgentError) -> LabelSelector {
        _ = try r.object(allowed: ["matchLabels", "matchExpressions"])
        var requirements: [SelectorRequirement] = []
        if let matchLabels = r.child("matchLabels") {
            guard case .object(let members) = matchLabels.value else {
                throw matchLabels.error("expected an object of label values, got \(matchLabels.value.typeName)")
            }
            for key in members.keys.sorted() {
                let at = FieldReader.join(matchLabels.path, key)
                try checkSelectorKey(key, reader: matchLabels, at: at)
                guard case .string(let value)? = members[key] else {
                    throw matchLabels.error("expected a string, got \(members[key]!.typeName)", at: at)
                }
                try checkSelectorValue(value, reader: matchLabels, at: at)
                requirements.append(SelectorRequirement(selectorKey: key, op: .in, values: [value]))
            }
        }
        if let expressions = r.child("matchExpressions") {
            for expression in try expressions.array() {
                requirements.append(try requirement(expression))
            }
        }
        return LabelSelector(requirements: requirements)
    }

    /// One `matchExpressions` element: values are required for In and NotIn, forbidden for Exists and
    /// DoesNotExist (as Kubernetes validates them).
    static func requirement(_ e: FieldReader) throws(AgentError) -> SelectorRequirement {
        _ = try e.object(allowed: ["key", "operator", "values"])
        let keyField = try e.required("key")
        let key = try keyField.string()
        try checkSelectorKey(key, reader: keyField, at: keyField.path)
        let opField = try e.required("operator")
        let opText = try opField.string()
        guard let op = SelectorRequirement.Operator(rawValue: opText) else {
            let known = SelectorRequirement.Operator.allCases.map(\.rawValue).joined(separator: ", ")
            throw opField.error("operator \(quoted(opText)) is unknown (expected one of \(known))")
        }
        let valuesField = e.child("values")
        let values = try valuesField?.strings() ?? []
        switch op {
        case .in, .notIn:
            if values.isEmpty {
                throw e.error(
                    "operator \(op.rawValue) needs at least one value", at: FieldReader.join(e.path, "values"))
            }
        case .exists, .doesNotExist:
            if !values.isEmpty {
                throw e.error("operator \(op.rawValue) takes no values", at: FieldReader.join(e.path, "values"))
            }
        }
        for (i, value) in values.enumerated() {
            try checkSelectorValue(value, reader: e, at: "\(valuesField!.path)[\(i)]")
        }
        return SelectorRequirement(selectorKey: key, op: op, values: values)
    }

    /// A selector key is a label key with an optional source (`k8s:app`, `any:app`, `app`).
    static func checkSelectorKey(_ text: String, reader: FieldReader, at: String) throws(AgentError) {
        let (source, key) = SelectorRequirement.splitKey(text)
        do {
            // "any" is valid here, so check the rest with a stand-in source.
            try Label.validate(source: source ?? Label.unspecifiedSource, key: key, value: "")
        } catch {
            throw reader.error("selector key \(quoted(text)): \(error.reason)", at: at)
        }
    }

    static func checkSelectorValue(_ value: String, reader: FieldReader, at: String) throws(AgentError) {
        do {
            try Label.validate(source: Label.unspecifiedSource, key: "k", value: value)
        } catch {
            throw reader.error("selector value \(quoted(value)): \(error.reason)", at: at)
        }
    }
}
