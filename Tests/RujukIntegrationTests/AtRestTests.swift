import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
@testable import RujukAdapter
import RujukCore
import Testing

/// A ledger keeps every referral's personal part sealed under its agency's key, apart from the
/// file: the file, its WAL and a copy of it reveal none of it, the API still shows it.
@Suite(.timeLimit(.minutes(5))) struct AtRestTests {
    static let name = "Ratnasari Kusumawardhani-AtRest"
    static let phone = "+62 811 7734 9021"
    static let notes = "found at the Sekupang ferry terminal, AtRest-notes"

    func holds(_ file: URL, _ needle: String) throws -> Bool {
        try Data(contentsOf: file).range(of: Data(needle.utf8)) != nil
    }

    /// The ledger's files: the database and its -wal, and `extra` (a copy).
    func ledgerFiles(_ directory: URL, _ extra: [URL] = []) -> [URL] {
        ["ledger.sqlite", "ledger.sqlite-wal"].map { directory.appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0.path) } + extra
    }

    @Test func personalDataIsInNoByteOfALedgerItsLogOrABackupAndTheAPIStillShowsIt() async throws {
        let network = try Network()
        let log = CapturedLog()
        let police = try network.adapter("polda-kepri", logger: log.logger(level: .trace))
        let hospital = try network.adapter("rsud-embung-fatimah", logger: log.logger(level: .trace))
        let api = Task { try await hospital.run() }
        defer { api.cancel() }
        try await waitFor("the API listens") { hospital.boundHTTPPort != nil }

        var request = Network.request(name: Self.name)
        request.body.subject.contact = Self.phone
        request.body.notes = Self.notes
        let sent = try police.refer(request)
        try await waitFor("received", timeout: 30) { try police.ledger.view(sent.id)?.status == .received }

        // The recipient's API opens it for the agency system.
        let port = try #require(hospital.boundHTTPPort)
        let url = URL(string: "http://127.0.0.1:\(port)/api/referrals/\(sent.id)")!
        var get = URLRequest(url: url, timeoutInterval: 10)
        get.setValue("Bearer test-token", forHTTPHeaderField: "Authorization")
        let (shown, _) = try await URLSession.shared.data(for: get)
        let view = try JSONCoding.decode(HandoffView.self, from: Array(shown), what: "test")
        let body = try #require(view.body)
        #expect(body.subject.name == Self.name && body.subject.contact == Self.phone && body.notes == Self.notes)
        #expect(try police.ledger.view(sent.id)?.body?.notes == Self.notes, "the sender reads its own copy")

        // Neither ledger holds any of it while running (file and WAL), nor after a clean close,
        // nor does a copy of the closed file; the envelope is there, so the search can see.
        api.cancel()
        _ = await api.result
        let directories = ["polda-kepri", "rsud-embung-fatimah"].map {
            network.directory.appendingPathComponent("adapters/\($0)")
        }
        for directory in directories {
            #expect(try ledgerFiles(directory).contains { try holds($0, sent.id) }, "the search sees the envelope")
            for file in ledgerFiles(directory) {
                for needle in [Self.name, Self.phone, Self.notes] {
                    #expect(try !holds(file, needle), "\(file.lastPathComponent), running: '\(needle)'")
                }
            }
        }
        for adapter in [police, hospital] {
            adapter.shutdown()
            #expect(try adapter.ledger.close(), "closed cleanly: the WAL emptied")
        }
        network.adapters.removeAll()
        var copies: [URL] = []
        for directory in directories {
            let copy = directory.appendingPathComponent("backup.sqlite")
            try FileManager.default.copyItem(at: directory.appendingPathComponent("ledger.sqlite"), to: copy)
            copies.append(copy)
            for file in ledgerFiles(directory, [copy]) {
                for needle in [Self.name, Self.phone, Self.notes] {
                    #expect(try !holds(file, needle), "\(file.lastPathComponent), closed: '\(needle)'")
                }
            }
        }
        for line in log.lines {
            let text = line.message + line.metadata.values.joined()
            #expect(![Self.name, Self.phone, Self.notes].contains { text.contains($0) }, "\(line.message)")
        }

        // The copy opened with another agency's key: refused at open, saying why, with the code
        // an agency system acts on; and its bodies, read around the ledger, do not open.
        let copyDirectory = network.directory.appendingPathComponent("stolen")
        try FileManager.default.createDirectory(at: copyDirectory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: copies[1], to: copyDirectory.appendingPathComponent("ledger.sqlite"))
        let other = try Network.sealer("lpsk")
        let refused = try #require(throws: RujukError.self) {
            _ = try Ledger(directory: copyDirectory, agency: "rsud-embung-fatimah", durability: .full,
                           clock: SystemClock(), sealer: other)
        }
        #expect(refused.code == .sealInvalid && refused.reason.contains("another agency key"), "\(refused)")
        let stored = try await DatabaseQueue(path: copies[1].path).read { db in
            try #require(try Data.fetchOne(db, sql: "SELECT body FROM referral WHERE id = ?",
                                           arguments: [sent.id]))
        }
        let unreadable = try #require(throws: RujukError.self) {
            try other.atRest.open([UInt8](stored), row: sent.id)
        }
        #expect(unreadable.code == .sealInvalid && !unreadable.reason.contains(Self.name))
    }

    @Test func aBodyCopiedOntoAnotherRowDoesNotOpen() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let first = try police.refer(Network.request(name: Self.name))
        let second = try police.refer(Network.request(name: "Another Person"))
        try await police.ledger.pool.write { db in
            try db.execute(sql: "UPDATE referral SET body = (SELECT body FROM referral WHERE id = ?) WHERE id = ?",
                           arguments: [first.id, second.id])
        }
        let error = try #require(throws: RujukError.self) { try police.ledger.view(second.id) }
        #expect(error.code == .sealInvalid, "never another referral's person, never a view without one")
        #expect(try police.ledger.view(first.id)?.body?.subject.name == Self.name)
        #expect(try police.ledger.view(second.id, body: false)?.body == nil, "what reads no body is not stopped")
    }

    @Test func anOlderLedgersBodiesInTheClearAreSealedInPlaceAndStillRead() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("rujuk-at-rest-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent("ledger.sqlite")
        let sealer = try Network.sealer("rsud-embung-fatimah")

        // A ledger as the build before the at-rest key left it: its schema up to v5, an inbound
        // referral's body in the clear, then a clean close.
        var request = Network.request(name: Self.name)
        request.body.subject.contact = Self.phone
        request.body.notes = Self.notes
        let id = MessageID.make(at: Date()), stamp = Timestamp.format(Date())
        let old = try DatabaseQueue(path: url.path)
        try Ledger.migrator(atRest: sealer.atRest).migrate(old, upTo: "v5-checks-without-lists")
        try old.write { db in
            try db.execute(sql: """
                INSERT INTO referral (id, direction, case_ref, from_agency, to_agency, service, priority,
                    province, regency, reason, status, delivery, created_at, due_receive, due_respond,
                    due_complete, updated_at, raw, body)
                VALUES (?, 'inbound', 'KR-BTM-2026-0041', 'polda-kepri', 'rsud-embung-fatimah',
                    'medical_care', 'urgent', 'ID-KR', 'Batam', 'post-rescue medical examination',
                    'received', 'received', ?, ?, ?, ?, ?, X'00', ?)
                """, arguments: [id, stamp, stamp, stamp, stamp, stamp, Data(JSONCoding.encode(request.body))])
        }
        try old.close()
        #expect(try holds(url, Self.name), "the old file holds the name in the clear")

        func open() throws -> Ledger {
            try Ledger(directory: directory, agency: "rsud-embung-fatimah", durability: .full,
                       clock: SystemClock(), sealer: sealer)
        }
        let ledger = try open()
        #expect(try ledger.view(id)?.body?.subject.contact == Self.phone, "read as before")
        let stored = try ledger.pool.read {
            try Data.fetchOne($0, sql: "SELECT body FROM referral WHERE id = ?", arguments: [id])
        }
        let opened = try sealer.atRest.open([UInt8](try #require(stored)), row: id)
        // The reason in words the older envelope carried moved into the body (v7-envelope-codes).
        var expected = request.body
        expected.reason = "post-rescue medical examination"
        let decoded = try JSONCoding.decode(ReferralBody.self, from: opened, what: "opened")
        #expect(JSONCoding.encode(decoded) == JSONCoding.encode(expected), "sealed for its row")
        #expect(try ledger.close())
        for file in ledgerFiles(directory) {
            for needle in [Self.name, Self.phone, Self.notes] {
                #expect(try !holds(file, needle), "\(file.lastPathComponent) still holds '\(needle)'")
            }
        }
        // Opened again, nothing is sealed twice.
        let reopened = try open()
        #expect(try reopened.view(id)?.body?.notes == Self.notes)
        try reopened.close()
    }
}
