import Foundation

/// One event on the broker's monitor feed (Protocols/MONITOR.md): a handoff transition or an
/// escalation, envelope fields only — never anything about the person.
public struct FeedEvent: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable {
        /// A handoff changed status (including `requested`: a new referral).
        case transition
        /// An escalation of an overdue handoff, or its resolution.
        case escalation
    }

    /// The broker's feed sequence: one more for every event, gap-free, durable.
    public var seq: Int64
    public var kind: Kind
    public var referralId: String
    /// The message that made the event: the referral, the event or the escalation.
    public var messageId: String
    /// For transitions, the new status; for escalations, the handoff's status then.
    public var status: HandoffStatus
    /// The agency that made the change (the sender, for escalations).
    public var by: String
    public var from: String
    public var to: String
    public var service: Service
    public var priority: Priority
    /// The handoff's province (its location), ISO 3166-2.
    public var province: String
    /// The clock that had run out when the event was recorded, if any.
    public var overdue: Breach?
    /// Escalations: the level, breach or resolved, the clock, and who was told.
    public var level: Int?
    public var notice: Escalation.Notice?
    public var clock: Breach?
    public var targets: [String]?
    /// The handoff was referred without the person's consent, on an override (emergency or
    /// child protection): flagged on every event of that handoff.
    public var consentOverride: Bool {
        get { override == true }
        set { override = newValue ? true : nil }
    }
    /// `consent_override` on the wire: `true`, or absent when consent was given.
    private var override: Bool?
    public var at: Date

    public init(
        seq: Int64, kind: Kind, referralId: String, messageId: String, status: HandoffStatus, by: String, from: String, to: String,
        service: Service, priority: Priority, province: String, overdue: Breach? = nil, level: Int? = nil,
        notice: Escalation.Notice? = nil, clock: Breach? = nil, targets: [String]? = nil, consentOverride: Bool = false, at: Date
    ) {
        self.override = consentOverride ? true : nil
        self.seq = seq
        self.kind = kind
        self.referralId = referralId
        self.messageId = messageId
        self.status = status
        self.by = by
        self.from = from
        self.to = to
        self.service = service
        self.priority = priority
        self.province = province
        self.overdue = overdue
        self.level = level
        self.notice = notice
        self.clock = clock
        self.targets = targets
        self.at = at
    }

    enum CodingKeys: String, CodingKey {
        case seq, kind, status, by, from, to, service, priority, province, overdue, level, notice, clock, targets, at
        case referralId = "referral_id"
        case messageId = "message_id"
        case override = "consent_override"
    }

    /// The topics this event is published under; a subscriber picks one and filters the rest
    /// itself. Exactly one `kind/` topic per event, so `kind/` alone sees each event once.
    public var topics: [String] {
        var result = ["kind/\(kind.rawValue)", "province/\(province)", "agency/\(from)", "agency/\(to)"]
        for target in targets ?? [] where !result.contains("agency/\(target)") { result.append("agency/\(target)") }
        return result
    }
}

/// One publication on the PUB socket: `[topic, body]`, where the body is the event and the
/// sequence number of the previous event published under the same topic since the broker
/// started (`prev`), so a subscriber can tell that it missed some.
public struct FeedMessage: Codable, Sendable, Equatable {
    public var topic: String
    /// The `seq` of the event before this one on `topic`, or -1 for the first since the
    /// broker started (then the subscriber cannot tell, and re-syncs if it has seen any).
    public var prev: Int64
    public var event: FeedEvent

    public init(topic: String, prev: Int64, event: FeedEvent) {
        self.topic = topic
        self.prev = prev
        self.event = event
    }
}

extension FeedEvent: FastJSONDecodable, FastJSONEncodable {
    public init(fastJSON fields: JSONFields) throws(FastJSONMiss) {
        let targets: [String]? = fields["targets"] == nil || fields["targets"] == .null ? nil : try fields.strings("targets")
        let level: Int? = fields["level"] == nil || fields["level"] == .null ? nil : try fields.int("level")
        self.init(
            seq: Int64(try fields.int("seq")), kind: try fields.value("kind"), referralId: try fields.string("referral_id"),
            messageId: try fields.string("message_id"), status: try fields.value("status"), by: try fields.string("by"),
            from: try fields.string("from"), to: try fields.string("to"), service: try fields.value("service"),
            priority: try fields.value("priority"), province: try fields.string("province"), overdue: try fields.optionalValue("overdue"),
            level: level, notice: try fields.optionalValue("notice"), clock: try fields.optionalValue("clock"), targets: targets,
            consentOverride: fields["consent_override"] == nil || fields["consent_override"] == .null ? false : try fields.bool("consent_override"),
            at: try fields.date("at"))
    }

    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("at", at)
        writer.field("by", by)
        writer.field("clock", clock)
        if consentOverride { writer.field("consent_override", true) }
        writer.field("from", from)
        writer.field("kind", kind)
        if let level { writer.field("level", level) }
        writer.field("message_id", messageId)
        writer.field("notice", notice)
        writer.field("overdue", overdue)
        writer.field("priority", priority)
        writer.field("province", province)
        writer.field("referral_id", referralId)
        writer.field("seq", Int(seq))
        writer.field("service", service)
        writer.field("status", status)
        if let targets { writer.field("targets", targets) }
        writer.field("to", to)
        writer.endObject()
    }
}

extension FeedMessage: FastJSONEncodable {
    public func write(to writer: inout JSONWriter) {
        writer.beginObject()
        writer.field("event", event)
        writer.field("prev", Int(prev))
        writer.field("topic", topic)
        writer.endObject()
    }
}

/// `GET /api/feed`: events after a sequence number, oldest first.
public struct FeedPage: Codable, Sendable {
    public var events: [FeedEvent]
    /// The highest `seq` the broker has recorded, whatever the filter.
    public var latest: Int64

    public init(events: [FeedEvent], latest: Int64) {
        self.events = events
        self.latest = latest
    }
}

/// A subscriber's bookkeeping (Protocols/MONITOR.md §4): which `seq` it saw last on each topic,
/// whether a publication shows a gap, and which events are new. Pure, so every rule is tested
/// without sockets.
public struct FeedFollower: Sendable {
    /// The last `seq` seen per topic.
    public private(set) var lastSeen: [String: Int64] = [:]
    /// The highest `seq` emitted, whatever the topic: nothing at or below it is emitted again.
    public private(set) var highest: Int64

    public enum Step: Equatable, Sendable {
        /// Emit this event (it is new and nothing was missed before it).
        case emit(FeedEvent)
        /// Something was missed on `topic` after `after`: fetch `GET /api/feed?after=&topic=`,
        /// pass the page to `resynced`, which returns what to emit (the missed events, then this one).
        case resync(topic: String, after: Int64)
        /// Already emitted (seen again after a re-sync).
        case skip
    }

    /// `since`: the last `seq` already seen, when resuming; everything after it is new.
    public init(since: Int64 = 0) {
        highest = since
    }

    public mutating func receive(_ message: FeedMessage) -> Step {
        let topic = message.topic, seq = message.event.seq, prev = message.prev
        // Events reach a subscriber in `seq` order, so one at or below the highest emitted is
        // a repeat (it came in a re-sync page already).
        if seq <= highest {
            lastSeen[topic] = max(lastSeen[topic] ?? 0, seq)
            return .skip
        }
        // What this subscriber last saw on the topic; when resuming, anything up to `highest`.
        let known = lastSeen[topic] ?? (highest > 0 ? highest : nil)
        if let known, prev < 0 || prev > known {
            // The publication before this one on the topic is one we never saw, or the broker
            // restarted and cannot say: fetch what came after the last one we did see.
            return .resync(topic: topic, after: known)
        }
        lastSeen[topic] = seq
        highest = seq
        return .emit(message.event)
    }

    /// What to emit after a re-sync: the fetched events not yet emitted, in order, and then
    /// `message`'s own event if the page did not already include it.
    public mutating func resynced(_ page: [FeedEvent], then message: FeedMessage) -> [FeedEvent] {
        var result: [FeedEvent] = []
        for event in page.sorted(by: { $0.seq < $1.seq }) where event.seq > highest && event.seq < message.event.seq {
            result.append(event)
        }
        if message.event.seq > highest { result.append(message.event) }
        lastSeen[message.topic] = message.event.seq
        highest = max(highest, result.last?.seq ?? highest)
        return result
    }
}
