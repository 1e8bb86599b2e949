import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes
import RujukCore

/// The connections of one listener, shared by their `ConnectionGuard`s, so that a listener
/// holds at most `limit` descriptors however many clients connect.
///
/// Stopping `accept` at the limit would leave a normal client queued behind the ones holding
/// the slots; instead a new connection makes room by closing the one that has waited longest
/// without a request in progress, those that never finished a request head first. A
/// connection serving a request (an SSE stream included) is never closed for another.
final class ConnectionTable: Sendable {
    private struct Entry {
        let channel: any Channel
        /// Nil while a request is in progress; otherwise when this wait began (a sequence number).
        var waitingSince: UInt64?
        var sentHead = false
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        var sequence: UInt64 = 0
    }

    let limit: Int
    private let state = Locked(State())

    init(limit: Int) { self.limit = limit }

    /// Records a new connection; returns the connections to close to make room, or nil when
    /// this one is to be closed instead.
    func opened(_ channel: any Channel) -> [any Channel]? {
        state.withLock { state in
            var victims: [any Channel] = []
            while state.entries.count >= limit {
                guard let victim = Self.longestWaiting(state.entries) else { return nil }
                victims.append(state.entries.removeValue(forKey: victim)!.channel)
            }
            state.sequence += 1
            state.entries[ObjectIdentifier(channel)] = Entry(channel: channel, waitingSince: state.sequence)
            return victims
        }
    }

    private static func longestWaiting(_ entries: [ObjectIdentifier: Entry]) -> ObjectIdentifier? {
        var best: (id: ObjectIdentifier, rank: (Int, UInt64))?
        for (id, entry) in entries {
            guard let since = entry.waitingSince else { continue }
            let rank = (entry.sentHead ? 1 : 0, since)
            if best == nil || rank < best!.rank { best = (id, rank) }
        }
        return best?.id
    }

    func requestStarted(_ channel: any Channel) {
        state.withLock { state in
            state.entries[ObjectIdentifier(channel)]?.waitingSince = nil
            state.entries[ObjectIdentifier(channel)]?.sentHead = true
        }
    }

    func requestsFinished(_ channel: any Channel) {
        state.withLock { state in
            state.sequence += 1
            state.entries[ObjectIdentifier(channel)]?.waitingSince = state.sequence
        }
    }

    func closed(_ channel: any Channel) {
        _ = state.withLock { $0.entries.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var count: Int { state.withLock { $0.entries.count } }
}

/// Per connection: takes its place in the listener's `ConnectionTable`, and closes it when no
/// whole request head has arrived `headerTimeout` after it opened (slowloris). The wait for
/// later requests on a kept-alive connection is Hummingbird's idle timeout.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let table: ConnectionTable
    private let headerTimeout: TimeAmount
    private var registered = false
    private var sawHead = false
    private var inProgress = 0
    private var headerTimer: Scheduled<Void>?

    init(table: ConnectionTable, headerTimeout: TimeAmount) {
        self.table = table
        self.headerTimeout = headerTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !registered else { return }
        registered = true
        guard let victims = table.opened(context.channel) else {
            context.close(promise: nil)
            return
        }
        for victim in victims { victim.close(promise: nil) }
        headerTimer = context.eventLoop.assumeIsolated().scheduleTask(in: headerTimeout) { [weak self] in
            guard let self, !self.sawHead else { return }
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            sawHead = true
            headerTimer?.cancel()
            headerTimer = nil
            inProgress += 1
            table.requestStarted(context.channel)
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            inProgress -= 1
            if inProgress == 0 { table.requestsFinished(context.channel) }
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop(context)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop(context)
    }

    private func stop(_ context: ChannelHandlerContext) {
        headerTimer?.cancel()
        headerTimer = nil
        if registered { table.closed(context.channel) }
    }
}

/// What the adapter's API and the broker's status API share to run their HTTP listener: the
/// HTTP/1.1 server with its timeouts and connection cap, and the `Host` check.
public enum HTTPListener {
    /// An HTTP/1.1 server that enforces `settings`: each call makes a new connection table, so
    /// call it once per listener.
    public static func server(_ settings: HTTPListenerSettings) -> HTTPServerBuilder {
        let table = ConnectionTable(limit: settings.maxConnections)
        let headerTimeout = TimeAmount.milliseconds(Int64(settings.headerTimeout * 1000))
        return .http1(configuration: .init(
            additionalChannelHandlers: [ConnectionGuard(table: table, headerTimeout: headerTimeout)],
            idleTimeout: .milliseconds(Int64(settings.idleTimeout * 1000))
        ))
    }
}
