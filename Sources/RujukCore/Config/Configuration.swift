import Foundation

/// How hard a store works to survive power loss (SQLite's `PRAGMA synchronous`).
public enum Durability: String, Sendable, Codable {
    /// fsync at every commit: a COMMIT ack or RECEIPT survives power loss. The default.
    case full
    /// fsync at WAL checkpoints only: survives a process crash (kill -9), not power loss.
    case normal
}

/// How the broker's sockets are protected.
public enum Transport: String, Sendable, Codable {
    /// CurveZMQ on every broker socket, with a ZAP handler admitting only the keys in
    /// agencies.toml. The default.
    case curve
    /// No encryption, no authentication: for `rujuk demo` on loopback, never for a network.
    case plaintext
}

/// A `host:port` pair for an HTTP listener.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        self.host = String(text[..<colon])
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// The broker's settings, from the `[broker]` table of rujuk.toml.
public struct BrokerConfiguration: Sendable {
    /// The ROUTER endpoint adapters connect to. Default `tcp://127.0.0.1:7700`.
    public var router: String
    /// The PUB endpoint of the monitor feed. Default `tcp://127.0.0.1:7701`.
    public var monitor: String
    /// The status API and dashboard. Default `127.0.0.1:7780`.
    public var http: HostPort
    /// Where the store lives. Default `data/broker`.
    public var dataDirectory: URL
    /// Default `.full`.
    public var durability: Durability
    /// The largest message accepted, all frames together. Default 256 KiB.
    public var maxMessageBytes: Int
    /// Heartbeat interval offered to adapters; a peer silent for 3 intervals is dropped. Default 2 s.
    public var heartbeatMs: Int
    /// The most DELIVERs outstanding on one session, whatever an adapter asks. Default 1000.
    public var maxCredit: Int
    /// The most messages taken into one group commit. Default 4096.
    public var maxBatch: Int
    /// A group of at most this many messages is committed on the router thread itself, a larger
    /// one on the committer thread. Handing a small transaction to the committer and back costs
    /// two thread wake-ups, each tens of microseconds on an idle virtual CPU, and overlaps almost
    /// nothing; under load the groups grow past it and the committer overlaps the next group's
    /// reading with the fsync. Measured (`rujuk bench`, 15,000 referrals at 1,000/s, three runs
    /// each): p50 1.76–1.91 ms against 2.08–2.20 ms handing every group over, throughput the
    /// same. Default 32; not read from the TOML file (0 hands every group over, `Int.max` none:
    /// how the tests take each path for certain).
    public var inlineCommitMax: Int
    /// How many pending deliveries per mailbox are held in memory; the rest wait in the store. Default 2048.
    public var mailboxMemory: Int
    /// Default `.curve`.
    public var transport: Transport
    /// The broker's CurveZMQ key file. Default `<data_dir>/broker.key`.
    public var keyFile: URL?
    /// Keys already in memory (the demo, tests); when set, `keyFile` is not read.
    public var keys: KeyFile?
    /// The directory of the status API's client tokens: one `NAME.token` file (mode 0600) per
    /// coordinators' system, made by `rujuk broker token --name NAME`. Default
    /// `<data_dir>/api-tokens`.
    public var apiTokenDirectory: URL?
    /// Client tokens already in memory, by client name (the demo, tests); when set, the
    /// directory is not read.
    public var apiTokens: [String: String]?
    /// Timeouts, connection cap and accepted `Host` names of the HTTP status API and dashboard.
    public var httpListener: HTTPListenerSettings
    /// `allow_plaintext_off_loopback` (top level): lets plaintext transport bind off loopback.
    /// Default false: `checkExposure()` refuses it.
    public var allowPlaintextOffLoopback: Bool
    /// Limits on what one peer can make the broker hold or do (docs/security-broker-limits.md).
    public var limits: BrokerLimits = BrokerLimits()
    /// How often the broker signs a checkpoint of its audit log and sends it to every
    /// connected adapter, if the log has grown since the last one (it also sends one after
    /// each READY). Default 5 minutes: what a rewrite could hide is at most that much history
    /// that no adapter has a checkpoint for yet.
    public var checkpointInterval: TimeInterval

    public init(
        router: String = "tcp://127.0.0.1:7700", monitor: String = "tcp://127.0.0.1:7701",
        http: HostPort = HostPort(host: "127.0.0.1", port: 7780), dataDirectory: URL = URL(fileURLWithPath: "data/broker"),
        durability: Durability = .full, maxMessageBytes: Int = RRPCodec.defaultMaxMessageBytes, heartbeatMs: Int = 2000,
        maxCredit: Int = 1000, maxBatch: Int = 4096, inlineCommitMax: Int = 32, mailboxMemory: Int = 2048,
        transport: Transport = .curve, keyFile: URL? = nil, keys: KeyFile? = nil, apiTokens: [String: String]? = nil,
        httpListener: HTTPListenerSettings = HTTPListenerSettings(), allowPlaintextOffLoopback: Bool = false,
        checkpointInterval: TimeInterval = 300
    ) {
        self.apiTokens = apiTokens
        self.httpListener = httpListener
        self.allowPlaintextOffLoopback = allowPlaintextOffLoopback
        self.checkpointInterval = checkpointInterval
        self.transport = transport
        self.keyFile = keyFile
        self.keys = keys
        self.router = router
        self.monitor = monitor
        self.http = http
        self.dataDirectory = dataDirectory
        self.durability = durability
        self.maxMessageBytes = maxMessageBytes
        self.heartbeatMs = heartbeatMs
        self.maxCredit = maxCredit
        self.maxBatch = maxBatch
        self.inlineCommitMax = inlineCommitMax
        self.mailboxMemory = mailboxMemory
    }

    /// The largest frame libzmq reads at all: 4 × `maxMessageBytes`, at least 1 MiB. A peer
    /// that sends more is disconnected (ZMQ_MAXMSGSIZE) rather than answered.
    public var hardFrameLimit: Int { max(4 * maxMessageBytes, 1 << 20) }

    public var resolvedKeyFile: URL { keyFile ?? dataDirectory.appendingPathComponent("broker.key") }

    public var resolvedAPITokenDirectory: URL { apiTokenDirectory ?? dataDirectory.appendingPathComponent("api-tokens") }

    /// The status API's client tokens by client name: `apiTokens`, or every `NAME.token` file of
    /// the token directory (none when it does not exist). A token file others can read is
    /// refused, and with it the start or the reload.
    public func loadAPITokens() throws -> [String: String] {
        if let apiTokens { return apiTokens }
        let directory = resolvedAPITokenDirectory
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [:] }
        var tokens: [String: String] = [:]
        for name in names.sorted() where name.hasSuffix(".token") {
            tokens[String(name.dropLast(6))] = try SecretFile.read(directory.appendingPathComponent(name), what: "API token file")
        }
        return tokens
    }

    /// The broker's keys: `keys`, or the key file. Nil with plaintext transport.
    public func loadKeys() throws -> KeyFile? {
        guard transport == .curve else { return nil }
        return try keys ?? KeyFile.load(resolvedKeyFile, owner: "broker")
    }

    public static func parse(_ reader: ConfigReader?, relativeTo base: URL) throws -> BrokerConfiguration {
        var config = BrokerConfiguration()
        guard let reader else { return config }
        try reader.allowOnly(HTTPListenerSettings.keys.union(BrokerLimits.keys).union([
            "router", "monitor", "http", "data_dir", "synchronous", "max_message_bytes", "heartbeat_ms", "max_credit", "max_batch",
            "mailbox_memory", "key_file", "api_tokens", "checkpoint_interval",
        ]))
        config.httpListener = try HTTPListenerSettings.parse(reader)
        config.router = try reader.string("router") ?? config.router
        config.monitor = try reader.string("monitor") ?? config.monitor
        if let http = try reader.string("http") {
            guard let parsed = HostPort(http) else { throw reader.error("http", "'\(http)' is not host:port") }
            config.http = parsed
        }
        if let dir = try reader.string("data_dir") { config.dataDirectory = URL(fileURLWithPath: dir, relativeTo: base).standardizedFileURL }
        if let file = try reader.string("key_file") { config.keyFile = URL(fileURLWithPath: file, relativeTo: base).standardizedFileURL }
        if let dir = try reader.string("api_tokens") { config.apiTokenDirectory = URL(fileURLWithPath: dir, relativeTo: base).standardizedFileURL }
        config.durability = try readDurability(reader) ?? config.durability
        config.maxMessageBytes = try reader.int("max_message_bytes", in: 1024...(64 << 20)) ?? config.maxMessageBytes
        config.heartbeatMs = try reader.int("heartbeat_ms", in: 100...600_000) ?? config.heartbeatMs
        config.maxCredit = try reader.int("max_credit", in: 1...100_000) ?? config.maxCredit
        config.maxBatch = try reader.int("max_batch", in: 1...100_000) ?? config.maxBatch
        config.mailboxMemory = try reader.int("mailbox_memory", in: 16...1_000_000) ?? config.mailboxMemory
        config.limits = try BrokerLimits.parse(reader)
        if let interval = try reader.duration("checkpoint_interval") {
            guard interval >= 1, interval <= 86400 else { throw reader.error("checkpoint_interval", "must be between 1s and 1d") }
            config.checkpointInterval = interval
        }
        return config
    }
}

/// An adapter's settings, from the `[adapter]` table of rujuk.toml (and the command line).
public struct AdapterConfiguration: Sendable {
    /// The agency this adapter speaks for.
    public var agency: String
    /// The broker's ROUTER endpoint. Default `tcp://127.0.0.1:7700`.
    public var broker: String
    /// The agency system's API. Default `127.0.0.1:7790`; keep it on loopback.
    public var api: HostPort
    /// Where the ledger lives; the adapter uses `<data_dir>/<agency>`. Default `data/adapters`.
    public var dataDirectory: URL
    /// The bearer token of the API. Default: read from `<data_dir>/<agency>/api.token`,
    /// written with a random token (mode 0600) on first start.
    public var token: String?
    /// Default `.full`.
    public var durability: Durability
    /// DELIVERs the broker may have outstanding with this adapter. Default 256.
    public var credit: Int
    /// REFER/UPDATE messages sent and not yet committed, at most. Default 1024.
    public var sendWindow: Int
    /// Heartbeat interval. Default 2 s.
    public var heartbeatMs: Int
    /// Optional webhook for the agency system's events.
    public var webhook: WebhookConfiguration?
    /// How often the SLA clocks are swept (escalations, warnings), in seconds. Default 1 s.
    public var sweepInterval: TimeInterval
    /// Default `.curve`; must match the broker.
    public var transport: Transport
    /// The agency's key file (CurveZMQ and sealing keys). Default `<data_dir>/<agency>/agency.key`.
    public var keyFile: URL?
    /// Keys already in memory (the demo, tests); when set, `keyFile` is not read.
    public var keys: KeyFile?
    /// The broker's CurveZMQ public key (Z85); required with `.curve`.
    public var brokerKey: String?
    /// The broker's checkpoint signing key (Ed25519, base64), as `rujuk keygen --broker` prints
    /// it. Without it the adapter cannot tell a checkpoint from a forgery: it keeps none, and
    /// says so in a security warning for each one it is sent.
    public var brokerSignKey: String?
    /// How long the personal data of a closed handoff is kept before `rujuk purge` removes it.
    /// Default 730 days.
    public var retention: TimeInterval
    /// How long the personal data of a handoff that is never closed (never answered, never
    /// completed) is kept, from its creation, before `rujuk purge` removes it. Default 365 days.
    public var openRetention: TimeInterval
    /// How long before that the agency system is told (`handoff.retention_notice`); the data is
    /// removed no sooner than this after the notice. Default 30 days.
    public var retentionNotice: TimeInterval
    /// Timeouts, connection cap and accepted `Host` names of the API.
    public var apiListener: HTTPListenerSettings
    /// `allow_plaintext_off_loopback` (top level): lets a plaintext link reach a broker off this
    /// machine. Default false: `checkExposure()` refuses it.
    public var allowPlaintextOffLoopback: Bool
    /// `allow_api_without_tls_off_loopback`: lets the plain-HTTP API bind off loopback.
    /// Default false: `checkExposure()` refuses it.
    public var allowAPIWithoutTLSOffLoopback: Bool

    public init(
        agency: String, broker: String = "tcp://127.0.0.1:7700", api: HostPort = HostPort(host: "127.0.0.1", port: 7790),
        dataDirectory: URL = URL(fileURLWithPath: "data/adapters"), token: String? = nil, durability: Durability = .full,
        credit: Int = 256, sendWindow: Int = 1024, heartbeatMs: Int = 2000, webhook: WebhookConfiguration? = nil,
        sweepInterval: TimeInterval = 1, transport: Transport = .curve, keyFile: URL? = nil, keys: KeyFile? = nil,
        brokerKey: String? = nil, brokerSignKey: String? = nil, retention: TimeInterval = 730 * 86400,
        openRetention: TimeInterval = 365 * 86400, retentionNotice: TimeInterval = 30 * 86400,
        apiListener: HTTPListenerSettings = HTTPListenerSettings(), allowPlaintextOffLoopback: Bool = false,
        allowAPIWithoutTLSOffLoopback: Bool = false
    ) {
        self.openRetention = openRetention
        self.retentionNotice = retentionNotice
        self.apiListener = apiListener
        self.allowPlaintextOffLoopback = allowPlaintextOffLoopback
        self.allowAPIWithoutTLSOffLoopback = allowAPIWithoutTLSOffLoopback
        self.sweepInterval = sweepInterval
        self.transport = transport
        self.keyFile = keyFile
        self.keys = keys
        self.brokerKey = brokerKey
        self.brokerSignKey = brokerSignKey
        self.retention = retention
        self.agency = agency
        self.broker = broker
        self.api = api
        self.dataDirectory = dataDirectory
        self.token = token
        self.durability = durability
        self.credit = credit
        self.sendWindow = sendWindow
        self.heartbeatMs = heartbeatMs
        self.webhook = webhook
    }

    /// The adapter's own folder: `<data_dir>/<agency>`.
    public var agencyDirectory: URL { dataDirectory.appendingPathComponent(agency, isDirectory: true) }

    public var resolvedKeyFile: URL { keyFile ?? agencyDirectory.appendingPathComponent("agency.key") }

    /// The agency's keys: `keys`, or the key file.
    public func loadKeys() throws -> KeyFile {
        try keys ?? KeyFile.load(resolvedKeyFile, owner: agency)
    }

    public static func parse(_ reader: ConfigReader?, agency: String, relativeTo base: URL) throws -> AdapterConfiguration {
        var config = AdapterConfiguration(agency: agency)
        guard let reader else { return config }
        try reader.allowOnly(HTTPListenerSettings.keys.union([
            "broker", "api", "data_dir", "token", "synchronous", "credit", "send_window", "heartbeat_ms", "webhook", "sweep_interval",
            "key_file", "broker_key", "broker_sign_key", "retention", "open_retention", "retention_notice", "allow_api_without_tls_off_loopback",
        ]))
        config.apiListener = try HTTPListenerSettings.parse(reader)
        config.allowAPIWithoutTLSOffLoopback = try reader.bool("allow_api_without_tls_off_loopback") ?? false
        if let file = try reader.string("key_file") {
            config.keyFile = URL(fileURLWithPath: file.replacingOccurrences(of: "{agency}", with: agency), relativeTo: base).standardizedFileURL
        }
        if let key = try reader.string("broker_key") {
            guard KeyText.isZ85Key(key) else { throw reader.error("broker_key", "must be the broker's CurveZMQ public key: 40 Z85 characters") }
            config.brokerKey = key
        }
        if let key = try reader.string("broker_sign_key") {
            guard KeyText.isBase64Key(key) else {
                throw reader.error("broker_sign_key", "must be the broker's checkpoint signing key: 32 bytes in base64")
            }
            config.brokerSignKey = key
        }
        if let open = try reader.duration("open_retention") {
            guard open >= 7 * 86400 else { throw reader.error("open_retention", "must be at least 7d") }
            config.openRetention = open
        }
        if let notice = try reader.duration("retention_notice") {
            guard notice >= 86400 else { throw reader.error("retention_notice", "must be at least 1d") }
            config.retentionNotice = notice
        }
        guard config.retentionNotice < config.openRetention else {
            throw reader.error("retention_notice", "must be shorter than open_retention")
        }
        if let retention = try reader.duration("retention") {
            guard retention >= 86400 else { throw reader.error("retention", "must be at least 1d") }
            config.retention = retention
        }
        if let interval = try reader.duration("sweep_interval") {
            guard interval >= 0.01, interval <= 3600 else { throw reader.error("sweep_interval", "must be between 10ms and 1h") }
            config.sweepInterval = interval
        }
        config.broker = try reader.string("broker") ?? config.broker
        if let api = try reader.string("api") {
            guard let parsed = HostPort(api) else { throw reader.error("api", "'\(api)' is not host:port") }
            config.api = parsed
        }
        if let dir = try reader.string("data_dir") { config.dataDirectory = URL(fileURLWithPath: dir, relativeTo: base).standardizedFileURL }
        config.token = try reader.string("token")
        config.durability = try readDurability(reader) ?? config.durability
        config.credit = try reader.int("credit", in: 1...100_000) ?? config.credit
        config.sendWindow = try reader.int("send_window", in: 1...100_000) ?? config.sendWindow
        config.heartbeatMs = try reader.int("heartbeat_ms", in: 100...600_000) ?? config.heartbeatMs
        if let webhook = try reader.table("webhook") {
            try webhook.allowOnly(["url", "max_attempts", "timeout"])
            let url = try webhook.requiredString("url")
            guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? "") else {
                throw webhook.error("url", "'\(url)' is not an http(s) URL")
            }
            config.webhook = WebhookConfiguration(
                url: parsed, maxAttempts: try webhook.int("max_attempts", in: 1...1000) ?? 12,
                timeout: try webhook.duration("timeout") ?? 10
            )
        }
        return config
    }
}

/// Where the adapter POSTs its agency system's events, and how hard it tries.
public struct WebhookConfiguration: Sendable, Equatable {
    public var url: URL
    /// Attempts per event before it is given up (and left in the ledger as failed). Default 12.
    public var maxAttempts: Int
    /// Per-request timeout in seconds. Default 10.
    public var timeout: TimeInterval

    public init(url: URL, maxAttempts: Int = 12, timeout: TimeInterval = 10) {
        self.url = url
        self.maxAttempts = maxAttempts
        self.timeout = timeout
    }
}

private func readDurability(_ reader: ConfigReader) throws -> Durability? {
    guard let text = try reader.string("synchronous") else { return nil }
    guard let value = Durability(rawValue: text) else { throw reader.error("synchronous", "must be \"full\" or \"normal\"") }
    return value
}

/// Everything in rujuk.toml, with the agencies and SLA files it points to.
public struct RujukConfiguration: Sendable {
    public var broker: BrokerConfiguration
    /// The `[adapter]` table as written; `adapter(for:)` applies it to one agency.
    public var adapterTable: ConfigReader?
    public var registry: AgencyRegistry
    public var sla: SLAPolicy
    public var baseDirectory: URL
    /// `transport` (top level): how the broker's sockets are protected, for it and every adapter.
    public var transport: Transport
    /// `allow_plaintext_off_loopback` (top level), for the broker and every adapter.
    public var allowPlaintextOffLoopback: Bool = false

    /// Loads rujuk.toml and the agencies.toml and sla.toml it names (by default, beside it).
    public static func load(_ url: URL) throws -> RujukConfiguration {
        let reader = try ConfigReader.load(url)
        try reader.allowOnly(["broker", "adapter", "agencies", "sla", "transport", "allow_plaintext_off_loopback"])
        let allowPlaintextOffLoopback = try reader.bool("allow_plaintext_off_loopback") ?? false
        let transportName = try reader.string("transport") ?? Transport.curve.rawValue
        guard let transport = Transport(rawValue: transportName) else {
            throw reader.error("transport", "must be \"curve\" or \"plaintext\"")
        }
        let base = url.deletingLastPathComponent()
        // Relative data directories are taken from the working directory, as operators expect;
        // the agencies and SLA files are found beside rujuk.toml.
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
        let agencies = URL(fileURLWithPath: try reader.string("agencies") ?? "agencies.toml", relativeTo: base)
        let sla = URL(fileURLWithPath: try reader.string("sla") ?? "sla.toml", relativeTo: base)
        let registry = try AgencyRegistry.load(agencies)
        let policy = FileManager.default.fileExists(atPath: sla.path) ? try SLAPolicy.load(sla) : .standard
        try policy.escalation.validate(against: registry)
        var broker = try BrokerConfiguration.parse(try reader.table("broker"), relativeTo: cwd)
        broker.transport = transport
        broker.allowPlaintextOffLoopback = allowPlaintextOffLoopback
        return RujukConfiguration(
            broker: broker,
            adapterTable: try reader.table("adapter"),
            registry: registry,
            sla: policy,
            baseDirectory: cwd,
            transport: transport,
            allowPlaintextOffLoopback: allowPlaintextOffLoopback
        )
    }

    public func adapter(for agency: String) throws -> AdapterConfiguration {
        guard registry[agency] != nil else {
            throw ConfigError(file: "agencies.toml", line: 0, message: "agency '\(agency)' is not in the registry")
        }
        var config = try AdapterConfiguration.parse(adapterTable, agency: agency, relativeTo: baseDirectory)
        config.transport = transport
        config.allowPlaintextOffLoopback = allowPlaintextOffLoopback
        if transport == .curve && config.brokerKey == nil {
            throw ConfigError(file: adapterTable?.file ?? "rujuk.toml", line: 0, message: "'adapter.broker_key' is required with transport = \"curve\": the broker's public key, as `rujuk keygen --broker` prints it")
        }
        return config
    }
}
