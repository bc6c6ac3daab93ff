@_exported import AgentAPI
@_exported import CNodeABI
import BPFObjects
