import Logging
import RujukCore

extension Logger {
    /// Logs a refusal that points at an attack: counted in `events` (for `/health`), written at
    /// warning level with `security` metadata naming its kind, and rate-limited per kind so
    /// that a repeated attack cannot flood the log (`RepeatLimiter`).
    public func security(_ kind: SecurityEventKind, _ message: @autoclosure () -> Logger.Message,
                         metadata: Logger.Metadata = [:], events: SecurityEvents) {
        guard case .log(let suppressed) = events.record(kind) else { return }
        var metadata = metadata
        metadata["security"] = "\(kind)"
        if suppressed > 0 { metadata["security.suppressed"] = "\(suppressed)" }
        warning("security: \(message())", metadata: metadata)
    }

    /// Writes one summary line per kind of security event whose lines were suppressed in an
    /// interval that has ended. Call it now and then (a timer, a loop's tick).
    public func securitySummaries(_ events: SecurityEvents) {
        for (kind, suppressed) in events.summaries() {
            warning("security: similar lines suppressed", metadata: ["security": "\(kind)", "security.suppressed": "\(suppressed)"])
        }
    }
}
