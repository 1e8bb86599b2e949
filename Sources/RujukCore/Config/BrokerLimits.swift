/// How much one peer, authenticated or not, can make the broker hold or do: the `[broker]`
/// settings that keep one agency or one stranger from starving the others (documented with
/// their reasons in docs/security-broker-limits.md).
public struct BrokerLimits: Sendable, Equatable {
    /// A connection that has not finished its ZMTP/CURVE handshake within this is dropped
    /// (ZMQ_HANDSHAKE_IVL), so stalled connections do not hold descriptors. Default 5000 ms.
    public var handshakeTimeoutMs: Int
    /// TCP connections from one IP address at once, on the ROUTER and the monitor feed
    /// together; more are cut at once. Default 32 (one adapter needs one).
    public var maxConnectionsPerAddress: Int
    /// TCP connections at once in all; more are cut. Keep it well below the process's open
    /// file limit (LimitNOFILE). Default 512.
    public var maxConnections: Int
    /// Messages queued for one peer before the broker stops sending to it and ends its
    /// session (ZMQ_SNDHWM). Default 16,384: above `maxCredit` DELIVERs plus their COMMITs.
    public var sendHighWaterMark: Int
    /// Messages libzmq reads ahead from one peer (ZMQ_RCVHWM); beyond it TCP pushes back on
    /// that peer only. Default 4,096.
    public var receiveHighWaterMark: Int
    /// Messages a second one agency's session may send, a RECEIPT counting one per id it
    /// acknowledges; twice this may come in one burst. Default 50,000, above what the
    /// benchmark's fastest peer sends (about 30,000 a second).
    public var sessionRate: Int
    /// HELLOs a second one agency may send (each reloads its mailbox); twice this may come in
    /// one burst. Default 5.
    public var sessionHelloRate: Int
    /// Log lines of one kind of security event per minute; the rest are counted and summed
    /// up in one line. Default 10.
    public var securityLogLines: Int

    public init(
        handshakeTimeoutMs: Int = 5000, maxConnectionsPerAddress: Int = 32, maxConnections: Int = 512,
        sendHighWaterMark: Int = 16_384, receiveHighWaterMark: Int = 4096, sessionRate: Int = 50_000,
        sessionHelloRate: Int = 5, securityLogLines: Int = 10
    ) {
        self.handshakeTimeoutMs = handshakeTimeoutMs
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.maxConnections = maxConnections
        self.sendHighWaterMark = sendHighWaterMark
        self.receiveHighWaterMark = receiveHighWaterMark
        self.sessionRate = sessionRate
        self.sessionHelloRate = sessionHelloRate
        self.securityLogLines = securityLogLines
    }

    static let keys: Set<String> = [
        "handshake_timeout_ms", "max_peer_connections_per_address", "max_peer_connections", "send_hwm",
        "receive_hwm", "session_rate", "session_hello_rate", "security_log_lines",
    ]

    static func parse(_ reader: ConfigReader) throws -> BrokerLimits {
        var limits = BrokerLimits()
        limits.handshakeTimeoutMs = try reader.int("handshake_timeout_ms", in: 100...600_000) ?? limits.handshakeTimeoutMs
        limits.maxConnectionsPerAddress = try reader.int("max_peer_connections_per_address", in: 1...100_000)
            ?? limits.maxConnectionsPerAddress
        limits.maxConnections = try reader.int("max_peer_connections", in: 1...1_000_000) ?? limits.maxConnections
        limits.sendHighWaterMark = try reader.int("send_hwm", in: 100...10_000_000) ?? limits.sendHighWaterMark
        limits.receiveHighWaterMark = try reader.int("receive_hwm", in: 100...10_000_000) ?? limits.receiveHighWaterMark
        limits.sessionRate = try reader.int("session_rate", in: 1...10_000_000) ?? limits.sessionRate
        limits.sessionHelloRate = try reader.int("session_hello_rate", in: 1...10_000) ?? limits.sessionHelloRate
        limits.securityLogLines = try reader.int("security_log_lines", in: 1...100_000) ?? limits.securityLogLines
        return limits
    }
}
