import Foundation
import PackagePlugin

/// Compiles every bpf/*.bpf.c with the toolchain's clang for the BPF target and embeds the objects
/// into the target it is applied to, so the agent carries its programs and needs no compiler at run time.
@main
struct BPFCompile: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let bpfDir = context.package.directoryURL.appending(path: "bpf")
        let clang = try context.tool(named: "clang").url
        let embed = try context.tool(named: "BPFEmbed").url
        let files = try FileManager.default.contentsOfDirectory(atPath: bpfDir.path)
        let sources = files.filter { $0.hasSuffix(".bpf.c") }.sorted()
        let headers = try headerFiles(under: bpfDir)
        let multiarch = ["x86_64-linux-gnu", "aarch64-linux-gnu"].map { "/usr/include/\($0)" }
            .filter { FileManager.default.fileExists(atPath: $0) }
        let work = context.pluginWorkDirectoryURL
        var commands: [Command] = []
        var objects: [URL] = []
        for source in sources {
            let name = String(source.dropLast(".bpf.c".count))
            let object = work.appending(path: "\(name).bpf.o")
            objects.append(object)
            var args = [
                "-target", "bpf", "-O2", "-g", "-Wall", "-Werror", "-Wno-unused-function",
                "-I", bpfDir.appending(path: "include").path, "-I", bpfDir.appending(path: "lib").path,
            ]
            args += multiarch.flatMap { ["-idirafter", $0] }
            args += ["-c", bpfDir.appending(path: source).path, "-o", object.path]
            commands.append(
                .buildCommand(
                    displayName: "Compiling BPF program \(source)", executable: clang, arguments: args,
                    inputFiles: [bpfDir.appending(path: source)] + headers, outputFiles: [object]))
        }
        let output = work.appending(path: "EmbeddedBPFObjects.swift")
        commands.append(
            .buildCommand(
                displayName: "Embedding BPF objects", executable: embed,
                arguments: [output.path] + objects.map(\.path), inputFiles: objects, outputFiles: [output]))
        return commands
    }

    private func headerFiles(under dir: URL) throws -> [URL] {
        guard let walker = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil) else { return [] }
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "h" }
    }
}
