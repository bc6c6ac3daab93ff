/// Where the agent serves its API unless configured otherwise, and where nodectl and the CNI plugin look for it.
public enum AgentSocket {
    public static let defaultPath = "/var/run/nodeagent/nodeagent.sock"
}
