import Foundation
import Testing
@testable import RujukCore

@Suite struct ConfigTests {
    static let config = ProtocolExampleTests.root.appendingPathComponent("Config")

    @Test func shippedConfigurationLoads() throws {
        let configuration = try RujukConfiguration.load(Self.config.appendingPathComponent("rujuk.toml"))
        #expect(configuration.broker.durability == .full)
        let registry = configuration.registry
        for id in ["polda-kepri", "lpsk", "rsud-embung-fatimah", "lbh-batam", "uptd-ppa-batam", "kjri-johor-bahru", "kbri-kuala-lumpur", "gugus-tugas-batam", "dinsos-kupang"] {
            #expect(registry[id] != nil, "\(id) missing from agencies.toml")
        }
        #expect(throws: RujukError.self) { try registry.checkRoute(from: "polda-kepri", to: "rsud-embung-fatimah", service: .witnessProtection) }
        #expect(throws: Never.self) { try registry.checkRoute(from: "polda-kepri", to: "lpsk", service: .witnessProtection) }
    }

    @Test func errorsNameTheFileAndLine() {
        let text = """
            [[agency]]
            id = "polda-kepri"
            name = "Polda"
            kind = "police"
            province = "ID-KR"
            regency = "Batam"
            services = ["investigation", "massage"]
            """
        #expect(throws: ConfigError(file: "agencies.toml", line: 7, message: "'agency[0].services': unknown service 'massage' (expected one of: \(Service.allCases.map(\.rawValue).joined(separator: ", ")))")) {
            try AgencyRegistry.parse(ConfigReader(file: "agencies.toml", table: TOMLParser.parse(text, file: "agencies.toml")))
        }
    }

    @Test func syntaxErrorsNameTheLine() {
        #expect(throws: ConfigError(file: "rujuk.toml", line: 3, message: "a string is not closed before the end of the line")) {
            try TOMLParser.parse("[broker]\nrouter = \"tcp://x\"\nhttp = \"127.0.0.1:1\n", file: "rujuk.toml")
        }
        #expect(throws: ConfigError(file: "rujuk.toml", line: 2, message: "'broker.synchronus': unknown key (expected one of: data_dir, handshake_timeout_ms, heartbeat_ms, http, key_file, mailbox_memory, max_batch, max_connections, max_connections_per_address, max_credit, max_message_bytes, monitor, receive_hwm, router, security_log_lines, send_hwm, session_hello_rate, session_rate, synchronous)")) {
            try BrokerConfiguration.parse(ConfigReader(file: "rujuk.toml", table: TOMLParser.parse("[broker]\nsynchronus = \"full\"\n", file: "rujuk.toml")).table("broker"), relativeTo: URL(fileURLWithPath: "/"))
        }
    }

    @Test func tomlParsesWhatTheConfigUses() throws {
        let table = try TOMLParser.parse("""
            # comment
            a = 1_000
            b = 'lit'
            c = [ "x",
                  "y", ]
            d = { e = true, f = 2.5 }
            [t.u]
            v = "\\u00e9"
            [[w]]
            x = 1
            [[w]]
            x = 2
            """, file: "t.toml")
        #expect(table["a"]?.value == .integer(1000))
        #expect(table["b"]?.value == .string("lit"))
        guard case .array(let items)? = table["c"]?.value else { Issue.record("c"); return }
        #expect(items.map(\.value) == [.string("x"), .string("y")])
        guard case .table(let t)? = table["t"]?.value, case .table(let u)? = t["u"]?.value else { Issue.record("t.u"); return }
        #expect(u["v"]?.value == .string("é"))
        guard case .array(let w)? = table["w"]?.value else { Issue.record("w"); return }
        #expect(w.count == 2)
    }

    @Test func durationsParseAndFormat() {
        #expect(Duration.parse("15m") == 900)
        #expect(Duration.parse("1h30m") == 5400)
        #expect(Duration.parse("500ms") == 0.5)
        #expect(Duration.parse("7 days") == nil)
        #expect(Duration.format(5400) == "1h30m")
    }

    @Test func slaPolicyStampsDeadlines() throws {
        let policy = try SLAPolicy.load(Self.config.appendingPathComponent("sla.toml"))
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        let due = policy.deadlines(service: .medicalCare, priority: .emergency, createdAt: now)
        #expect(due.receive == now + 15 * 60)
        #expect(due.respond == now + 3600)
        #expect(due.complete <= now + 7 * 86400)
    }
}
