import AgentAPI
import Foundation
import Logging
import RESTServer

/// A unique socket path under /tmp for one test.
func temporarySocketPath(_ tag: String = "") -> String {
    "/tmp/nodeagent-test-\(tag)\(UUID().uuidString.prefix(13)).sock"
}

/// A started server on a fresh socket; `stop()` (call it in a defer) stops it and removes what the test created.
struct TestServer {
    let server: RESTServer
    let path: String
    let logs: CapturedLogs

    init(routes: [Route], options: RESTServer.Options = RESTServer.Options(), path: String = temporarySocketPath())
        throws
    {
        let logs = CapturedLogs()
        var logger = Logger(label: "rest-test") { _ in CapturingLogHandler(logs: logs) }
        logger.logLevel = .debug
        self.logs = logs
        self.path = path
        self.server = RESTServer(socketPath: path, router: Router(routes: routes), options: options, logger: logger)
        try server.start()
    }

    func stop() {
        server.stop()
        unlink(path)
    }
}
