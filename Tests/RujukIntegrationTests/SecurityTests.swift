import CZeroMQ
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import RujukAdapter
import RujukBroker
import RujukCore
import Testing
import ZeroMQ

/// The [security] guarantees, each against real sockets, real stores and (for keys on disk,
/// reload and the logs) a real broker process.
@Suite(.serialized, .timeLimit(.minutes(5))) struct SecurityTests {
    /// True when `needle` occurs in any file under `directory` (databases, WAL, logs).
    func anyFile(under directory: URL, contains needle: String) throws -> Bool {
        let bytes = Data(needle.utf8)
        let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
        return try files.contains { file in
            guard (try file.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true else { return false }
            return try Data(contentsOf: file).range(of: bytes) != nil
        }
    }

    @Test func anUnknownKeyIsRefusedAtTheHandshake() throws {
        let network = try Network()
        let stranger = try CurveKeyPair.generate()
        let socket = try Socket(network.context, .dealer)
        defer { socket.close() }
        let monitor = try SocketMonitor(socket, context: network.context, kinds: SocketEvent.Kind.handshakeFailures.union([.handshakeSucceeded]))
        defer { monitor.close() }
        try socket.makeCurveClient(serverKey: Network.keys.broker.curvePublic, publicKey: stranger.publicKey, secretKey: stranger.secretKey)
        try socket.connect(network.broker.routerEndpoint)
        let event = try #require(try monitor.wait(for: SocketEvent.Kind.handshakeFailures.union([.handshakeSucceeded]), timeoutMilliseconds: 10_000))
        #expect(event.kind == .handshakeFailedAuth, "refused by the ZAP handler, before any RRP frame")
        #expect(network.broker.router.snapshot.connected.isEmpty)

        // A plaintext client gets nowhere either.
        let plain = try Socket(network.context, .dealer)
        defer { plain.close() }
        try plain.set(ZMQ_RCVTIMEO, Int32(300))
        try plain.set(ZMQ_SNDTIMEO, Int32(10_000))
        try plain.connect(network.broker.routerEndpoint)
        try plain.send(RRPCodec.encode(.hello(Hello(agency: "polda-kepri", credit: 1, heartbeatMs: 1000))))
        #expect(try plain.receive() == nil, "no READY without CURVE")

        // And a non-monitor agency's key cannot subscribe to the feed.
        let subscriber = try Socket(network.context, .sub)
        defer { subscriber.close() }
        let subscriberEvents = try SocketMonitor(subscriber, context: network.context, kinds: SocketEvent.Kind.handshakeFailures.union([.handshakeSucceeded]))
        defer { subscriberEvents.close() }
        try network.monitorKey(subscriber, as: "polda-kepri")
        try subscriber.connect(network.broker.monitorEndpoint)
        let refused = try #require(try subscriberEvents.wait(for: SocketEvent.Kind.handshakeFailures.union([.handshakeSucceeded]), timeoutMilliseconds: 10_000))
        #expect(refused.kind == .handshakeFailedAuth, "only agencies with the monitor role may subscribe")
    }

    @Test func aSpoofedSenderIsRefused() async throws {
        let network = try Network()
        // Connected with polda-kepri's key, HELLO as LPSK: refused, no session.
        let impostor = try RawPeer(network, agency: nil, key: "polda-kepri")
        try impostor.send(.hello(Hello(agency: "lpsk", credit: 10, heartbeatMs: 60_000)))
        try impostor.expectError(.identityMismatch, "HELLO in another agency's name")
        // In session as polda-kepri, a referral 'from' LPSK: refused.
        let police = try RawPeer(network, agency: "polda-kepri")
        try police.send(RRPCodec.refer(Fixtures.referral(from: "lpsk", to: "rsud-embung-fatimah")))
        try police.expectError(.identityMismatch, "'from' names another agency")
        let stored = try await network.broker.store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM handoff") }
        #expect(stored == 0)
    }

    @Test func theRegistryDecidesWhoMayRequestWhatAndConsentMustCoverTheRecipient() async throws {
        let network = try Network()
        let hospital = try RawPeer(network, agency: "rsud-embung-fatimah")
        // Witness protection may be requested only by the kinds agencies.toml lists: not a hospital.
        try hospital.send(RRPCodec.refer(Fixtures.referral(from: "rsud-embung-fatimah", to: "lpsk", service: .witnessProtection,
            consent: Consent(status: .given, scope: [.witnessProtection], date: Date(), recordedBy: "dr-01"))))
        try hospital.expectError(.forbidden, "an unauthorized service")
        // Legal aid only from an MoU partner: LBH Batam has none with the hospital.
        try hospital.send(RRPCodec.refer(Fixtures.referral(from: "rsud-embung-fatimah", to: "lbh-batam", service: .legalAid,
            consent: Consent(status: .given, scope: [.legalAid], date: Date(), recordedBy: "dr-01"))))
        try hospital.expectError(.forbidden, "legal aid outside an MoU")
        // Consent given, but not for a shelter.
        let police = try RawPeer(network, agency: "polda-kepri")
        try police.send(RRPCodec.refer(Fixtures.referral(to: "uptd-ppa-batam", service: .shelter,
            consent: Consent(status: .given, scope: [.health], date: Date(), recordedBy: "bripka-0412"))))
        try police.expectError(.consentRequired, "consent that does not cover the recipient")
        // The same for escalations: only agencies with the escalations role may be told.
        let referral = Fixtures.referral()
        try police.send(RRPCodec.refer(referral))
        guard case .commit = try police.next() else { Issue.record("no COMMIT"); return }
        let escalation = Escalation(referralId: referral.id, notice: .breach, level: 1, clock: .receive, from: "polda-kepri", to: "rsud-embung-fatimah",
                                    targets: ["lbh-batam"], service: .medicalCare, priority: .urgent, province: "ID-KR", due: Date(), status: .requested, suggestions: [], at: Date())
        try police.send(RRPCodec.escalate(escalation))
        try police.expectError(.forbidden, "an escalation to an agency that takes none")
        let stored = try await network.broker.store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM handoff") }
        #expect(stored == 1, "only the good referral")

        // The adapter's API refuses the same things before anything is queued.
        let adapter = try network.adapter("rsud-embung-fatimah")
        var request = Network.request(to: "lpsk", service: .witnessProtection)
        #expect(throws: RujukError.self) { try adapter.refer(request) }
        request = Network.request(to: "uptd-ppa-batam", service: .shelter)
        request.body.consent.scope = [.health]
        let police2 = try network.adapter("polda-kepri")
        #expect { try police2.refer(request) } throws: { ($0 as? RujukError)?.code == .consentRequired }
        #expect(try adapter.ledger.list(direction: "outbound", status: nil, service: nil, overdueOnly: false, page: PageRequest(limit: 10)).handoffs.isEmpty)
    }

    @Test func anOverrideIsAcceptedFlaggedOnTheFeedAndTheDashboardAndCounted() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let shelter = try network.adapter("uptd-ppa-batam")
        let brokerTask = Task { try await network.broker.run() }
        defer { brokerTask.cancel() }
        try await waitFor("the status API listens") { network.broker.boundHTTPPort != nil }
        var request = Network.request(to: "uptd-ppa-batam", service: .shelter)
        request.body.subject.child = true
        request.body.subject.ageBand = "12-17"
        request.body.consent = Consent(status: .overridden, scope: [], date: Date(), recordedBy: "bripka-0412", ground: .childProtection,
                                       justification: "child found alone in a raid; no guardian reachable")
        let sent = try police.refer(request)
        try await waitFor("received") { try shelter.ledger.view(sent.id) != nil }
        let opened = try #require(try shelter.ledger.view(sent.id)?.body)
        #expect(opened.consent.justification == "child found alone in a raid; no guardian reachable", "the recipient reads the justification")

        let port = try #require(network.broker.boundHTTPPort)
        let (feed, _) = try await statusGET("http://127.0.0.1:\(port)/api/feed?after=0")
        let page = try JSONCoding.decode(FeedPage.self, from: Array(feed), what: "feed")
        #expect(!page.events.isEmpty && page.events.allSatisfy { $0.referralId == sent.id && $0.consentOverride })
        #expect(!String(decoding: feed, as: UTF8.self).contains("raid"), "the justification stays sealed")
        let (html, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/dashboard")!)
        let text = String(decoding: html, as: UTF8.self)
        let start = try #require(text.range(of: "<table id=\"overrides\">"))
        let overrides = String(text[start.lowerBound...].prefix(while: { _ in true }).split(separator: "</table>", maxSplits: 1)[0])
        #expect(overrides.contains("polda-kepri") && overrides.contains("<td>1</td><td>0</td><td>1</td><td>1</td>"), "counted: 1 in 30 days, 0 emergency, 1 child protection, 1 in all")
        #expect(!text.contains("raid"))

        // Without its ground an override is refused by the adapter, as the broker would.
        request.body.consent.ground = nil
        #expect { try police.refer(request) } throws: { ($0 as? RujukError)?.code == .schemaViolation }
    }

    @Test func theBrokerNeverHoldsTheSealedPersonalDataAndATamperedSealIsRefused() async throws {
        let network = try Network()
        let context = network.context
        let endpoint = try BrokerProcess.freeEndpoint(context)
        let config = try network.childBrokerConfig(endpoint: endpoint)
        let brokerData = network.directory.appendingPathComponent("child-broker")
        let broker = try BrokerProcess(config: config, directory: network.directory, logLevel: "trace")
        defer { broker.kill() }
        let police = try network.adapter("polda-kepri", endpoint: endpoint)
        let hospital = try network.adapter("rsud-embung-fatimah", endpoint: endpoint)

        // The name in every free-text field there is: the person, the reason and the notes of a
        // referral, and the words of a decline, a cancellation and a completion.
        let name = "Wulandari Sekarlangit-Distinctive"
        var request = Network.request(name: name)
        request.body.reason = "\(name) needs an examination"
        request.body.notes = "found with \(name)'s passport"
        let sent = try police.refer(request)
        let declined = try police.refer(request), cancelled = try police.refer(request), completed = try police.refer(request)
        try await waitFor("received", timeout: 30) {
            try [sent, declined, cancelled, completed].allSatisfy { try police.ledger.view($0.id)?.status == .received }
        }
        #expect(try hospital.ledger.view(sent.id)?.body?.subject.name == name, "the recipient opened it")
        #expect(try hospital.ledger.view(sent.id)?.body?.reason == request.body.reason)
        _ = try hospital.change(declined.id, to: .declined, reason: .noCapacity, note: UpdateNote(reason: "no bed for \(name)"))
        _ = try police.change(cancelled.id, to: .cancelled, reason: .referredElsewhere, note: UpdateNote(reason: "\(name) went elsewhere"))
        _ = try hospital.change(completed.id, to: .accepted)
        _ = try hospital.change(completed.id, to: .inProgress)
        _ = try hospital.change(completed.id, to: .completed, outcome: .serviceProvided, note: UpdateNote(outcome: "\(name) discharged"))
        try await waitFor("each side has the other's words", timeout: 30) {
            try police.ledger.view(declined.id)?.history?.last?.note?.reason == "no bed for \(name)"
                && police.ledger.view(completed.id)?.history?.last?.note?.outcome == "\(name) discharged"
                && hospital.ledger.view(cancelled.id)?.history?.last?.note?.reason == "\(name) went elsewhere"
        }

        // A tampered ciphertext: one bit of the sealed part flipped on the way. Sent by a raw
        // peer with polda-kepri's key, once its adapter is stopped (one session per agency).
        network.stopAdapter("polda-kepri")
        let raw = try Socket(context, .dealer)
        defer { raw.close() }
        let own = Network.keys.agencies["polda-kepri"]!
        try raw.makeCurveClient(serverKey: Network.keys.broker.curvePublic, publicKey: own.curvePublic, secretKey: own.curveSecret)
        try raw.set(ZMQ_RCVTIMEO, Int32(10_000))
        try raw.set(ZMQ_SNDTIMEO, Int32(10_000))
        try raw.connect(endpoint)
        try raw.send(RRPCodec.encode(.hello(Hello(agency: "polda-kepri", credit: 10, heartbeatMs: 60_000))))
        _ = try raw.receive()
        var tampered = Fixtures.referral(name: name)
        var bytes = [UInt8](Data(base64Encoded: tampered.sealed.ct)!)
        bytes[bytes.count / 2] ^= 0x01
        tampered.sealed.ct = Data(bytes).base64EncodedString()
        // An intact seal moved onto another envelope (the reason changed) does not open either.
        var moved = Fixtures.referral(name: name)
        moved.reason = .other
        try raw.send(RRPCodec.encode(RRPCodec.refer(tampered)))
        try raw.send(RRPCodec.encode(RRPCodec.refer(moved)))
        var committed: Set<String> = []
        while committed.count < 2, let reply = try raw.receive() {
            if case .commit(let commit) = try RRPCodec.decode(reply.frames) { committed.formUnion(commit.ids) }
        }
        #expect(committed == [tampered.id, moved.id], "the broker cannot tell: it stores and forwards what it cannot read")
        try await waitFor("both refused by the recipient", timeout: 30) {
            try hospital.ledger.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM refused_delivery WHERE code = 'seal_invalid'") } == 2
        }
        #expect(try hospital.ledger.view(tampered.id) == nil && hospital.ledger.view(moved.id) == nil, "never shown as a referral")
        #expect(try String(contentsOf: broker.log, encoding: .utf8).contains("session opened"), "the log is written at trace level")
        #expect(try !anyFile(under: brokerData, contains: name), "no trace of the name in the broker's data directory")
        #expect(try !anyFile(under: brokerData, contains: "+62 812"), "nor of the contact")
        #expect(try !String(contentsOf: broker.log, encoding: .utf8).contains(name), "nor in its log, at trace level")
        #expect(try !anyFile(under: network.directory.appendingPathComponent("adapters"), contains: name),
                "the ledgers keep the person and every word sealed at rest, notifications included")
        #expect(try anyFile(under: network.directory.appendingPathComponent("adapters/rsud-embung-fatimah"), contains: sent.id), "the check can see an envelope where there is one")
    }

    @Test func aRemovedKeyIsDroppedOnReloadAndItsReferralsWaitForItsReturn() async throws {
        let network = try Network()
        let endpoint = try BrokerProcess.freeEndpoint(network.context)
        let agencies = network.directory.appendingPathComponent("agencies.toml")
        try FileManager.default.createDirectory(at: network.directory, withIntermediateDirectories: true)
        let original = try String(contentsOfFile: Network.childFiles.agencies, encoding: .utf8)
        try original.write(to: agencies, atomically: true, encoding: .utf8)
        let config = try network.childBrokerConfig(endpoint: endpoint, agencies: agencies.path, adapter: Network.childFiles.adapter)
        let broker = try BrokerProcess(config: config, directory: network.directory)
        defer { broker.kill() }
        let police = try network.adapter("polda-kepri", heartbeatMs: 300, endpoint: endpoint)
        let hospital = try network.adapter("rsud-embung-fatimah", heartbeatMs: 300, endpoint: endpoint)
        try await waitFor("both connected", timeout: 30) { police.link.state == .ready && hospital.link.state == .ready }

        // Remove polda-kepri's key and reload through the CLI (SIGHUP).
        let key = Network.keys.agencies["polda-kepri"]!.curvePublic
        try original.replacingOccurrences(of: "curve_key = \"\(key)\"\n", with: "").write(to: agencies, atomically: true, encoding: .utf8)
        let reload = Process()
        reload.executableURL = BrokerProcess.binary
        reload.arguments = ["broker", "reload", "--config", config.path]
        try reload.run()
        reload.waitUntilExit()
        #expect(reload.terminationStatus == 0)
        try await waitFor("the police connection is dropped", timeout: 30) { police.link.state != .ready }
        let sent = try police.refer(Network.request())
        // Still refused a second later (its reconnects fail at the handshake), and queued, not
        // lost. (Watching for something that must not happen: there is no event to wait for.)
        try await Task.sleep(for: .seconds(1))
        #expect(police.link.state != .ready && hospital.link.state == .ready, "the other agency is untouched")
        #expect(try police.ledger.view(sent.id)?.delivery == "queued")
        let log = try String(contentsOf: broker.log, encoding: .utf8)
        #expect(log.contains("key revoked") && log.contains("unknown key"))

        // Put it back: the queued referral goes through.
        try original.write(to: agencies, atomically: true, encoding: .utf8)
        let again = Process()
        again.executableURL = BrokerProcess.binary
        again.arguments = ["broker", "reload", "--config", config.path]
        try again.run()
        again.waitUntilExit()
        try await waitFor("delivered after the key is restored", timeout: 30) { try hospital.ledger.view(sent.id) != nil }
    }

    @Test func aReplacedKeyIsDroppedOnReloadAndTheNewOneIsAdmitted() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        try await waitFor("connected") { police.link.state == .ready }
        // The agency rotates its key: the registry lists a new one; the old connection goes.
        let replacement = try KeyFile.generate(owner: "polda-kepri", sealing: true)
        var keys = Network.registry.agencies.reduce(into: [String: (curve: String?, seal: String?)]()) { $0[$1.id] = ($1.curveKey, $1.sealKey) }
        keys["polda-kepri"] = (replacement.curvePublic, keys["polda-kepri"]!.seal)
        try network.broker.reload(Network.registry.withKeys(keys))
        try await waitFor("the old key's connection is dropped") { police.link.state != .ready && !network.broker.router.snapshot.connected.contains("polda-kepri") }
        let peer = try RawPeer(network, agency: "polda-kepri", curve: replacement)
        try peer.send(.ping)
        guard case .pong = try peer.next() else { Issue.record("the new key has a session"); return }
        #expect(network.broker.router.snapshot.connected.contains("polda-kepri"))
    }

    @Test func aSubscriberWhoseMonitorRoleIsWithdrawnIsCutOnReload() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let subscriber = try Socket(network.context, .sub)
        defer { subscriber.close() }
        let events = try SocketMonitor(subscriber, context: network.context, kinds: [.handshakeSucceeded, .disconnected])
        defer { events.close() }
        try subscriber.set(ZMQ_RCVTIMEO, Int32(200))
        try subscriber.set(ZMQ_SUBSCRIBE, bytes: Array("kind/".utf8))
        try network.monitorKey(subscriber)
        try subscriber.connect(network.broker.monitorEndpoint)
        #expect(try events.wait(for: .handshakeSucceeded, timeoutMilliseconds: 10_000) != nil)
        // Once the broker has seen the subscription (events arrive), it knows the connection.
        try await waitFor("the subscriber sees the feed", timeout: 30, interval: 0.2) {
            _ = try police.refer(Network.request())
            return try subscriber.receive() != nil
        }
        // The task force loses the monitor role: its live subscription is cut.
        let withdrawn = AgencyRegistry(Network.registry.agencies.map { agency in
            var copy = agency
            if agency.id == "gugus-tugas-batam" { copy.roles = [.escalations] }
            return copy
        }, services: Network.registry.services)
        try network.broker.reload(withdrawn)
        #expect(try events.wait(for: .disconnected, timeoutMilliseconds: 10_000) != nil, "the broker cut the connection")
    }

    @Test func auditTamperingIsDetected() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try police.refer(Network.request()).id) }
        try await waitFor("all received") { try ids.allSatisfy { try police.ledger.view($0)?.status == .received } }
        _ = try hospital.change(ids[0], to: .accepted)
        try await waitFor("accepted") { try police.ledger.view(ids[0])?.status == .accepted }
        let intact = try network.broker.store.verifyAudit()
        #expect(intact.problem == nil && intact.records == 7 && intact.head == network.broker.store.auditHeadHex)
        let store = network.broker.store.url
        network.broker.shutdown()

        // The broker cannot change its own log: the table refuses updates and deletes.
        #expect(throws: DatabaseError.self) { try network.broker.store.pool.write { try $0.execute(sql: "UPDATE feed SET status = 'completed' WHERE seq = 2") } }
        func tampered(_ sql: String) throws -> AuditChain.Report {
            let copy = network.directory.appendingPathComponent("tampered-\(UUID().uuidString).sqlite")
            let queue = try DatabaseQueue(path: copy.path)
            try network.broker.store.pool.backup(to: queue)
            try queue.write { db in
                try db.execute(sql: "DROP TRIGGER feed_append_only_update; DROP TRIGGER feed_append_only_delete")
                try db.execute(sql: sql)
            }
            return try queue.read(AuditChain.verify)
        }
        #expect(try tampered("UPDATE feed SET status = 'declined' WHERE seq = 4").problem == .edited(seq: 4))
        #expect(try tampered("UPDATE handoff SET to_agency = 'lpsk' WHERE id = (SELECT referral_id FROM feed WHERE seq = 1)").problem == .edited(seq: 1))
        #expect(try tampered("DELETE FROM feed WHERE seq = 3").problem == .deleted(after: 2, next: 4))
        // Two records swapped, each keeping its seq: the chain no longer links.
        let swapped = try tampered("""
            UPDATE feed SET seq = -1 WHERE seq = 5; UPDATE feed SET seq = 5 WHERE seq = 6; UPDATE feed SET seq = 6 WHERE seq = -1
            """)
        #expect(swapped.problem == .edited(seq: 5) || swapped.problem == .reordered(seq: 5))

        // The command: exit 0 and the head on the intact log, exit 1 and the record on a broken one.
        let verify = Process()
        verify.executableURL = BrokerProcess.binary
        verify.arguments = ["audit", "verify", "--store", store.path]
        let out = Pipe()
        verify.standardOutput = out
        try verify.run()
        verify.waitUntilExit()
        #expect(verify.terminationStatus == 0)
        #expect(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("intact: 7 records"))
    }

    @Test func purgeRemovesThePersonalDataOfClosedHandoffsAndKeepsTheEnvelope() async throws {
        let network = try Network()
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let name = "Purgeable Name Kartika-Distinctive", kept = "Kept Name Larasati-Distinctive"
        let closed = try police.refer(Network.request(name: name))
        let open = try police.refer(Network.request(name: kept))
        try await waitFor("both received") { try [closed.id, open.id].allSatisfy { try hospital.ledger.view($0) != nil } }
        _ = try hospital.change(closed.id, to: .declined, reason: .other, note: UpdateNote(reason: "no bed"))
        try await waitFor("the decline reaches the sender") { try police.ledger.view(closed.id)?.status == .declined }

        for ledger in [police.ledger, hospital.ledger] {
            #expect(try ledger.purge(closedBefore: Date() - 3600).purged == 0, "closed less than an hour ago: kept")
            let result = try ledger.purge(closedBefore: Date() + 1)
            #expect(result.purged == 1)
            let purged = try #require(try ledger.view(closed.id))
            #expect(purged.body == nil && purged.status == .declined && purged.to == "rsud-embung-fatimah" && purged.history?.count ?? 0 >= 3,
                    "the envelope and the history stay")
            #expect(try ledger.view(open.id)?.body?.subject.name == kept, "an open handoff keeps its data")
        }
        // A handoff that goes through its changes after a purge, then is purged by the next:
        // the first purge must leave the ledger overwriting what it frees, or each change that
        // moved the row within its page would leave a copy of it, the person in it, in the
        // page's free space, where the purge of the row does not look.
        let later = "Later Name Wulandari-Distinctive"
        let second = try police.refer(Network.request(name: later))
        try await waitFor("received") { try hospital.ledger.view(second.id) != nil }
        _ = try hospital.change(second.id, to: .accepted)
        _ = try hospital.change(second.id, to: .inProgress)
        _ = try hospital.change(second.id, to: .completed, outcome: .serviceProvided, note: UpdateNote(outcome: "examined; discharged to the shelter with a follow-up in two weeks"))
        try await waitFor("the completion reaches the sender") { try police.ledger.view(second.id)?.status == .completed }
        for ledger in [police.ledger, hospital.ledger] {
            #expect(try ledger.purge(closedBefore: Date() + 1).purged == 1)
            #expect(try await ledger.pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA secure_delete") } == 1)
        }
        // The purged names are in no byte of either ledger's files (overwritten, the WAL
        // truncated); the open handoff's envelope still is, so the search can see what is there.
        for agency in ["polda-kepri", "rsud-embung-fatimah"] {
            let files = network.directory.appendingPathComponent("adapters/\(agency)")
            #expect(try !anyFile(under: files, contains: name), "\(agency): purged")
            #expect(try !anyFile(under: files, contains: later), "\(agency): purged by a later purge")
            #expect(try anyFile(under: files, contains: open.id), "\(agency): kept")
        }
        police.shutdown()
        hospital.shutdown()
        network.adapters.removeAll()
        for agency in ["polda-kepri", "rsud-embung-fatimah"] {
            let ledger = try DatabaseQueue(path: network.directory.appendingPathComponent("adapters/\(agency)/ledger.sqlite").path)
            let rows = try ledger.read { try Row.fetchAll($0, sql: "SELECT id, body, raw, purged_at FROM referral") }
            for row in rows where (row["id"] as String) == closed.id {
                #expect((row["body"] as Data?) == nil && (row["raw"] as Data).isEmpty && (row["purged_at"] as String?) != nil)
            }
        }
    }

    @Test func keygenWritesASecretFileOnlyItsOwnerCanRead() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rujuk-keygen-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("lpsk.key")
        let keygen = Process()
        keygen.executableURL = BrokerProcess.binary
        keygen.arguments = ["keygen", "--agency", "lpsk", "--out", file.path]
        let out = Pipe()
        keygen.standardOutput = out
        try keygen.run()
        keygen.waitUntilExit()
        #expect(keygen.terminationStatus == 0)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? NSNumber)
        #expect(mode.intValue == 0o600)
        let keys = try KeyFile.load(file, owner: "lpsk")
        let printed = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(printed.contains("curve_key = \"\(keys.curvePublic)\"") && printed.contains("seal_key = \"\(keys.sealPublic!)\""))
        #expect(!printed.contains(keys.curveSecret) && !printed.contains(keys.sealSecret!), "never prints a secret")
        #expect(try CurveKeyPair.publicKey(forSecret: keys.curveSecret) == keys.curvePublic)
        // Never overwritten; a key file others can read is refused.
        let second = Process()
        second.executableURL = BrokerProcess.binary
        second.arguments = keygen.arguments
        second.standardOutput = Pipe()
        second.standardError = Pipe()
        try second.run()
        second.waitUntilExit()
        #expect(second.terminationStatus != 0)
        #expect(try KeyFile.load(file) == keys)
        chmod(file.path, 0o644)
        #expect(throws: ConfigError.self) { try KeyFile.load(file) }
    }
}
