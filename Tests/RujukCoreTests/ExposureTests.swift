import Foundation
import Testing
@testable import RujukCore

/// The settings that refuse to expose a plaintext socket or the plain-HTTP API to the network,
/// and the HTTP listener's limits, as rujuk.toml gives them.
@Suite(.timeLimit(.minutes(3))) struct ExposureTests {
    @Test func loopbackHostsAreRecognisedAndEverythingElseIsNot() {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]"] {
            #expect(Loopback.isLoopbackHost(host), "\(host)")
        }
        for host in ["0.0.0.0", "::", "*", "10.8.0.1", "128.0.0.1", "127.0.0.1.nip.io", "broker.vpn", "eth0", "127.0.0.256", ""] {
            #expect(!Loopback.isLoopbackHost(host), "\(host)")
        }
        for endpoint in ["tcp://127.0.0.1:7700", "tcp://localhost:*", "tcp://[::1]:7700", "ipc:///run/rujuk.sock", "inproc://x",
                         "tcp://10.0.0.1;127.0.0.1:7700"] {
            #expect(Loopback.isLocalEndpoint(endpoint), "\(endpoint)")
        }
        for endpoint in ["tcp://0.0.0.0:7700", "tcp://*:7700", "tcp://eth0:7700", "tcp://broker.rujuk.vpn:7700", "tcp://10.8.0.1:7700", "garbage"] {
            #expect(!Loopback.isLocalEndpoint(endpoint), "\(endpoint)")
        }
    }

    @Test func aPlaintextBrokerOffLoopbackIsRefusedUnlessAllowed() throws {
        for (router, monitor) in [("tcp://0.0.0.0:7700", "tcp://127.0.0.1:7701"), ("tcp://127.0.0.1:7700", "tcp://*:7701")] {
            var config = BrokerConfiguration(router: router, monitor: monitor, transport: .plaintext)
            let error = try #require(throws: ConfigError.self) { try config.checkExposure() }
            #expect(error.message.contains("plaintext") && error.message.contains("allow_plaintext_off_loopback"))
            config.allowPlaintextOffLoopback = true
            #expect(throws: Never.self) { try config.checkExposure() }
        }
        #expect(throws: Never.self) { try BrokerConfiguration(router: "tcp://0.0.0.0:7700", transport: .curve).checkExposure() }
        #expect(throws: Never.self) { try BrokerConfiguration(transport: .plaintext).checkExposure() }
    }

    @Test func anAdapterRefusesAPlaintextLinkOffLoopbackAndAnAPIOffLoopbackUnlessAllowed() throws {
        var link = AdapterConfiguration(agency: "lpsk", broker: "tcp://10.8.0.1:7700", transport: .plaintext)
        let linkError = try #require(throws: ConfigError.self) { try link.checkExposure() }
        #expect(linkError.message.contains("allow_plaintext_off_loopback"))
        link.allowPlaintextOffLoopback = true
        #expect(throws: Never.self) { try link.checkExposure() }
        #expect(throws: Never.self) { try AdapterConfiguration(agency: "lpsk", broker: "tcp://10.8.0.1:7700", transport: .curve).checkExposure() }
        #expect(throws: Never.self) { try AdapterConfiguration(agency: "lpsk", broker: "tcp://localhost:7700", transport: .plaintext).checkExposure() }

        for host in ["0.0.0.0", "10.8.0.2", "::"] {
            var api = AdapterConfiguration(agency: "lpsk", api: HostPort(host: host, port: 7790))
            let apiError = try #require(throws: ConfigError.self) { try api.checkExposure() }
            #expect(apiError.message.contains("allow_api_without_tls_off_loopback"))
            api.allowAPIWithoutTLSOffLoopback = true
            #expect(throws: Never.self) { try api.checkExposure() }
        }
        #expect(throws: Never.self) { try AdapterConfiguration(agency: "lpsk").checkExposure() }
    }

    @Test func theAllowancesAreReadFromRujukToml() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-exposure-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let agencies = ConfigTests.config.appendingPathComponent("agencies.toml").path
        func load(_ text: String) throws -> RujukConfiguration {
            let file = directory.appendingPathComponent("rujuk-\(UUID().uuidString).toml")
            try "agencies = \"\(agencies)\"\ntransport = \"plaintext\"\n\(text)".write(to: file, atomically: true, encoding: .utf8)
            return try RujukConfiguration.load(file)
        }
        let exposed = """
            [broker]
            router = "tcp://0.0.0.0:7700"
            [adapter]
            broker = "tcp://10.8.0.1:7700"
            api = "0.0.0.0:7790"
            """
        let refused = try load(exposed)
        #expect(throws: ConfigError.self) { try refused.broker.checkExposure() }
        #expect(throws: ConfigError.self) { try refused.adapter(for: "lpsk").checkExposure() }

        let allowed = try load("allow_plaintext_off_loopback = true\n" + exposed + "\nallow_api_without_tls_off_loopback = true")
        #expect(throws: Never.self) { try allowed.broker.checkExposure() }
        #expect(throws: Never.self) { try allowed.adapter(for: "lpsk").checkExposure() }
        // The API allowance alone does not let the plaintext link through.
        let apiOnly = try load(exposed + "\nallow_api_without_tls_off_loopback = true")
        let error = try #require(throws: ConfigError.self) { try apiOnly.adapter(for: "lpsk").checkExposure() }
        #expect(error.message.contains("plaintext"))
    }

    @Test func listenerSettingsHaveDefaultsAndAreRead() throws {
        func broker(_ text: String) throws -> BrokerConfiguration {
            try BrokerConfiguration.parse(
                ConfigReader(file: "rujuk.toml", table: TOMLParser.parse("[broker]\n" + text, file: "rujuk.toml")).table("broker"),
                relativeTo: URL(fileURLWithPath: "/"))
        }
        #expect(try broker("").httpListener == HTTPListenerSettings(headerTimeout: 10, idleTimeout: 60, maxConnections: 512, allowedHosts: []))
        let set = try broker("""
            header_timeout = "2s"
            idle_timeout = "90s"
            max_connections = 64
            allowed_hosts = ["rujuk-broker.vpn", "10.8.0.1:8443"]
            """)
        #expect(set.httpListener == HTTPListenerSettings(headerTimeout: 2, idleTimeout: 90, maxConnections: 64, allowedHosts: ["rujuk-broker.vpn", "10.8.0.1:8443"]))
        #expect(throws: ConfigError.self) { try broker("max_connections = 0") }
        #expect(throws: ConfigError.self) { try broker("header_timeout = \"0s\"") }
        #expect(throws: ConfigError.self) { try broker("allowed_hosts = [\"http://evil/\"]") }

        let adapter = try AdapterConfiguration.parse(
            ConfigReader(file: "rujuk.toml", table: TOMLParser.parse("[adapter]\nheader_timeout = \"3s\"\nallowed_hosts = [\"adapter.local\"]\n", file: "rujuk.toml")).table("adapter"),
            agency: "lpsk", relativeTo: URL(fileURLWithPath: "/"))
        #expect(adapter.apiListener.headerTimeout == 3 && adapter.apiListener.allowedHosts == ["adapter.local"])
        #expect(adapter.apiListener.maxConnections == 512 && !adapter.allowAPIWithoutTLSOffLoopback)
    }
}
