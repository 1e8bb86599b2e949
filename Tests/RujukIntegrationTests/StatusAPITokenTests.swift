import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RujukBroker
import RujukCore
import Testing

/// The broker's status API serves every handoff's envelope and the feed: only coordinators'
/// systems with a token of their own may read it.
@Suite(.serialized, .timeLimit(.minutes(5))) struct StatusAPITokenTests {
    @Test func theStatusAPIRefusesAnyoneWithoutAToken() async throws {
        let network = try Network()
        let task = Task { try await network.broker.run() }
        defer { task.cancel() }
        try await waitFor("the status API listens") { network.broker.boundHTTPPort != nil }
        let base = "http://127.0.0.1:\(network.broker.boundHTTPPort!)"
        for path in ["/api/handoffs", "/api/feed?after=0", "/api/handoffs/\(MessageID.make())"] {
            for token in [nil, "", "wrong", Network.statusToken + "x", String(Network.statusToken.dropLast())] {
                let (status, body, _) = try await fetch(base + path, token: token)
                #expect(status == 401, "\(path) with \(token ?? "no token")")
                #expect(String(decoding: body, as: UTF8.self).contains("unauthorized"))
            }
        }
        #expect(try await fetch(base + "/api/handoffs", token: Network.statusToken).status == 200)
        #expect(try await fetch(base + "/health").status == 200, "health stays open to monitoring")
    }

    @Test func tokenFilesAreMadePrivateReadAtStartAndRevokedOnReload() async throws {
        let network = try Network()
        network.broker.shutdown()
        let data = network.directory.appendingPathComponent("token-broker")
        let config = network.directory.appendingPathComponent("rujuk.toml")
        try FileManager.default.createDirectory(at: network.directory, withIntermediateDirectories: true)
        try "agencies = \"\(Network.childFiles.agencies)\"\n[broker]\ndata_dir = \"\(data.path)\"\n".write(to: config, atomically: true, encoding: .utf8)

        // `rujuk broker token` makes the file, 0600 from its creation.
        let make = Process()
        make.executableURL = BrokerProcess.binary
        make.arguments = ["broker", "token", "--name", "siska-nasional", "--config", config.path]
        make.standardOutput = FileHandle.nullDevice
        try make.run()
        try await waitFor("the token is made", timeout: 30) { !make.isRunning }
        #expect(make.terminationStatus == 0)
        let file = data.appendingPathComponent("api-tokens/siska-nasional.token")
        let mode = try #require(FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? NSNumber).intValue
        #expect(mode == 0o600)
        let token = try String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.count == 64)

        var configuration = BrokerConfiguration(router: "tcp://127.0.0.1:*", monitor: "tcp://127.0.0.1:*", http: HostPort(host: "127.0.0.1", port: 0),
                                                dataDirectory: data, keys: Network.keys.broker)
        #expect(try configuration.loadAPITokens() == ["siska-nasional": token])
        let broker = try Broker(configuration: configuration, registry: Network.registry, context: network.context, logger: network.logger)
        let task = Task { try await broker.run() }
        defer { task.cancel(); broker.shutdown() }
        try await waitFor("the status API listens") { broker.boundHTTPPort != nil }
        let url = "http://127.0.0.1:\(broker.boundHTTPPort!)/api/handoffs"
        #expect(try await fetch(url, token: token).status == 200)

        // A token file others could read is refused, and the running tokens stay.
        let loose = data.appendingPathComponent("api-tokens/loose.token")
        try "0123456789abcdef0123456789abcdef".write(to: loose, atomically: true, encoding: .utf8)
        #expect(chmod(loose.path, 0o644) == 0)
        #expect(throws: ConfigError.self) { try broker.reload(Network.registry) }
        #expect(try await fetch(url, token: token).status == 200)
        configuration.apiTokens = nil
        #expect(throws: ConfigError.self) { _ = try configuration.loadAPITokens() }

        // Removing a client's file and reloading revokes it at once.
        try FileManager.default.removeItem(at: loose)
        try FileManager.default.removeItem(at: file)
        try broker.reload(Network.registry)
        #expect(try await fetch(url, token: token).status == 401)
    }
}
