import Foundation

/// The kinds of refusal that point at an attack rather than a fault, as counted on `/health`
/// (`security_events`) and tagged `security` in the log.
public struct SecurityEventKind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// A handshake with a CurveZMQ key the registry does not hold (broker, ZAP).
    public static let unknownKey = Self(rawValue: "unknown_key")
    /// A key used on a socket its agency may not use (the monitor feed without the role).
    public static let notAllowed = Self(rawValue: "not_allowed")
    /// A message that names another agency than the connection's key (broker).
    public static let identityMismatch = Self(rawValue: "identity_mismatch")
    /// An UPDATE or ESCALATE by an agency that is not a party to the handoff.
    public static let notParty = Self(rawValue: "not_party")
    /// A connection on a key removed since it authenticated.
    public static let revokedKey = Self(rawValue: "revoked_key")
    /// A sealed body that does not open or is not the named sender's (adapter).
    public static let sealInvalid = Self(rawValue: "seal_invalid")
    /// A session over its message rate (broker).
    public static let rateLimited = Self(rawValue: "rate_limited")
    /// A connection cut because its address or the broker had too many (broker).
    public static let connectionLimit = Self(rawValue: "connection_limit")

    /// The kind a refusal with `code` belongs to, if it is one that points at an attack.
    public init?(_ code: RujukError.Code) {
        switch code {
        case .identityMismatch: self = .identityMismatch
        case .notParty: self = .notParty
        case .sealInvalid: self = .sealInvalid
        case .keyUnknown: self = .revokedKey
        case .rateLimited: self = .rateLimited
        default: return nil
        }
    }
}

/// Counts security events by kind and decides which of their log lines are written
/// (`RepeatLimiter`), for every thread of a process at once.
public final class SecurityEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [SecurityEventKind: Int] = [:]
    private var limiter: RepeatLimiter
    private let clock: any Clock

    public init(clock: any Clock = SystemClock(), linesPerInterval: Int = 10, interval: TimeInterval = 60) {
        self.clock = clock
        limiter = RepeatLimiter(limit: linesPerInterval, interval: interval)
    }

    /// Counts one event; returns whether to log it, and how many of its kind went unlogged
    /// before it.
    public func record(_ kind: SecurityEventKind) -> RepeatLimiter.Admission {
        let now = clock.now()
        return lock.withLock {
            counts[kind, default: 0] += 1
            return limiter.admit(kind.rawValue, now: now)
        }
    }

    /// The suppressed lines to summarize now (`RepeatLimiter.summaries`).
    public func summaries() -> [(kind: String, suppressed: Int)] {
        let now = clock.now()
        return lock.withLock { limiter.summaries(now: now) }
    }

    /// Events since start, by kind's name.
    public var snapshot: [String: Int] {
        lock.withLock { Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) }) }
    }
}
