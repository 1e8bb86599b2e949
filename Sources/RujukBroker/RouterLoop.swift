import CZeroMQ
import Foundation
import Logging
import RujukCore
import RujukHTTP
import ZeroMQ

/// What the router thread reports about itself, for `/health` and the tests.
public struct RouterSnapshot: Sendable, Codable {
    /// Agencies with a live session.
    public var connected: [String] = []
    /// Messages committed since start (REFER and UPDATE).
    public var committed: Int = 0
    /// Group commits since start.
    public var batches: Int = 0
    /// Messages in the largest group commit since start.
    public var largestBatch: Int = 0
    /// Group commits since start that went to the committer thread (larger than
    /// `BrokerConfiguration.inlineCommitMax`); the rest ran on the router thread.
    public var handedOver: Int = 0
    /// Messages refused since start.
    public var refused: Int = 0
    /// DELIVERs sent since start, redeliveries included.
    public var delivered: Int = 0
    /// Messages refused with rate_limited since start.
    public var rateLimited: Int = 0
}

/// The broker's router: a dedicated thread that owns the ROUTER socket, runs the sessions and
/// mailboxes, and does the group commit.
///
/// Nothing else touches its socket or its state. Other threads talk to it only through
/// `stop()` and `snapshot`, which go through a lock and a `Wakeup`.
public final class RouterLoop: @unchecked Sendable {
    private let configuration: BrokerConfiguration
    /// The network as the router thread sees it; replaced on reload.
    private var registry: AgencyRegistry
    /// The broker's CurveZMQ keys; nil with plaintext transport.
    private let keys: KeyFile?
    /// Signs the audit checkpoints; nil when the key file has no sign key (none are sent).
    private let signer: CheckpointSigner?
    /// A registry handed over by `reload`, applied by the router thread.
    private var pendingRegistry: AgencyRegistry?
    private let store: BrokerStore
    private let clock: any RujukCore.Clock
    private let logger: Logger
    private let context: Context
    private let wakeup = Wakeup()
    private let lock = NSLock()
    private var stopping = false
    /// The last group commit failed as a whole (disk full, I/O error).
    private var storageFailing = false
    /// Agencies with deliveries to send again because their RECEIPT could not be stored.
    private var awaitingResend = Set<String>()
    private var lastResend: UInt64 = 0
    private var shared = RouterSnapshot()
    private let finished = DispatchSemaphore(value: 0)
    /// Runs each group commit on a thread of its own, so the router goes on reading and
    /// checking the next messages while SQLite writes and fsyncs the last ones.
    private let committer = PolledWorker<CommitResult>(label: "rujuk.commit")

    // Router-thread state.
    /// The group commit on the committer thread, if any: its writes and where each came from.
    /// Nothing of it is acknowledged or delivered until it has committed (`finishCommit`).
    private var committing: (writes: [PendingWrite], origins: [[UInt8]])?
    /// Messages checked while a commit is in flight, for the next one.
    private var pendingWrites: [PendingWrite] = []
    private var pendingOrigins: [[UInt8]] = []
    private var sessions: [[UInt8]: Session] = [:]
    private var sessionByAgency: [String: [UInt8]] = [:]
    private var mailboxes: [String: Mailbox] = [:]
    private var stats = RouterSnapshot()
    /// The monitor feed's PUB socket, owned by this thread like the ROUTER.
    private var monitor: Socket?
    /// The last `seq` of an event under each topic since start: each publication's `prev`.
    private var lastOnTopic: [String: Int64] = [:]
    /// The subscription prefixes some subscriber holds (XPUB tells us). A topic nobody
    /// subscribes to is not encoded or sent, but its `prev` chain still advances.
    private var subscriptions: Set<[UInt8]> = []
    /// The bound PUB endpoint (useful with port `*`).
    public private(set) var monitorEndpoint = ""

    /// Monitor subscribers' connections by agency, to cut them when their key is revoked.
    private var subscriberConnections: [String: Set<PeerConnection>] = [:]
    /// Refusals that point at an attack, counted for `/health` and logged rate-limited.
    public let securityEvents: SecurityEvents
    /// Cuts connections over the per-address and total limits; started with the sockets.
    private var connectionGuard: PeerConnectionGuard?
    /// Each sender's message and HELLO allowance, by its ZAP User-Id (an agency and its key),
    /// or by routing id with plaintext transport.
    private var allowances: [String: Allowance] = [:]
    private var lastSummary: UInt64 = 0

    private struct Allowance {
        var messages: TokenBucket
        var hellos: TokenBucket
        /// Messages refused with rate_limited since the last one allowed.
        var refusedInRow = 0
    }

    /// Refusals in a row after which a sender's connection is cut: it is not backing off.
    /// Far above an adapter's send window, whose every message may be refused once.
    static let floodCutoff = 8192
    /// The audit log as of the last finished commit: what a checkpoint may vouch for. Read
    /// from the store only between commits, as the committer thread moves it.
    private var committedAudit: (records: Int64, head: [UInt8])
    /// The newest checkpoint signed, sent again to each new session while the log stays put.
    private var lastCheckpoint: Checkpoint?
    /// When the interval's last checkpoint round ran (monotonic ms).
    private var lastCheckpointRound: UInt64 = 0

    private struct Session {
        var routingID: [UInt8]
        var agency: String
        var credit: Int
        var lastHeard: UInt64
        var lastSent: UInt64
        /// The authenticated connection (CURVE), so a revoked key's connection can be cut.
        var connection: PeerConnection?
    }

    /// A TCP connection libzmq accepted: its descriptor and the peer's address, which guards
    /// against cutting a descriptor since reused for someone else.
    struct PeerConnection: Hashable {
        var fd: Int32
        var peer: String
        var key: String

        init?(_ message: Multipart, key: String) {
            guard let fd = message.sourceFD, let peer = peerAddress(ofFD: fd) else { return nil }
            self.fd = fd
            self.peer = peer
            self.key = key
        }

        func drop() { dropConnection(fd: fd, peer: peer) }
    }

    private static let helloCommand = Array(RRPCommand.hello.rawValue.utf8)

    /// Whether a ZAP User-Id (`agency key`) is `agency`'s, without splitting it.
    static func isIdentity(_ userID: String?, of agency: String) -> Bool {
        guard let userID else { return false }
        let id = userID.utf8, name = agency.utf8
        return id.count > name.count && id.starts(with: name) && id[id.index(id.startIndex, offsetBy: name.count)] == UInt8(ascii: " ")
    }

    /// What the ZAP handler said of a connection: `agency key` (see `Broker.admit`).
    static func identity(_ userID: String?) -> (agency: String, key: String)? {
        guard let userID, let space = userID.firstIndex(of: " ") else { return nil }
        return (String(userID[..<space]), String(userID[userID.index(after: space)...]))
    }

    public init(configuration: BrokerConfiguration, registry: AgencyRegistry, keys: KeyFile? = nil, signer: CheckpointSigner? = nil,
                store: BrokerStore, context: Context, clock: any RujukCore.Clock, logger: Logger, securityEvents: SecurityEvents = SecurityEvents()) {
        self.securityEvents = securityEvents
        self.configuration = configuration
        self.registry = registry
        self.keys = keys
        self.signer = signer
        self.store = store
        committedAudit = (store.auditRecords, store.auditHead)
        self.context = context
        self.clock = clock
        self.logger = logger
    }

    /// Binds the ROUTER and starts the thread; returns the bound endpoint (useful with port 0 / `*`).
    public func start() throws -> String {
        let ready = DispatchSemaphore(value: 0)
        let outcome = Locked<Result<String, any Error>>(.failure(RujukError(.internal, "router did not start")))
        let thread = Thread { [self] in
            let socket: Socket
            do {
                socket = try Socket(context, .router)
                let limits = configuration.limits
                try socket.set(ZMQ_ROUTER_MANDATORY, Int32(1))
                // Finite queues per peer: one that floods or does not read fills only its own
                // (ROUTER_MANDATORY makes a full one fail the send, which ends its session).
                try socket.set(ZMQ_SNDHWM, Int32(limits.sendHighWaterMark))
                try socket.set(ZMQ_RCVHWM, Int32(limits.receiveHighWaterMark))
                try socket.set(ZMQ_HANDSHAKE_IVL, Int32(limits.handshakeTimeoutMs))
                // A frame between the limit and this hard cap gets a too_large ERROR; one over
                // the cap makes libzmq drop the connection before it is read into memory.
                try socket.set(ZMQ_MAXMSGSIZE, int64: Int64(configuration.hardFrameLimit))
                // An RRP message has at most 4 frames after the routing id; one over the size
                // limit is refused without being copied whole.
                socket.maxReceiveBytes = configuration.maxMessageBytes + 256
                socket.maxReceiveFrames = 8
                if let keys { try socket.makeCurveServer(secretKey: keys.curveSecret, zapDomain: Broker.routerDomain) }
                // Monitors see every accepted connection only if they exist before the bind.
                let routerEvents = try SocketMonitor(socket, context: context, kinds: PeerConnectionGuard.kinds)
                try socket.bind(configuration.router)
                let endpoint = try socket.lastEndpoint
                let monitor = try Socket(context, .xpub)
                try monitor.set(ZMQ_SNDHWM, Int32(100_000))
                try monitor.set(ZMQ_LINGER, Int32(0))
                try monitor.set(ZMQ_RCVHWM, Int32(limits.receiveHighWaterMark))
                try monitor.set(ZMQ_HANDSHAKE_IVL, Int32(limits.handshakeTimeoutMs))
                if let keys { try monitor.makeCurveServer(secretKey: keys.curveSecret, zapDomain: Broker.monitorDomain) }
                let monitorEvents = try SocketMonitor(monitor, context: context, kinds: PeerConnectionGuard.kinds)
                try monitor.bind(configuration.monitor)
                let connectionGuard = PeerConnectionGuard(monitors: [routerEvents, monitorEvents], limits: limits, logger: logger, events: securityEvents)
                connectionGuard.start()
                self.connectionGuard = connectionGuard
                self.monitor = monitor
                monitorEndpoint = try monitor.lastEndpoint
                outcome.withLock { $0 = .success(endpoint) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
                ready.signal()
                finished.signal()
                return
            }
            ready.signal()
            run(socket)
            connectionGuard?.stop()
            // Nothing queued is owed at a stop: unreceipted DELIVERs go out again from the store
            // and an unanswered REFER is sent again by its adapter. The port is free at once.
            try? socket.set(ZMQ_LINGER, Int32(0))
            // Unbound first: libzmq closes a listener as soon as it is unbound, and a closed
            // socket's only when the socket is reaped, which its connections can hold up.
            if let bound = try? socket.lastEndpoint { try? socket.unbind(bound) }
            socket.close()
            if let monitor = self.monitor, let bound = try? monitor.lastEndpoint { try? monitor.unbind(bound) }
            self.monitor?.close()
            finished.signal()
        }
        thread.name = "rujuk.router"
        thread.stackSize = 4 << 20
        thread.start()
        ready.wait()
        return try outcome.current.get()
    }

    /// Asks the thread to finish its current group commit and stop; waits until it has.
    public func stop() {
        lock.withLock { stopping = true }
        wakeup.notify()
        finished.wait()
        finished.signal()
    }

    public var snapshot: RouterSnapshot { lock.withLock { shared } }

    /// Hands the router a new registry (config reload). The router thread applies it before its
    /// next read: sessions of agencies whose key was removed or replaced are closed and their
    /// connections cut, as are monitor subscribers' (new connections are already checked
    /// against the new registry by the ZAP handler).
    public func reload(_ registry: AgencyRegistry) {
        lock.withLock { pendingRegistry = registry }
        wakeup.notify()
    }

    private func applyReload() {
        guard let next = lock.withLock({ () -> AgencyRegistry? in defer { pendingRegistry = nil }; return pendingRegistry }) else { return }
        registry = next
        for (routingID, session) in sessions {
            guard let connection = session.connection, next[session.agency]?.curveKey != connection.key else { continue }
            logger.warning("security: key revoked, connection dropped", metadata: ["agency.id": "\(session.agency)"])
            closeSession(routingID, reason: "key revoked")
            connection.drop()
        }
        for (agency, connections) in subscriberConnections {
            let allowed = next[agency].map { $0.roles.contains(.monitor) } ?? false
            for connection in connections where !allowed || next[agency]?.curveKey != connection.key {
                logger.warning("security: monitor key revoked, subscriber dropped", metadata: ["agency.id": "\(agency)"])
                connection.drop()
                subscriberConnections[agency]?.remove(connection)
            }
        }
        logger.info("registry reloaded", metadata: ["agencies": "\(next.agencies.count)"])
    }

    // MARK: - The loop

    private func run(_ socket: Socket) {
        let tick = max(10, configuration.heartbeatMs / 4)
        while !lock.withLock({ stopping }) {
            do {
                // With a full next batch waiting on a commit in flight, the socket is left
                // unread (and unpolled, or poll would return at once): libzmq holds the rest.
                let reading = committing == nil || pendingWrites.count < configuration.maxBatch
                var targets: [PollTarget] = [.fd(wakeup.fileDescriptor), .fd(committer.signal.fileDescriptor)]
                if let monitor { targets.append(.socket(monitor)) }
                if reading { targets.append(.socket(socket)) }
                let readable = try poll(targets, timeoutMilliseconds: tick)
                if readable[0] { wakeup.drain(); applyReload() }
                if readable[1] { committer.signal.drain() }
                if monitor != nil, readable[2] { readSubscriptions() }
                if let result = committer.take(waiting: false) { finishCommit(result, socket) }
                var batch: [Multipart] = []
                while reading, batch.count < configuration.maxBatch, pendingWrites.count < configuration.maxBatch,
                      let message = try socket.receive(dontWait: true) {
                    batch.append(message)
                }
                if !batch.isEmpty { process(batch, socket) }
                startCommit(socket)
                resendUnreceipted(socket)
                heartbeat(socket)
                summarizeSecurityLog()
                checkpointRound(socket)
                publishStats()
            } catch let error as ZMQError where error.isTerminated {
                break
            } catch {
                logger.error("router loop error", metadata: ["error": "\(error)"])
            }
        }
        // What was accepted is committed and acknowledged before the sessions end.
        drainCommits(socket)
        startCommit(socket)
        drainCommits(socket)
        for session in sessions.values { send(.bye, to: session.routingID, socket) }
    }

    /// Commits the checked messages — a small group here, a larger one on the committer thread —
    /// unless a commit is in flight.
    private func startCommit(_ socket: Socket) {
        guard committing == nil, !pendingWrites.isEmpty else { return }
        let writes = pendingWrites, now = clock.now(), store = self.store
        committing = (writes, pendingOrigins)
        pendingWrites.removeAll(keepingCapacity: true)
        pendingOrigins.removeAll(keepingCapacity: true)
        if writes.count <= configuration.inlineCommitMax {
            finishCommit(store.commit(writes, now: now), socket)
        } else {
            stats.handedOver += 1
            committer.submit { store.commit(writes, now: now) }
        }
    }

    /// Waits for the commit in flight, if any, and acknowledges and delivers what it stored.
    private func drainCommits(_ socket: Socket) {
        guard committing != nil, let result = committer.take(waiting: true) else { return }
        finishCommit(result, socket)
    }

    /// Once a second at most: one line for each kind of security event whose lines were
    /// suppressed in an interval that has ended.
    private func summarizeSecurityLog() {
        let now = monotonicMilliseconds()
        guard now >= lastSummary + 1000 else { return }
        lastSummary = now
        logger.securitySummaries(securityEvents)
    }

    private func publishStats() {
        stats.connected = sessionByAgency.keys.sorted()
        let copy = stats
        lock.withLock { shared = copy }
    }

    /// Reads and checks a batch of messages: answers what needs no commit at once, and adds
    /// the rest to the next group commit (`pendingWrites`).
    private func process(_ batch: [Multipart], _ socket: Socket) {
        let now = monotonicMilliseconds()
        for message in batch {
            guard message.frames.count >= 1 else { continue }
            let routingID = message.frames[0]
            if message.oversize {
                refuse(RujukError(.tooLarge, "the message is over \(configuration.maxMessageBytes) bytes or has too many frames"), id: nil, to: routingID, socket)
                continue
            }
            let frames = Array(message.frames.dropFirst())
            sessions[routingID]?.lastHeard = now
            let hello = frames.count >= 2 && frames[1].elementsEqual(Self.helloCommand)
            guard allow(message, hello: hello, now: now) else {
                refuseRateLimited(message, frames, to: routingID, socket)
                continue
            }
            let decoded: RRPMessage
            do {
                decoded = try RRPCodec.decode(frames, maxMessageBytes: configuration.maxMessageBytes)
            } catch let error as RujukError {
                refuse(error, id: RRPCodec.messageID(in: frames), to: routingID, socket)
                continue
            } catch {
                refuse(RujukError(.badFrame, "undecodable message"), id: nil, to: routingID, socket)
                continue
            }
            if case .hello(let hello) = decoded {
                // A new session reads its mailbox from the store: whatever is in flight is
                // committed and in the mailboxes first.
                drainCommits(socket)
                openSession(hello, message: message, routingID: routingID, socket)
                continue
            }
            guard let session = sessions[routingID] else {
                if case .bye = decoded { continue }
                refuse(RujukError(.noSession, "send HELLO first"), id: RRPCodec.messageID(in: frames), to: routingID, socket)
                continue
            }
            // Every message, not only the HELLO, is checked against the key its connection
            // proved: a routing id is not an identity.
            if keys != nil, !Self.isIdentity(message.userId, of: session.agency) {
                refuse(RujukError(.identityMismatch, "this connection is not '\(session.agency)'"), id: RRPCodec.messageID(in: frames), to: routingID, socket)
                continue
            }
            // REFER, UPDATE and ESCALATE bodies are stored and delivered as understood, written
            // again from their decoded fields: a field the broker does not know (free text an
            // agency slipped past the envelope's rules) is neither stored nor forwarded.
            switch decoded {
            case .refer(let referral, _):
                do {
                    guard referral.from == session.agency else {
                        throw RujukError(.identityMismatch, "'from' is '\(referral.from)' but the message came from '\(session.agency)'")
                    }
                    try registry.authorize(referral)
                    pendingWrites.append(.refer(referral, raw: JSONCoding.encode(referral), agency: session.agency))
                    pendingOrigins.append(routingID)
                } catch let error as RujukError {
                    refuse(error, id: referral.id, to: routingID, socket)
                } catch {}
            case .update(let event, _):
                pendingWrites.append(.update(event, raw: JSONCoding.encode(event), agency: session.agency))
                pendingOrigins.append(routingID)
            case .escalate(let escalation, _):
                do {
                    try registry.authorizeEscalation(targets: escalation.targets)
                } catch let error as RujukError {
                    refuse(error, id: escalation.id, to: routingID, socket)
                    continue
                } catch {}
                pendingWrites.append(.escalate(escalation, raw: JSONCoding.encode(escalation), agency: session.agency))
                pendingOrigins.append(routingID)
            case .receipt(let receipt):
                guard allowReceipt(message, ids: receipt.ids.count, now: now) else {
                    refuseRateLimited(message, frames, to: routingID, socket)
                    continue
                }
                let inFlight = mailboxes[session.agency]?.inFlight
                pendingWrites.append(.receipt(ids: receipt.ids, agency: session.agency, kinds: receipt.ids.map { inFlight?[$0]?.kind }))
                pendingOrigins.append(routingID)
            case .ping:
                send(.pong, to: routingID, socket)
            case .pong:
                break
            case .bye:
                closeSession(routingID, reason: "bye")
            case .hello, .ready, .commit, .deliver, .error, .checkpoint:
                refuse(RujukError(.unknownCommand, "\(decoded.command.rawValue) is sent by the broker, not to it"), id: nil, to: routingID, socket)
            }
        }
    }

    /// A group commit has finished: acknowledges what it stored, refuses what it did not, and
    /// puts its deliveries in the mailboxes.
    private func finishCommit(_ result: CommitResult, _ socket: Socket) {
        guard let (writes, origins) = committing else { return }
        committing = nil
        committedAudit = (store.auditRecords, store.auditHead)
        let (outcomes, deliveries, feed) = result
        FaultPoint.groupCommitted.reached()
        noteStorageHealth(outcomes)
        publish(feed)
        stats.batches += 1
        stats.largestBatch = max(stats.largestBatch, writes.count)
        var commits: [[UInt8]: [String]] = [:]
        var commitOrder: [[UInt8]] = []
        for (index, outcome) in outcomes.enumerated() {
            let origin = origins[index]
            switch outcome {
            case .committed(let id):
                if case .receipt(let ids, let agency, _) = writes[index] {
                    for id in ids { mailboxes[agency]?.receipted(id) }
                    continue
                }
                if commits[origin] == nil { commitOrder.append(origin) }
                commits[origin, default: []].append(id)
                stats.committed += 1
            case .refused(let error, let id):
                if case .receipt(let ids, let agency, _) = writes[index], error.code == .storageUnavailable {
                    mailboxes[agency]?.sendAgain(ids)
                    awaitingResend.insert(agency)
                }
                refuse(error, id: id, to: origin, socket)
            }
        }
        // Acknowledge only now: the transaction holding these messages has committed.
        for origin in commitOrder {
            send(.commit(Commit(ids: commits[origin]!)), to: origin, socket)
        }
        var touched = Set<String>()
        for (agency, entry) in deliveries {
            let connected = sessionByAgency[agency] != nil
            mailboxes[agency, default: Mailbox()].append(entry, capacity: configuration.mailboxMemory, connected: connected)
            touched.insert(agency)
        }
        for write in writes {
            if case .receipt(_, let agency, _) = write { touched.insert(agency) }
        }
        // Deliveries whose RECEIPT could not be stored wait for resendUnreceipted.
        for agency in touched.subtracting(awaitingResend) { pump(agency, socket) }
    }

    /// XPUB hands over each subscription's first subscribe and last unsubscribe: byte 1 or 0,
    /// then the prefix.
    private func readSubscriptions() {
        guard let monitor else { return }
        while let message = try? monitor.receive(dontWait: true) {
            if let (agency, key) = Self.identity(message.userId), let connection = PeerConnection(message, key: key) {
                subscriberConnections[agency, default: []].insert(connection)
            }
            guard let frame = message.frames.first, let flag = frame.first else { continue }
            let prefix = Array(frame.dropFirst())
            if flag == 1 { subscriptions.insert(prefix) } else if flag == 0 { subscriptions.remove(prefix) }
        }
    }

    private func hasSubscriber(_ topic: [UInt8]) -> Bool {
        subscriptions.contains { topic.starts(with: $0) }
    }

    /// Publishes committed feed events, each under each of its topics (Protocols/MONITOR.md).
    /// PUB never blocks: a subscriber that falls behind loses messages, sees the gap in `prev`,
    /// and reads what it missed from `GET /api/feed`.
    private func publish(_ events: [FeedEvent]) {
        guard let monitor else { return }
        guard !subscriptions.isEmpty else {
            // Nobody listens: keep no chain. The next publication on each topic says prev -1
            // ("cannot say"), which makes a resuming subscriber re-sync (MONITOR.md §5).
            lastOnTopic.removeAll(keepingCapacity: true)
            return
        }
        for event in events {
            // The event is encoded once, if anyone listens; each topic's publication wraps it.
            var body: [UInt8]?
            for topic in event.topics {
                let prev = lastOnTopic[topic] ?? -1
                lastOnTopic[topic] = event.seq
                let topicBytes = Array(topic.utf8)
                guard hasSubscriber(topicBytes) else { continue }
                let encoded = body ?? JSONCoding.encode(event)
                body = encoded
                var writer = JSONWriter(capacity: encoded.count + 96)
                writer.beginObject()
                writer.key("event")
                writer.raw(encoded)
                writer.field("prev", Int(prev))
                writer.field("topic", topic)
                writer.endObject()
                _ = try? monitor.send([topicBytes, writer.bytes], dontWait: true)
            }
        }
    }

    /// Sends again the deliveries whose RECEIPT the store could not take, once a second at
    /// most while it cannot write (each round is a RECEIPT and a failed transaction), at once
    /// when it writes again.
    private func resendUnreceipted(_ socket: Socket) {
        guard !awaitingResend.isEmpty else { return }
        let now = monotonicMilliseconds()
        guard !storageFailing || now >= lastResend + 1000 else { return }
        lastResend = now
        let agencies = awaitingResend
        awaitingResend.removeAll()
        for agency in agencies { pump(agency, socket) }
    }

    /// Says once when the store stops taking writes (disk full, I/O error) and once when it
    /// takes them again; in between every message is refused with storage_unavailable, and its
    /// sender keeps it in its outbox and sends it again.
    private func noteStorageHealth(_ outcomes: [CommitOutcome]) {
        let failed = outcomes.first.flatMap { outcome -> RujukError? in
            if case .refused(let error, _) = outcome, error.code == .storageUnavailable { return error }
            return nil
        }
        if let failed, !storageFailing {
            storageFailing = true
            logger.error("the store cannot write; refusing every message with storage_unavailable until it can", metadata: ["error.reason": "\(failed.reason)"])
        } else if failed == nil, storageFailing {
            storageFailing = false
            logger.notice("the store writes again; accepting messages")
        }
    }

    private func refuse(_ error: RujukError, id: String?, to routingID: [UInt8], _ socket: Socket) {
        stats.refused += 1
        let metadata: Logger.Metadata = ["error.code": "\(error.code)", "error.reason": "\(error.reason)", "message.id": "\(id ?? "-")",
                                         "agency.id": "\(sessions[routingID]?.agency ?? "-")"]
        if let kind = SecurityEventKind(error.code) {
            logger.security(kind, "refused", metadata: metadata, events: securityEvents)
        } else {
            // A store that cannot write refuses every message; that is said once (noteStorageHealth).
            logger.log(level: error.code == .storageUnavailable ? .debug : .info, "refused", metadata: metadata)
        }
        send(.error(ProtocolError(error, id: id)), to: routingID, socket)
    }

    /// Whether the sender of `message` may send another message now (and, for a HELLO,
    /// another HELLO): an O(1) token-bucket check per message, before it is decoded.
    private func allow(_ message: Multipart, hello: Bool, now: UInt64) -> Bool {
        let key = message.userId ?? message.frames[0].map { String($0, radix: 16) }.joined()
        let limits = configuration.limits
        if allowances[key] == nil {
            // Plaintext routing ids change with every connection; keep the table bounded.
            if allowances.count >= 4096 { allowances.removeAll(keepingCapacity: true) }
            let rate = Double(limits.sessionRate), hellos = Double(limits.sessionHelloRate)
            allowances[key] = Allowance(messages: TokenBucket(rate: rate, burst: 2 * rate, now: now),
                                        hellos: TokenBucket(rate: hellos, burst: 2 * hellos, now: now))
        }
        guard allowances[key]!.messages.take(now: now), !hello || allowances[key]!.hellos.take(now: now) else {
            return false
        }
        allowances[key]!.refusedInRow = 0
        return true
    }

    /// Takes what a RECEIPT costs beyond its one message: one token per further id.
    private func allowReceipt(_ message: Multipart, ids: Int, now: UInt64) -> Bool {
        guard ids > 1 else { return true }
        let key = message.userId ?? message.frames[0].map { String($0, radix: 16) }.joined()
        return allowances[key]?.messages.take(Double(ids - 1), now: now) ?? true
    }

    /// Refuses a message over its sender's rate as cheaply as it can: an ERROR for each message
    /// that carries an id (its sender retries that one) and for the first of a run, nothing
    /// more for the rest; a sender that goes on regardless loses its session and connection.
    private func refuseRateLimited(_ message: Multipart, _ frames: [[UInt8]], to routingID: [UInt8], _ socket: Socket) {
        stats.rateLimited += 1
        let key = message.userId ?? message.frames[0].map { String($0, radix: 16) }.joined()
        allowances[key]?.refusedInRow += 1
        let inRow = allowances[key]?.refusedInRow ?? 1
        if inRow >= Self.floodCutoff {
            allowances[key]?.refusedInRow = 0
            logger.security(.rateLimited, "connection cut: it goes on sending over its rate",
                            metadata: ["agency.id": "\(sessions[routingID]?.agency ?? "-")"], events: securityEvents)
            closeSession(routingID, reason: "flooding")
            if let fd = message.sourceFD, let peer = peerAddress(ofFD: fd) { dropConnection(fd: fd, peer: peer) }
            return
        }
        let carriesID = frames.count >= 3 && Self.commandsWithID.contains(frames[1])
        guard carriesID || inRow == 1 else { return }
        let error = RujukError(.rateLimited, "over this session's message rate; send again more slowly")
        refuse(error, id: carriesID ? RRPCodec.messageID(in: frames) : nil, to: routingID, socket)
    }

    private static let commandsWithID: Set<[UInt8]> = Set([RRPCommand.refer, .update, .escalate].map { Array($0.rawValue.utf8) })

    // MARK: - Sessions

    private func openSession(_ hello: Hello, message: Multipart, routingID: [UInt8], _ socket: Socket) {
        guard hello.versions.contains(2) else {
            return refuse(RujukError(.versionUnsupported, "this broker speaks RRP version 2"), id: nil, to: routingID, socket)
        }
        // With CURVE the agency is the one whose key the connection proved (the ZAP handler's
        // User-Id), never what the HELLO says. Without it (plaintext, the demo) it is the HELLO.
        var agency = hello.agency
        var connection: PeerConnection?
        if keys != nil {
            guard let (authenticated, key) = Self.identity(message.userId) else {
                return refuse(RujukError(.unauthorized, "the connection is not authenticated"), id: nil, to: routingID, socket)
            }
            guard registry[authenticated]?.curveKey == key else {
                // Authenticated before a reload that revoked the key: cut it.
                refuse(RujukError(.keyUnknown, "this connection's key is no longer registered"), id: nil, to: routingID, socket)
                PeerConnection(message, key: key)?.drop()
                return
            }
            if authenticated != hello.agency {
                return refuse(RujukError(.identityMismatch, "HELLO names '\(hello.agency)' but the connection is '\(authenticated)'"), id: nil, to: routingID, socket)
            }
            agency = authenticated
            connection = PeerConnection(message, key: key)
        }
        guard registry[agency] != nil else {
            return refuse(RujukError(.unknownAgency, "agency '\(agency)' is not in the registry"), id: nil, to: routingID, socket)
        }
        if let previous = sessionByAgency[agency] { closeSession(previous, reason: "replaced by a new session") }
        if sessions[routingID] != nil { closeSession(routingID, reason: "new HELLO") }
        let now = monotonicMilliseconds()
        let credit = min(hello.credit, configuration.maxCredit)
        sessions[routingID] = Session(routingID: routingID, agency: agency, credit: credit, lastHeard: now, lastSent: now, connection: connection)
        sessionByAgency[agency] = routingID
        mailboxes[agency, default: Mailbox()].release()
        logger.info("session opened", metadata: ["agency.id": "\(agency)", "credit": "\(credit)"])
        send(.ready(Ready(version: 2, agency: agency, heartbeatMs: configuration.heartbeatMs, maxMessageBytes: configuration.maxMessageBytes, credit: credit)), to: routingID, socket)
        if let checkpoint = currentCheckpoint() { send(.checkpoint(checkpoint), to: routingID, socket) }
        pump(agency, socket)
    }

    private func closeSession(_ routingID: [UInt8], reason: String) {
        guard let session = sessions.removeValue(forKey: routingID) else { return }
        if sessionByAgency[session.agency] == routingID { sessionByAgency[session.agency] = nil }
        // Unreceipted deliveries stay pending in the store and go out again on the next session.
        mailboxes[session.agency]?.release()
        logger.info("session closed", metadata: ["agency.id": "\(session.agency)", "reason": "\(reason)"])
    }

    private func heartbeat(_ socket: Socket) {
        let now = monotonicMilliseconds()
        let interval = UInt64(configuration.heartbeatMs)
        for (routingID, session) in sessions {
            if now - session.lastHeard > 3 * interval {
                closeSession(routingID, reason: "heartbeat timeout")
            } else if now - session.lastSent >= interval {
                send(.ping, to: routingID, socket)
            }
        }
    }

    // MARK: - Checkpoints

    /// A checkpoint of the log as last committed: the last one while the log has not moved, a
    /// new one signed when it has; nil without a sign key or with an empty log.
    private func currentCheckpoint() -> Checkpoint? {
        let (records, head) = committedAudit
        guard let signer, records > 0 else { return nil }
        if let last = lastCheckpoint, last.records == records, last.head == AuditChain.hex(head) { return last }
        do {
            let checkpoint = try signer.sign(records: records, head: head, at: clock.now())
            lastCheckpoint = checkpoint
            return checkpoint
        } catch {
            logger.error("cannot sign an audit checkpoint", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Every `checkpointInterval`, sends every session a new checkpoint if the log has grown
    /// since the last; adapters keep them (RRP section 4.13).
    private func checkpointRound(_ socket: Socket) {
        let now = monotonicMilliseconds()
        guard signer != nil, now >= lastCheckpointRound + UInt64(configuration.checkpointInterval * 1000) else { return }
        let previous = lastCheckpoint
        guard let checkpoint = currentCheckpoint() else { return }
        lastCheckpointRound = now
        guard checkpoint != previous else { return }
        logger.debug("audit checkpoint", metadata: ["audit.records": "\(checkpoint.records)", "audit.head": "\(checkpoint.head)"])
        for routingID in Array(sessions.keys) { send(.checkpoint(checkpoint), to: routingID, socket) }
    }

    // MARK: - Delivery

    /// Sends what the agency's credit allows, reading the store when the in-memory window is empty.
    private func pump(_ agency: String, _ socket: Socket) {
        guard let routingID = sessionByAgency[agency], let session = sessions[routingID] else { return }
        var box = mailboxes[agency] ?? Mailbox()
        defer { if sessions[routingID] != nil { mailboxes[agency] = box } }
        while box.inFlight.count < session.credit {
            if box.queue.isEmpty {
                guard box.more else { break }
                let room = configuration.mailboxMemory
                do {
                    let loaded = try store.pending(agency: agency, after: box.loadedThrough, limit: room)
                    box.more = loaded.count == room
                    guard let last = loaded.last else { break }
                    box.loadedThrough = last.seq
                    box.queue.append(contentsOf: loaded)
                } catch {
                    logger.error("cannot read mailbox", metadata: ["agency.id": "\(agency)", "error": "\(error)"])
                    break
                }
            }
            var entry = box.queue.removeFirst()
            entry.attempt = box.nextAttempt(entry.messageID)
            guard send(.deliver(DeliveryHeader(kind: entry.kind, id: entry.messageID, attempt: entry.attempt), payload: entry.payload), to: routingID, socket) else {
                return
            }
            box.inFlight[entry.messageID] = entry
            stats.delivered += 1
        }
    }

    @discardableResult
    private func send(_ message: RRPMessage, to routingID: [UInt8], _ socket: Socket) -> Bool {
        do {
            try socket.send([routingID] + RRPCodec.encode(message), dontWait: true)
            sessions[routingID]?.lastSent = monotonicMilliseconds()
            return true
        } catch {
            // The peer is gone (EHOSTUNREACH) or not reading (EAGAIN): end its session; what
            // it had not receipted is still pending in the store.
            closeSession(routingID, reason: "send failed: \(error)")
            return false
        }
    }
}

typealias CommitResult = (outcomes: [CommitOutcome], deliveries: [(agency: String, entry: MailboxEntry)], feed: [FeedEvent])

func monotonicMilliseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds / 1_000_000
}
