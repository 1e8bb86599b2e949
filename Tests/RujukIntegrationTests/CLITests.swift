import Foundation
import RujukAdapter
import RujukCore
import Testing

/// The `rujuk` executable as an agency's staff would run it, against real adapters.
@Suite(.timeLimit(.minutes(5))) struct CLITests {
    typealias Run = RujukRun

    func rujuk(_ arguments: [String]) async throws -> Run { try await runRujuk(arguments) }

    @Test func staffCanReferAnswerAndFollowAReferralFromTheCommandLine() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: BrokerProcess.binary.path), "build the rujuk executable first")
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let tasks = [Task { try await police.run() }, Task { try await hospital.run() }]
        defer { tasks.forEach { $0.cancel() } }
        try await waitFor("both APIs listen") { police.boundHTTPPort != nil && hospital.boundHTTPPort != nil }
        let policeAPI = ["--api", "http://127.0.0.1:\(police.boundHTTPPort!)", "--token", "test-token"]
        let hospitalAPI = ["--api", "http://127.0.0.1:\(hospital.boundHTTPPort!)", "--token", "test-token"]

        let refer = try await rujuk(["refer"] + policeAPI + [
            "--to", "rsud-embung-fatimah", "--service", "medical_care", "--priority", "urgent", "--case-ref", "CLI-1",
            "--reason", "medical_treatment", "--reason-text", "injuries after rescue", "--age-band", "25-34", "--gender", "female", "--consent-scope", "health",
            "--recorded-by", "ipda-01", "--name", "Siti Baris Perintah", "--json",
        ])
        #expect(refer.status == 0, "\(refer.err)")
        let created = try JSONCoding.decode(HandoffView.self, from: Array(refer.out.utf8), what: "refer output")
        #expect(created.to == "rsud-embung-fatimah" && created.priority == .urgent)
        let id = created.id
        try await waitFor("the hospital has it") { try hospital.ledger.view(id) != nil }

        let inbox = try await rujuk(["inbox"] + hospitalAPI)
        #expect(inbox.status == 0)
        #expect(inbox.out.hasPrefix("ID"), "a table with a header: \(inbox.out)")
        #expect(inbox.out.contains(id) && inbox.out.contains("received") && inbox.out.contains("CLI-1"))
        #expect(!inbox.out.contains("Siti Baris Perintah"), "the inbox table shows no personal data")

        for step in [["accept", id], ["start", id], ["complete", id, "--outcome", "service_provided", "--note", "treated and discharged"]] {
            let run = try await rujuk(step + hospitalAPI)
            #expect(run.status == 0, "\(step[0]): \(run.err)")
        }
        let show = try await rujuk(["show", id, "--json"] + hospitalAPI)
        let shown = try JSONCoding.decode(HandoffView.self, from: Array(show.out.utf8), what: "show output")
        #expect(shown.status == .completed)
        #expect(shown.history?.map(\.status) == [.requested, .received, .accepted, .inProgress, .completed])
        let detail = try await rujuk(["show", id] + hospitalAPI)
        #expect(detail.status == 0 && detail.out.contains("completed") && detail.out.contains("treated and discharged"))

        try await waitFor("the police see it completed") { try police.ledger.view(id)?.status == .completed }
        let outbox = try await rujuk(["outbox", "--json"] + policeAPI)
        let sent = try JSONCoding.decode(HandoffList.self, from: Array(outbox.out.utf8), what: "outbox output")
        #expect(sent.handoffs.map(\.id) == [id] && sent.handoffs.first?.status == .completed)

        let status = try await rujuk(["status"] + hospitalAPI)
        #expect(status.status == 0)
        #expect(status.out.contains("rsud-embung-fatimah") && status.out.contains("ready"), "\(status.out)")
    }

    @Test func mistakesGetAClearMessageAndAFailingExitStatus() async throws {
        let network = try Network()
        let hospital = try network.adapter("rsud-embung-fatimah")
        let task = Task { try await hospital.run() }
        defer { task.cancel() }
        try await waitFor("the API listens") { hospital.boundHTTPPort != nil }
        let api = ["--api", "http://127.0.0.1:\(hospital.boundHTTPPort!)"]
        let unknown = "01970000-0000-7000-8000-000000000000"

        let noReason = try await rujuk(["decline", unknown, "--token", "test-token"] + api)
        #expect(noReason.status != 0 && noReason.err.contains("--reason"), "\(noReason.err)")
        let wrongToken = try await rujuk(["accept", unknown, "--token", "not-the-token"] + api)
        #expect(wrongToken.status != 0 && wrongToken.err.contains("unauthorized"), "\(wrongToken.err)")
        let missing = try await rujuk(["accept", unknown, "--token", "test-token"] + api)
        #expect(missing.status != 0 && missing.err.contains("not_found"), "\(missing.err)")
        let badService = try await rujuk(["refer", "--token", "test-token", "--to", "lpsk", "--service", "massage", "--reason", "x", "--case-ref", "C"] + api)
        #expect(badService.status != 0 && badService.err.contains("service"), "\(badService.err)")
        let nobody = try await rujuk(["status", "--api", "http://127.0.0.1:1"])
        #expect(nobody.status != 0 && nobody.err.contains("no adapter answers"), "\(nobody.err)")
    }

    @Test func theDemoPlaysItsScenarioAndPrintsNoPersonalData() async throws {
        let demo = try await rujuk(["demo", "--once", "--http-port", "0", "--monitor-port", "0", "--config", Network.root.appendingPathComponent("Config/rujuk.toml").path])
        #expect(demo.status == 0, "\(demo.err.suffix(500))")
        for moment in ["committed at the broker", "received (stored in", "declined by lbh-batam", "accepted by", "completed by rsud-embung-fatimah", "uptd-ppa-batam",
                       "ESCALATED level 1: the receive clock ran out; told gugus-tugas-nasional", "[seen by task force gugus-tugas-nasional]",
                       "escalation RESOLVED"] {
            #expect(demo.out.contains(moment), "the demo shows '\(moment)'")
        }
        for personal in ["(demo person)", "(demo returnee)", "(demo returnee 2)", "Rescued at Batu Ampar", "via Polda Kepri PPA unit"] {
            #expect(!demo.out.contains(personal) && !demo.err.contains(personal), "the demo never prints '\(personal)'")
        }
    }

    @Test func escapeSequencesFromAnotherAgencyAreNotPrintedToTheTerminal() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let task = Task { try await police.run() }
        defer { task.cancel() }
        try await waitFor("the API listens") { police.boundHTTPPort != nil }
        let sent = try police.refer(Network.request())
        try await waitFor("the hospital has it") { try hospital.ledger.view(sent.id) != nil }
        // Clear the screen, set the window title, a C1 CSI, a line of its own and a bidi override.
        let reason = "full\u{1B}[2J\u{1B}]0;owned\u{07}\u{9B}31m\nfake line\u{202E}txe"
        _ = try hospital.change(sent.id, to: .declined, reason: .other, note: UpdateNote(reason: reason))
        try await waitFor("the police have the decline") { try police.ledger.view(sent.id)?.status == .declined }

        let api = ["--api", "http://127.0.0.1:\(police.boundHTTPPort!)", "--token", "test-token"]
        for command in [["show", sent.id], ["outbox"]] {
            let run = try await rujuk(command + api)
            #expect(run.status == 0, "\(run.err)")
            let controls = run.out.unicodeScalars.filter { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) || $0.value == 0x202E }
            #expect(controls.isEmpty, "\(command[0]) printed \(controls.map { String($0.value, radix: 16) })")
            #expect(!run.out.contains("\nfake line"), "no line of the data's own")
        }
        let show = try await rujuk(["show", sent.id] + api)
        #expect(show.out.contains("full\u{FFFD}[2J"), "the text is still shown, its controls replaced: \(show.out)")
    }
}
