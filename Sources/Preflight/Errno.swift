import Glibc

/// Readable text for an errno value, e.g. "Operation not permitted (errno 1)", as the datapath's errors read.
func errnoText(_ code: Int32) -> String {
    "\(String(cString: strerror(code))) (errno \(code))"
}
