import Foundation
import Testing
@testable import RujukCore

@Suite(.timeLimit(.minutes(5))) struct HandoffStateMachineTests {
    static let legal: Set<String> = [
        "requested>received:recipient", "received>accepted:recipient", "received>declined:recipient",
        "accepted>in_progress:recipient", "in_progress>completed:recipient",
        "requested>cancelled:sender", "received>cancelled:sender", "accepted>cancelled:sender", "in_progress>cancelled:sender",
    ]

    @Test func everyTransitionIsAllowedOrRefusedExactlyAsSpecified() {
        for from in HandoffStatus.allCases {
            for to in HandoffStatus.allCases {
                for role in [HandoffRole.sender, .recipient] {
                    let key = "\(from.rawValue)>\(to.rawValue):\(role.rawValue)"
                    var machine = HandoffStateMachine(status: from)
                    let applied = (try? machine.apply(to, by: role)) != nil
                    #expect(applied == Self.legal.contains(key), "\(key)")
                    #expect(machine.status == (applied ? to : from), "an illegal change must leave the state as it was: \(key)")
                }
            }
        }
    }

    @Test func illegalTransitionHasTheStableCode() {
        var machine = HandoffStateMachine(status: .completed)
        #expect(throws: RujukError(.illegalTransition, "sender cannot move a handoff from 'completed' to 'cancelled'")) {
            try machine.apply(.cancelled, by: .sender)
        }
    }

    @Test func answerBeforeReceiptImpliesTheReceipt() {
        let machine = HandoffStateMachine(status: .requested)
        #expect(machine.path(to: .accepted, by: .recipient) == [.received, .accepted])
        #expect(machine.path(to: .cancelled, by: .sender) == [.cancelled])
    }

    @Test func declineCancelAndCompleteNeedTheirCodes() {
        let base = HandoffEvent(referralId: MessageID.make(), by: "rsud-embung-fatimah", status: .declined, at: Date())
        #expect(throws: RujukError.self) { try HandoffStateMachine.validate(base) }
        var completed = base
        completed.status = .completed
        #expect(throws: RujukError.self) { try HandoffStateMachine.validate(completed) }
        completed.outcome = .serviceProvided
        #expect(throws: Never.self) { try HandoffStateMachine.validate(completed) }
        var misplaced = completed
        misplaced.reason = .noCapacity
        #expect(throws: RujukError.self, "a reason code belongs to a decline or cancellation") { try HandoffStateMachine.validate(misplaced) }
    }
}
