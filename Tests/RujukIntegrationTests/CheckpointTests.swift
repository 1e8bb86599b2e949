import Crypto
import Foundation
import GRDB
import Logging
import RujukAdapter
@testable import RujukBroker
import RujukCore
import Testing

/// The broker's signed checkpoints of its audit log, kept by the adapters: what catches a broker
/// that rewrites its own history (Protocols/RRP.md section 4.13).
@Suite(.timeLimit(.minutes(5))) struct CheckpointTests {
    /// A broker store with a few hundred feed records, and a file of the checkpoints the
    /// hospital's adapter received over real sockets, exported by `rujuk audit checkpoints`.
    struct Evidence {
        var network: Network
        var store: URL
        var config: URL
        var checkpoints: URL
        var records: Int64
    }

    static let referrals = 150

    func collectEvidence() async throws -> Evidence {
        #expect(FileManager.default.isExecutableFile(atPath: BrokerProcess.binary.path), "build the rujuk executable first")
        let network = try Network(checkpointInterval: 0.05)
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<Self.referrals { group.addTask { _ = try await police.submit(Network.request()) } }
            try await group.waitForAll()
        }
        // Each referral is two records: requested, and received once the hospital has it.
        let records = Int64(2 * Self.referrals)
        try await waitFor("the broker recorded every referral and receipt", timeout: 60, interval: 0.1) {
            try network.broker.store.verifyAudit().records == records
        }
        try await waitFor("the hospital keeps a checkpoint of the whole log", timeout: 30, interval: 0.05) {
            try hospital.ledger.checkpoints().contains { $0.records == records }
        }
        let kept = try hospital.ledger.checkpoints().count
        network.stopAdapter("polda-kepri")
        network.stopAdapter("rsud-embung-fatimah")
        network.broker.shutdown()
        try network.broker.store.close()

        let config = try network.childBrokerConfig(
            endpoint: "tcp://127.0.0.1:1",
            adapter: "data_dir = \"\(network.directory.appendingPathComponent("adapters").path)\"\n" + Network.childFiles.adapter)
        let export = try await runRujuk(["audit", "checkpoints", "--agency", "rsud-embung-fatimah", "--config", config.path])
        #expect(export.status == 0, "\(export.err)")
        let lines = export.out.split(separator: "\n")
        #expect(!lines.isEmpty && lines.count == kept, "one line per checkpoint kept")
        let file = network.directory.appendingPathComponent("rsud-embung-fatimah.checkpoints")
        try export.out.write(to: file, atomically: true, encoding: .utf8)
        let store = network.directory.appendingPathComponent("broker/broker.sqlite")
        return Evidence(network: network, store: store, config: config, checkpoints: file, records: records)
    }

    /// A copy of the store as a compromised broker would leave it after `change`, with the
    /// append-only triggers dropped first.
    func tampered(_ evidence: Evidence, _ name: String, _ change: (Database) throws -> Void) throws -> URL {
        let copy = evidence.network.directory.appendingPathComponent("\(name).sqlite")
        try FileManager.default.copyItem(at: evidence.store, to: copy)
        let queue = try DatabaseQueue(path: copy.path)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER feed_append_only_update; DROP TRIGGER feed_append_only_delete")
            try change(db)
        }
        try queue.close()
        return copy
    }

    func verify(_ store: URL, _ evidence: Evidence, checkpoints: URL? = nil) async throws -> RujukRun {
        try await runRujuk(["audit", "verify", "--store", store.path, "--config", evidence.config.path]
                           + (checkpoints.map { ["--checkpoints", $0.path] } ?? []))
    }

    @Test func auditVerifyFindsAHistoryRewrittenWithEveryHashRecomputed() async throws {
        let evidence = try await collectEvidence()
        let intact = try await verify(evidence.store, evidence, checkpoints: evidence.checkpoints)
        #expect(intact.status == 0, "\(intact.out)\(intact.err)")
        #expect(intact.out.contains("audit log intact: \(evidence.records) records"))
        #expect(intact.out.contains("checkpoints: all") && intact.out.contains("match the audit log"), "\(intact.out)")

        // Record 100 backdated, then every hash from it on recomputed, as whoever holds the
        // broker's store can: the chain by itself is consistent again.
        let rewritten = try tampered(evidence, "rewritten") { db in
            try db.execute(sql: "UPDATE feed SET at = '2026-01-01T00:00:00.000Z' WHERE seq = 100")
            try Self.rechain(db, from: 100)
        }
        let plain = try await verify(rewritten, evidence)
        #expect(plain.status == 0 && plain.out.contains("audit log intact"), "the rewrite evades the chain alone: \(plain.out)")
        let caught = try await verify(rewritten, evidence, checkpoints: evidence.checkpoints)
        #expect(caught.status == 1)
        #expect(caught.out.contains("history rewritten at or before record"), "\(caught.out)")
        #expect(caught.out.contains("checkpoint signed at"), "\(caught.out)")
    }

    @Test func auditVerifyFindsTheNewestRecordsCut() async throws {
        let evidence = try await collectEvidence()
        let cut = try tampered(evidence, "cut") { db in
            try db.execute(sql: "DELETE FROM feed WHERE seq > ?", arguments: [evidence.records - 10])
        }
        let plain = try await verify(cut, evidence)
        #expect(plain.status == 0 && plain.out.contains("audit log intact"), "cutting the newest records evades the chain alone: \(plain.out)")
        let caught = try await verify(cut, evidence, checkpoints: evidence.checkpoints)
        #expect(caught.status == 1)
        #expect(caught.out.contains("history truncated: record \(evidence.records) is missing"), "\(caught.out)")
    }

    @Test func auditVerifyRefusesACheckpointTheBrokerDidNotSign() async throws {
        let evidence = try await collectEvidence()
        let lines = try String(contentsOf: evidence.checkpoints, encoding: .utf8).split(separator: "\n")
        var genuine = try JSONCoding.decode(Checkpoint.self, from: Array(lines.last!.utf8), what: "checkpoint")
        // A checkpoint vouching for a rewritten head, signed with a key that is not the broker's.
        genuine.head = String(repeating: "ab", count: 32)
        let impostor = Curve25519.Signing.PrivateKey()
        genuine.signature = try impostor.signature(for: genuine.signedBytes).base64EncodedString()
        let forged = evidence.network.directory.appendingPathComponent("forged.checkpoints")
        try (lines.map(String.init) + [String(decoding: JSONCoding.encode(genuine), as: UTF8.self)])
            .joined(separator: "\n").write(to: forged, atomically: true, encoding: .utf8)
        let run = try await verify(evidence.store, evidence, checkpoints: forged)
        #expect(run.status == 1)
        #expect(run.out.contains("checkpoint on line \(lines.count + 1) REFUSED: not signed by the broker's sign key"), "\(run.out)")
        #expect(run.out.contains("checkpoints: all \(lines.count) match"), "the genuine ones still count: \(run.out)")
    }

    @Test func anAdapterDropsACheckpointItsBrokerSignKeyDoesNotVerify() async throws {
        let network = try Network(checkpointInterval: 0.05)
        let log = CapturedLog()
        let police = try network.adapter("polda-kepri")
        let wrongKey = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation.base64EncodedString()
        let hospital = try network.adapter("rsud-embung-fatimah", logger: log.logger(level: .warning), brokerSignKey: wrongKey)
        _ = try police.refer(Network.request())
        try await waitFor("the police keep a checkpoint of both records") {
            try police.ledger.checkpoints().contains { $0.records == 2 }
        }
        try await waitFor("the hospital refuses the checkpoints it is sent") {
            log.lines.contains { $0.message.hasPrefix("security: audit checkpoint dropped: its signature is not the broker's") }
        }
        #expect(try hospital.ledger.checkpoints().isEmpty)
    }

    @Test func theLedgerKeepsContradictingCheckpointsAndSaysWhatTheyMean() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-test-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ledger = try Ledger(directory: directory, agency: "lpsk", durability: .normal, clock: SystemClock(), sealer: Network.sealer("lpsk"))
        func checkpoint(_ records: Int64, _ head: String) -> Checkpoint {
            Checkpoint(records: records, head: String(repeating: head, count: 64), at: Date(), signature: "")
        }
        #expect(try ledger.storeCheckpoint(checkpoint(10, "a")) == .stored)
        #expect(try ledger.storeCheckpoint(checkpoint(10, "a")) == .known)
        #expect(try ledger.storeCheckpoint(checkpoint(20, "b")) == .stored)
        #expect(try ledger.storeCheckpoint(checkpoint(10, "c")) == .conflicting(records: 10))
        #expect(try ledger.storeCheckpoint(checkpoint(15, "d")) == .shorter(than: 20))
        #expect(try ledger.checkpoints().map(\.records) == [10, 20, 10, 15], "every one kept, as evidence")
        #expect(throws: DatabaseError.self) { try ledger.pool.write { try $0.execute(sql: "DELETE FROM checkpoint") } }
        #expect(throws: DatabaseError.self) { try ledger.pool.write { try $0.execute(sql: "UPDATE checkpoint SET head = ''") } }
    }

    /// RRP.md section 4.13's test vector, which Protocols/examples/valid/checkpoint.json carries.
    @Test func theSpecificationsTestVectorVerifies() throws {
        let example = Network.root.appendingPathComponent("Protocols/examples/valid/checkpoint.json")
        struct Example: Decodable { var frames: [Frame] }
        enum Frame: Decodable {
            case text(String), checkpoint(Checkpoint)
            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let text = try? container.decode(String.self) { self = .text(text) } else { self = .checkpoint(try container.decode(Checkpoint.self)) }
            }
        }
        let frames = try JSONCoding.decoder().decode(Example.self, from: Data(contentsOf: example)).frames
        guard case .checkpoint(let checkpoint) = frames[2] else { Issue.record("no checkpoint body"); return }
        let signed = "18:rujuk-checkpoint/1\n5:16061\n64:\(checkpoint.head)\n24:2026-11-23T09:30:00.000Z\n"
        #expect(checkpoint.signedBytes == Array(signed.utf8))
        #expect(checkpoint.isSigned(by: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="))
        var moved = checkpoint
        moved.records += 1
        #expect(!moved.isSigned(by: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="))

        // The broker's signer makes what the adapter's check accepts.
        let keys = Network.keys.broker
        let made = try #require(try CheckpointSigner(keys)).sign(records: 3, head: AuditChain.genesis, at: Date())
        #expect(made.isSigned(by: keys.signPublic!))
        #expect(try RRPCodec.decode(RRPCodec.encode(.checkpoint(made))) == .checkpoint(made))
    }

    @Test func keygenAddsASignKeyToABrokerKeyFileWithoutOne() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("broker.key")
        let old = try KeyFile.generate(owner: "broker", sealing: false)
        try old.write(to: file)
        let run = try await runRujuk(["keygen", "--broker", "--add-sign-key", "--out", file.path])
        #expect(run.status == 0, "\(run.err)")
        let new = try KeyFile.load(file)
        #expect(new.curvePublic == old.curvePublic && new.curveSecret == old.curveSecret, "adapters keep their broker_key")
        let signPublic = try #require(new.signPublic)
        #expect(run.out.contains("broker_sign_key = \"\(signPublic)\""))
        #expect(try CheckpointSigner(new) != nil)
        let again = try await runRujuk(["keygen", "--broker", "--add-sign-key", "--out", file.path])
        #expect(again.status != 0 && again.err.contains("already has a sign key"), "\(again.err)")
    }

    /// Recomputes every hash from `seq` on, as `AuditChain.verify` computes them.
    static func rechain(_ db: Database, from seq: Int64) throws {
        var previous = [UInt8](try Data.fetchOne(db, sql: "SELECT prev_hash FROM feed WHERE seq = ?", arguments: [seq])!)
        let rows = try Row.fetchAll(db, sql: """
            SELECT f.seq, f.kind, f.referral_id, f.message_id, f.status, f.by_agency, f.overdue, f.level, f.notice, f.clock, f.targets,
                   f.at, h.from_agency, h.to_agency, h.service, h.priority, h.province, h.consent
            FROM feed f JOIN handoff h ON h.id = f.referral_id WHERE f.seq >= ? ORDER BY f.seq
            """, arguments: [seq])
        for row in rows {
            let content = AuditChain.content(
                seq: row[0], kind: row[1], referralID: row[2], messageID: row[3], status: row[4], by: row[5], overdue: row[6],
                level: row[7], notice: row[8], clock: row[9], targets: row[10], at: row[11], from: row[12], to: row[13],
                service: row[14], priority: row[15], province: row[16], consent: row[17])
            let hash = AuditChain.link(previous, content)
            try db.execute(sql: "UPDATE feed SET prev_hash = ?, hash = ? WHERE seq = ?", arguments: [Data(previous), Data(hash), row[0] as Int64])
            previous = hash
        }
    }
}
