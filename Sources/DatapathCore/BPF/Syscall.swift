import CLibbpf
import Glibc

/// The one place where libbpf and syscall return codes become Swift errors.
///
/// libbpf 1.x returns `-errno` (and sets `errno`); raw syscalls return -1 and set `errno`. Both are retried on
/// EINTR, which a signal delivered to the agent can cause. `tolerated` errnos are returned negated instead of
/// thrown, for callers to whom "not found" or "exists" is an answer, not a failure. A thrown error keeps the
/// errno (`AgentError.errno`), and a full map answers 507.
@discardableResult
func bpfCall(
    _ what: @autoclosure () -> String, tolerating tolerated: Set<Int32> = [], _ body: () -> Int32
) throws -> Int32 {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let code = rc == -1 ? errno : -rc
        if code == EINTR { continue }
        if tolerated.contains(code) { return -code }
        throw AgentError.kernel("\(what()): \(errnoText(code))", errno: code)
    }
}

/// Readable text for an errno value, e.g. "No such file or directory (errno 2)".
func errnoText(_ code: Int32) -> String {
    "\(String(cString: strerror(code))) (errno \(code))"
}
