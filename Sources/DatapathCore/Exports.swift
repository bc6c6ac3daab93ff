// Plugins and the daemon see the core's vocabulary through this module alone.
@_exported import AgentAPI
@_exported import CNodeABI
