import Logging
import NIOCore
import TCPIPWire

/// What the hub has seen, for tests and benchmarks.
public struct HubStatistics: Sendable, Hashable {
    /// Connections open now.
    public var connections: Int
    /// Registered peers now.
    public var peers: Int
    /// Peers that asked for join/leave updates.
    public var watchers: Int
    /// The most bytes ever queued by the hub towards one connection (written, not yet taken by the kernel).
    public var peakQueuedBytes: Int
    /// Packets written to connections so far.
    public var packetsWritten: Int
}

/// Carries out the ``HubCore``'s actions on channels. Everything here runs on the hub's one event loop.
final class HubRouter: @unchecked Sendable {
    let loop: any EventLoop
    private var core: HubCore
    private let logger: Logger
    private var handlers: [ConnectionID: HubConnectionHandler] = [:]
    private var nextConnection: UInt64 = 1
    private var needsFlush: Set<ConnectionID> = []
    private var peakQueuedBytes = 0
    private var packetsWritten = 0
    private var stopped = false

    init(core: HubCore, loop: any EventLoop, logger: Logger) {
        self.core = core
        self.loop = loop
        self.logger = logger
    }

    private var now: WireTime { WireClock.now() }

    // MARK: events from handlers

    func connected(_ handler: HubConnectionHandler, address: String) -> ConnectionID {
        loop.preconditionInEventLoop()
        let id = ConnectionID(nextConnection)
        nextConnection += 1
        handlers[id] = handler
        if stopped {
            handler.context?.close(promise: nil)
            return id
        }
        perform(core.connected(id, address: address, now: now), source: nil)
        flushPending()
        return id
    }

    func disconnected(_ handler: HubConnectionHandler) {
        guard handlers.removeValue(forKey: handler.id) != nil else { return }
        release(handler)
        perform(core.disconnected(handler.id), source: nil)
        flushPending()
    }

    func received(_ packet: Packet, from handler: HubConnectionHandler) {
        perform(core.received(packet, from: handler.id, now: now), source: handler)
    }

    func failed(_ handler: HubConnectionHandler, error: any Error) {
        if let wireError = error as? WireError {
            perform(core.protocolViolation(handler.id, error: wireError), source: nil)
            flushPending()
        } else {
            logger.debug("connection error: \(error)", metadata: ["connection": "\(handler.id)"])
            handler.context?.close(promise: nil)
        }
    }

    func writabilityChanged(_ handler: HubConnectionHandler, writable: Bool) {
        if writable {
            handler.unwritableSince = nil
            release(handler)
        } else if handler.unwritableSince == nil {
            handler.unwritableSince = .now()
        }
    }

    /// Lets every connection that waited on `handler` read again.
    private func release(_ handler: HubConnectionHandler) {
        let waiters = handler.waiters
        handler.waiters.removeAll()
        for waiterID in waiters {
            guard let waiter = handlers[waiterID] else { continue }
            waiter.blockedOn.remove(handler.id)
            waiter.resumeIfUnblocked()
        }
    }

    func tick() {
        let busy = Set(handlers.values.filter { !$0.blockedOn.isEmpty }.map(\.id))
        perform(core.tick(now: now, busy: busy), source: nil)
        let deadline = NIODeadline.now() - TimeAmount(core.configuration.writeTimeout)
        for handler in handlers.values {
            if let since = handler.unwritableSince, since < deadline, !handler.closing {
                perform(core.stalled(handler.id, waiting: Array(handler.waiters)), source: nil)
            }
        }
        flushPending()
    }

    func shutdown(reason: String) {
        stopped = true
        perform(core.shutdown(reason: reason), source: nil)
        flushPending()
    }

    func statistics() -> HubStatistics {
        HubStatistics(
            connections: core.connectionCount, peers: core.peerCount, watchers: core.watcherCount,
            peakQueuedBytes: peakQueuedBytes, packetsWritten: packetsWritten
        )
    }

    var openConnections: Int { handlers.count }

    // MARK: carrying out actions

    /// Writes and closes as the core asked. A destination left over its high-water mark blocks the source's reads.
    private func perform(_ actions: [HubAction], source: HubConnectionHandler?) {
        guard !actions.isEmpty else { return }
        var closing: Set<ConnectionID> = []
        for case .close(let id) in actions { closing.insert(id) }
        var lastWrite: [ConnectionID: EventLoopFuture<Void>] = [:]
        for action in actions {
            switch action {
            case .send(let id, let packet):
                guard let handler = handlers[id], let context = handler.context, !handler.closing else { continue }
                packetsWritten += 1
                if closing.contains(id) {
                    let promise = loop.makePromise(of: Void.self)
                    context.write(NIOAny(packet), promise: promise)
                    lastWrite[id] = promise.futureResult
                } else {
                    context.write(NIOAny(packet), promise: nil)
                }
                needsFlush.insert(id)
                let channel = context.channel
                if let queued = try? channel.syncOptions?.getOption(.bufferedWritableBytes), queued > peakQueuedBytes {
                    peakQueuedBytes = queued
                }
                // Over the mark: stop reading whoever sent this until the destination drains (its own connection
                // included, when the hub's answers to it pile up).
                // Only data a source relays holds that source back. The hub's own notices (a peer joined, left,
                // changed) to a watcher that does not read must not make the peer that caused them wait: that watcher
                // is dropped at its write timeout instead.
                if !channel.isWritable, let source, handlers[source.id] != nil, !source.closing, Self.isRelayed(packet)
                {
                    source.blockedOn.insert(id)
                    handler.waiters.insert(source.id)
                }
            case .close(let id):
                guard let handler = handlers[id], let context = handler.context, !handler.closing else { continue }
                handler.closing = true
                context.flush()
                needsFlush.remove(id)
                let channel = context.channel
                let closeNow: @Sendable () -> Void = { channel.close(promise: nil) }
                if let future = lastWrite[id] {
                    future.whenComplete { _ in closeNow() }
                    // A peer that never reads must not keep the connection open forever.
                    loop.scheduleTask(in: .seconds(5)) { closeNow() }
                } else {
                    closeNow()
                }
            }
        }
    }

    /// Whether a packet carries a peer's data (relayed), not a notice of the hub's own.
    static func isRelayed(_ packet: Packet) -> Bool {
        let type = packet.header.type
        return packet.header.idFrom != PacketHeader.hubID && !type.isHubOnly && type != .credentialsUpdate
    }

    func flushPending() {
        guard !needsFlush.isEmpty else { return }
        for id in needsFlush { handlers[id]?.context?.flush() }
        needsFlush.removeAll(keepingCapacity: true)
    }
}
