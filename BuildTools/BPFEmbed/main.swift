import Foundation

// Two steps of carrying the BPF objects inside the binary, each writing Swift source and nothing SwiftPM would
// take for a resource (a resource would give the target a Foundation `Bundle` accessor the daemon does not need):
//
//   BPFEmbed object NAME OUT.swift OBJECT CLANG ARG...
//       runs CLANG ARG... (which writes OBJECT), then writes OUT.swift holding OBJECT as a base64 string literal
//       (fast to compile, unlike a byte-array literal); OBJECT stays on disk for inspection.
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
case "object" where args.count >= 5:
    let (name, outPath, objectPath, clang) = (args[1], args[2], args[3], args[4])
    let compiler = Process()
    compiler.executableURL = URL(fileURLWithPath: clang)
    compiler.arguments = Array(args[5...])
    try compiler.run()
    compiler.waitUntilExit()
    guard compiler.terminationStatus == 0 else { exit(compiler.terminationStatus) }
    let data = try Data(contentsOf: URL(fileURLWithPath: objectPath))
    let out = header + "let \(identifier(name)) = \"\(data.base64EncodedString())\"\n"
    try out.write(toFile: outPath, atomically: true, encoding: .utf8)
case "table" where args.count >= 2:
    var out = header + "let embeddedObjectsBase64: [String: String] = [\n"
    for name in args.dropFirst(2) { out += "    \"\(name)\": \(identifier(name)),\n" }
    out += "]\n"
    try out.write(toFile: args[1], atomically: true, encoding: .utf8)
default:
    fail("usage: BPFEmbed object NAME OUT.swift OBJECT CLANG ARG... | BPFEmbed table OUT.swift NAME...")
}
