import AgentAPI
import Foundation

// nodeagent-cni: a CNI plugin (spec 1.0.0, STATUS and GC from 1.1) wiring pods to nodeagent. A runtime sets CNI_* in
// the environment and writes the network configuration on stdin; the result or error goes to stdout as JSON.
let stdinBytes = [UInt8](FileHandle.standardInput.readDataToEndOfFile())
var version = "1.0.0"
do {
    let request = try CNIRequest.fromEnvironment(ProcessInfo.processInfo.environment, stdin: stdinBytes)
    version = request.cniVersion
    if let result = try Commands(request: request).run() {
        print(result.serialized(pretty: true))
    }
    exit(0)
} catch let error as CNIError {
    print(error.json(cniVersion: version).serialized(pretty: true))
    exit(1)
} catch {
    print(CNIError(.ioFailure, "\(error)").json(cniVersion: version).serialized(pretty: true))
    exit(1)
}
