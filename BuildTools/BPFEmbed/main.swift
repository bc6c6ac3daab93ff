import CZlib
import Foundation

// Two steps of carrying the BPF objects inside the binary, each writing Swift source and nothing SwiftPM would
// take for a resource (a resource would give the target a Foundation `Bundle` accessor the daemon does not need):
//
//   BPFEmbed object NAME OUT.swift OBJECT OBJCOPY CLANG ARG...
//       runs CLANG ARG... (which writes OBJECT), then writes OUT.swift holding OBJECT without its DWARF sections
//       (OBJCOPY --strip-debug), deflated (zlib) and as a base64 string literal (fast to compile, unlike a
//       byte-array literal), with its size. libbpf needs the BTF sections only; DWARF was a third of each object.
//       Deflated, the objects are a fifth of that: the pages of the binary an agent reads at every start.
//       OBJECT stays on disk whole for inspection (llvm-objdump -S).
//   BPFEmbed table OUT.swift NAME...
//       writes the table of every object by name.
let args = Array(CommandLine.arguments.dropFirst())

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("BPFEmbed: \(message)\n".utf8))
    exit(2)
}

func identifier(_ name: String) -> String {
    "embeddedObject_" + String(name.map { $0.isLetter || $0.isNumber ? $0 : "_" })
}

let header = "// Generated at build time from bpf/*.bpf.c. Do not edit.\n\n"
switch args.first {
case "object" where args.count >= 6:
    let (name, outPath, objectPath, objcopy, clang) = (args[1], args[2], args[3], args[4], args[5])
    func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { exit(process.terminationStatus) }
    }
    try run(clang, Array(args[6...]))
    let stripped = objectPath + ".stripped"
    try run(objcopy, ["--strip-debug", objectPath, stripped])
    let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: stripped)))
    try FileManager.default.removeItem(atPath: stripped)
    var deflatedSize = compressBound(uLong(data.count))
    var deflated = [UInt8](repeating: 0, count: Int(deflatedSize))
    guard compress2(&deflated, &deflatedSize, data, uLong(data.count), Z_BEST_COMPRESSION) == Z_OK else {
        fail("deflating \(stripped)")
    }
    let encoded = Data(deflated[..<Int(deflatedSize)]).base64EncodedString()
    let out = header + "let \(identifier(name)) = (size: \(data.count), deflated: \"\(encoded)\")\n"
    try out.write(toFile: outPath, atomically: true, encoding: .utf8)
case "table" where args.count >= 2:
    var out = header + "let embeddedObjects: [String: (size: Int, deflated: String)] = [\n"
    for name in args.dropFirst(2) { out += "    \"\(name)\": \(identifier(name)),\n" }
    out += "]\n"
    try out.write(toFile: args[1], atomically: true, encoding: .utf8)
default:
    fail("usage: BPFEmbed object NAME OUT.swift OBJECT OBJCOPY CLANG ARG... | BPFEmbed table OUT.swift NAME...")
}
