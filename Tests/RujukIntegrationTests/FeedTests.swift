import CZeroMQ
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import RujukAdapter
import RujukCore
import RujukStorage
import Testing
import ZeroMQ

/// The broker's monitor feed: PUB topics, sequence numbers, the re-sync API, `rujuk watch`.
@Suite(.serialized, .timeLimit(.minutes(5))) struct FeedTests {
    func page(_ port: Int, after: Int64, topic: String) async throws -> FeedPage {
        let (data, response) = try await statusGET("http://127.0.0.1:\(port)/api/feed?after=\(after)&topic=\(topic)")
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        return try JSONCoding.decode(FeedPage.self, from: Array(data), what: "feed")
    }

    @Test func everyTransitionIsPublishedUnderItsTopicsWithAChainedSequence() async throws {
        let network = try Network()
        let subscriber = try Socket(network.context, .sub)
        defer { subscriber.close() }
        try subscriber.set(ZMQ_RCVTIMEO, Int32(200))
        try subscriber.set(ZMQ_SUBSCRIBE, bytes: Array("agency/rsud-embung-fatimah".utf8))
        try network.monitorKey(subscriber)
        try subscriber.connect(network.broker.monitorEndpoint)
        let police = try network.adapter("polda-kepri")
        let hospital = try network.adapter("rsud-embung-fatimah")
        let brokerTask = Task { try await network.broker.run() }
        defer { brokerTask.cancel() }
        try await waitFor("the status API listens") { network.broker.boundHTTPPort != nil }

        // A subscription takes a moment to reach the PUB side: send referrals until one is seen.
        var received: [FeedMessage] = []
        var sent: [String] = []
        try await waitFor("the subscriber sees the feed", timeout: 30, interval: 0.2) {
            sent.append(try police.refer(Network.request()).id)
            while let message = try subscriber.receive() {
                received.append(try JSONCoding.decode(FeedMessage.self, from: message.frames[1], what: "feed"))
                #expect(String(decoding: message.frames[0], as: UTF8.self) == "agency/rsud-embung-fatimah")
            }
            return received.contains { $0.event.status == .received }
        }
        let last = try #require(sent.last)
        try await waitFor("the last one is received") { try hospital.ledger.view(last) != nil }
        _ = try hospital.change(last, to: .accepted)
        try await waitFor("the acceptance is published") {
            while let message = try subscriber.receive() { received.append(try JSONCoding.decode(FeedMessage.self, from: message.frames[1], what: "feed")) }
            return received.contains { $0.event.referralId == last && $0.event.status == .accepted }
        }
        // Each publication names the one before it on the topic; none is missed here.
        for (previous, next) in zip(received, received.dropFirst()) {
            #expect(next.prev == previous.event.seq && next.event.seq > previous.event.seq)
        }
        let accepted = try #require(received.last)
        #expect(accepted.event.by == "rsud-embung-fatimah" && accepted.event.from == "polda-kepri" && accepted.event.province == "ID-KR")
        let text = String(decoding: JSONCoding.encode(accepted), as: UTF8.self)
        #expect(!text.contains("Siti") && !text.contains("+62"), "envelope only: no name, no contact")

        // The re-sync API gives the same events, by topic.
        let port = try #require(network.broker.boundHTTPPort)
        let byAgency = try await page(port, after: 0, topic: "agency/rsud-embung-fatimah")
        #expect(byAgency.events.map(\.seq) == byAgency.events.map(\.seq).sorted())
        #expect(Set(received.map(\.event)).isSubset(of: Set(byAgency.events)))
        #expect(byAgency.latest >= accepted.event.seq)
        let byKind = try await page(port, after: 0, topic: "kind/transition")
        #expect(byKind.events.count == byAgency.events.count, "only these two agencies have traffic")
        let none = try await page(port, after: 0, topic: "agency/lpsk")
        #expect(none.events.isEmpty)
        let (_, bad) = try await statusGET("http://127.0.0.1:\(port)/api/feed?topic=agency/NOT%20AN%20ID")
        #expect((bad as? HTTPURLResponse)?.statusCode == 422)
    }

    /// The broker is a child process here, stopped and started again on the same ports as a
    /// deployment's would be: its ports are free the moment it exits.
    @Test func watchCatchesUpFollowsLiveAndResyncsAfterAGap() async throws {
        let network = try Network()
        network.broker.shutdown()
        let router = try BrokerProcess.freeEndpoint(network.context)
        let monitor = try BrokerProcess.freeEndpoint(network.context)
        let httpPort = try #require(Int(try BrokerProcess.freeEndpoint(network.context).split(separator: ":").last ?? ""))
        let config = try network.childBrokerConfig(endpoint: router, http: "127.0.0.1:\(httpPort)", monitor: monitor)
        let tokens = network.directory.appendingPathComponent("child-broker/api-tokens")
        try PrivateFiles.makeDirectory(tokens)
        try SecretFile.create(tokens.appendingPathComponent("test.token"), secret: Network.statusToken)
        var broker = try BrokerProcess(config: config, directory: network.directory)
        defer { broker.kill() }
        func waitForTheAPI(_ what: String) async throws {
            try await waitFor(what, timeout: 30) { (try? Data(contentsOf: URL(string: "http://127.0.0.1:\(httpPort)/health")!)) != nil }
        }
        try await waitForTheAPI("the status API listens")
        let police = try network.adapter("polda-kepri", endpoint: router)
        let hospital = try network.adapter("rsud-embung-fatimah", endpoint: router)
        let first = try police.refer(Network.request())
        try await waitFor("received") { try police.ledger.view(first.id)?.status == .received }

        let out = network.directory.appendingPathComponent("watch.out"), err = network.directory.appendingPathComponent("watch.err")
        try #require(FileManager.default.createFile(atPath: out.path, contents: nil) && FileManager.default.createFile(atPath: err.path, contents: nil))
        let watch = Process()
        watch.executableURL = BrokerProcess.binary
        watch.arguments = ["watch", "--agency", "polda-kepri", "--since", "0", "--count", "6", "--json",
                           "--monitor", monitor, "--status", "http://127.0.0.1:\(httpPort)", "--config", "/nonexistent.toml",
                           "--key-file", Network.childFiles.keyDirectory.appendingPathComponent("gugus-tugas-batam.key").path,
                           "--broker-key=\(Network.keys.broker.curvePublic)"]
        watch.standardOutput = try FileHandle(forWritingTo: out)
        watch.standardError = try FileHandle(forWritingTo: err)
        // In the environment, as a coordinator's system would give it: not on the command line.
        watch.environment = ProcessInfo.processInfo.environment.merging(["RUJUK_STATUS_TOKEN": Network.statusToken]) { $1 }
        try watch.run()
        defer { if watch.isRunning { kill(watch.processIdentifier, SIGKILL) } }
        func printed() throws -> [FeedEvent] {
            try String(contentsOf: out, encoding: .utf8).split(separator: "\n").map { try JSONCoding.decode(FeedEvent.self, from: Array($0.utf8), what: "watch") }
        }
        do {
            try await waitFor("the watch catches up from the API", timeout: 30) { try printed().count == 2 }
        } catch {
            let printedSoFar = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            Issue.record("the watch \(watch.isRunning ? "is running" : "exited \(watch.terminationStatus)"); stdout: \(printedSoFar.suffix(800)); stderr: \(((try? String(contentsOf: err, encoding: .utf8)) ?? "").suffix(800))")
            throw error
        }

        // A broker restart is a gap the subscriber cannot see through: the first publication
        // after it has no `prev`, so the watch re-syncs from the API.
        #expect(try await broker.terminate() == 0)
        broker = try BrokerProcess(config: config, directory: network.directory)
        try await waitForTheAPI("the new broker's API listens")
        // Referrals until the watch has printed six events: whatever the subscriber missed while
        // it reconnected, it fills from the API.
        var ids = [first.id]
        try await waitFor("the watch prints six events", timeout: 60, interval: 0.5) {
            if try printed().count < 6, ids.count < 10 {
                let next = try police.refer(Network.request())
                ids.append(next.id)
            }
            return try printed().count >= 6
        }
        try await waitFor("the watch exits after --count") { !watch.isRunning }
        #expect(watch.terminationStatus == 0)
        let events = try printed()
        let expected = try await page(httpPort, after: 0, topic: "agency/polda-kepri").events.prefix(6)
        #expect(events == Array(expected), "every event once, in order, none skipped")
        #expect(try String(contentsOf: err, encoding: .utf8).contains("re-syncing"), "the gap was noticed")
        _ = hospital
    }
}

@Suite(.timeLimit(.minutes(5))) struct FeedFollowerTests {
    func message(_ seq: Int64, prev: Int64, topic: String = "agency/polda-kepri") -> FeedMessage {
        FeedMessage(topic: topic, prev: prev, event: FeedEvent(
            seq: seq, kind: .transition, referralId: "r", messageId: "m\(seq)", status: .requested, by: "polda-kepri", from: "polda-kepri",
            to: "lpsk", service: .witnessProtection, priority: .urgent, province: "ID-KR", at: Date(timeIntervalSince1970: 1_795_000_000)))
    }

    @Test func aGapIsFilledFromThePageAndNothingIsEmittedTwice() {
        var follower = FeedFollower()
        #expect(follower.receive(message(5, prev: 3)) == .emit(message(5, prev: 3).event), "a fresh subscriber starts anywhere")
        #expect(follower.receive(message(8, prev: 5)) == .emit(message(8, prev: 5).event))
        // 9 and 11 were published on the topic but never arrived.
        #expect(follower.receive(message(12, prev: 11)) == .resync(topic: "agency/polda-kepri", after: 8))
        let filled = follower.resynced([message(9, prev: 8).event, message(11, prev: 9).event, message(12, prev: 11).event], then: message(12, prev: 11))
        #expect(filled.map(\.seq) == [9, 11, 12], "the missed ones, then this one, once")
        #expect(follower.receive(message(11, prev: 9)) == .skip, "a late copy of one already emitted")
        #expect(follower.receive(message(13, prev: 12)) == .emit(message(13, prev: 12).event))
    }

    @Test func aBrokerRestartOrAResumeIsCheckedAgainstTheAPI() {
        var follower = FeedFollower()
        _ = follower.receive(message(5, prev: 3))
        #expect(follower.receive(message(6, prev: -1)) == .resync(topic: "agency/polda-kepri", after: 5), "no prev: the broker restarted")
        var resumed = FeedFollower(since: 20)
        #expect(resumed.receive(message(25, prev: 22)) == .resync(topic: "agency/polda-kepri", after: 20), "22 came after what we saw")
        var caughtUp = FeedFollower(since: 22)
        #expect(caughtUp.receive(message(25, prev: 22)) == .emit(message(25, prev: 22).event))
        #expect(caughtUp.receive(message(26, prev: 25, topic: "kind/transition")) == .emit(message(26, prev: 25, topic: "kind/transition").event), "another topic, nothing missed")
    }
}
