import Foundation
import Logging
import RujukCore

/// A logger whose lines a test can read back: level, message and metadata of each.
final class CapturedLog: @unchecked Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let lock = NSLock()
    private var captured: [Line] = []

    var lines: [Line] { lock.withLock { captured } }
    var all: [Line] { lines }

    /// Warning lines tagged `security` with `kind`.
    func security(_ kind: SecurityEventKind) -> [Line] {
        lines.filter { $0.level == .warning && $0.metadata["security"] == kind.rawValue }
    }

    /// A logger at `level` that writes here.
    func logger(_ label: String = "test", level: Logger.Level = .info) -> Logger {
        var logger = Logger(label: label) { _ in Handler(log: self) }
        logger.logLevel = level
        return logger
    }

    fileprivate func append(_ line: Line) { lock.withLock { captured.append(line) } }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            log.append(Line(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
        }
    }
}
