import ArgumentParser
import NodeCtlKit

struct IPAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipam",
        abstract: "List, allocate and release pod addresses of the node's pod CIDR (the ipam plugin).",
        subcommands: [List.self, Allocate.self, Release.self, GC.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the pod CIDRs, counts and allocations.")

        @OptionGroup var global: GlobalOptions

        func run() throws {
            global.emit(try global.client.ipam(), table: IPAMViews.list)
        }
    }

    struct Allocate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Allocate the next free address (every configured family by default), or a given one.")

        @OptionGroup var global: GlobalOptions

        @Option(help: ArgumentHelp("Only this family: ipv4 or ipv6.", valueName: "family"))
        var family: String?

        @Option(help: ArgumentHelp("Who holds the address (the CNI plugin uses the container id).", valueName: "owner"))
        var owner: String?

        @Option(help: ArgumentHelp("The namespace/pod the address is for.", valueName: "namespace/pod"))
        var pod: String?

        @Option(help: ArgumentHelp("Allocate exactly this address.", valueName: "ip"))
        var ip: String?

        func validate() throws {
            if let family, !["ipv4", "ipv6"].contains(family) {
                throw ValidationError("--family must be ipv4 or ipv6, got \(family)")
            }
            if family != nil, ip != nil {
                throw ValidationError("--family and --ip exclude each other: the address has a family")
            }
        }

        func run() throws {
            let client = global.client
            let answer =
                try ip.map { try client.ipamClaim($0, owner: owner, pod: pod) }
                ?? client.ipamAllocate(family: family, owner: owner, pod: pod)
            global.emit(answer, table: IPAMViews.allocated)
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release an address (succeeds also when it was not allocated).")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The address.") var ip: String

        func run() throws {
            global.emit(try global.client.ipamRelease(ip), table: IPAMViews.released)
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Release allocations whose endpoint is gone.",
            discussion: "An allocation is orphaned when an endpoint used its address and no endpoint does now. "
                + "Allocations no endpoint ever used are left to their owner (or their expiration).")

        @OptionGroup var global: GlobalOptions

        @Flag(help: "Only list the orphans.")
        var dryRun = false

        func run() throws {
            global.emit(try global.client.ipamGarbageCollect(dryRun: dryRun), table: IPAMViews.garbage)
        }
    }
}
