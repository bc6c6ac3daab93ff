import AgentAPI
import Yams

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads policy documents (CiliumNetworkPolicy, Kubernetes NetworkPolicy) from files or standard input, as YAML
/// (one or more documents separated by `---`) or JSON (an object or an array of objects), and turns them into the
/// JSON the agent takes.
public enum PolicyFiles {
    /// Reads every path in order ("-" is standard input, read once) and returns all policy documents found.
    /// Empty documents (nothing but comments, or a stray `---`) are skipped; a file with no document at all
    /// is an error, since importing nothing is almost certainly a mistake.
    public static func load(
        paths: [String],
        standardInput: () throws(InputError) -> [UInt8] = { () throws(InputError) in
            try readAll(fd: 0, name: "standard input")
        }
    ) throws(InputError) -> [JSON] {
        var documents: [JSON] = []
        var stdinUsed = false
        for path in paths {
            let bytes: [UInt8]
            let name: String
            if path == "-" {
                guard !stdinUsed else { throw InputError("standard input ('-') given more than once") }
                stdinUsed = true
                bytes = try standardInput()
                name = "standard input"
            } else {
                bytes = try readFile(path)
                name = path
            }
            let found = try self.documents(from: bytes, source: name)
            guard !found.isEmpty else { throw InputError("\(name): no policy documents found") }
            documents.append(contentsOf: found)
        }
        return documents
    }

    /// Parses one file's contents. `source` names it in error messages.
    public static func documents(from bytes: [UInt8], source: String) throws(InputError) -> [JSON] {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw InputError("\(source): not UTF-8 text")
        }
        let first = text.unicodeScalars.first { !$0.properties.isWhitespace && $0 != "\u{FEFF}" }
        if first == "{" || first == "[" {
            return try jsonDocuments(text, source: source)
        }
        return try yamlDocuments(text, source: source)
    }

    private static func jsonDocuments(_ text: String, source: String) throws(InputError) -> [JSON] {
        let value: JSON
        do {
            value = try JSON.parse(text)
        } catch {
            throw InputError("\(source): \(error.message)")
        }
        return try policies(in: value, source: source, document: nil)
    }

    private static func yamlDocuments(_ text: String, source: String) throws(InputError) -> [JSON] {
        var sequence: YamlSequence<Node>
        do {
            sequence = try Yams.compose_all(yaml: text)
        } catch {
            throw InputError("\(source): \(error)")
        }
        var documents: [JSON] = []
        var index = 0
        while let node = sequence.next() {
            index += 1
            let value = try YAMLConversion.json(from: node)
            if value.isNull { continue }
            documents.append(contentsOf: try policies(in: value, source: source, document: index))
        }
        if let error = sequence.error {
            throw InputError("\(source): \(error)")
        }
        return documents
    }

    /// A document holds one policy, a list of them, or a Kubernetes `...List` object with `items`.
    private static func policies(in value: JSON, source: String, document: Int?) throws(InputError) -> [JSON] {
        let place = document.map { "\(source): document \($0)" } ?? source
        let candidates: [JSON]
        if let kind = value["kind"]?.stringValue, kind.hasSuffix("List"), let items = value["items"]?.arrayValue {
            candidates = items
        } else if let elements = value.arrayValue {
            candidates = elements
        } else {
            candidates = [value]
        }
        for (i, candidate) in candidates.enumerated() where candidate.objectValue == nil {
            let which = candidates.count == 1 && value.arrayValue == nil ? place : "\(place), item \(i)"
            throw InputError("\(which): expected a policy object, found \(candidate.typeName)")
        }
        return candidates
    }

    static func readFile(_ path: String) throws(InputError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw InputError("\(path): \(errnoText())") }
        defer { _ = close(fd) }
        return try readAll(fd: fd, name: path)
    }

    /// Reads `fd` to its end.
    public static func readAll(fd: Int32, name: String) throws(InputError) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                result.append(contentsOf: buffer[0..<n])
            } else if n == 0 {
                return result
            } else if errno != EINTR {
                throw InputError("\(name): \(errnoText())")
            }
        }
    }
}

/// The text of `errno` (or the given code), e.g. "No such file or directory".
private func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}
