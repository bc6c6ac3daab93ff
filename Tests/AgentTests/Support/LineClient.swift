import Foundation

/// A client process spoken to in lines: started at once, `send` writes one line and returns the next line the
/// process prints, `readLine` waits for a line on its own. `close` ends its input and waits for it to exit.
final class LineClient {
    let process: Process
    private let input = Pipe()
    private let output = Pipe()
    private var buffer = Data()

    init(_ process: Process) throws {
        self.process = process
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    func send(_ text: String) throws -> String {
        input.fileHandleForWriting.write(Data((text + "\n").utf8))
        return try readLine()
    }

    func readLine() throws -> String {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw ScratchError("the client process exited") }
            buffer.append(chunk)
        }
    }

    func close() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
