import AgentAPI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The C library's description of an errno value.
func errnoDescription(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// Runs a system call that returns -1 with errno on failure, retrying EINTR; failure becomes an error saying
/// what was being done and why it failed.
@discardableResult
func syscall(_ what: @autoclosure () -> String, _ call: () -> Int32) throws(AgentError) -> Int32 {
    while true {
        let result = call()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        throw AgentError.unavailable("\(what()): \(errnoDescription(code))")
    }
}
