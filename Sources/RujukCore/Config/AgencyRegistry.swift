import Foundation

/// One agency of the network, as Config/agencies.toml describes it.
public struct Agency: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var kind: AgencyKind
    /// ISO 3166-2 code of the province (or, abroad, the state) it serves.
    public var province: String
    public var regency: String
    /// The services it can be asked for.
    public var services: [Service]
    /// For legal aid institutions: the agencies it has an MoU with.
    public var mouWith: [String]

    public init(id: String, name: String, kind: AgencyKind, province: String, regency: String, services: [Service], mouWith: [String] = []) {
        self.id = id
        self.name = name
        self.kind = kind
        self.province = province
        self.regency = regency
        self.services = services
        self.mouWith = mouWith
    }

    enum CodingKeys: String, CodingKey {
        case id, name, kind, province, regency, services
        case mouWith = "mou_with"
    }
}

/// The agencies of the network and what each offers; the broker routes only between these.
public struct AgencyRegistry: Sendable, Equatable {
    public private(set) var agencies: [Agency]
    private var byID: [String: Int]

    public init(_ agencies: [Agency]) {
        self.agencies = agencies
        self.byID = Dictionary(agencies.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public subscript(id: String) -> Agency? { byID[id].map { agencies[$0] } }

    /// Checks that a referral goes between two known agencies, for a service the recipient offers.
    public func checkRoute(from: String, to: String, service: Service) throws {
        guard self[from] != nil else { throw RujukError(.unknownAgency, "sender '\(from)' is not in the registry") }
        guard let recipient = self[to] else { throw RujukError(.unknownAgency, "recipient '\(to)' is not in the registry") }
        guard recipient.services.contains(service) else {
            throw RujukError(.serviceNotOffered, "'\(to)' does not offer \(service.rawValue)")
        }
    }

    /// Loads Config/agencies.toml: one `[[agency]]` table per agency.
    public static func load(_ url: URL) throws -> AgencyRegistry {
        try parse(ConfigReader.load(url))
    }

    public static func parse(_ reader: ConfigReader) throws -> AgencyRegistry {
        try reader.allowOnly(["agency"])
        var agencies: [Agency] = []
        var seen = Set<String>()
        for table in try reader.tables("agency") {
            try table.allowOnly(["id", "name", "kind", "province", "regency", "services", "mou_with", "public_key"])
            let id = try table.requiredString("id")
            guard ReferralValidation.isAgencyID(id) else {
                throw table.error("id", "'\(id)' is not an agency id (lowercase letters, digits and dashes, 2-63 characters)")
            }
            guard seen.insert(id).inserted else { throw table.error("id", "agency '\(id)' is listed twice") }
            let kindName = try table.requiredString("kind")
            guard let kind = AgencyKind(rawValue: kindName) else {
                throw table.error("kind", "unknown kind '\(kindName)' (expected one of: \(AgencyKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let province = try table.requiredString("province")
            guard ReferralValidation.isProvinceCode(province) else {
                throw table.error("province", "'\(province)' is not an ISO 3166-2 code such as ID-KR")
            }
            let services = try (table.strings("services") ?? []).map { name in
                guard let service = Service(rawValue: name) else {
                    throw table.error("services", "unknown service '\(name)' (expected one of: \(Service.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return service
            }
            agencies.append(Agency(
                id: id, name: try table.requiredString("name"), kind: kind, province: province,
                regency: try table.requiredString("regency"), services: services,
                mouWith: try table.strings("mou_with") ?? []
            ))
        }
        for (index, agency) in agencies.enumerated() {
            for partner in agency.mouWith where !seen.contains(partner) {
                throw try reader.tables("agency")[index].error("mou_with", "unknown agency '\(partner)'")
            }
        }
        guard !agencies.isEmpty else { throw ConfigError(file: reader.file, line: 0, message: "no [[agency]] is defined") }
        return AgencyRegistry(agencies)
    }
}
