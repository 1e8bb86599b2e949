import Foundation

/// Lets at most `limit` log lines of each kind through per `interval`, and counts the rest,
/// so that an attacker who repeats one refused handshake cannot fill the disk with warnings.
///
/// Pure: the caller passes the time in, so tests drive it with a `ManualClock`. What was
/// suppressed is reported once per kind by `summaries(now:)` after its interval has ended, or
/// with the next line of that kind let through.
public struct RepeatLimiter: Sendable {
    /// What to do with one line.
    public enum Admission: Equatable, Sendable {
        /// Log it; `suppressed` lines of its kind were dropped before it and not yet reported.
        case log(suppressed: Int)
        /// Drop it (counted).
        case suppress
    }

    private struct Window {
        var start: Date
        var logged: Int
        var suppressed: Int
    }

    /// Lines of one kind let through per interval. Default 10.
    public let limit: Int
    /// Default 60 s.
    public let interval: TimeInterval
    private var windows: [String: Window] = [:]

    public init(limit: Int = 10, interval: TimeInterval = 60) {
        precondition(limit >= 1 && interval > 0)
        self.limit = limit
        self.interval = interval
    }

    /// Decides for one line of `kind` at `now`.
    public mutating func admit(_ kind: String, now: Date) -> Admission {
        var window = windows[kind] ?? Window(start: now, logged: 0, suppressed: 0)
        var carried = 0
        if now.timeIntervalSince(window.start) >= interval {
            carried = window.suppressed
            window = Window(start: now, logged: 0, suppressed: 0)
        }
        defer { windows[kind] = window }
        guard window.logged < limit else {
            window.suppressed += 1
            return .suppress
        }
        window.logged += 1
        return .log(suppressed: carried)
    }

    /// The kinds whose interval has ended with lines suppressed, and how many each: one
    /// summary line each. Their windows are closed, so each suppression is reported once.
    public mutating func summaries(now: Date) -> [(kind: String, suppressed: Int)] {
        var due: [(kind: String, suppressed: Int)] = []
        for (kind, window) in windows where now.timeIntervalSince(window.start) >= interval {
            if window.suppressed > 0 { due.append((kind, window.suppressed)) }
            windows[kind] = nil
        }
        return due.sorted { $0.kind < $1.kind }
    }
}
