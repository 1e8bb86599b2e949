import Foundation
import Testing
@testable import RujukCore

@Suite(.timeLimit(.minutes(5))) struct ConfigTests {
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
        let typo = #expect(throws: ConfigError.self) {
            try BrokerConfiguration.parse(ConfigReader(file: "rujuk.toml", table: TOMLParser.parse("[broker]\nsynchronus = \"full\"\n", file: "rujuk.toml")).table("broker"), relativeTo: URL(fileURLWithPath: "/"))
        }
        #expect(typo?.line == 2 && typo?.message.hasPrefix("'broker.synchronus': unknown key (expected one of: ") == true)
        #expect(typo?.message.contains(" synchronous") == true, "the keys it could have meant are listed: \(typo?.message ?? "")")
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

    @Test func openRetentionAndItsNoticeAreReadAndCheckedAgainstEachOther() throws {
        func adapter(_ lines: String) throws -> AdapterConfiguration {
            let table = try TOMLParser.parse("[adapter]\n" + lines, file: "rujuk.toml")
            return try AdapterConfiguration.parse(ConfigReader(file: "rujuk.toml", table: table).table("adapter"), agency: "lpsk", relativeTo: URL(fileURLWithPath: "/"))
        }
        let defaults = try adapter("")
        #expect(defaults.openRetention == 365 * 86400 && defaults.retentionNotice == 30 * 86400)
        let set = try adapter("open_retention = \"90d\"\nretention_notice = \"14d\"\n")
        #expect(set.openRetention == 90 * 86400 && set.retentionNotice == 14 * 86400)
        for bad in ["open_retention = \"2d\"\n", "retention_notice = \"1h\"\n", "open_retention = \"20d\"\nretention_notice = \"30d\"\n"] {
            #expect(throws: ConfigError.self, "\(bad)") { try adapter(bad) }
        }
    }
}
