import Foundation
import PackagePlugin

/// Compiles every bpf/*.bpf.c with the toolchain's clang for the BPF target and embeds the objects (without their
/// DWARF, which libbpf does not read) into the target it is applied to, so the agent carries its programs and needs
/// no compiler at run time.
@main
struct BPFCompile: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let bpfDir = context.package.directoryURL.appending(path: "bpf")
        let clang = try context.tool(named: "clang").url
        let objcopy = try context.tool(named: "llvm-objcopy").url
        let embed = try context.tool(named: "BPFEmbed").url
        let files = try FileManager.default.contentsOfDirectory(atPath: bpfDir.path)
        let sources = files.filter { $0.hasSuffix(".bpf.c") }.sorted()
        let headers = try headerFiles(under: bpfDir)
        let multiarch = ["x86_64-linux-gnu", "aarch64-linux-gnu"].map { "/usr/include/\($0)" }
            .filter { FileManager.default.fileExists(atPath: $0) }
        let work = context.pluginWorkDirectoryURL
        var commands: [Command] = []
        var names: [String] = []
        for source in sources {
            let name = String(source.dropLast(".bpf.c".count))
            names.append(name)
            // Only the Swift file is declared: a declared object would become a resource of the target.
            let object = work.appending(path: "\(name).bpf.o")
            let swift = work.appending(path: "EmbeddedBPF_\(name).swift")
            var args = [
                "-target", "bpf", "-O2", "-g", "-Wall", "-Werror", "-Wno-unused-function",
                "-I", bpfDir.appending(path: "include").path, "-I", bpfDir.appending(path: "lib").path,
            ]
            args += multiarch.flatMap { ["-idirafter", $0] }
            args += ["-c", bpfDir.appending(path: source).path, "-o", object.path]
            commands.append(
                .buildCommand(
                    displayName: "Compiling BPF program \(source)", executable: embed,
                    arguments: ["object", name, swift.path, object.path, objcopy.path, clang.path] + args,
                    inputFiles: [bpfDir.appending(path: source)] + headers, outputFiles: [swift]))
        }
        let table = work.appending(path: "EmbeddedBPFObjects.swift")
        commands.append(
            .buildCommand(
                displayName: "Listing BPF objects", executable: embed, arguments: ["table", table.path] + names,
                inputFiles: [], outputFiles: [table]))
        return commands
    }

    private func headerFiles(under dir: URL) throws -> [URL] {
        guard let walker = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil) else { return [] }
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "h" }
    }
}
