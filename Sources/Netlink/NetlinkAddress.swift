import AgentAPI
import CNetlink
import Glibc

/// Address text to libnl addresses and back, IPv4 and IPv6: `a.b.c.d`, `2001:db8::1`, with `/len` for prefixes.
enum NetlinkAddress {
    /// The family `text` is written in.
    static func family(of text: String) -> Int32 { text.contains(":") ? AF_INET6 : AF_INET }

    /// An nl_addr from `text`; the caller puts it. `field` names the argument in the error.
    static func parse(_ text: String, field: String) throws -> OpaquePointer {
        var address: OpaquePointer?
        // nl_addr_parse also takes the words "default", "all", "any" and "none", which no caller means; every
        // address has a dot or a colon.
        guard text.contains(".") || text.contains(":"), nl_addr_parse(text, family(of: text), &address) >= 0,
            let address
        else { throw AgentError.invalidField(field, "expected an IPv4 or IPv6 address, got \"\(text)\"") }
        guard nl_addr_get_prefixlen(address) <= nl_addr_get_len(address) * 8 else {
            nl_addr_put(address)
            throw AgentError.invalidField(field, "the prefix length of \"\(text)\" is too long")
        }
        return address
    }

    /// The address part alone, canonical; the unspecified address for an empty one, as the default route's
    /// destination is.
    static func text(_ address: OpaquePointer, family: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard let bytes = bytes(address, family: family),
            inet_ntop(family, bytes.baseAddress, &buffer, socklen_t(buffer.count)) != nil
        else { return family == AF_INET6 ? "::" : "0.0.0.0" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The address's bytes, valid while `address` is: 4 for IPv4, 16 for IPv6; nil when it has not its family's
    /// length (an empty address).
    static func bytes(_ address: OpaquePointer, family: Int32) -> UnsafeRawBufferPointer? {
        let length = Int(nl_addr_get_len(address))
        guard length == (family == AF_INET6 ? 16 : 4), let bytes = nl_addr_get_binary_addr(address) else { return nil }
        return UnsafeRawBufferPointer(start: bytes, count: length)
    }

    /// `address/len`.
    static func prefix(_ address: OpaquePointer, family: Int32) -> String {
        "\(text(address, family: family))/\(nl_addr_get_prefixlen(address))"
    }
}
