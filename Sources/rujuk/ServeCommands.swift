import ArgumentParser
import Foundation
import Logging
import RujukAdapter
import RujukBroker
import RujukCore
import RujukStorage
import ServiceLifecycle
import ZeroMQ

struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run the broker (the default), tell a running one to reload agencies.toml, or make a status API token.",
        subcommands: [BrokerRunCommand.self, BrokerReloadCommand.self, BrokerTokenCommand.self],
        defaultSubcommand: BrokerRunCommand.self
    )
}

struct BrokerRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the broker: the ROUTER for adapters, the monitor feed and the HTTP status API.",
        discussion: """
            Stops gracefully on SIGTERM or SIGINT: the group commit in progress finishes, then the \
            sockets and the store close. On SIGHUP (or `rujuk broker reload`) it reads \
            agencies.toml again: keys, roles, services and MoUs take effect at once, and a live \
            connection on a key that was removed or replaced is cut. Other settings need a restart.
            """
    )

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try options.load()
        let logger = makeLogger("rujuk.broker")
        let context = try Context()
        let broker = try Broker(configuration: config.broker, registry: config.registry, context: context, logger: logger)
        let pidFile = BrokerReloadCommand.pidFile(config.broker)
        try? Data("\(getpid())\n".utf8).write(to: pidFile)
        defer { try? FileManager.default.removeItem(at: pidFile) }
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { [options] in
            do {
                try broker.reload(try options.load().registry)
                logger.notice("agencies.toml reloaded")
            } catch {
                logger.error("reload refused, the running configuration stays", metadata: ["error": "\(error)"])
            }
        }
        hangup.resume()
        defer { hangup.cancel() }
        logger.info("audit chain head at start", metadata: ["audit.head": "\(broker.store.auditHeadHex)"])
        print("rujuk broker: router \(broker.routerEndpoint) (\(config.broker.transport.rawValue)), monitor \(broker.monitorEndpoint), http \(config.broker.http), store \(broker.store.url.path)")
        let group = ServiceGroup(services: [broker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        logger.info("audit chain head at stop", metadata: ["audit.head": "\(broker.store.auditHeadHex)"])
        try closeAtStop("broker store", logger: logger, broker.store.close)
    }
}

/// Closes a store once its process has stopped writing to it (`DurableDatabase.close`), and
/// says so when a reader kept its log from emptying.
func closeAtStop(_ what: String, logger: Logger, _ close: () throws -> Bool) throws {
    if try !close() {
        logger.warning("\(what): a reader kept the log from emptying at stop; nothing is lost, the next start finishes it")
    }
}

struct BrokerReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Check agencies.toml, then make the running broker reload it (SIGHUP).",
        discussion: "The broker's process id is read from <data_dir>/broker.pid, which the broker writes at start."
    )

    @OptionGroup var options: ConfigOptions

    static func pidFile(_ broker: BrokerConfiguration) -> URL { broker.dataDirectory.appendingPathComponent("broker.pid") }

    func run() throws {
        // A configuration the broker would refuse is refused here first, with its message.
        let config = try options.load()
        let file = Self.pidFile(config.broker)
        guard let text = try? String(contentsOf: file, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw CLIError("no running broker: \(file.path) is missing")
        }
        guard kill(pid, SIGHUP) == 0 else { throw CLIError("no running broker with process id \(pid) (\(file.path) is stale)") }
        print("asked the broker (process \(pid)) to reload \(config.registry.agencies.count) agencies")
    }
}

struct BrokerTokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Make a bearer token for a coordinators' system to read the broker's status API.",
        discussion: """
            Writes a random token to <api_tokens>/NAME.token (default <data_dir>/api-tokens), \
            created with mode 0600, and prints the file's path; give that file to the system \
            (`rujuk watch --status-token-file`, or its Authorization: Bearer header). A running \
            broker takes it at `rujuk broker reload`; removing the file and reloading revokes it.
            """)

    @OptionGroup var options: ConfigOptions
    @Option(help: "The client's name: lowercase letters, digits and dashes (e.g. siska-gugus-tugas).") var name: String

    func run() throws {
        guard ReferralValidation.isAgencyID(name) else { throw ValidationError("--name: lowercase letters, digits and dashes") }
        let directory = try options.load().broker.resolvedAPITokenDirectory
        try PrivateFiles.makeDirectory(directory)
        let file = directory.appendingPathComponent("\(name).token")
        try SecretFile.create(file, secret: SecretFile.randomToken())
        print("token for \(name) written to \(file.path) (mode 0600); `rujuk broker reload` makes a running broker accept it")
    }
}

struct AdapterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapter",
        abstract: "Run an agency's adapter: its ledger, its link to the broker, its local API.",
        discussion: """
            The API listens on [adapter] api (default 127.0.0.1:7790) and needs the bearer token \
            from [adapter] token, or from <data_dir>/<agency>/api.token, written mode 0600 on first \
            start (a token file others can read is refused). Clients should pass it in RUJUK_TOKEN \
            or read the file (--agency), not with --token, which other users see in `ps`.
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
        try closeAtStop("ledger", logger: logger, adapter.ledger.close)
    }
}

extension Optional {
    func orThrow(_ message: String) throws -> Wrapped {
        guard let self else { throw ValidationError(message) }
        return self
    }
}
