import DatapathCore

extension Flow {
    /// One end of the flow, as addressed in the packet.
    ///
    /// All but the port sit in one shared box that is never changed in place (a change makes a new box): the flow
    /// reader gives every flow between the same two ends the same peers, and copying or freeing a flow then costs one
    /// reference count per end rather than one per string and array in it.
    public struct Peer: Sendable, Equatable {
        private var box: Box
        /// The L4 port; for ICMP echo, the identifier on the side that chose it (0 on the other).
        public var port: UInt16

        public init(
            ip: IPAddress, port: UInt16, identity: UInt32, labels: [String] = [], endpoint: UInt32? = nil,
            pod: String? = nil, name: String? = nil, node: String? = nil
        ) {
            box = Box(
                Fields(
                    ip: ip, identity: identity, labels: labels, endpoint: endpoint, pod: pod, node: node,
                    name: name ?? pod ?? ip.description))
            self.port = port
        }

        public var ip: IPAddress {
            get { box.fields.ip }
            set { change { $0.ip = newValue } }
        }

        public var identity: UInt32 {
            get { box.fields.identity }
            set { change { $0.identity = newValue } }
        }

        /// The identity's labels (`k8s:app=frontend`), empty when the agent does not know the identity.
        public var labels: [String] {
            get { box.fields.labels }
            set { change { $0.labels = newValue } }
        }

        /// The local endpoint with this address (or the one that reported the flow, for its own side).
        public var endpoint: UInt32? {
            get { box.fields.endpoint }
            set { change { $0.endpoint = newValue } }
        }

        /// `namespace/name` of the pod behind `endpoint`, when it has one.
        public var pod: String? {
            get { box.fields.pod }
            set { change { $0.pod = newValue } }
        }

        /// The node of a pod on another node (cluster mode), whose `pod` comes from the cluster's ipcache.
        public var node: String? {
            get { box.fields.node }
            set { change { $0.node = newValue } }
        }

        /// What people call this end: the pod, else the reserved identity's name (`world`, `host`), a CIDR, or
        /// the address.
        public var name: String {
            get { box.fields.name }
            set { change { $0.name = newValue } }
        }

        public static func == (a: Peer, b: Peer) -> Bool {
            a.port == b.port && (a.box === b.box || a.box.fields == b.box.fields)
        }

        private mutating func change(_ body: (inout Fields) -> Void) {
            var fields = box.fields
            body(&fields)
            box = Box(fields)
        }

        private struct Fields: Sendable, Equatable {
            var ip: IPAddress
            var identity: UInt32
            var labels: [String]
            var endpoint: UInt32?
            var pod: String?
            var node: String?
            var name: String
        }

        private final class Box: Sendable {
            let fields: Fields
            init(_ fields: Fields) { self.fields = fields }
        }
    }
}
