import Foundation
import Hummingbird
import Logging
import NIOCore
import RujukCore
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

    /// Opens the store and binds the ROUTER. The HTTP server starts in `run()`.
    public init(configuration: BrokerConfiguration, registry: AgencyRegistry, context: Context, clock: any RujukCore.Clock = SystemClock(), logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        store = try BrokerStore(directory: configuration.dataDirectory, durability: configuration.durability)
        router = RouterLoop(configuration: configuration, registry: registry, store: store, context: context, clock: clock, logger: logger)
        routerEndpoint = try router.start()
        api = StatusAPI(store: store, router: router, clock: clock, durability: configuration.durability, registry: registry)
        logger.info("broker listening", metadata: ["router": "\(routerEndpoint)", "store": "\(store.url.path)"])
    }

    /// The HTTP port actually bound, once `run()` has started the server.
    public var boundHTTPPort: Int? { httpPort.current }

    public func run() async throws {
        let port = httpPort
        let app = Application(
            router: api.routes(),
            configuration: .init(address: .hostname(configuration.http.host, port: configuration.http.port), serverName: "rujuk-broker"),
            onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } },
            logger: logger
        )
        defer { router.stop() }
        // Application.run returns on graceful shutdown (SIGTERM/SIGINT through the ServiceGroup).
        try await app.run()
        logger.info("broker stopped")
    }

    /// Stops the router thread (idempotent); for embedding without ServiceLifecycle.
    public func shutdown() {
        router.stop()
    }
}
