import DatapathCore

extension ConformanceChecker {
    /// `/v1/service...` through the router of an agent without a load balancer: every answer against the spec.
    func exerciseServices() {
        let web: JSON = [
            "frontend-address": ["ip": "10.96.0.10", "port": 80, "protocol": "TCP"],
            "backend-addresses": [
                ["ip": "10.0.0.1", "port": 8080, "weight": 2, "state": "active"], ["ip": "10.0.0.2"],
            ],
            "flags": ["type": "ClusterIP", "name": "web", "namespace": "t", "session-affinity": "ClientIP"],
        ]
        let dns: JSON = [
            "id": 2, "frontend-address": ["ip": "fd00::a", "port": 53, "protocol": "UDP", "scope": "internal"],
            "backend-addresses": [["ip": "fd00::1", "state": "terminating"]],
        ]
        call(.PUT, "/v1/service/{id}", "/v1/service/1", body: web, expect: 201)
        call(.PUT, "/v1/service/{id}", "/v1/service/1", body: web, expect: 200)
        call(.PUT, "/v1/service/{id}", "/v1/service/2", body: dns, expect: 201)
        call(.PUT, "/v1/service/{id}", "/v1/service/3", body: web, expect: 409)
        call(
            .PUT, "/v1/service/{id}", "/v1/service/3", body: ["frontend-address": ["ip": "x", "port": 80]], expect: 400)
        call(.PUT, "/v1/service/{id}", "/v1/service/0", body: web, expect: 400)
        call(.GET, "/v1/service", expect: 200)
        call(.GET, "/v1/service", query: ["frontend": "10.96.0.10:80/TCP"], expect: 200)
        call(.GET, "/v1/service", query: ["frontend": "10.96.0.10"], expect: 400)
        call(.GET, "/v1/service/{id}", "/v1/service/1", expect: 200)
        call(.GET, "/v1/service/{id}", "/v1/service/9", expect: 404)
        call(.GET, "/v1/service/{id}", "/v1/service/x", expect: 400)
        call(.DELETE, "/v1/service/{id}", "/v1/service/2", expect: 200)
        call(.DELETE, "/v1/service/{id}", "/v1/service/2", expect: 404)
        call(.DELETE, "/v1/service/{id}", "/v1/service/1", expect: 200)
    }
}
