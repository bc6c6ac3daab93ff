import DatapathCore

extension IPAMClusterPoolPlugin: PodCIDRProvider {
    public var podCIDRs: [IPPrefix] {
        let config = current.config
        guard config.isConfigured else { return [] }
        return config.families.compactMap { config.family($0)?.podCIDR.prefix }
    }
}
