import CLibbpf
import FoundationEssentials
import Glibc

/// A BPF link attaching a program to a cgroup v2 directory (or to a tcx hook, `TCXLinks`), owning its descriptor.
///
/// A link pinned in bpffs keeps the program attached after the agent exits, however it exits, so what the program
/// does goes on while no agent runs; the attachment ends when the last pin and descriptor are gone. A restarted
/// agent opens the pin and swaps its new program in (`update`): the hook never runs without a program.
public final class BPFLink: Sendable {
    private let descriptor: OwnedFD
    public var fd: Int32 { descriptor.raw }

    init(adopting fd: Int32) { descriptor = OwnedFD(fd) }

    /// What the kernel says the link attaches.
    public struct CgroupAttachment: Equatable, Sendable {
        public var programID: UInt32
        /// The cgroup's id (its directory's inode number); 0 once the cgroup was removed and the link is defunct.
        public var cgroupID: UInt64
        public var attachType: UInt32
    }

    /// Attaches `program` to the cgroup directory `cgroupPath` at the program's expected attach type. Other
    /// programs attached there keep running (links attach as BPF_F_ALLOW_MULTI does).
    public static func attach(_ program: BPFProgram, cgroup cgroupPath: String) throws -> BPFLink {
        let cgroup = try bpfCall("opening cgroup \(cgroupPath)") {
            open(cgroupPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        defer { _ = Glibc.close(cgroup) }
        let fd = try bpfCall("attaching program \(program.name) to cgroup \(cgroupPath)") {
            bpf_link_create(program.fd, cgroup, bpf_attach_type(program.expectedAttachType), nil)
        }
        return BPFLink(adopting: fd)
    }

    /// `program` attached to the cgroup `cgroupPath` (whose id is `cgroupID`) by the link pinned at `pin`: the
    /// pinned link with `program` swapped in when it attaches this hook to this cgroup, so the hook never runs
    /// without a program across a restart; otherwise a new link, pinned in the old one's place (which detaches
    /// the old one).
    public static func attachPinned(_ program: BPFProgram, cgroup cgroupPath: String, cgroupID: UInt64, pin: String)
        throws -> BPFLink
    {
        if let pinned = try openPinned(pin), let attachment = try? pinned.cgroupAttachment(),
            attachment.cgroupID == cgroupID, attachment.attachType == program.expectedAttachType
        {
            try pinned.update(program: program)
            return pinned
        }
        let link = try attach(program, cgroup: cgroupPath)
        try link.pin(at: pin)
        return link
    }

    /// Opens the link pinned at `path`, or nil when nothing is pinned there.
    public static func openPinned(_ path: String) throws -> BPFLink? {
        let fd = try bpfCall("opening pinned link \(path)", tolerating: [ENOENT]) { bpf_obj_get(path) }
        return fd < 0 ? nil : BPFLink(adopting: fd)
    }

    /// Pins the link at `path`, replacing whatever was pinned there in one rename: a link that loses its last pin
    /// and descriptor detaches, so the pin swap is where an old attachment ends.
    public func pin(at path: String) throws {
        // bpffs refuses names with a dot in them.
        let staging = "\(path)_new"
        _ = unlink(staging)
        try bpfCall("pinning link at \(staging)") { bpf_obj_pin(fd, staging) }
        try bpfCall("moving pinned link to \(path)") { rename(staging, path) }
    }

    /// Puts `program` in the place of the linked one, atomically for every hook invocation.
    public func update(program: BPFProgram) throws {
        try bpfCall("replacing the program of a link with \(program.name)") { bpf_link_update(fd, program.fd, nil) }
    }

    /// The cgroup, attach type and program of the link.
    public func cgroupAttachment() throws -> CgroupAttachment {
        var programID: UInt32 = 0
        var cgroupID: UInt64 = 0
        var attachType: UInt32 = 0
        try bpfCall("reading link info") { cbpf_link_cgroup_info(fd, &programID, &cgroupID, &attachType) }
        return CgroupAttachment(programID: programID, cgroupID: cgroupID, attachType: attachType)
    }

    /// Removes the pin at `path`; the link detaches once no descriptor holds it either. No pin is fine.
    public static func unpin(_ path: String) throws {
        try bpfCall("removing pinned link \(path)", tolerating: [ENOENT]) { unlink(path) }
    }
}
