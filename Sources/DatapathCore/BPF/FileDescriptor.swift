import Glibc

/// A file descriptor that closes itself when the last reference goes away.
final class OwnedFD: Sendable {
    let raw: Int32

    init(_ raw: Int32) { self.raw = raw }

    deinit {
        // close(2) must not be retried on EINTR on Linux: the descriptor is released either way.
        _ = Glibc.close(raw)
    }
}
