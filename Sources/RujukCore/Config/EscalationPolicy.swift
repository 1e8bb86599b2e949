import Foundation

/// Who is told when a handoff's clock runs out, from the `[escalation]` part of sla.toml.
///
/// Level 1, at the breach: the sending agency's own duty officer (through its agency system)
/// and its provincial task force. Level 2, `level2After` later if the handoff is still not
/// resolved: the national task force, and LPSK when the case is a witness case. Each notice
/// carries reroute suggestions (`AgencyRegistry.alternatives`).
public struct EscalationPolicy: Sendable, Equatable {
    /// How long a level-1 escalation may stay unresolved before level 2.
    public var level2After: TimeInterval
    /// How long before a deadline the recipient's adapter warns its agency system.
    public var warnBefore: [Priority: TimeInterval]
    /// Level-2 targets for every handoff.
    public var national: [String]
    /// Added at level 2 when the service is one of `witnessServices`.
    public var witness: [String]
    public var witnessServices: [Service]
    /// Level-1 targets by the sender's province (ISO 3166-2).
    public var provinces: [String: [String]]
    /// Per sending agency: its duty officer's desk, and targets replacing the province's.
    public var agencies: [String: AgencyLadder]
    /// Every agency id the file names, with where, so `validate` can point at the line.
    var references: [(id: String, error: ConfigError)] = []
    /// The ids named as escalation targets, each with the error to give if it may not take them.
    var targets: [(id: String, error: ConfigError)] = []

    public struct AgencyLadder: Sendable, Equatable {
        /// Who inside the sending agency answers for stuck handoffs, e.g. "Piket SPKT"; shown to
        /// the agency system with each level-1 notice.
        public var dutyOfficer: String?
        /// Level-1 targets instead of the province's, when given.
        public var level1: [String]?
        /// Extra level-2 targets.
        public var level2: [String]

        public init(dutyOfficer: String? = nil, level1: [String]? = nil, level2: [String] = []) {
            self.dutyOfficer = dutyOfficer
            self.level1 = level1
            self.level2 = level2
        }
    }

    public init(
        level2After: TimeInterval = 4 * 3600,
        warnBefore: [Priority: TimeInterval] = [.emergency: 10 * 60, .urgent: 3600, .routine: 12 * 3600],
        national: [String] = ["gugus-tugas-nasional"], witness: [String] = ["lpsk"],
        witnessServices: [Service] = [.witnessProtection, .investigation, .restitution],
        provinces: [String: [String]] = [:], agencies: [String: AgencyLadder] = [:]
    ) {
        self.level2After = level2After
        self.warnBefore = warnBefore
        self.national = national
        self.witness = witness
        self.witnessServices = witnessServices
        self.provinces = provinces
        self.agencies = agencies
    }

    public static func == (lhs: EscalationPolicy, rhs: EscalationPolicy) -> Bool {
        lhs.level2After == rhs.level2After && lhs.warnBefore == rhs.warnBefore && lhs.national == rhs.national
            && lhs.witness == rhs.witness && lhs.witnessServices == rhs.witnessServices && lhs.provinces == rhs.provinces
            && lhs.agencies == rhs.agencies
    }

    /// The agencies told at `level` about a handoff from `sender` for `service`; never the
    /// sender itself, each once, in a stable order.
    public func targets(level: Int, sender: Agency, service: Service) -> [String] {
        var result: [String] = []
        func add(_ ids: [String]) { for id in ids where id != sender.id && !result.contains(id) { result.append(id) } }
        add(agencies[sender.id]?.level1 ?? provinces[sender.province] ?? [])
        if level >= 2 {
            add(national)
            if witnessServices.contains(service) { add(witness) }
            add(agencies[sender.id]?.level2 ?? [])
        }
        return result
    }

    public func dutyOfficer(for agency: String) -> String? { agencies[agency]?.dutyOfficer }

    /// Checks that every agency the ladder names is in the registry.
    public func validate(against registry: AgencyRegistry) throws {
        for (id, error) in references where registry[id] == nil { throw error }
        for (id, error) in targets where registry[id]?.roles.contains(.escalations) != true { throw error }
    }

    /// Reads `[escalation]` (absent: the defaults above, with no provincial task forces).
    static func parse(_ reader: ConfigReader?) throws -> EscalationPolicy {
        var policy = EscalationPolicy()
        guard let reader else { return policy }
        try reader.allowOnly(["level2_after", "warn_before", "national", "witness", "witness_services", "province", "agency"])
        func ids(_ table: ConfigReader, _ key: String) throws -> [String]? {
            guard let list = try table.strings(key) else { return nil }
            for id in list {
                policy.references.append((id, table.error(key, "'\(id)' is not in the registry")))
                policy.targets.append((id, table.error(key, "'\(id)' does not take escalations: give it roles = [\"escalations\"] in agencies.toml")))
            }
            return list
        }
        if let interval = try reader.duration("level2_after") {
            guard interval > 0 else { throw reader.error("level2_after", "must be more than zero") }
            policy.level2After = interval
        }
        if let warn = try reader.table("warn_before") {
            try warn.allowOnly(Set(Priority.allCases.map(\.rawValue)))
            for priority in Priority.allCases {
                if let lead = try warn.duration(priority.rawValue) { policy.warnBefore[priority] = lead }
            }
        }
        policy.national = try ids(reader, "national") ?? policy.national
        policy.witness = try ids(reader, "witness") ?? policy.witness
        if let services = try reader.strings("witness_services") {
            policy.witnessServices = try services.map {
                guard let service = Service(rawValue: $0) else { throw reader.error("witness_services", "unknown service '\($0)'") }
                return service
            }
        }
        if let provinces = try reader.table("province") {
            for code in provinces.table.keys {
                guard ReferralValidation.isProvinceCode(code) else { throw provinces.error(code, "not an ISO 3166-2 code such as ID-KR") }
                let table = try provinces.table(code)!
                try table.allowOnly(["level1"])
                policy.provinces[code] = try ids(table, "level1") ?? []
            }
        }
        if let agencies = try reader.table("agency") {
            for id in agencies.table.keys {
                let table = try agencies.table(id)!
                try table.allowOnly(["duty_officer", "level1", "level2"])
                policy.references.append((id, agencies.error(id, "'\(id)' is not in the registry")))
                policy.agencies[id] = AgencyLadder(
                    dutyOfficer: try table.string("duty_officer"), level1: try ids(table, "level1"), level2: try ids(table, "level2") ?? [])
            }
        }
        return policy
    }
}

extension AgencyRegistry {
    /// Reroute suggestions: other agencies offering `service` in `province`, neither the sender
    /// nor the late recipient. For legal aid, only the sender's MoU partners.
    public func alternatives(service: Service, province: String, excluding: Set<String>, sender: String) -> [String] {
        agencies.filter { agency in
            agency.services.contains(service) && agency.province == province && !excluding.contains(agency.id)
                && (service != .legalAid || agency.mouWith.contains(sender))
        }.map(\.id)
    }
}
