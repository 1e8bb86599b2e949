import Foundation
import Hummingbird
import Logging
import NIOCore
import RujukCore
import RujukHTTP
import RujukStorage
import ServiceLifecycle
import ZeroMQ

/// The broker process: the store, the router thread and the HTTP status API, run as one
/// `Service` that stops gracefully (the router finishes its group commit, then closes).
public final class Broker: ServiceLifecycle.Service, @unchecked Sendable {
    public let configuration: BrokerConfiguration
    public let store: BrokerStore
    public let router: RouterLoop
    private let api: StatusAPI
    private let logger: Logger
    private let httpPort = Locked<Int?>(nil)
    /// The ROUTER endpoint actually bound.
    public let routerEndpoint: String
    /// The monitor feed's bound PUB endpoint.
    public var monitorEndpoint: String { router.monitorEndpoint }
    /// The ZAP handler, with CURVE transport.
    private let zap: ZAPHandler?
    /// The registry the ZAP handler admits keys from; replaced on reload.
    private let admitted: Locked<AgencyRegistry>
    /// The status API's client tokens, by client name; re-read on reload.
    private let apiTokens: Locked<[String: String]>

    /// ZAP domains: the ROUTER admits every registered agency, the monitor feed only those
    /// with the `monitor` role.
    static let routerDomain = "rujuk"
    static let monitorDomain = "rujuk-monitor"

    /// Opens the store, starts the ZAP handler (CURVE) and binds the ROUTER. The HTTP server
    /// starts in `run()`.
    public init(configuration: BrokerConfiguration, registry: AgencyRegistry, context: Context, clock: any RujukCore.Clock = SystemClock(), logger: Logger) throws {
        try configuration.checkExposure()
        self.configuration = configuration
        self.logger = logger
        let keys = try configuration.loadKeys()
        // Before SQLite opens the store: it gives a new -wal and -shm the store's own mode.
        try PrivateFiles.makeDirectory(configuration.dataDirectory)
        try PrivateFiles.tighten(configuration.dataDirectory, logger: logger)
        let admitted = Locked(registry)
        self.admitted = admitted
        let events = SecurityEvents(clock: clock, linesPerInterval: configuration.limits.securityLogLines)
        if keys != nil {
            let missing = registry.agencies.filter { $0.curveKey == nil }.map(\.id)
            if !missing.isEmpty {
                logger.warning("agencies without a curve_key cannot connect", metadata: ["agencies": "\(missing.joined(separator: ", "))"])
            }
            // Started before any socket is bound: a CURVE socket with ZAP_ENFORCE_DOMAIN refuses
            // everyone while no handler answers, never admits anyone.
            let zap = ZAPHandler(context: context) { request in
                Self.admit(request, registry: admitted.current, logger: logger, events: events)
            }
            try zap.start()
            self.zap = zap
        } else {
            zap = nil
            logger.warning("transport is plaintext: no encryption and no authentication on the broker's sockets (for the demo only)")
        }
        do {
            let signer = try keys.flatMap(CheckpointSigner.init)
            if keys != nil, signer == nil {
                // Then nothing outside the broker can show that its audit log was rewritten.
                logger.warning("security: no sign key in the broker's key file: no audit checkpoints are sent",
                               metadata: ["fix": "rujuk keygen --broker --add-sign-key"])
            }
            store = try BrokerStore(directory: configuration.dataDirectory, durability: configuration.durability)
            router = RouterLoop(configuration: configuration, registry: registry, keys: keys, signer: signer, store: store, context: context,
                                clock: clock, logger: logger, securityEvents: events)
            routerEndpoint = try router.start()
        } catch {
            zap?.stop()
            throw error
        }
        apiTokens = Locked(try configuration.loadAPITokens())
        if apiTokens.current.isEmpty {
            logger.notice("the status API has no client tokens: /api refuses every request; make one with `rujuk broker token --name NAME`")
        }
        api = StatusAPI(store: store, router: router, clock: clock, durability: configuration.durability, registry: registry, tokens: apiTokens)
        logger.info("broker listening", metadata: ["router": "\(routerEndpoint)", "store": "\(store.url.path)"])
    }

    /// The HTTP port actually bound, once `run()` has started the server.
    public var boundHTTPPort: Int? { httpPort.current }

    public func run() async throws {
        let port = httpPort
        let hosts = HostAllowList(listener: configuration.http, settings: configuration.httpListener) { port.current }
        let app = Application(
            router: api.routes(hosts: hosts),
            server: HTTPListener.server(configuration.httpListener),
            configuration: .init(address: .hostname(configuration.http.host, port: configuration.http.port), serverName: "rujuk-broker"),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } },
            logger: logger
        )
        defer { shutdown() }
        // Application.run returns on graceful shutdown (SIGTERM/SIGINT through the ServiceGroup).
        try await app.run()
        logger.info("broker stopped")
    }

    /// Stops the router thread and the ZAP handler (idempotent); for embedding without
    /// ServiceLifecycle.
    public func shutdown() {
        router.stop()
        zap?.stop()
    }

    /// Applies a new registry (SIGHUP, `rujuk broker reload`): new connections are admitted by
    /// the new keys at once, and live connections on a removed or replaced key are cut. The
    /// status API's token files are read again too (a removed file revokes its client at once);
    /// one that others can read refuses the whole reload.
    public func reload(_ registry: AgencyRegistry) throws {
        let tokens = try configuration.loadAPITokens()
        admitted.withLock { $0 = registry }
        router.reload(registry)
        apiTokens.withLock { $0 = tokens }
    }

    /// The ZAP decision: a CURVE key listed in agencies.toml, on the ROUTER; on the monitor
    /// feed, only an agency with the `monitor` role. The User-Id is `agency key`, so that the
    /// router can tell a connection made with a key since revoked.
    static func admit(_ request: ZAPRequest, registry: AgencyRegistry, logger: Logger, events: SecurityEvents) -> String? {
        guard let key = request.clientKey, let agency = registry.agency(curveKey: key) else {
            logger.security(.unknownKey, "connection refused, unknown key", metadata: ["peer": "\(request.address)", "domain": "\(request.domain)"],
                            events: events)
            return nil
        }
        switch request.domain {
        case routerDomain:
            return "\(agency.id) \(key)"
        case monitorDomain where agency.roles.contains(.monitor):
            return "\(agency.id) \(key)"
        default:
            logger.security(.notAllowed, "connection refused, not allowed here", metadata: ["agency.id": "\(agency.id)", "domain": "\(request.domain)"],
                            events: events)
            return nil
        }
    }
}
