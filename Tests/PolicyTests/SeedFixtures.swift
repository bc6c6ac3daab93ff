import AgentAPI

/// The seed article's policies, converted by hand from its YAML to JSON, field for field (a multi-document YAML
/// file is a JSON array).
enum SeedFixtures {
    /// default-deny-all.yaml
    static let defaultDenyAll = """
        [
          {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "default-deny-all", "namespace": "web-tier"},
            "spec": {"endpointSelector": {}, "ingress": [], "egress": []}
          },
          {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "default-deny-all", "namespace": "api-tier"},
            "spec": {"endpointSelector": {}, "ingress": [], "egress": []}
          },
          {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "default-deny-all", "namespace": "data-tier"},
            "spec": {"endpointSelector": {}, "ingress": [], "egress": []}
          }
        ]
        """

    /// allow-traffic-policy.yaml
    static let allowTraffic = """
        [
          {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "allow-frontend-to-backend", "namespace": "web-tier"},
            "spec": {
              "endpointSelector": {"matchLabels": {"app": "frontend"}},
              "egress": [
                {
                  "toEndpoints": [
                    {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "api-tier", "app": "backend-api"}}
                  ],
                  "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]
                }
              ]
            }
          },
          {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "allow-backend-to-database", "namespace": "api-tier"},
            "spec": {
              "endpointSelector": {"matchLabels": {"app": "backend-api"}},
              "egress": [
                {
                  "toEndpoints": [
                    {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "data-tier", "app": "postgres"}}
                  ],
                  "toPorts": [{"ports": [{"port": "5432", "protocol": "TCP"}]}]
                }
              ]
            }
          },
          {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "allow-ingress-to-backend", "namespace": "api-tier"},
            "spec": {
              "endpointSelector": {"matchLabels": {"app": "backend-api"}},
              "ingress": [
                {
                  "fromEndpoints": [
                    {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "web-tier", "app": "frontend"}}
                  ]
                }
              ]
            }
          },
          {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "allow-ingress-to-database", "namespace": "data-tier"},
            "spec": {
              "endpointSelector": {"matchLabels": {"app": "postgres"}},
              "ingress": [
                {
                  "fromEndpoints": [
                    {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "api-tier", "app": "backend-api"}}
                  ]
                }
              ]
            }
          }
        ]
        """

    /// l7-policy-backend-api.yaml: HTTP rules, one narrowed to the admin tool by its own fromEndpoints.
    static let l7Policy = """
        {
          "apiVersion": "cilium.io/v2",
          "kind": "CiliumNetworkPolicy",
          "metadata": {"name": "l7-policy-for-backend-api", "namespace": "api-tier"},
          "spec": {
            "endpointSelector": {"matchLabels": {"app": "backend-api"}},
            "ingress": [
              {
                "fromEndpoints": [
                  {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "web-tier"}},
                  {"matchLabels": {"role": "admin-tool"}}
                ],
                "toPorts": [
                  {
                    "ports": [{"port": "8080", "protocol": "TCP"}],
                    "rules": {
                      "http": [
                        {"method": "GET", "path": "/api/v1/public/.*"},
                        {
                          "method": "POST",
                          "path": "/api/v1/admin/.*",
                          "fromEndpoints": [{"matchLabels": {"role": "admin-tool"}}]
                        }
                      ]
                    }
                  }
                ]
              }
            ]
          }
        }
        """

    /// The toCIDR example from the article's "Interoperability with External Services".
    static let allowEgressToExternal = """
        {
          "apiVersion": "cilium.io/v2",
          "kind": "CiliumNetworkPolicy",
          "metadata": {"name": "allow-egress-to-external", "namespace": "api-tier"},
          "spec": {
            "endpointSelector": {"matchLabels": {"app": "backend-api"}},
            "egress": [{"toCIDR": ["169.254.169.254/32", "198.51.100.10/32"]}]
          }
        }
        """
}
