import Logging
import NIOCore
import TCPIPCore
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
    private var backpressure = HubBackpressure()
    private var nextConnection: UInt64 = 1
    private var needsFlush: Set<ConnectionID> = []
    private var peakQueuedBytes = 0
    private var packetsWritten = 0
    private var stopped = false
    /// Where the authorized peers come from, when the hub has a list.
    var authorizedFile: AuthorizedPeersFile?

    init(core: HubCore, loop: any EventLoop, logger: Logger) {
        self.core = core
        self.loop = loop
        self.logger = logger
    }

    private var now: WireTime { WireClock.now() }

    // MARK: events from handlers

    func connected(_ handler: HubConnectionHandler, address: String, source: String?) -> ConnectionID {
        loop.preconditionInEventLoop()
        let id = ConnectionID(nextConnection)
        nextConnection += 1
        handlers[id] = handler
        if stopped {
            handler.context?.close(promise: nil)
            return id
        }
        perform(core.connected(id, address: address, source: source, now: now, local: handler.local), source: nil)
        flushPending()
        return id
    }

    func disconnected(_ handler: HubConnectionHandler) {
        guard handlers.removeValue(forKey: handler.id) != nil else { return }
        resume(backpressure.removed(handler.id))
        perform(core.disconnected(handler.id), source: nil)
        flushPending()
    }

    func received(_ packet: Packet, from handler: HubConnectionHandler) {
        if packet.header.type == .myCredentials, let peers = authorizedFile?.reloadIfChanged(logger: logger) {
            core.setAuthorizedPeers(peers)
        }
        perform(core.received(packet, from: handler.id, now: now), source: handler)
        if !handler.registered, core.peerID(of: handler.id) != nil {
            handler.registered(maxFrameSize: core.configuration.maxFrameSize)
        }
    }

    func authenticated(_ handler: HubConnectionHandler, key: NodeID) {
        perform(core.authenticated(handler.id, key: key), source: nil)
    }

    /// SIGHUP: reads the authorized peers again.
    func reloadAuthorizedPeers() {
        if let peers = authorizedFile?.reloadIfChanged(force: true, logger: logger) { core.setAuthorizedPeers(peers) }
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
        resume(backpressure.writabilityChanged(handler.id, writable: writable, now: .now()))
    }

    func mayRead(_ id: ConnectionID) -> Bool { backpressure.mayRead(id) }

    private func resume(_ ids: [ConnectionID]) {
        for id in ids { handlers[id]?.resume() }
    }

    func tick() {
        perform(core.tick(now: now, busy: backpressure.held), source: nil)
        let deadline = NIODeadline.now() - TimeAmount(core.configuration.writeTimeout)
        for (destination, waiting) in backpressure.stalled(since: deadline) {
            guard let handler = handlers[destination], !handler.closing else { continue }
            perform(core.stalled(destination, waiting: waiting), source: nil)
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
                    handler.write(packet, promise: promise)
                    lastWrite[id] = promise.futureResult
                } else {
                    handler.write(packet, promise: nil)
                }
                needsFlush.insert(id)
                let channel = context.channel
                if let queued = try? channel.syncOptions?.getOption(.bufferedWritableBytes), queued > peakQueuedBytes {
                    peakQueuedBytes = queued
                    if queued > core.configuration.maxQueuedBytes {
                        // Should not happen (issue 11's overshoot, not reproduced since): say how, for whoever sees it.
                        logger.warning(
                            "queue past its bound",
                            metadata: [
                                "connection": "\(id)", "bytes": "\(queued)", "writable": "\(channel.isWritable)",
                                "source": "\(source.map { "\($0.id)" } ?? "hub")", "type": "\(packet.header.type)",
                            ])
                    }
                }
                if let source, handlers[source.id] != nil, !source.closing,
                    backpressure.wrote(
                        relayed: Self.isRelayed(packet), from: source.id, to: id, writable: channel.isWritable)
                {
                    source.pause()
                }
            case .enrolled(let entry):
                authorizedFile?.append(entry, logger: logger)
            case .close(let id):
                guard let handler = handlers[id], let context = handler.context, !handler.closing else { continue }
                handler.closing = true
                context.flush()
                needsFlush.remove(id)
                let channel = context.channel
                let closeNow: @Sendable () -> Void = { channel.close(promise: nil) }
                if let future = lastWrite[id] {
                    future.whenComplete { _ in closeNow() }
                    // A peer that never reads must not keep the connection open forever. Cancelled once closed: the
                    // task holds the channel, and a flood of refused connections must not keep thousands alive.
                    let deadline = loop.scheduleTask(in: .seconds(5)) { closeNow() }
                    channel.closeFuture.whenComplete { _ in deadline.cancel() }
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
