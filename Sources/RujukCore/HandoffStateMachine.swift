/// Which side of a handoff an agency is on.
public enum HandoffRole: String, Sendable {
    /// The agency that sent the referral.
    case sender
    /// The agency the referral is for.
    case recipient
}

/// The one place that decides whether a status change is allowed.
///
/// ```
/// requested ──receipt──▶ received ──▶ accepted ──▶ in_progress ──▶ completed
///                           └──────▶ declined
/// any non-terminal state ──sender──▶ cancelled
/// ```
/// The broker, the sending adapter and the recipient adapter all run every change through it,
/// so the three copies of a handoff can only move the same way.
public struct HandoffStateMachine: Sendable, Equatable {
    public private(set) var status: HandoffStatus

    public init(status: HandoffStatus = .requested) {
        self.status = status
    }

    /// Whether `role` may move a handoff from `from` to `to`.
    public static func allows(from: HandoffStatus, to: HandoffStatus, by role: HandoffRole) -> Bool {
        switch (from, to, role) {
        case (.requested, .received, .recipient),
             (.received, .accepted, .recipient),
             (.received, .declined, .recipient),
             (.accepted, .inProgress, .recipient),
             (.inProgress, .completed, .recipient):
            return true
        case (let current, .cancelled, .sender):
            return !current.isTerminal
        default:
            return false
        }
    }

    /// Validates the event's own content: a decline or cancellation needs a reason code, a
    /// completion an outcome code, and `requested` is never an event (it is the referral itself).
    public static func validate(_ event: HandoffEvent) throws {
        switch event.status {
        case .requested:
            throw RujukError(.schemaViolation, "status 'requested' is set by the referral itself, not by an update")
        case .declined, .cancelled:
            if event.reason == nil {
                throw RujukError(.schemaViolation, "'\(event.status.rawValue)' requires a reason code")
            }
        case .completed:
            if event.outcome == nil {
                throw RujukError(.schemaViolation, "'completed' requires an outcome code")
            }
        default:
            break
        }
        if event.reason != nil && event.status != .declined && event.status != .cancelled {
            throw RujukError(.schemaViolation, "'reason' is only for 'declined' and 'cancelled'")
        }
        if event.outcome != nil && event.status != .completed {
            throw RujukError(.schemaViolation, "'outcome' is only for 'completed'")
        }
    }

    /// Applies a change by `role`, or throws `illegal_transition` and leaves the state as it was.
    public mutating func apply(_ to: HandoffStatus, by role: HandoffRole) throws {
        guard Self.allows(from: status, to: to, by: role) else {
            throw RujukError(
                .illegalTransition,
                "\(role.rawValue) cannot move a handoff from '\(status.rawValue)' to '\(to.rawValue)'"
            )
        }
        status = to
    }

    /// The changes that must be recorded to apply `to`, in order.
    ///
    /// An accept or decline can reach a store before the recipient's receipt does (the receipt
    /// was lost with a connection and is still being resent). The recipient could not answer a
    /// referral it had not stored, so such an answer implies the receipt: `received` is recorded
    /// first.
    public func path(to: HandoffStatus, by role: HandoffRole) -> [HandoffStatus] {
        if status == .requested, role == .recipient, to == .accepted || to == .declined {
            return [.received, to]
        }
        return [to]
    }
}

extension String {
    /// Empty or only white space (the same set as `CharacterSet.whitespacesAndNewlines`),
    /// found without building a trimmed copy: this runs on every message.
    var isBlank: Bool { unicodeScalars.allSatisfy(\.properties.isWhitespace) }

    /// More than `limit` characters. UTF-8 bytes bound characters from above, so most texts
    /// are settled without counting grapheme clusters.
    func exceeds(_ limit: Int) -> Bool { utf8.count > limit && count > limit }
}

import Foundation
