import Foundation

/// The three clocks of a handoff, as durations from the referral's creation.
public struct SLAClocks: Sendable, Equatable {
    /// Until the recipient's adapter has stored the referral.
    public var receive: TimeInterval
    /// Until the referral is accepted or declined.
    public var respond: TimeInterval
    /// Until the service is completed.
    public var complete: TimeInterval

    public init(receive: TimeInterval, respond: TimeInterval, complete: TimeInterval) {
        self.receive = receive
        self.respond = respond
        self.complete = complete
    }
}

/// The deadlines a sender stamps into each referral, from Config/sla.toml: clocks per
/// priority, optionally overridden per service and priority.
public struct SLAPolicy: Sendable, Equatable {
    public var byPriority: [Priority: SLAClocks]
    public var overrides: [Service: [Priority: SLAClocks]]
    /// Who is told when a clock runs out, and when the recipient is warned.
    public var escalation: EscalationPolicy

    public init(byPriority: [Priority: SLAClocks], overrides: [Service: [Priority: SLAClocks]] = [:], escalation: EscalationPolicy = EscalationPolicy()) {
        self.byPriority = byPriority
        self.overrides = overrides
        self.escalation = escalation
    }

    /// The clocks used when no sla.toml is given: UU 21/2007 Art. 52's seven days to complete,
    /// and response times in the spirit of Primero's 1 hour / 3 hours / 1 day / 3 days.
    public static let standard = SLAPolicy(byPriority: [
        .emergency: SLAClocks(receive: 15 * 60, respond: 3600, complete: 7 * 86400),
        .urgent: SLAClocks(receive: 3600, respond: 4 * 3600, complete: 7 * 86400),
        .routine: SLAClocks(receive: 86400, respond: 3 * 86400, complete: 14 * 86400),
    ])

    public func clocks(for service: Service, priority: Priority) -> SLAClocks {
        overrides[service]?[priority] ?? byPriority[priority] ?? SLAPolicy.standard.byPriority[priority]!
    }

    /// The deadlines for a referral created at `createdAt`.
    public func deadlines(service: Service, priority: Priority, createdAt: Date) -> (receive: Date, respond: Date, complete: Date) {
        let clocks = clocks(for: service, priority: priority)
        return (createdAt + clocks.receive, createdAt + clocks.respond, createdAt + clocks.complete)
    }

    /// Loads Config/sla.toml:
    /// ```toml
    /// [priority.emergency]
    /// receive = "15m"
    /// respond = "1h"
    /// complete = "7d"
    /// [service.witness_protection.routine]
    /// respond = "7d"
    /// ```
    public static func load(_ url: URL) throws -> SLAPolicy {
        try parse(ConfigReader.load(url))
    }

    public static func parse(_ reader: ConfigReader) throws -> SLAPolicy {
        try reader.allowOnly(["priority", "service", "escalation"])
        var policy = SLAPolicy.standard
        if let priorities = try reader.table("priority") {
            for key in priorities.table.keys {
                guard let priority = Priority(rawValue: key) else {
                    throw priorities.error(key, "unknown priority (expected emergency, urgent or routine)")
                }
                let table = try priorities.table(key)!
                policy.byPriority[priority] = try clocks(table, base: policy.byPriority[priority]!)
            }
        }
        if let services = try reader.table("service") {
            for key in services.table.keys {
                guard let service = Service(rawValue: key) else {
                    throw services.error(key, "unknown service '\(key)'")
                }
                let serviceTable = try services.table(key)!
                for priorityKey in serviceTable.table.keys {
                    guard let priority = Priority(rawValue: priorityKey) else {
                        throw serviceTable.error(priorityKey, "unknown priority (expected emergency, urgent or routine)")
                    }
                    let table = try serviceTable.table(priorityKey)!
                    policy.overrides[service, default: [:]][priority] = try clocks(table, base: policy.byPriority[priority]!)
                }
            }
        }
        policy.escalation = try EscalationPolicy.parse(reader.table("escalation"))
        return policy
    }

    private static func clocks(_ table: ConfigReader, base: SLAClocks) throws -> SLAClocks {
        try table.allowOnly(["receive", "respond", "complete"])
        let result = SLAClocks(
            receive: try table.duration("receive") ?? base.receive,
            respond: try table.duration("respond") ?? base.respond,
            complete: try table.duration("complete") ?? base.complete
        )
        guard result.receive > 0, result.receive <= result.respond, result.respond <= result.complete else {
            throw table.error(nil, "clocks must satisfy 0 < receive <= respond <= complete")
        }
        return result
    }
}
