import AgentAPI
import FoundationEssentials

/// The sysctls the preflight reports, read from /proc/sys.
public enum Sysctl {
    public static let jitEnable = "net.core.bpf_jit_enable"
    public static let unprivilegedBPFDisabled = "kernel.unprivileged_bpf_disabled"

    /// The value of a sysctl by dotted name, trimmed; nil when the kernel has no such file.
    static func read(_ name: String) -> String? {
        let path = "/proc/sys/" + name.replacing(".", with: "/")
        return (try? String(contentsOfFile: path, encoding: .utf8))?.trimmedWhitespace
    }
}
