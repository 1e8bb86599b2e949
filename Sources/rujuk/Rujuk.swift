import ArgumentParser
import Foundation

@main
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
