import Foundation

/// One agency of the network, as Config/agencies.toml describes it.
public struct Agency: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var kind: AgencyKind
    /// ISO 3166-2 code of the province (or, abroad, the state) it serves.
    public var province: String
    /// The regency or city it sits in, by name, for people.
    public var regency: String
    /// The same by its Kemendagri code (`21.71`), for the envelope of a referral it sends:
    /// the envelope carries codes only. Absent abroad.
    public var regencyCode: String?
    /// The services it can be asked for.
    public var services: [Service]
    /// For legal aid institutions: the agencies it has an MoU with, the only ones that may
    /// refer to it.
    public var mouWith: [String]
    /// Its CurveZMQ public key (Z85, 40 characters): the broker admits a connection only with
    /// a key listed here, and takes the agency's identity from it.
    public var curveKey: String?
    /// Its sealing public key (X25519, base64): senders seal the personal part of a referral
    /// for it, and recipients check the sender's seal with it.
    public var sealKey: String?
    /// What it may do beyond referring: receive escalations, subscribe to the monitor feed.
    public var roles: Set<AgencyRole>

    public init(id: String, name: String, kind: AgencyKind, province: String, regency: String, regencyCode: String? = nil, services: [Service],
                mouWith: [String] = [], curveKey: String? = nil, sealKey: String? = nil, roles: Set<AgencyRole>? = nil) {
        self.regencyCode = regencyCode
        self.id = id
        self.name = name
        self.kind = kind
        self.province = province
        self.regency = regency
        self.services = services
        self.mouWith = mouWith
        self.curveKey = curveKey
        self.sealKey = sealKey
        self.roles = roles ?? AgencyRole.defaults(for: kind)
    }

    enum CodingKeys: String, CodingKey {
        case id, name, kind, province, regency, services, roles
        case mouWith = "mou_with"
        case regencyCode = "regency_code"
        case curveKey = "curve_key"
        case sealKey = "seal_key"
    }
}

/// A permission the registry grants an agency beyond sending and receiving referrals.
public enum AgencyRole: String, Codable, Sendable, CaseIterable, Comparable {
    /// May be the target of an escalation (a task force, LPSK's duty desk).
    case escalations
    /// May subscribe to the monitor feed.
    case monitor

    /// Task forces coordinate: they take escalations and watch the feed. Nobody else does
    /// unless agencies.toml says so.
    public static func defaults(for kind: AgencyKind) -> Set<AgencyRole> {
        kind == .taskForce ? [.escalations, .monitor] : []
    }

    public static func < (lhs: AgencyRole, rhs: AgencyRole) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Who may ask for a service, and who may offer it (the `[services.NAME]` tables of agencies.toml).
public struct ServicePolicy: Sendable, Equatable {
    /// Agency kinds or agency ids that may request the service; nil: anyone.
    public var requestedBy: Set<String>?
    /// Agency kinds that may offer it; nil: any kind.
    public var offeredBy: Set<AgencyKind>?

    public init(requestedBy: Set<String>? = nil, offeredBy: Set<AgencyKind>? = nil) {
        self.requestedBy = requestedBy
        self.offeredBy = offeredBy
    }

    public func mayRequest(_ agency: Agency) -> Bool {
        guard let requestedBy else { return true }
        return requestedBy.contains(agency.id) || requestedBy.contains(agency.kind.rawValue)
    }
}

/// The agencies of the network and what each offers; the broker routes only between these.
public struct AgencyRegistry: Sendable, Equatable {
    public private(set) var agencies: [Agency]
    public private(set) var services: [Service: ServicePolicy]
    private var byID: [String: Int]
    private var byCurveKey: [String: String]

    public init(_ agencies: [Agency], services: [Service: ServicePolicy] = [:]) {
        self.agencies = agencies
        self.services = services
        self.byID = Dictionary(agencies.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.byCurveKey = Dictionary(agencies.compactMap { agency in agency.curveKey.map { ($0, agency.id) } }, uniquingKeysWith: { first, _ in first })
    }

    public subscript(id: String) -> Agency? { byID[id].map { agencies[$0] } }

    /// The agency whose CurveZMQ public key this is.
    public func agency(curveKey: String) -> Agency? { byCurveKey[curveKey].flatMap { self[$0] } }

    /// The same network with each agency's keys replaced by `keys[id]` (curve, seal); for the
    /// demo and the tests, which make their keys at start.
    public func withKeys(_ keys: [String: (curve: String?, seal: String?)]) -> AgencyRegistry {
        AgencyRegistry(agencies.map { agency in
            var copy = agency
            if let pair = keys[agency.id] {
                copy.curveKey = pair.curve
                copy.sealKey = pair.seal
            }
            return copy
        }, services: services)
    }

    /// Everything the broker decides about a referral before it accepts it, from the registry:
    /// both agencies known, the service offered by the recipient and open to the sender
    /// (`[services.NAME] requested_by`), legal aid only from an MoU partner, and a consent
    /// that covers the recipient's kind of agency (or an override, which `validate` has
    /// already checked has a ground).
    public func authorize(_ referral: Referral) throws {
        try checkRoute(from: referral.from, to: referral.to, service: referral.service)
        let sender = self[referral.from]!, recipient = self[referral.to]!
        if let policy = services[referral.service], !policy.mayRequest(sender) {
            throw RujukError(.forbidden, "'\(sender.id)' may not request \(referral.service.rawValue) (agencies.toml, [services.\(referral.service.rawValue)] requested_by)")
        }
        if recipient.kind == .legalAid && !recipient.mouWith.contains(sender.id) {
            throw RujukError(.forbidden, "'\(recipient.id)' has no MoU with '\(sender.id)' (agencies.toml, mou_with)")
        }
        if referral.consent.status == .given && !referral.consent.scope.contains(recipient.kind) {
            throw RujukError(.consentRequired, "the consent does not cover referral to a \(recipient.kind.rawValue) agency (scope: \(referral.consent.scope.map(\.rawValue).joined(separator: ", ")))")
        }
    }

    /// Checks that every target of an escalation takes escalations.
    public func authorizeEscalation(targets: [String]) throws {
        for target in targets {
            guard let agency = self[target] else { throw RujukError(.unknownAgency, "target '\(target)' is not in the registry") }
            guard agency.roles.contains(.escalations) else {
                throw RujukError(.forbidden, "'\(target)' does not take escalations (agencies.toml, roles)")
            }
        }
    }

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
        try reader.allowOnly(["agency", "services"])
        var agencies: [Agency] = []
        var seen = Set<String>()
        for table in try reader.tables("agency") {
            try table.allowOnly(["id", "name", "kind", "province", "regency", "regency_code", "services", "mou_with", "curve_key", "seal_key", "roles"])
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
            let curveKey = try table.string("curve_key")
            if let curveKey, !KeyText.isZ85Key(curveKey) {
                throw table.error("curve_key", "must be a CurveZMQ public key: 40 Z85 characters, as `rujuk keygen` prints")
            }
            let sealKey = try table.string("seal_key")
            if let sealKey, !KeyText.isBase64Key(sealKey) {
                throw table.error("seal_key", "must be an X25519 public key: 32 bytes in base64, as `rujuk keygen` prints")
            }
            let roles = try table.strings("roles").map { names in
                Set(try names.map { name in
                    guard let role = AgencyRole(rawValue: name) else {
                        throw table.error("roles", "unknown role '\(name)' (expected: \(AgencyRole.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    return role
                })
            }
            let regencyCode = try table.string("regency_code")
            if let regencyCode, !ReferralValidation.isRegencyCode(regencyCode) {
                throw table.error("regency_code", "must be a Kemendagri regency code such as 21.71")
            }
            agencies.append(Agency(
                id: id, name: try table.requiredString("name"), kind: kind, province: province,
                regency: try table.requiredString("regency"), regencyCode: regencyCode, services: services,
                mouWith: try table.strings("mou_with") ?? [], curveKey: curveKey, sealKey: sealKey, roles: roles
            ))
        }
        var keyOwners: [String: String] = [:]
        for (index, agency) in agencies.enumerated() {
            guard let key = agency.curveKey else { continue }
            if let other = keyOwners.updateValue(agency.id, forKey: key) {
                throw try reader.tables("agency")[index].error("curve_key", "the same key as '\(other)': every agency needs its own")
            }
        }
        var policies: [Service: ServicePolicy] = [:]
        if let table = try reader.table("services") {
            for name in table.table.keys.sorted() {
                guard let service = Service(rawValue: name) else {
                    throw table.error(name, "unknown service '\(name)' (expected one of: \(Service.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                guard let rule = try table.table(name) else { continue }
                try rule.allowOnly(["requested_by", "offered_by"])
                let requestedBy = try rule.strings("requested_by").map(Set.init)
                for entry in requestedBy ?? [] where AgencyKind(rawValue: entry) == nil && !seen.contains(entry) {
                    throw rule.error("requested_by", "'\(entry)' is neither a kind of agency nor an agency id")
                }
                let offeredBy = try rule.strings("offered_by").map { names in
                    Set(try names.map { name in
                        guard let kind = AgencyKind(rawValue: name) else { throw rule.error("offered_by", "unknown kind '\(name)'") }
                        return kind
                    })
                }
                if let offeredBy, let index = agencies.firstIndex(where: { $0.services.contains(service) && !offeredBy.contains($0.kind) }) {
                    throw try reader.tables("agency")[index].error("services", "\(name) is offered only by \(offeredBy.map(\.rawValue).sorted().joined(separator: ", ")) agencies ([services.\(name)] offered_by)")
                }
                policies[service] = ServicePolicy(requestedBy: requestedBy, offeredBy: offeredBy)
            }
        }
        for (index, agency) in agencies.enumerated() {
            for partner in agency.mouWith where !seen.contains(partner) {
                throw try reader.tables("agency")[index].error("mou_with", "unknown agency '\(partner)'")
            }
        }
        guard !agencies.isEmpty else { throw ConfigError(file: reader.file, line: 0, message: "no [[agency]] is defined") }
        return AgencyRegistry(agencies, services: policies)
    }
}
