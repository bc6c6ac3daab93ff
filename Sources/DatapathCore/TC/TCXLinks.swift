import CLibbpf
import Glibc
import Synchronization

extension TCAttachPoint {
    /// The hook's tcx attach type (BPF_TCX_INGRESS or BPF_TCX_EGRESS, Linux 6.6).
    var tcxAttachType: UInt32 { UInt32(self == .ingress ? CBPF_TCX_INGRESS : CBPF_TCX_EGRESS) }
}

extension BPFLink {
    /// What the kernel says a tcx link attaches; `ifindex` is 0 once the interface is gone.
    struct TCXAttachment: Equatable {
        var programID: UInt32
        var ifindex: Int32
        var attachType: UInt32
    }

    /// Attaches `program` to the tcx hook at `point` of `ifindex`, after the programs already there.
    static func attachTCX(_ program: BPFProgram, ifindex: Int32, point: TCAttachPoint) throws -> BPFLink {
        let fd = try bpfCall("attaching \(program.name) to tcx \(point.rawValue) of ifindex \(ifindex)") {
            cbpf_tcx_link_create(program.fd, ifindex, point.tcxAttachType)
        }
        return BPFLink(adopting: fd)
    }

    /// The program, interface and hook of a tcx link; nil for a link of another kind.
    func tcxAttachment() throws -> TCXAttachment? {
        var programID: UInt32 = 0
        var ifindex: UInt32 = 0
        var attachType: UInt32 = 0
        let rc = try bpfCall("reading link info", tolerating: [EINVAL]) {
            cbpf_link_tcx_info(fd, &programID, &ifindex, &attachType)
        }
        guard rc >= 0 else { return nil }
        return TCXAttachment(programID: programID, ifindex: Int32(bitPattern: ifindex), attachType: attachType)
    }

    /// Detaches the link's program now, whoever else holds the link.
    func detach() throws {
        try bpfCall("detaching a link", tolerating: [ENOLINK]) { bpf_link_detach(fd) }
    }
}

/// Our tcx attachments: one link per hook, pinned in `directory` as `<ifindex>_<point>` so it keeps its program
/// attached after the agent exits, however it exits. Without a directory (an unpinned datapath, in tests) the
/// links live in this process and end with it.
struct TCXLinks {
    let directory: String?

    private static let unpinned = Mutex<[String: BPFLink]>([:])

    private func name(_ ifindex: Int32, _ point: TCAttachPoint) -> String { "\(ifindex)_\(point.rawValue)" }

    /// The key of a link held in this process: interface indexes repeat across network namespaces, so the
    /// calling thread's namespace is part of it.
    private func unpinnedKey(_ ifindex: Int32, _ point: TCAttachPoint) -> String {
        var info = stat()
        let namespace = stat("/proc/thread-self/ns/net", &info) == 0 ? info.st_ino : 0
        return "\(namespace)_\(name(ifindex, point))"
    }

    /// Attaches `program`: the link already on the hook gets it swapped in, atomically; otherwise a new link,
    /// pinned where a stale one (its interface gone and the index given to another) would have been.
    func attach(_ program: BPFProgram, ifindex: Int32, point: TCAttachPoint) throws {
        if try replace(with: program, ifindex: ifindex, point: point) { return }
        let link = try BPFLink.attachTCX(program, ifindex: ifindex, point: point)
        guard let directory else {
            let key = unpinnedKey(ifindex, point)
            Self.unpinned.withLock { $0[key] = link }
            return
        }
        do {
            try BPFFS.prepare(root: directory)
            try link.pin(at: "\(directory)/\(name(ifindex, point))")
        } catch {
            _ = try? link.detach()
            throw error
        }
    }

    /// Swaps `program` into the link already on the hook, atomically; false when the hook has none of ours.
    func replace(with program: BPFProgram, ifindex: Int32, point: TCAttachPoint) throws -> Bool {
        guard let link = try link(ifindex, point) else { return false }
        try link.update(program: program)
        return true
    }

    /// Detaches ours from the hook and removes its pin; false when there was none.
    @discardableResult
    func detach(ifindex: Int32, point: TCAttachPoint) throws -> Bool {
        let link = try link(ifindex, point)
        try link?.detach()
        if let directory {
            try BPFLink.unpin("\(directory)/\(name(ifindex, point))")
        } else {
            let key = unpinnedKey(ifindex, point)
            _ = Self.unpinned.withLock { $0.removeValue(forKey: key) }
        }
        return link != nil
    }

    /// The id of the program our link runs on the hook, or nil.
    func programID(ifindex: Int32, point: TCAttachPoint) throws -> UInt32? {
        try link(ifindex, point)?.tcxAttachment()?.programID
    }

    /// Our link on the hook: the one pinned (or held) under its name, when it still attaches that hook of that
    /// interface.
    private func link(_ ifindex: Int32, _ point: TCAttachPoint) throws -> BPFLink? {
        let found: BPFLink?
        if let directory {
            found = try BPFLink.openPinned("\(directory)/\(name(ifindex, point))")
        } else {
            let key = unpinnedKey(ifindex, point)
            found = Self.unpinned.withLock { $0[key] }
        }
        guard let found, let attachment = try found.tcxAttachment(), attachment.ifindex == ifindex,
            attachment.attachType == point.tcxAttachType
        else { return nil }
        return found
    }
}
