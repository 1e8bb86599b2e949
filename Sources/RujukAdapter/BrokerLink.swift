import CZeroMQ
import Foundation
import Logging
import RujukCore
import RujukHTTP
import ZeroMQ

/// The adapter's connection to the broker: a dedicated thread that owns the DEALER socket.
///
/// It sends the outbox (REFER/UPDATE) within a window and records each COMMIT, stores every
/// DELIVER in the ledger before it RECEIPTs it, keeps the heartbeat, and starts over with a
/// new socket and HELLO whenever the broker goes silent or forgets the session.
public final class BrokerLink: @unchecked Sendable {
    /// What the link is doing, for `/health`.
    public enum State: String, Sendable, Codable {
        case connecting, ready, stopped
    }

    private let configuration: AdapterConfiguration
    private let ledger: Ledger
    private let context: Context
    private let logger: Logger
    private let wakeup = Wakeup()
    private let control = Locked((stopping: false, state: State.connecting))
    private let finished = DispatchSemaphore(value: 0)
    /// Called (on the link thread) after the ledger changed because of the broker.
    private let onChange: @Sendable () -> Void
    private let securityEvents: SecurityEvents

    // Link-thread state.
    private var socket: Socket?
    private var ready = false
    private var inFlight: [String: Int64] = [:]
    private var sentThrough: Int64 = 0
    /// After the broker said it cannot store (storage_unavailable: its disk is full, say), the
    /// outbox waits until this instant (monotonic ms) before sending again, backing off from
    /// 250 ms to 5 s, so that every adapter does not resend its whole window in a tight loop
    /// at a broker that is already struggling. A COMMIT resets the backoff.
    private var holdOutboxUntil: UInt64 = 0
    private var storageBackoff: UInt64 = 250
    private var lastHeard: UInt64 = 0
    private var lastSent: UInt64 = 0
    private var heartbeatMs: Int
    /// The largest message taken from the broker: its `max_message_bytes` (from READY) plus
    /// room for a DELIVER's header; RRP's default until READY says.
    private var receiveLimit = RRPCodec.defaultMaxMessageBytes + deliveryHeaderRoom
    private static let deliveryHeaderRoom = 4096

    /// The agency's CurveZMQ key pair, with `.curve` transport.
    private let keys: KeyFile

    public init(configuration: AdapterConfiguration, keys: KeyFile, ledger: Ledger, context: Context, logger: Logger,
                securityEvents: SecurityEvents = SecurityEvents(), onChange: @escaping @Sendable () -> Void) {
        self.securityEvents = securityEvents
        self.configuration = configuration
        self.keys = keys
        self.ledger = ledger
        self.context = context
        self.logger = logger
        self.onChange = onChange
        self.heartbeatMs = configuration.heartbeatMs
    }

    public var state: State { control.current.state }

    public func start() {
        let thread = Thread { [self] in
            run()
            socket?.close()
            socket = nil
            control.withLock { $0.state = .stopped }
            finished.signal()
        }
        thread.name = "rujuk.link.\(configuration.agency)"
        thread.stackSize = 4 << 20
        thread.start()
    }

    /// Tells the link the outbox has something new.
    public func outboxChanged() { wakeup.notify() }

    public func stop() {
        control.withLock { $0.stopping = true }
        wakeup.notify()
        finished.wait()
        finished.signal()
    }

    private func run() {
        connect()
        while !control.current.stopping {
            do {
                guard let socket else { connect(); continue }
                let tick = max(10, heartbeatMs / 4)
                let readable = try poll([.socket(socket), .fd(wakeup.fileDescriptor)], timeoutMilliseconds: tick)
                if readable[1] { wakeup.drain() }
                var deliveries: [(DeliveryHeader, [UInt8])] = []
                var changed = false
                while deliveries.count < 4096, let message = try socket.receive(dontWait: true) {
                    lastHeard = monotonicMilliseconds()
                    if message.oversize {
                        logger.warning("dropped a message from the broker over the size limit", metadata: ["limit": "\(receiveLimit)"])
                        continue
                    }
                    if let delivery = handle(message.frames) { deliveries.append(delivery) } else { changed = true }
                }
                if !deliveries.isEmpty {
                    storeAndReceipt(deliveries)
                    changed = true
                }
                if changed { onChange() }
                if ready { sendOutbox() }
                heartbeat()
            } catch {
                logger.error("broker link error", metadata: ["error": "\(error)"])
                reconnect(reason: "\(error)")
            }
        }
        if ready { send(.bye) }
    }

    /// Handles one message; returns it when it is a delivery to be stored with the others.
    private func handle(_ frames: [[UInt8]]) -> (DeliveryHeader, [UInt8])? {
        let message: RRPMessage
        do {
            message = try RRPCodec.decode(frames, maxMessageBytes: receiveLimit)
        } catch {
            logger.warning("undecodable message from the broker", metadata: ["error": "\(error)"])
            return nil
        }
        switch message {
        case .ready(let body):
            ready = true
            heartbeatMs = body.heartbeatMs
            // A DELIVER is a small header and a message the broker accepted under its limit.
            receiveLimit = body.maxMessageBytes + Self.deliveryHeaderRoom
            socket?.maxReceiveBytes = receiveLimit
            inFlight.removeAll()
            sentThrough = 0
            control.withLock { $0.state = .ready }
            logger.info("connected to the broker", metadata: ["agency.id": "\(configuration.agency)", "credit": "\(body.credit)"])
        case .commit(let commit):
            FaultPoint.commitReceived.reached()
            storageBackoff = 250
            do {
                try ledger.markCommitted(commit.ids)
                for id in commit.ids { inFlight.removeValue(forKey: id) }
            } catch {
                logger.error("cannot record COMMIT; the messages will be sent again", metadata: ["error": "\(error)"])
            }
        case .deliver(let header, let payload):
            return (header, payload)
        case .error(let error):
            handleError(error)
        case .ping:
            send(.pong)
        case .pong:
            break
        case .bye:
            reconnect(reason: "broker said BYE")
        case .checkpoint(let checkpoint):
            keep(checkpoint)
        case .hello, .refer, .update, .escalate, .receipt:
            logger.warning("unexpected command from the broker", metadata: ["command": "\(message.command.rawValue)"])
        }
        return nil
    }

    private func handleError(_ error: ProtocolError) {
        switch error.code {
        case .noSession:
            // The broker restarted or dropped us: a new HELLO, then everything uncommitted again.
            ready = false
            control.withLock { $0.state = .connecting }
            sendHello()
        case .storageUnavailable, .rateLimited:
            // Not a verdict on the message: it stays in the outbox and goes again.
            if let id = error.id { inFlight.removeValue(forKey: id) }
            sentThrough = 0
            // One refusal per message of the window arrives in a burst: the first sets the hold.
            let now = monotonicMilliseconds()
            if now >= holdOutboxUntil {
                holdOutboxUntil = now + storageBackoff
                logger.warning("broker cannot store now; the outbox waits and sends again", metadata: [
                    "error.reason": "\(error.reason)", "retry.ms": "\(storageBackoff)"])
                storageBackoff = min(storageBackoff * 2, 5000)
            }
        default:
            if let id = error.id, inFlight.removeValue(forKey: id) != nil {
                logger.warning("broker refused a message", metadata: ["message.id": "\(id)", "error.code": "\(error.code)", "error.reason": "\(error.reason)"])
                try? ledger.markRefused(id, error)
                onChange()
            } else {
                logger.warning("broker error", metadata: ["error.code": "\(error.code)", "error.reason": "\(error.reason)"])
                if error.code == .unknownAgency || error.code == .identityMismatch || error.code == .versionUnsupported {
                    control.withLock { $0.state = .connecting }
                }
            }
        }
    }

    /// Keeps a checkpoint of the broker's audit log if the broker's sign key verifies it; one
    /// it does not verify is dropped with a security warning (RRP section 4.13).
    private func keep(_ checkpoint: Checkpoint) {
        let metadata: Logger.Metadata = ["audit.records": "\(checkpoint.records)", "audit.head": "\(checkpoint.head)"]
        guard let key = configuration.brokerSignKey else {
            logger.warning("security: audit checkpoint dropped: no [adapter] broker_sign_key to verify it with", metadata: metadata)
            return
        }
        guard checkpoint.isSigned(by: key) else {
            logger.warning("security: audit checkpoint dropped: its signature is not the broker's", metadata: metadata)
            return
        }
        do {
            switch try ledger.storeCheckpoint(checkpoint) {
            case .stored, .known:
                break
            case .conflicting(let records):
                let conflict = metadata.merging(["audit.conflict": "\(records)"]) { $1 }
                logger.warning("security: broker checkpoint contradicts one kept: audit history rewritten", metadata: conflict)
            case .shorter(let longest):
                let shorter = metadata.merging(["audit.checkpointed": "\(longest)"]) { $1 }
                logger.warning("security: broker checkpoint is behind one kept: audit history cut back", metadata: shorter)
            }
        } catch {
            logger.error("cannot keep an audit checkpoint", metadata: metadata.merging(["error": "\(error)"]) { $1 })
        }
    }

    private func storeAndReceipt(_ deliveries: [(DeliveryHeader, [UInt8])]) {
        do {
            let result = try ledger.storeDeliveries(deliveries)
            FaultPoint.deliveryStored.reached()
            // Only now, with the ledger's transaction committed, does the RECEIPT go out.
            if !result.receipts.isEmpty { send(.receipt(Receipt(ids: result.receipts))) }
            for (id, error) in result.refused {
                if let kind = SecurityEventKind(error.code) {
                    logger.security(kind, "delivery refused by the ledger", metadata: ["message.id": "\(id)", "error.code": "\(error.code)",
                                    "error.reason": "\(error.reason)"], events: securityEvents)
                    continue
                }
                logger.error("delivery refused by the ledger; recorded, receipted and reported to the agency system", metadata: ["message.id": "\(id)", "error.code": "\(error.code)", "error.reason": "\(error.reason)"])
            }
        } catch {
            logger.error("cannot store deliveries; the broker will redeliver", metadata: ["error": "\(error)"])
        }
    }

    private func sendOutbox() {
        let room = configuration.sendWindow - inFlight.count
        guard room > 0, monotonicMilliseconds() >= holdOutboxUntil else { return }
        do {
            let entries = try ledger.pendingOutbox(after: sentThrough, limit: room)
            for entry in entries {
                let command: RRPCommand = switch entry.kind { case "refer": .refer; case "escalate": .escalate; default: .update }
                guard send(frames: [RRPCodec.header, Array(command.rawValue.utf8), entry.payload]) else { return }
                inFlight[entry.messageID] = entry.seq
                sentThrough = entry.seq
            }
            if !entries.isEmpty { FaultPoint.outboxSent.reached() }
        } catch {
            logger.error("cannot read the outbox", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Connection

    private func connect() {
        do {
            let socket = try Socket(context, .dealer)
            try socket.set(ZMQ_SNDHWM, Int32(0))
            try socket.set(ZMQ_RCVHWM, Int32(0))
            try socket.set(ZMQ_RECONNECT_IVL, Int32(100))
            try socket.set(ZMQ_RECONNECT_IVL_MAX, Int32(2000))
            // libzmq drops a frame over the broker's largest allowed limit (64 MiB) unread;
            // `receive` copies nothing over the current limit.
            try socket.set(ZMQ_MAXMSGSIZE, int64: Int64(64 << 20) + Int64(Self.deliveryHeaderRoom))
            socket.maxReceiveBytes = receiveLimit
            socket.maxReceiveFrames = 8
            if configuration.transport == .curve {
                guard let brokerKey = configuration.brokerKey else {
                    throw RujukError(.config, "transport is curve but no broker_key is configured")
                }
                try socket.makeCurveClient(serverKey: brokerKey, publicKey: keys.curvePublic, secretKey: keys.curveSecret)
            }
            try socket.connect(configuration.broker)
            self.socket = socket
            ready = false
            inFlight.removeAll()
            sentThrough = 0
            lastHeard = monotonicMilliseconds()
            control.withLock { $0.state = .connecting }
            sendHello()
        } catch {
            logger.error("cannot create the broker socket", metadata: ["error": "\(error)"])
            Thread.sleep(forTimeInterval: 0.5)
        }
    }

    private func reconnect(reason: String) {
        logger.info("reconnecting to the broker", metadata: ["reason": "\(reason)"])
        socket?.close()
        socket = nil
        ready = false
        heartbeatMs = configuration.heartbeatMs
    }

    private func sendHello() {
        send(.hello(Hello(agency: configuration.agency, credit: configuration.credit, heartbeatMs: configuration.heartbeatMs, software: "rujuk-adapter/1")))
    }

    private func heartbeat() {
        let now = monotonicMilliseconds()
        if now - lastHeard > UInt64(3 * heartbeatMs) {
            reconnect(reason: "no traffic from the broker for \(3 * heartbeatMs) ms")
        } else if now - lastSent >= UInt64(heartbeatMs) {
            // Before READY, a repeated HELLO doubles as the heartbeat.
            if ready { send(.ping) } else { sendHello() }
        }
    }

    @discardableResult
    private func send(_ message: RRPMessage) -> Bool {
        send(frames: RRPCodec.encode(message))
    }

    @discardableResult
    private func send(frames: [[UInt8]]) -> Bool {
        guard let socket else { return false }
        do {
            try socket.send(frames, dontWait: true)
            lastSent = monotonicMilliseconds()
            return true
        } catch {
            // Not connected yet (EAGAIN): what was not sent stays in the outbox.
            return false
        }
    }
}

func monotonicMilliseconds() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds / 1_000_000
}
