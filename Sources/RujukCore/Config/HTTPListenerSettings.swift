import Foundation

/// What an HTTP listener (the adapter's API, the broker's status API and dashboard) tolerates
/// from its clients, from the `[adapter]` and `[broker]` tables of rujuk.toml.
///
/// A client that opens connections and never finishes a request (slowloris) would otherwise
/// hold a descriptor each until the process runs out and nobody else is answered.
public struct HTTPListenerSettings: Sendable, Equatable {
    /// A connection must have sent a whole request head this long after it opened, or it is
    /// closed. Default 10 s.
    public var headerTimeout: TimeInterval
    /// A connection with no request in progress and nothing read for this long is closed.
    /// Default 60 s.
    public var idleTimeout: TimeInterval
    /// Connections open at once, at most. At the limit a new connection makes room by closing
    /// the connection that has waited longest without a request in progress (one still sending
    /// its head first); when every one is serving a request, the new one is closed. Default 512.
    public var maxConnections: Int
    /// Host names and addresses accepted in the `Host` header besides the loopback ones
    /// (127.0.0.1, localhost, [::1]) and the listener's own address; each may carry a port.
    /// Any other `Host` is answered 421 (DNS rebinding). Default none.
    public var allowedHosts: [String]

    public init(headerTimeout: TimeInterval = 10, idleTimeout: TimeInterval = 60, maxConnections: Int = 512, allowedHosts: [String] = []) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.allowedHosts = allowedHosts
    }

    /// The keys this struct reads, for `ConfigReader.allowOnly`.
    static let keys: Set<String> = ["header_timeout", "idle_timeout", "max_connections", "allowed_hosts"]

    static func parse(_ reader: ConfigReader) throws -> HTTPListenerSettings {
        var settings = HTTPListenerSettings()
        if let timeout = try reader.duration("header_timeout") {
            guard timeout >= 0.1, timeout <= 600 else { throw reader.error("header_timeout", "must be between 100ms and 10m") }
            settings.headerTimeout = timeout
        }
        if let timeout = try reader.duration("idle_timeout") {
            guard timeout >= 0.1, timeout <= 3600 else { throw reader.error("idle_timeout", "must be between 100ms and 1h") }
            settings.idleTimeout = timeout
        }
        settings.maxConnections = try reader.int("max_connections", in: 1...100_000) ?? settings.maxConnections
        if let hosts = try reader.strings("allowed_hosts") {
            for host in hosts where host.isEmpty || host.contains(where: { $0 == "/" || $0 == " " || $0 == "@" }) {
                throw reader.error("allowed_hosts", "'\(host)' is not a host name or address")
            }
            settings.allowedHosts = hosts
        }
        return settings
    }
}
