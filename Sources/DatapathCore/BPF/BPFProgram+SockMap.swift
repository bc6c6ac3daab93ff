import CLibbpf
import Glibc

extension BPFProgram {
    /// How an sk_skb program is attached to a sockmap or sockhash.
    public enum SockMapAttachment: Sendable {
        /// Frames the byte stream into messages (BPF_SK_SKB_STREAM_PARSER).
        case streamParser
        /// Decides each message (BPF_SK_SKB_STREAM_VERDICT).
        case streamVerdict

        var attachType: bpf_attach_type {
            switch self {
            case .streamParser: BPF_SK_SKB_STREAM_PARSER
            case .streamVerdict: BPF_SK_SKB_STREAM_VERDICT
            }
        }
    }

    /// Attaches the program to `map` (a sockmap or sockhash). The attachment belongs to the map, not to a
    /// descriptor: it lasts as long as the map does (pinned: after the agent exits). Links for sockmaps need 6.10,
    /// so this is the older `BPF_PROG_ATTACH`; attaching again replaces the program.
    public func attach(to map: BPFMap, as attachment: SockMapAttachment) throws {
        try bpfCall("attaching program \(name) to map \(map.name)") {
            bpf_prog_attach(fd, map.fd, attachment.attachType, 0)
        }
    }

    /// Detaches the program from `map`; one that is not attached is fine.
    public func detach(from map: BPFMap, as attachment: SockMapAttachment) throws {
        try bpfCall("detaching program \(name) from map \(map.name)", tolerating: [ENOENT]) {
            bpf_prog_detach2(fd, map.fd, attachment.attachType)
        }
    }

    /// Detaches whatever program is attached to `map` as `attachment`, whoever attached it (a pinned map an earlier
    /// version of the agent left behind). Returns how many were detached. Kernels that cannot say which programs a
    /// sockmap has (before 6.0) report none.
    @discardableResult
    public static func detachAll(from map: BPFMap, as attachment: SockMapAttachment) throws -> Int {
        var ids = [UInt32](repeating: 0, count: 4)
        var count = UInt32(ids.count)
        let queried = try bpfCall("listing the programs of map \(map.name)", tolerating: [EINVAL, EOPNOTSUPP]) {
            bpf_prog_query(map.fd, attachment.attachType, 0, nil, &ids, &count)
        }
        guard queried >= 0 else { return 0 }
        var detached = 0
        for id in ids.prefix(Int(count)) {
            let fd = try bpfCall("opening program \(id) of map \(map.name)", tolerating: [ENOENT]) {
                bpf_prog_get_fd_by_id(id)
            }
            guard fd >= 0 else { continue }
            defer { close(fd) }
            let rc = try bpfCall("detaching program \(id) from map \(map.name)", tolerating: [ENOENT]) {
                bpf_prog_detach2(fd, map.fd, attachment.attachType)
            }
            if rc >= 0 { detached += 1 }
        }
        return detached
    }
}
