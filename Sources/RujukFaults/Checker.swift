/// The Jepsen-style verdict on one scenario: it compares what the senders were promised with
/// what the recipients' agency systems received.
///
/// - *acknowledged*: the sender's adapter answered 201, or its ledger records the broker's COMMIT
///   (which covers a POST whose answer was lost when the adapter died);
/// - *lost*: acknowledged, and never received by the agency system it was addressed to;
/// - *duplicated*: received as two different notifications (two idempotency keys) — a second
///   referral in the eyes of the agency system, which drops only repeats of one key;
/// - *unexpected*: received and never submitted, or received by an agency it was not for;
/// - *recovered*: the POST's outcome was unknown (indeterminate), and the referral arrived;
/// - *unconfirmed*: received, but the recipient's receipt never reached the sender's ledger
///   (the acknowledgment must be on record on both sides);
/// - *redelivered*: a webhook POST repeated with the same idempotency key (a retry after a lost
///   answer; expected, harmless, counted for information).
struct Verdict: Sendable, Equatable {
    var submitted = 0
    var acknowledged = 0
    var refused = 0
    var indeterminate = 0
    var received = 0
    var lost: [String] = []
    var duplicated: [String] = []
    var unexpected: [String] = []
    var recovered: [String] = []
    var unconfirmed: [String] = []
    var redelivered = 0

    /// What every run must show.
    var passed: Bool { lost.isEmpty && duplicated.isEmpty && unexpected.isEmpty && unconfirmed.isEmpty }

    var summary: String {
        "submitted \(submitted), acknowledged \(acknowledged), refused \(refused), indeterminate \(indeterminate), received \(received) — "
            + "lost \(lost.count), duplicated \(duplicated.count), unexpected \(unexpected.count), recovered \(recovered.count), "
            + "unconfirmed \(unconfirmed.count), redelivered \(redelivered)"
    }
}

enum Checker {
    /// - Parameters:
    ///   - submissions: every POST the sending agency systems made, with its outcome;
    ///   - deliveries: every webhook POST the recipients' agency systems got, in order;
    ///   - committedAtSenders: referral ids whose broker COMMIT the senders' ledgers record;
    ///   - confirmedAtSenders: referral ids the senders' ledgers show as received by the recipient.
    static func check(submissions: [Submission], deliveries: [Delivery], committedAtSenders: Set<String>, confirmedAtSenders: Set<String>) -> Verdict {
        var verdict = Verdict()
        var byID: [String: Submission] = [:]
        for submission in submissions { byID[submission.id] = submission }
        verdict.submitted = byID.count
        var acknowledged = Set(submissions.filter { $0.outcome == .acknowledged }.map(\.id))
        acknowledged.formUnion(committedAtSenders.filter { byID[$0] != nil })
        verdict.acknowledged = acknowledged.count
        verdict.refused = submissions.filter { if case .refused = $0.outcome { true } else { false } }.count
        verdict.indeterminate = submissions.filter { $0.outcome == .indeterminate }.count

        var keysByID: [String: Set<String>] = [:]
        var seenKeys = Set<String>()
        var unexpected = Set<String>()
        for delivery in deliveries where delivery.type == "referral.received" {
            if !seenKeys.insert("\(delivery.agency)|\(delivery.idempotencyKey)").inserted {
                verdict.redelivered += 1
                continue
            }
            keysByID[delivery.referralID, default: []].insert(delivery.idempotencyKey)
            if let submission = byID[delivery.referralID] {
                if submission.route.to != delivery.agency { unexpected.insert(delivery.referralID) }
            } else {
                unexpected.insert(delivery.referralID)
            }
        }
        verdict.received = keysByID.count
        verdict.lost = acknowledged.filter { keysByID[$0] == nil }.sorted()
        verdict.duplicated = keysByID.filter { $0.value.count > 1 }.keys.sorted()
        verdict.unexpected = unexpected.sorted()
        verdict.recovered = submissions.filter { $0.outcome == .indeterminate && keysByID[$0.id] != nil }.map(\.id).sorted()
        verdict.unconfirmed = keysByID.keys.filter { byID[$0] != nil && !confirmedAtSenders.contains($0) }.sorted()
        return verdict
    }
}
