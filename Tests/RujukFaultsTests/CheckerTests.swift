@testable import RujukFaults
import Testing

/// The fault suite's verdict is only as good as its checker: each count must see what it names.
@Suite(.timeLimit(.minutes(5))) struct CheckerTests {
    let route = Route(from: "polda-kepri", to: "rsud-embung-fatimah", service: .medicalCare)

    func submission(_ id: String, _ outcome: Submission.Outcome = .acknowledged) -> Submission {
        Submission(id: id, route: route, outcome: outcome)
    }

    func delivery(_ id: String, key: String, to agency: String = "rsud-embung-fatimah") -> Delivery {
        Delivery(agency: agency, idempotencyKey: key, type: "referral.received", referralID: id)
    }

    @Test func aCleanRunPasses() {
        let verdict = Checker.check(submissions: [submission("a"), submission("b")],
                                    deliveries: [delivery("a", key: "k1"), delivery("b", key: "k2")],
                                    committedAtSenders: ["a", "b"], confirmedAtSenders: ["a", "b"])
        #expect(verdict.passed)
        #expect(verdict.received == 2 && verdict.acknowledged == 2)
    }

    @Test func anAcknowledgedReferralThatNeverArrivesIsLost() {
        let verdict = Checker.check(submissions: [submission("a"), submission("b")], deliveries: [delivery("a", key: "k1")],
                                    committedAtSenders: [], confirmedAtSenders: ["a"])
        #expect(verdict.lost == ["b"])
        #expect(!verdict.passed)
    }

    @Test func anIndeterminateReferralCommittedAtTheBrokerCountsAsAcknowledged() {
        // The POST's answer was lost, but the sender's ledger holds the broker's COMMIT.
        let verdict = Checker.check(submissions: [submission("a", .indeterminate)], deliveries: [],
                                    committedAtSenders: ["a"], confirmedAtSenders: [])
        #expect(verdict.lost == ["a"])
    }

    @Test func anIndeterminateReferralThatArrivesIsRecoveredNotLost() {
        let verdict = Checker.check(submissions: [submission("a", .indeterminate), submission("b", .indeterminate)],
                                    deliveries: [delivery("a", key: "k1")], committedAtSenders: [], confirmedAtSenders: ["a"])
        #expect(verdict.recovered == ["a"])
        #expect(verdict.lost.isEmpty)
        #expect(verdict.passed)
    }

    @Test func twoNotificationsForOneReferralAreADuplicate() {
        let verdict = Checker.check(submissions: [submission("a")], deliveries: [delivery("a", key: "k1"), delivery("a", key: "k2")],
                                    committedAtSenders: ["a"], confirmedAtSenders: ["a"])
        #expect(verdict.duplicated == ["a"])
        #expect(!verdict.passed)
    }

    @Test func aWebhookRetryWithTheSameKeyIsARedeliveryNotADuplicate() {
        let verdict = Checker.check(submissions: [submission("a")], deliveries: [delivery("a", key: "k1"), delivery("a", key: "k1")],
                                    committedAtSenders: ["a"], confirmedAtSenders: ["a"])
        #expect(verdict.duplicated.isEmpty)
        #expect(verdict.redelivered == 1)
        #expect(verdict.passed)
    }

    @Test func aReferralNeverSubmittedOrAtTheWrongAgencyIsUnexpected() {
        let verdict = Checker.check(submissions: [submission("a")],
                                    deliveries: [delivery("a", key: "k1", to: "uptd-ppa-batam"), delivery("z", key: "k2")],
                                    committedAtSenders: ["a"], confirmedAtSenders: ["a"])
        #expect(verdict.unexpected == ["a", "z"])
        #expect(!verdict.passed)
    }

    @Test func aReceiptThatNeverReachesTheSenderIsUnconfirmed() {
        let verdict = Checker.check(submissions: [submission("a")], deliveries: [delivery("a", key: "k1")],
                                    committedAtSenders: ["a"], confirmedAtSenders: [])
        #expect(verdict.unconfirmed == ["a"])
        #expect(!verdict.passed)
    }

    @Test func otherNotificationTypesAreNotReferrals() {
        var update = delivery("a", key: "k2")
        update.type = "handoff.updated"
        let verdict = Checker.check(submissions: [submission("a")], deliveries: [delivery("a", key: "k1"), update],
                                    committedAtSenders: ["a"], confirmedAtSenders: ["a"])
        #expect(verdict.duplicated.isEmpty && verdict.passed)
    }
}
