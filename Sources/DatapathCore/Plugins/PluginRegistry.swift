import FoundationEssentials
import Logging
import Synchronization

/// The plugins linked into the agent, which of them are enabled, and their lifecycle.
public final class PluginRegistry: Sendable {
    public enum State: String, Sendable { case disabled, configured, running, failed, stopped }

    private struct Entry {
        var plugin: any DatapathPlugin
        var enabled: Bool
        var state: State
        var error: String?
        var timers: [JobTimer] = []
    }

    private let entries = Mutex<[Entry]>([])
    private let logger: Logger

    public init(plugins: [any DatapathPlugin], logger: Logger) {
        self.logger = logger
        entries.withLock { $0 = plugins.map { Entry(plugin: $0, enabled: true, state: .configured) } }
    }

    public var names: [String] { entries.withLock { $0.map(\.plugin.name) } }

    /// Enabled plugins, in registration order.
    public var enabled: [any DatapathPlugin] { entries.withLock { $0.filter(\.enabled).map(\.plugin) } }

    public func plugin(named name: String) -> (any DatapathPlugin)? {
        entries.withLock { $0.first { $0.plugin.name == name && $0.enabled }?.plugin }
    }

    /// Applies the `plugins` config section: `{"<name>": {"enabled": false, ...options}}`. Unknown plugin names and
    /// unknown options are rejected before anything changes.
    public func configure(_ section: JSON?) throws {
        let object = section?.objectValue ?? [:]
        try KnownKeys.check(object.keys, known: names, prefix: "plugins", kind: "plugin")
        var decisions: [(String, Bool, JSON)] = []
        for name in names {
            var options = object[name]?.objectValue ?? [:]
            if let value = object[name], value.objectValue == nil {
                throw AgentError.invalidField("plugins.\(name)", "expected an object")
            }
            var enabled = true
            if let flag = options.removeValue(forKey: "enabled") {
                guard let bool = flag.boolValue else {
                    throw AgentError.invalidField("plugins.\(name).enabled", "expected true or false")
                }
                enabled = bool
            }
            decisions.append((name, enabled, .object(options)))
        }
        for (name, enabled, options) in decisions where enabled {
            try entries.withLock { $0.first { $0.plugin.name == name }!.plugin }.configure(options)
        }
        entries.withLock { list in
            for (name, enabled, _) in decisions {
                let index = list.firstIndex { $0.plugin.name == name }!
                list[index].enabled = enabled
                list[index].state = enabled ? .configured : .disabled
            }
        }
    }

    /// Restores (when the agent restarted with state) and starts every enabled plugin, then starts its jobs.
    /// A plugin that fails is marked failed and logged; the others still start.
    public func startAll(context: (any DatapathPlugin) -> PluginContext) {
        for plugin in enabled {
            let ctx = context(plugin)
            do {
                try FileManager.default.createDirectory(atPath: ctx.stateDirectory, withIntermediateDirectories: true)
                for map in plugin.ownedMaps { ctx.datapath.setOwner(plugin.name, ofMap: map) }
                if ctx.restored { try plugin.restore(ctx) }
                try plugin.start(ctx)
                let timers = plugin.periodicJobs.map { JobTimer(job: $0, plugin: plugin.name, logger: logger) }
                update(plugin.name) {
                    $0.state = .running
                    $0.timers = timers
                }
                logger.info("plugin started", metadata: ["plugin": "\(plugin.name)"])
            } catch {
                update(plugin.name) {
                    $0.state = .failed
                    $0.error = "\(error)"
                }
                logger.error("plugin failed to start", metadata: ["plugin": "\(plugin.name)", "error": "\(error)"])
            }
        }
    }

    public func stopAll() {
        for plugin in enabled.reversed() {
            let timers = entries.withLock { list in list.first { $0.plugin.name == plugin.name }?.timers ?? [] }
            timers.forEach { $0.cancel() }
            plugin.stop()
            update(plugin.name) {
                $0.state = .stopped
                $0.timers = []
            }
        }
    }

    /// Runs job `job` of plugin `plugin` now instead of waiting for its interval (e.g. on datapath pressure).
    public func trigger(plugin: String, job: String) {
        entries.withLock { list in list.first { $0.plugin.name == plugin }?.timers.first { $0.job.name == job } }?
            .fire()
    }

    public func broadcast(_ event: DatapathEvent) {
        for plugin in enabled { plugin.handle(event) }
    }

    /// The map sizes enabled plugins ask for (see `DatapathPlugin.mapSizes`).
    public var mapSizes: [String: UInt32] {
        enabled.reduce(into: [:]) { sizes, plugin in sizes.merge(plugin.mapSizes) { first, _ in first } }
    }

    /// Every enabled plugin's routes.
    public var routes: [Route] { enabled.flatMap(\.routes) }

    /// `[{"name", "enabled", "state", "error"?, "detail"}]` for /v1/healthz.
    public func statuses() -> JSON {
        let snapshot = entries.withLock { $0.map { ($0.plugin, $0.enabled, $0.state, $0.error) } }
        return .array(
            snapshot.map { plugin, enabled, state, error in
                var object: [String: JSON] = [
                    "name": .string(plugin.name), "enabled": .bool(enabled), "state": .string(state.rawValue),
                ]
                if let error { object["error"] = .string(error) }
                if state == .running { object["detail"] = plugin.status() }
                return .object(object)
            })
    }

    private func update(_ name: String, _ change: (inout Entry) -> Void) {
        entries.withLock { list in
            if let index = list.firstIndex(where: { $0.plugin.name == name }) { change(&list[index]) }
        }
    }
}
