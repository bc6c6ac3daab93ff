import CSystemd
import Logging

/// Tells the service manager where the agent is in its life (`Type=notify` units): READY=1 once the API serves
/// restored state, STOPPING=1 when shutdown begins. libsystemd's `sd_notify` sends to `$NOTIFY_SOCKET`; without it
/// nothing is sent and libsystemd is not even loaded, so the same binary runs under systemd, in a container or by
/// hand.
struct ServiceNotifier: Sendable {
    /// A state change the manager understands (sd_notify(3)).
    struct State: Sendable, Equatable {
        let message: String

        static let ready = State(message: "READY=1")
        static let stopping = State(message: "STOPPING=1")

        /// Free-form text `systemctl status` shows.
        static func status(_ text: String) -> State { State(message: "STATUS=\(text)") }
    }

    let logger: Logger

    /// Sends the states as one datagram. Returns whether a manager was told (false without `$NOTIFY_SOCKET`);
    /// a failure to send is logged and otherwise ignored: the agent works the same without a manager.
    @discardableResult
    func notify(_ states: State...) -> Bool {
        let message = states.map(\.message).joined(separator: "\n")
        // unset_environment = 0: the variable stays for STOPPING=1 later; the agent starts no children.
        let result = nc_sd_notify(0, message)
        if result < 0 {
            logger.warning(
                "cannot notify the service manager", metadata: ["message": "\(message)", "errno": "\(-result)"])
        }
        return result > 0
    }
}
