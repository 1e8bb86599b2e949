import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RujukAdapter
import RujukCore

/// How the commands reach an adapter's API.
struct APIOptions: ParsableArguments {
    @Option(help: "The adapter's API base URL.") var api: String = ProcessInfo.processInfo.environment["RUJUK_API"] ?? "http://127.0.0.1:7790"
    @Option(help: ArgumentHelp(
        "The API bearer token. Discouraged: other users see it in `ps`; prefer $RUJUK_TOKEN or --agency.",
        discussion: "Without it: $RUJUK_TOKEN, else the api.token file of --agency (refused if others can read it)."))
    var token: String?
    @Option(help: "Read the token from this agency's api.token under [adapter] data_dir.") var agency: String?
    @Option(help: "The configuration file, to find the token file.") var config: String = "Config/rujuk.toml"
    @Flag(help: "Print JSON instead of a table.") var json = false

    func resolvedToken() throws -> String {
        if let token { return token }
        if let token = ProcessInfo.processInfo.environment["RUJUK_TOKEN"] { return token }
        if let agency {
            let configuration = try RujukConfiguration.load(URL(fileURLWithPath: config)).adapter(for: agency)
            let file = Adapter.tokenFile(in: configuration.agencyDirectory)
            if let token = try Adapter.readToken(in: configuration.agencyDirectory) { return token }
            throw ValidationError("no token file at \(file.path); is the adapter for \(agency) running?")
        }
        throw ValidationError("give --token, set RUJUK_TOKEN, or name --agency to read its token file")
    }

    /// Sends a request and returns the body, or throws the API's error as a readable message.
    func call(_ method: String, _ path: String, body: Data? = nil) async throws -> Data {
        guard let url = URL(string: api + path) else { throw ValidationError("bad --api URL") }
        var request = URLRequest(url: url, timeoutInterval: 30)
        request.httpMethod = method
        request.setValue("Bearer \(try resolvedToken())", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status / 100 == 2 else {
            struct Failure: Decodable { var error: ProtocolError }
            if let failure = try? JSONCoding.decoder().decode(Failure.self, from: data) {
                throw CLIError("\(failure.error.code): \(TerminalText.safe(failure.error.reason)) (HTTP \(status))")
            }
            throw CLIError("HTTP \(status)")
        }
        return data
    }

    func output<T: Decodable>(_ data: Data, as type: T.Type, table: (T) -> String) throws {
        if json {
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(table(try JSONCoding.decoder().decode(T.self, from: data)), terminator: "")
        }
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Table {
    static func handoffs(_ list: HandoffList, now: Date = Date()) -> String {
        guard !list.handoffs.isEmpty else { return "(none)\n" }
        var rows = [["ID", "CASE", "FROM", "TO", "SERVICE", "PRIORITY", "STATUS", "NEXT DUE", "OVERDUE"]]
        for view in list.handoffs {
            let due: Date? = switch view.status {
            case .requested: view.dueReceive
            case .received: view.dueRespond
            case .accepted, .inProgress: view.dueComplete
            default: nil
            }
            rows.append([view.id, view.caseRef, view.from, view.to, view.service.rawValue, view.priority.rawValue,
                         view.status.rawValue + (view.delivery == "queued" ? " (queued)" : ""),
                         due.map { relative($0, now: now) } ?? "-", view.overdue?.rawValue ?? ""])
        }
        return render(rows)
    }

    static func relative(_ date: Date, now: Date) -> String {
        let seconds = date.timeIntervalSince(now)
        return seconds >= 0 ? "in \(Duration.format(seconds))" : "\(Duration.format(-seconds)) ago"
    }

    /// Columns padded to their widest cell; every cell made safe for a terminal first.
    static func render(_ rows: [[String]]) -> String {
        let rows = rows.map { $0.map(TerminalText.safe) }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n") + "\n"
    }

    static func detail(_ view: HandoffView) -> String {
        var lines = [
            "referral   \(view.id)", "case       \(view.caseRef)", "from → to  \(view.from) → \(view.to)",
            "service    \(view.service.rawValue) (\(view.priority.rawValue))", "location   \(view.location.regency.map { "\($0), " } ?? "")\(view.location.province)",
            "reason     \(view.reason?.rawValue ?? "-")\(view.body?.reason.map { " — \($0)" } ?? "")", "status     \(view.status.rawValue)\(view.overdue.map { " — OVERDUE (\($0.rawValue))" } ?? "")",
            "delivery   \(view.delivery ?? "-")",
            "due        receive \(Timestamp.format(view.dueReceive)), respond \(Timestamp.format(view.dueRespond)), complete \(Timestamp.format(view.dueComplete))",
        ]
        if let body = view.body {
            lines.append("subject    \(body.subject.ageBand), \(body.subject.gender), \(body.subject.nationality)\(body.subject.child ? ", CHILD" : ""); languages \(body.subject.languages.joined(separator: ",")); needs \(body.subject.needs.joined(separator: ",").isEmpty ? "-" : body.subject.needs.joined(separator: ","))")
            lines.append("consent    \(body.consent.status.rawValue) (\(body.consent.scope.map(\.rawValue).joined(separator: ","))) recorded by \(body.consent.recordedBy)")
        }
        lines.append("history")
        for event in view.history ?? [] {
            let detail = [event.reason?.rawValue, event.outcome?.rawValue, event.note?.reason, event.note?.outcome].compactMap { $0 }.joined(separator: "; ")
            lines.append("  \(Timestamp.format(event.at))  \(event.status.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) by \(event.by)\(detail.isEmpty ? "" : " — \(detail)")")
        }
        // Each line is the CLI's own: a control character in one came from the data.
        return lines.map(TerminalText.safe).joined(separator: "\n") + "\n"
    }
}

struct ReferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refer", abstract: "Refer a person to another agency.",
        discussion: """
            Either give the whole request as JSON with --file (the body of POST /api/referrals), \
            or give the fields as options. The adapter stamps the deadlines from sla.toml and \
            answers once the referral is durable in its ledger.
            """)
    @OptionGroup var options: APIOptions
    @Option(help: "A JSON file with the whole request.") var file: String?
    @Option(help: "The recipient agency id.") var to: String?
    @Option(help: "The service requested.") var service: Service?
    @Option(help: "emergency, urgent or routine.") var priority: Priority = .routine
    @Option(help: "Your pseudonymous case reference (never a name).") var caseRef: String?
    @Option(help: "Why, as a code: \(ReferralReason.allCases.map(\.rawValue).joined(separator: ", ")).") var reason: ReferralReason?
    @Option(help: "Why, in words (sealed for the recipient, like the person).") var reasonText: String?
    @Option(help: "Age band: 0-11, 12-17, 18-24, 25-34, 35-49, 50+, unknown.") var ageBand = "unknown"
    @Option(help: "female, male, other, unknown.") var gender = "unknown"
    @Option(help: "ISO 3166-1 alpha-2.") var nationality = "ID"
    @Option(help: "A language (repeatable).") var language: [String] = []
    @Option(help: "A need such as interpreter (repeatable).") var need: [String] = []
    @Flag(help: "The person is a child.") var child = false
    @Option(help: "The person's name (sent for the recipient only).") var name: String?
    @Option(help: "How to reach the person (recipient only).") var contact: String?
    @Option(help: "given or overridden.") var consent: Consent.Status = .given
    @Option(help: "Agency kinds consented to (repeatable).") var consentScope: [AgencyKind] = []
    @Option(help: "Who recorded the consent (officer id or role).") var recordedBy: String?
    @Option(help: "The legal ground of an override: emergency or child_protection.") var ground: Consent.Ground?
    @Option(help: "Why consent was overridden, in writing.") var justification: String?
    @Option(help: "Notes for the recipient.") var notes: String?

    func run() async throws {
        let body: Data
        if let file {
            body = try Data(contentsOf: URL(fileURLWithPath: file))
        } else {
            guard let to, let service, let caseRef, let reason, let recordedBy else {
                throw ValidationError("give --file, or --to, --service, --case-ref, --reason and --recorded-by")
            }
            let request = ReferralRequest(
                caseRef: caseRef, to: to, service: service, priority: priority, reason: reason,
                body: ReferralBody(
                    subject: Subject(ageBand: ageBand, gender: gender, nationality: nationality, languages: language, child: child, needs: need, name: name, contact: contact),
                    consent: Consent(status: consent, scope: consentScope, date: Date(), recordedBy: recordedBy, ground: ground, justification: justification),
                    reason: reasonText, notes: notes))
            body = Data(JSONCoding.encode(request))
        }
        let data = try await options.call("POST", "/api/referrals", body: body)
        try options.output(data, as: HandoffView.self) { "referred \($0.id) to \($0.to) (\($0.delivery ?? "queued")); respond by \(Timestamp.format($0.dueRespond))\n" }
    }
}

extension Service: ExpressibleByArgument {}
extension Priority: ExpressibleByArgument {}
extension HandoffStatus: ExpressibleByArgument {}
extension AgencyKind: ExpressibleByArgument {}
extension Consent.Status: ExpressibleByArgument {}
extension Consent.Ground: ExpressibleByArgument {}
extension ReferralReason: ExpressibleByArgument {}
extension ClosingReason: ExpressibleByArgument {}
extension Outcome: ExpressibleByArgument {}

struct ListOptions: ParsableArguments {
    @Option(help: "Only this status.") var status: HandoffStatus?
    @Option(help: "Only this service.") var service: Service?
    @Flag(help: "Only overdue handoffs.") var overdue = false

    var query: String {
        var items: [String] = []
        if let status { items.append("status=\(status.rawValue)") }
        if let service { items.append("service=\(service.rawValue)") }
        if overdue { items.append("overdue=true") }
        return items.isEmpty ? "" : "?" + items.joined(separator: "&")
    }
}

struct InboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inbox", abstract: "Referrals received by this agency, soonest due first.")
    @OptionGroup var options: APIOptions
    @OptionGroup var filter: ListOptions
    func run() async throws {
        try options.output(try await options.call("GET", "/api/inbox" + filter.query), as: HandoffList.self) { Table.handoffs($0) }
    }
}

struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "outbox", abstract: "Referrals sent by this agency, newest first.")
    @OptionGroup var options: APIOptions
    @OptionGroup var filter: ListOptions
    func run() async throws {
        try options.output(try await options.call("GET", "/api/outbox" + filter.query), as: HandoffList.self) { Table.handoffs($0) }
    }
}

struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "One referral with its history.")
    @OptionGroup var options: APIOptions
    @Argument(help: "The referral id.") var id: String
    func run() async throws {
        try options.output(try await options.call("GET", "/api/referrals/\(id)"), as: HandoffView.self, table: Table.detail)
    }
}

/// accept, decline, start, complete and cancel: one POST each.
protocol StatusChangeCommand: AsyncParsableCommand {
    var options: APIOptions { get }
    var id: String { get }
    static var action: String { get }
    var change: StatusChangeRequest { get }
}

extension StatusChangeCommand {
    func run() async throws {
        let data = try await options.call("POST", "/api/referrals/\(id)/\(Self.action)", body: Data(JSONCoding.encode(change)))
        try options.output(data, as: HandoffView.self) { "\($0.id): \($0.status.rawValue)\n" }
    }
}

struct AcceptCommand: StatusChangeCommand {
    static let configuration = CommandConfiguration(commandName: "accept", abstract: "Accept a received referral.")
    static let action = "accept"
    @OptionGroup var options: APIOptions
    @Argument(help: "The referral id.") var id: String
    var change: StatusChangeRequest { StatusChangeRequest() }
}

struct DeclineCommand: StatusChangeCommand {
    static let configuration = CommandConfiguration(commandName: "decline", abstract: "Decline a received referral, with a reason.")
    static let action = "decline"
    @OptionGroup var options: APIOptions
    @Argument(help: "The referral id.") var id: String
    @Option(help: "Why, as a code (required): \(ClosingReason.allCases.map(\.rawValue).joined(separator: ", ")).") var reason: ClosingReason
    @Option(help: "Why, in words (sealed for the sender).") var note: String?
    var change: StatusChangeRequest { StatusChangeRequest(reason: reason, note: note.map { UpdateNote(reason: $0) }) }
}

struct StartCommand: StatusChangeCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Mark an accepted referral's service as started.")
    static let action = "start"
    @OptionGroup var options: APIOptions
    @Argument(help: "The referral id.") var id: String
    var change: StatusChangeRequest { StatusChangeRequest() }
}

struct CompleteCommand: StatusChangeCommand {
    static let configuration = CommandConfiguration(commandName: "complete", abstract: "Complete a started service, with its outcome.")
    static let action = "complete"
    @OptionGroup var options: APIOptions
    @Argument(help: "The referral id.") var id: String
    @Option(help: "The outcome, as a code (required): \(Outcome.allCases.map(\.rawValue).joined(separator: ", ")).") var outcome: Outcome
    @Option(help: "How it went, in words (sealed for the sender).") var note: String?
    var change: StatusChangeRequest { StatusChangeRequest(outcome: outcome, note: note.map { UpdateNote(outcome: $0) }) }
}

struct CancelCommand: StatusChangeCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Withdraw a referral this agency sent, with a reason.")
    static let action = "cancel"
    @OptionGroup var options: APIOptions
    @Argument(help: "The referral id.") var id: String
    @Option(help: "Why, as a code (required): \(ClosingReason.allCases.map(\.rawValue).joined(separator: ", ")).") var reason: ClosingReason
    @Option(help: "Why, in words (sealed for the recipient).") var note: String?
    var change: StatusChangeRequest { StatusChangeRequest(reason: reason, note: note.map { UpdateNote(reason: $0) }) }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "The adapter's health and its link to the broker.")
    @OptionGroup var options: APIOptions
    func run() async throws {
        guard let url = URL(string: options.api + "/health") else { throw ValidationError("bad --api URL") }
        let data: Data
        do {
            (data, _) = try await URLSession.shared.data(from: url)
        } catch {
            throw CLIError("no adapter answers at \(options.api): \(error.localizedDescription)")
        }
        try options.output(data, as: AdapterHealth.self) { health in
            """
            agency    \(health.agency)
            broker    \(health.broker.rawValue)
            queued    \(health.ledger.queued) waiting for the broker's COMMIT
            to answer \(health.ledger.awaitingResponse) received, not yet accepted or declined
            overdue   \(health.ledger.overdue) open handoffs past a deadline

            """
        }
    }
}
