import DatapathCore

/// `GET /v1/metrics`: the Prometheus text exposition of the agent's and plugins' metrics.
struct MetricsRoute {
    let agent: NodeAgent

    var routes: [Route] {
        [.get("/v1/metrics") { _ in .text(agent.metricsText(), contentType: PrometheusText.contentType) }]
    }
}
