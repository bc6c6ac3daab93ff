import Foundation

// Writes a Swift file holding each BPF object as a base64 string literal (fast to compile, unlike a
// byte-array literal), keyed by the object's name: `BPFEmbed OUT.swift a.bpf.o b.bpf.o`.
let args = CommandLine.arguments.dropFirst()
guard let outPath = args.first else {
    FileHandle.standardError.write(Data("usage: BPFEmbed OUT.swift OBJECT...\n".utf8))
    exit(2)
}
var out = "// Generated at build time from bpf/*.bpf.c. Do not edit.\n\n"
out += "let embeddedObjectsBase64: [String: String] = [\n"
for path in args.dropFirst() {
    let url = URL(fileURLWithPath: path)
    let name = url.lastPathComponent.replacingOccurrences(of: ".bpf.o", with: "")
    let data = try Data(contentsOf: url)
    out += "    \"\(name)\": \"\(data.base64EncodedString())\",\n"
}
out += "]\n"
try out.write(toFile: outPath, atomically: true, encoding: .utf8)
