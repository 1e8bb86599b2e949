import ArgumentParser
import Dispatch
import Foundation

/// The entry point. Synchronous on purpose: the commands run in a detached task while the main
/// thread waits, instead of Swift's async `main`, which parks the main thread in libdispatch's
/// `sigsuspend` — and that makes Valgrind 3.19 (Debian 12's) crash at start, so `callgrind`
/// (the instruction-count profile the benchmark's figures are checked against) could not run.
/// Nothing here uses the main queue or the main actor.
@main
enum Entry {
    static func main() {
        let finished = DispatchSemaphore(value: 0)
        Task.detached {
            await Rujuk.main()
            finished.signal()
        }
        finished.wait()
    }
}

struct Rujuk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rujuk",
        abstract: "Inter-agency referral broker for services to trafficking victims.",
        discussion: """
            One executable: the broker (`rujuk broker`), an agency's adapter (`rujuk adapter \
            --agency ID`), and the commands a person at an agency uses against the adapter's API \
            (refer, inbox, outbox, show, accept, decline, start, complete, cancel, status); \
            keygen, audit verify and purge for operators. `rujuk demo` runs a whole sample \
            network in one process.
            """,
        subcommands: [
            BrokerCommand.self, AdapterCommand.self, DemoCommand.self,
            ReferCommand.self, InboxCommand.self, OutboxCommand.self, ShowCommand.self,
            AcceptCommand.self, DeclineCommand.self, StartCommand.self, CompleteCommand.self, CancelCommand.self,
            StatusCommand.self, WatchCommand.self, BenchCommand.self,
            KeygenCommand.self, AuditCommand.self, PurgeCommand.self,
        ]
    )
}
