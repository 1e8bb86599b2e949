@testable import RujukBroker
import RujukCore
import Testing

/// The router's in-memory window on an agency's mailbox. With the group commit on its own
/// thread, a commit becomes visible in the store before the router hears of it, so the window
/// may have read an entry from the store that the commit then hands it again.
@Suite(.timeLimit(.minutes(5))) struct MailboxTests {
    func entry(_ seq: Int64) -> MailboxEntry {
        MailboxEntry(seq: seq, messageID: "m\(seq)", kind: .referral, payload: [])
    }

    @Test func anEntryAlreadyReadFromTheStoreIsNotQueuedTwice() {
        var box = Mailbox()
        // The window read 1...3 from the store, and the store had nothing more.
        box.queue.append(contentsOf: [entry(1), entry(2), entry(3)])
        box.loadedThrough = 3
        box.more = false
        // The commit that stored 2...4 is acknowledged now: only 4 is new to the window.
        for seq in [2, 3, 4] as [Int64] { box.append(entry(seq), capacity: 100, connected: true) }
        #expect(box.queue.map(\.seq) == [1, 2, 3, 4])
        #expect(box.loadedThrough == 4 && !box.more)
    }

    @Test func aFullWindowLeavesNewEntriesInTheStore() {
        var box = Mailbox()
        box.more = false
        box.append(entry(1), capacity: 1, connected: true)
        box.append(entry(2), capacity: 1, connected: true)
        #expect(box.queue.map(\.seq) == [1])
        #expect(box.more, "the window reads 2 from the store once it has room")
        // Not connected: nothing is held in memory.
        var offline = Mailbox()
        offline.more = false
        offline.append(entry(1), capacity: 10, connected: false)
        #expect(offline.queue.isEmpty && offline.more)
    }
}
