import Foundation
import GRDB
@testable import RujukAdapter
@testable import RujukBroker
import RujukCore
import Testing

/// An RRP/1 store held words an agency typed — reasons, outcomes, regencies by name — in its
/// rows and its stored messages. The upgrade to RRP/2 replaces them with codes everywhere at
/// the broker, and leaves no copy of them in its files; a ledger keeps its agency's own words.
@Suite(.timeLimit(.minutes(5))) struct EnvelopeCodesMigrationTests {
    static let words = "Ratna Kusumawati-Migrasi"

    @Test func theBrokersFreeTextIsClearedAndItsFilesHoldNoneOfIt() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-migrate-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("broker/broker.sqlite")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: url.path)
        try BrokerStore.migrator.migrate(old, upTo: "v7-agency-indexes-without-status")
        var referral = Fixtures.referral()
        referral.reason = .other
        var legacy = try #require(try JSONSerialization.jsonObject(with: Data(JSONCoding.encode(referral))) as? [String: Any])
        legacy["reason"] = "\(Self.words) was found at the port"
        legacy["location"] = ["province": "ID-KR", "regency": "Batam \(Self.words)"]
        let refer = try JSONSerialization.data(withJSONObject: legacy, options: [.sortedKeys])
        let event = try JSONSerialization.data(withJSONObject: [
            "id": MessageID.make(), "referral_id": referral.id, "by": "rsud-embung-fatimah", "status": "declined",
            "reason": "no bed for \(Self.words)", "at": "2026-11-23T10:00:00.000Z"], options: [.sortedKeys])
        try old.write { db in
            try db.execute(sql: "INSERT INTO message (id, kind, referral_id, author, payload, stored_at) VALUES (?, 'referral', ?, 'polda-kepri', ?, 't')",
                           arguments: [referral.id, referral.id, refer])
            try db.execute(sql: "INSERT INTO message (id, kind, referral_id, author, payload, stored_at) VALUES ('e1', 'event', ?, 'rsud-embung-fatimah', ?, 't')",
                           arguments: [referral.id, event])
            try db.execute(sql: """
                INSERT INTO handoff (id, case_ref, from_agency, to_agency, service, priority, province, regency, status, created_at, due_receive,
                    due_respond, due_complete, updated_at) VALUES (?, 'c', 'polda-kepri', 'rsud-embung-fatimah', 'medical_care', 'routine', 'ID-KR', ?,
                    'declined', 't', 't', 't', 't', 't')
                """, arguments: [referral.id, "Batam \(Self.words)"])
            try db.execute(sql: "INSERT INTO handoff_event (id, referral_id, status, by_agency, reason, at, recorded_at) VALUES ('e1', ?, 'declined', 'rsud-embung-fatimah', ?, 't', 't')",
                           arguments: [referral.id, "no bed for \(Self.words)"])
        }
        try old.close()
        #expect(try Data(contentsOf: url).range(of: Data(Self.words.utf8)) != nil, "the old file holds the words")

        let store = try BrokerStore(directory: url.deletingLastPathComponent(), durability: .full)
        let payloads = try store.pool.read { try Data.fetchAll($0, sql: "SELECT payload FROM message ORDER BY kind") }
        let stored = try JSONCoding.decode(Referral.self, from: [UInt8](payloads[1]), what: "stored referral")
        #expect(stored.reason == .other && stored.location.regency == nil, "the referral still decodes, with codes")
        let storedEvent = try JSONCoding.decode(HandoffEvent.self, from: [UInt8](payloads[0]), what: "stored event")
        #expect(storedEvent.reason == .other)
        #expect(try store.pool.read { try String.fetchOne($0, sql: "SELECT reason FROM handoff_event WHERE id = 'e1'") } == "other")
        #expect(try store.pool.read { try String.fetchOne($0, sql: "SELECT regency FROM handoff") } == "")
        try store.close()
        for file in try FileManager.default.contentsOfDirectory(at: url.deletingLastPathComponent(), includingPropertiesForKeys: nil) {
            #expect(try Data(contentsOf: file).range(of: Data(Self.words.utf8)) == nil, "\(file.lastPathComponent) holds no trace of the words")
        }
    }

    @Test func aLedgerKeepsItsAgencysOwnWordsBesideTheNewCodes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-migrate-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("ledger.sqlite")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let old = try DatabaseQueue(path: url.path)
        try Ledger.migrator(atRest: Network.sealer("polda-kepri").atRest).migrate(old, upTo: "v6-open-retention")
        let body = String(decoding: JSONCoding.encode(Network.request().body), as: UTF8.self)
        try old.write { db in
            try db.execute(sql: """
                INSERT INTO referral (id, direction, case_ref, from_agency, to_agency, service, priority, province, regency, reason, status, delivery,
                    created_at, due_receive, due_respond, due_complete, updated_at, raw, body) VALUES
                    ('r1', 'outbound', 'c', 'a', 'b', 'medical_care', 'urgent', 'ID-KR', 'Batam', 'examination after rescue', 'declined', 'sent',
                    't', 't', 't', 't', 't', X'00', CAST(? AS BLOB));
                INSERT INTO event (id, referral_id, status, by_agency, reason, at, recorded_at, origin) VALUES ('e1', 'r1', 'declined', 'b', 'no bed', 't', 't', 'remote');
                INSERT INTO event (id, referral_id, status, by_agency, outcome, at, recorded_at, origin) VALUES ('e2', 'r1', 'completed', 'b', 'service_provided', 't', 't', 'remote');
                """, arguments: [body])
        }
        try old.close()
        let ledger = try Ledger(directory: directory, agency: "polda-kepri", durability: .full, clock: SystemClock(), sealer: Network.sealer("polda-kepri"))
        let view = try #require(try ledger.view("r1"))
        #expect(view.reason == .other && view.body?.reason == "examination after rescue", "the words moved into the body")
        let history = try #require(view.history)
        #expect(history[0].reason == .other && history[0].note?.reason == "no bed")
        #expect(history[1].outcome == .serviceProvided && history[1].note == nil, "a value that was already a code is the code")
        try ledger.close()
        for file in try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil) {
            #expect(try Data(contentsOf: file).range(of: Data("no bed".utf8)) == nil, "the words are sealed at rest: \(file.lastPathComponent)")
            #expect(try Data(contentsOf: file).range(of: Data("examination after rescue".utf8)) == nil)
        }
    }
}

/// A field the broker does not know is neither stored nor forwarded: free text cannot ride in
/// the envelope under a name its rules do not cover.
@Suite(.timeLimit(.minutes(5))) struct UnknownFieldTests {
    @Test func aFieldTheBrokerDoesNotKnowIsNeitherStoredNorForwarded() async throws {
        let network = try Network()
        let hospital = try network.adapter("rsud-embung-fatimah")
        let peer = try RawPeer(network, agency: "polda-kepri")
        let referral = Fixtures.referral()
        var body = try #require(try JSONSerialization.jsonObject(with: Data(JSONCoding.encode(referral))) as? [String: Any])
        body["notes"] = "Ratna Kusumawati-Unknown found at the port"
        body["location"] = ["province": "ID-KR", "regency": "21.71", "village": "Ratna Kusumawati-Unknown's kampung"]
        try peer.send(frames: [RRPCodec.header, Array("REFER".utf8), [UInt8](try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys]))])
        guard case .commit(let commit) = try peer.next() else { Issue.record("no COMMIT"); return }
        #expect(commit.ids == [referral.id], "accepted: receivers ignore what they do not know")
        try await waitFor("the hospital has it") { try hospital.ledger.view(referral.id) != nil }
        let stored = try await network.broker.store.pool.read { try Data.fetchOne($0, sql: "SELECT payload FROM message WHERE id = ?", arguments: [referral.id]) }
        #expect(try #require(stored).range(of: Data("Kusumawati-Unknown".utf8)) == nil, "not stored at the broker")
        let delivered = try await hospital.ledger.pool.read { try Data.fetchOne($0, sql: "SELECT raw FROM referral WHERE id = ?", arguments: [referral.id]) }
        #expect(try #require(delivered).range(of: Data("Kusumawati-Unknown".utf8)) == nil, "nor forwarded")
        #expect(try hospital.ledger.view(referral.id)?.body?.subject.name == "Siti Contoh", "and the seal still opens")
    }
}
