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
}
