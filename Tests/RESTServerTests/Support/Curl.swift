import AgentAPI
import Foundation

/// What curl got back.
struct CurlResult {
    let status: Int
    let contentType: String
    let body: [UInt8]
    /// curl's process id, which the server should see through SO_PEERCRED.
    let pid: Int32

    var text: String { String(decoding: body, as: UTF8.self) }
    func json() throws -> JSON { try JSON.parse(body) }
}

struct CurlError: Error, CustomStringConvertible {
    let description: String
}

/// Runs `curl --unix-socket` against the test server.
func curl(
    _ socket: String, _ method: String, _ target: String, body: [UInt8]? = nil, headers: [String] = [],
    extra: [String] = []
) throws -> CurlResult {
    let directory = FileManager.default.temporaryDirectory
    let output = directory.appendingPathComponent("curl-out-\(UUID().uuidString)")
    let input = directory.appendingPathComponent("curl-in-\(UUID().uuidString)")
    defer {
        try? FileManager.default.removeItem(at: output)
        try? FileManager.default.removeItem(at: input)
    }
    var arguments = [
        "--unix-socket", socket, "-s", "-S", "--max-time", "20", "-X", method, "-o", output.path,
        "-w", "%{http_code} %{content_type}",
    ]
    if let body {
        try Data(body).write(to: input)
        arguments += ["--data-binary", "@\(input.path)"]
    }
    for header in headers { arguments += ["-H", header] }
    arguments += extra
    arguments.append("http://localhost\(target)")

    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = arguments
    let stdout = Pipe()
    let stderr = Pipe()
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let written = stdout.fileHandleForReading.readDataToEndOfFile()
    let errors = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CurlError(
            description: "curl exited \(process.terminationStatus): \(String(decoding: errors, as: UTF8.self))")
    }
    let summary = String(decoding: written, as: UTF8.self).split(separator: " ", maxSplits: 1)
    let body = (try? Data(contentsOf: output)).map { [UInt8]($0) } ?? []
    return CurlResult(
        status: Int(summary.first ?? "") ?? 0, contentType: summary.count > 1 ? String(summary[1]) : "",
        body: body, pid: process.processIdentifier)
}
