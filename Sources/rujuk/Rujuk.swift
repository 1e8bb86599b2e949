import ArgumentParser
import Dispatch
import Foundation
import RujukStorage

/// The entry point: what Swift's async `main` does — the command runs on the main actor while
/// the main thread serves the main queue (`dispatchMain`, which parks it in libdispatch's
/// `sigsuspend`) — unless `RUJUK_MAIN_THREAD_WAITS` is set. Valgrind 3.19 (Debian 12's) crashes
/// at the start of any program whose main thread parks that way, so `make profile` sets it: the
/// command then runs in a detached task while the main thread waits on a semaphore.
@main
enum Entry {
    static func main() {
        // Whatever this process creates is its account's alone (ledgers hold personal data).
        PrivateFiles.restrictUmask()
        // Lines reach a pipe as they are printed (`make demo | tee demo.log`), not a buffer later.
        StandardOutput.lineBuffered()
        guard ProcessInfo.processInfo.environment["RUJUK_MAIN_THREAD_WAITS"] != nil else {
            Task { @MainActor in
                await Rujuk.main()
                exit(0)
            }
            dispatchMain()
        }
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
