import ArgumentParser
import CZeroMQ
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RujukCore
import ZeroMQ

/// `rujuk watch`: follows the broker's monitor feed live (Protocols/MONITOR.md).
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow handoff transitions and escalations live, from the broker's monitor feed.",
        discussion: """
            Envelope fields only: the feed never carries personal data. A gap in the feed (a \
            publication missed while the subscriber was slow, or a broker restart) is noticed \
            from each event's `prev` and filled from the broker's GET /api/feed, so nothing is \
            skipped and nothing is printed twice. With --since SEQ, events after SEQ are read \
            from the broker first.
            """)

    @Option(help: "Only handoffs this agency sends, receives or is told about.") var agency: String?
    @Option(help: "Only handoffs located in this province (ISO 3166-2, e.g. ID-KR).") var province: String?
    @Flag(help: "Only overdue handoffs and escalations.") var overdue = false
    @Option(help: "The broker's monitor feed (default: [broker] monitor of the configuration).") var monitor: String?
    @Option(help: "The broker's status API, for re-sync (default: [broker] http).") var status: String?
    @Option(help: "A file holding the status API's bearer token, for re-sync (mode 0600; or set RUJUK_STATUS_TOKEN). Not the token itself: a command line shows in `ps`.") var statusTokenFile: String?
    @Option(help: "Print the events after this feed sequence number first.") var since: Int64?
    @Option(help: "Exit after this many events (default: run until Ctrl-C).") var count: Int?
    @Flag(help: "One JSON object per line instead of text.") var json = false
    @Option(help: "The key file of an agency with the monitor role, for a CurveZMQ feed (needed for the configured broker unless it says transport = \"plaintext\"; without it, an explicit --monitor is read in plaintext, as the demo serves it).") var keyFile: String?
    @Option(help: "The broker's CurveZMQ public key (default: [adapter] broker_key of the configuration).") var brokerKey: String?
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try? options.load()
        let monitor = monitor ?? config?.broker.monitor ?? "tcp://127.0.0.1:7701"
        let statusBase = status ?? config.map { "http://\($0.broker.http)" } ?? "http://127.0.0.1:7780"
        let token = try statusToken()
        if let agency, !ReferralValidation.isAgencyID(agency) { throw ValidationError("--agency is not an agency id") }
        if let province, !ReferralValidation.isProvinceCode(province) { throw ValidationError("--province must be an ISO 3166-2 code such as ID-KR") }
        // One topic on the socket; the other filters are applied here (MONITOR.md §3).
        let topic = agency.map { "agency/\($0)" } ?? province.map { "province/\($0)" } ?? "kind/"
        let context = try Context()
        let socket = try Socket(context, .sub)
        try socket.set(ZMQ_RCVHWM, Int32(100_000))
        try socket.set(ZMQ_SUBSCRIBE, bytes: Array(topic.utf8))
        if let keyFile {
            let keys = try KeyFile.load(URL(fileURLWithPath: keyFile))
            guard let serverKey = brokerKey ?? (try? config?.adapterTable?.string("broker_key")) ?? nil else {
                throw ValidationError("--broker-key is needed with --key-file (or [adapter] broker_key in the configuration)")
            }
            try socket.makeCurveClient(serverKey: serverKey, publicKey: keys.curvePublic, secretKey: keys.curveSecret)
        } else if self.monitor == nil, config?.transport == .curve {
            // The configured broker speaks CurveZMQ; a --monitor given without a key is taken
            // to be a plaintext one (the demo's).
            throw ValidationError("the broker's feed needs CurveZMQ: give --key-file of an agency with the monitor role")
        }
        try socket.connect(monitor)
        defer { socket.close() }

        var follower = FeedFollower(since: since ?? 0)
        var printed = 0
        func show(_ event: FeedEvent) -> Bool {
            if let province, event.province != province { return false }
            if overdue, event.overdue == nil, event.kind != .escalation { return false }
            // Written straight to the file descriptor, so a pipe sees each line as it happens.
            let line = json ? String(decoding: JSONCoding.encode(event), as: UTF8.self) : Self.line(event)
            FileHandle.standardOutput.write(Data((TerminalText.safe(line) + "\n").utf8))
            printed += 1
            return count.map { printed >= $0 } ?? false
        }
        if let since {
            let page = try await Self.fetch(statusBase, token: token, after: since, topic: topic)
            for event in page where event.seq > follower.highest {
                if show(event) { return }
            }
            if let last = page.last { follower = FeedFollower(since: last.seq) }
        }
        while !Task.isCancelled {
            guard try poll([.socket(socket)], timeoutMilliseconds: 250)[0] else { continue }
            while let message = try socket.receive(dontWait: true) {
                guard message.frames.count == 2,
                      let decoded = try? JSONCoding.decoder().decode(FeedMessage.self, from: Data(message.frames[1])),
                      decoded.topic == String(decoding: message.frames[0], as: UTF8.self),
                      topic == "kind/" ? decoded.topic.hasPrefix("kind/") : decoded.topic == topic  // prefix matching is not equality
                else { continue }
                var emit: [FeedEvent] = []
                switch follower.receive(decoded) {
                case .emit(let event): emit = [event]
                case .skip: break
                case .resync(let gapTopic, let after):
                    FileHandle.standardError.write(Data("rujuk watch: gap on \(gapTopic) after #\(after); re-syncing from \(statusBase)/api/feed\n".utf8))
                    let page = try await Self.fetch(statusBase, token: token, after: after, topic: gapTopic)
                    emit = follower.resynced(page, then: decoded)
                }
                for event in emit where show(event) { return }
            }
        }
    }

    /// The status API's token: the file given, or RUJUK_STATUS_TOKEN.
    func statusToken() throws -> String? {
        if let statusTokenFile { return try SecretFile.read(URL(fileURLWithPath: statusTokenFile), what: "status token file") }
        return ProcessInfo.processInfo.environment["RUJUK_STATUS_TOKEN"]
    }

    static func fetch(_ base: String, token: String?, after: Int64, topic: String) async throws -> [FeedEvent] {
        var events: [FeedEvent] = []
        var cursor = after
        while true {
            guard let url = URL(string: "\(base)/api/feed?after=\(cursor)&topic=\(topic)&limit=1000") else { throw ValidationError("bad --status URL") }
            var request = URLRequest(url: url, timeoutInterval: 30)
            if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            let (data, response) = try await URLSession.shared.data(for: request)
            guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw CLIError("the broker's feed API answered \((response as? HTTPURLResponse)?.statusCode ?? 0)") }
            let page = try JSONCoding.decode(FeedPage.self, from: Array(data), what: "feed page")
            events += page.events
            guard let last = page.events.last, page.events.count == 1000 else { return events }
            cursor = last.seq
        }
    }

    static func line(_ event: FeedEvent) -> String {
        let time = Timestamp.format(event.at).dropFirst(11).prefix(8)
        var text = "#\(event.seq)  \(time)  \(event.referralId.suffix(12))  \(event.from) → \(event.to)  \(event.service.rawValue)/\(event.priority.rawValue)  \(event.province)  "
        switch event.kind {
        case .transition:
            text += "\(event.status.rawValue) by \(event.by)"
        case .escalation:
            let targets = (event.targets ?? []).joined(separator: ", ")
            text += event.notice == .resolved
                ? "escalation resolved (\(event.clock?.rawValue ?? "?") clock) → \(targets)"
                : "ESCALATED level \(event.level ?? 0) (\(event.clock?.rawValue ?? "?") clock) → \(targets)"
        }
        if let overdue = event.overdue { text += "  [overdue: \(overdue.rawValue)]" }
        return text
    }
}
