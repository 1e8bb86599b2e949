import ArgumentParser
import Foundation
import Logging
import RujukAdapter
import RujukBroker
import RujukCore
import ServiceLifecycle
import ZeroMQ

struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run the broker: the ROUTER for adapters and the HTTP status API.",
        discussion: "Stops gracefully on SIGTERM or SIGINT: the group commit in progress finishes, then the sockets and the store close."
    )

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try options.load()
        let logger = makeLogger("rujuk.broker")
        let context = try Context()
        let broker = try Broker(configuration: config.broker, registry: config.registry, context: context, logger: logger)
        print("rujuk broker: router \(broker.routerEndpoint), http \(config.broker.http), store \(broker.store.url.path)")
        let group = ServiceGroup(services: [broker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}

struct AdapterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapter",
        abstract: "Run an agency's adapter: its ledger, its link to the broker, its local API.",
        discussion: """
            The API listens on [adapter] api (default 127.0.0.1:7790) and needs the bearer token \
            from [adapter] token, or from <data_dir>/<agency>/api.token, written on first start.
            """
    )

    @OptionGroup var options: ConfigOptions
    @Option(help: "The agency this adapter speaks for (an id from agencies.toml).") var agency: String
    @Option(help: "Override [adapter] api (host:port).") var api: String?
    @Option(help: "Override [adapter] broker (the broker's ROUTER endpoint).") var broker: String?

    func run() async throws {
        let config = try options.load()
        var adapterConfig = try config.adapter(for: agency)
        if let api { adapterConfig.api = try HostPort(api).orThrow("--api must be host:port") }
        if let broker { adapterConfig.broker = broker }
        let logger = makeLogger("rujuk.adapter.\(agency)")
        let adapter = try Adapter(configuration: adapterConfig, registry: config.registry, sla: config.sla, context: try Context(), logger: logger)
        print("rujuk adapter \(agency): api http://\(adapterConfig.api), broker \(adapterConfig.broker), ledger \(adapter.ledger.url.path)")
        let group = ServiceGroup(services: [adapter], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}

extension Optional {
    func orThrow(_ message: String) throws -> Wrapped {
        guard let self else { throw ValidationError(message) }
        return self
    }
}
