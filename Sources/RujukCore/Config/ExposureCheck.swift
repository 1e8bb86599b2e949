import Foundation

extension Loopback {
    /// Whether `host` (a name or an address, IPv6 with or without brackets) certainly means this
    /// machine: `localhost`, 127.0.0.0/8 or ::1. A wildcard, an interface name or any other name
    /// is taken as reachable from the network, since it may be.
    public static func isLoopbackHost(_ host: String) -> Bool {
        var name = host.lowercased()
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        if name == "localhost" || name == "::1" || name == "0:0:0:0:0:0:0:1" { return true }
        let octets = name.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// Whether a ZeroMQ endpoint stays on this machine: `inproc://`, `ipc://`, or `tcp://` on a
    /// loopback host (for a connect with a source address, `tcp://source;host:port`, the host).
    public static func isLocalEndpoint(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("inproc://") || endpoint.hasPrefix("ipc://") { return true }
        guard let scheme = endpoint.range(of: "://") else { return false }
        var address = endpoint[scheme.upperBound...]
        if let semicolon = address.lastIndex(of: ";") { address = address[address.index(after: semicolon)...] }
        guard let colon = address.lastIndex(of: ":") else { return false }
        return isLoopbackHost(String(address[..<colon]))
    }
}

extension BrokerConfiguration {
    /// Refuses plaintext ZeroMQ on a socket reachable from the network unless
    /// `allow_plaintext_off_loopback` says it is meant: anyone who reaches it could speak for any
    /// agency or read the monitor feed.
    public func checkExposure() throws {
        guard transport == .plaintext, !allowPlaintextOffLoopback else { return }
        for (key, endpoint) in [("router", router), ("monitor", monitor)] where !Loopback.isLocalEndpoint(endpoint) {
            throw ConfigError(file: "rujuk.toml", line: 0, message: """
                [broker] \(key) '\(endpoint)' is off loopback with transport = "plaintext": anyone who \
                reaches it can speak for any agency. Use transport = "curve", bind it to 127.0.0.1, or set \
                allow_plaintext_off_loopback = true (top level) if an encrypted network really protects it.
                """)
        }
    }
}

extension AdapterConfiguration {
    /// Refuses a plaintext link to a broker off this machine, and an API that speaks plain HTTP
    /// off loopback, unless a setting says it is meant: either exposes the token or the
    /// agency's referrals to the network.
    public func checkExposure() throws {
        if transport == .plaintext, !allowPlaintextOffLoopback, !Loopback.isLocalEndpoint(broker) {
            throw ConfigError(file: "rujuk.toml", line: 0, message: """
                [adapter] broker '\(broker)' is off loopback with transport = "plaintext": the link is \
                neither encrypted nor authenticated. Use transport = "curve", or set \
                allow_plaintext_off_loopback = true (top level) if an encrypted network really protects it.
                """)
        }
        if !Loopback.isLoopbackHost(api.host), !allowAPIWithoutTLSOffLoopback {
            throw ConfigError(file: "rujuk.toml", line: 0, message: """
                [adapter] api '\(api)' is off loopback, and the API speaks plain HTTP: its bearer token \
                and the agency's referrals would cross the network in the clear. Bind it to 127.0.0.1 \
                (behind a TLS proxy if others must reach it), or set \
                allow_api_without_tls_off_loopback = true in [adapter] if an encrypted network protects it.
                """)
        }
    }
}
