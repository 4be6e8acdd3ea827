import Logging
import NIOCore
import Synchronization
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

/// Counters the connection loops update: the deepest queue towards one connection.
final class HubCounters: Sendable {
    private let peak = Atomic<Int>(0)
    let maxQueuedBytes: Int

    init(maxQueuedBytes: Int) { self.maxQueuedBytes = maxQueuedBytes }

    var peakQueuedBytes: Int { peak.load(ordering: .relaxed) }

    /// `bytes` wait in NIO's write buffer towards `connection` after a write.
    func buffered(_ bytes: Int, connection: ConnectionID, writable: Bool, logger: Logger) {
        guard bytes > peak.load(ordering: .relaxed) else { return }
        let (before, _) = peak.max(bytes, ordering: .relaxed)
        // Once, when the peak first passes the bound.
        if bytes > maxQueuedBytes, before <= maxQueuedBytes {
            // Should not happen (issue 11's overshoot, not reproduced since): say how, for whoever sees it.
            logger.warning(
                "queue past its bound",
                metadata: ["connection": "\(connection)", "bytes": "\(bytes)", "writable": "\(writable)"])
        }
    }
}

/// Carries out the ``HubCore``'s actions. The core and everything here live on the hub's own loop (``loop``); the
/// connections live on the connection loops and exchange tasks with it: batches of packets and events come in, packets
/// to write, pauses, resumptions and acknowledgements go out, each connection's in the order they were made.
final class HubRouter: @unchecked Sendable {
    /// One connection as the router sees it.
    private struct Link {
        let handler: HubConnectionHandler
        /// The router asked for it to be closed: nothing more is written.
        var closing = false
        /// What the connection last reported (a report is a hop away from the write that changed it).
        var writable = true
        var registered = false
    }

    let loop: any EventLoop
    let logger: Logger
    /// The hub's frame limit, for connections that have registered.
    let maxFrameSize: Int
    /// Bytes queued towards a connection (``HubConnectionHandler/queued``) past which relaying to it holds the source
    /// back: half of ``HubConfiguration/maxQueuedBytes``, as NIO's high-water mark.
    let queuedHighMark: Int
    /// Bytes queued below which sources held back on ``queuedHighMark`` read again: a quarter, as NIO's low mark.
    let queuedLowMark: Int
    let counters: HubCounters
    private var core: HubCore
    private var links: [ConnectionID: Link] = [:]
    private var backpressure = HubBackpressure()
    private let nextConnection = Atomic<UInt64>(1)
    /// Packets to hand to each connection when the current event is carried out, and the connections to close then.
    private var outgoing: [ConnectionID: (packets: [Packet], bytes: Int)] = [:]
    private var closingAfter: [ConnectionID] = []
    private var packetsWritten = 0
    private var stopped = false
    /// Where the authorized peers come from, when the hub has a list.
    var authorizedFile: AuthorizedPeersFile?

    /// ``HubConfiguration/rewriteOutbound``.
    let rewriteOutbound: (@Sendable ([Packet]) -> [Packet])?

    init(core: HubCore, loop: any EventLoop, logger: Logger) {
        self.core = core
        self.loop = loop
        self.logger = logger
        rewriteOutbound = core.configuration.rewriteOutbound
        maxFrameSize = core.configuration.maxFrameSize
        queuedHighMark = core.configuration.maxQueuedBytes / 2
        queuedLowMark = core.configuration.maxQueuedBytes / 4
        counters = HubCounters(maxQueuedBytes: core.configuration.maxQueuedBytes)
    }

    private var now: WireTime { WireClock.now() }

    /// A new connection's id (any thread).
    func makeConnectionID() -> ConnectionID {
        ConnectionID(nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    // MARK: events from the connections (each run on the router's loop)

    func connected(_ handler: HubConnectionHandler, address: String, source: String?) {
        loop.preconditionInEventLoop()
        links[handler.id] = Link(handler: handler)
        if stopped {
            close(handler.id)
        } else {
            perform(
                core.connected(
                    handler.id, address: address, source: source, now: now, local: handler.local,
                    classic: handler.classic))
        }
        flushPending()
    }

    func disconnected(_ handler: HubConnectionHandler) {
        guard links.removeValue(forKey: handler.id) != nil else { return }
        outgoing[handler.id] = nil
        resume(backpressure.removed(handler.id))
        perform(core.disconnected(handler.id))
        flushPending()
    }

    /// A batch of packets from one connection, in the order they arrived. The connection reads again once it is
    /// acknowledged, told its new frame limit if it registered.
    func received(_ packets: [Packet], from handler: HubConnectionHandler) {
        let id = handler.id
        for packet in packets {
            guard links[id].map({ !$0.closing }) ?? false else { break }
            if packet.header.type == .myCredentials, let peers = authorizedFile?.reloadIfChanged(logger: logger) {
                core.setAuthorizedPeers(peers)
            }
            perform(core.received(packet, from: id, now: now), source: id)
        }
        var registeredWith: Int?
        if let link = links[id], !link.registered, core.peerID(of: id) != nil {
            links[id]?.registered = true
            registeredWith = maxFrameSize
        }
        flushPending()
        let limit = registeredWith
        handler.loop.execute { handler.acknowledged(registeredWith: limit) }
    }

    /// The connection sent all it will send: it is closed once what it is owed is written.
    func ended(_ handler: HubConnectionHandler) {
        close(handler.id)
        flushPending()
    }

    func authenticated(_ handler: HubConnectionHandler, key: NodeID, spki: [UInt8]?) {
        perform(core.authenticated(handler.id, key: key, spki: spki))
        flushPending()
    }

    /// SIGHUP: reads the authorized peers again.
    func reloadAuthorizedPeers() {
        if let peers = authorizedFile?.reloadIfChanged(force: true, logger: logger) { core.setAuthorizedPeers(peers) }
    }

    /// The connection's stream went out of step: the core answers, and the connection is closed in any case.
    func failed(_ handler: HubConnectionHandler, error: any Error) {
        if let wireError = error as? WireError {
            perform(core.protocolViolation(handler.id, error: wireError))
        } else {
            logger.debug("connection error: \(error)", metadata: ["connection": "\(handler.id)"])
        }
        if links[handler.id].map({ !$0.closing }) ?? false { close(handler.id) }
        flushPending()
    }

    func writabilityChanged(_ handler: HubConnectionHandler, writable: Bool) {
        guard links[handler.id] != nil else { return }
        links[handler.id]?.writable = writable
        resume(backpressure.writabilityChanged(handler.id, writable: writable, now: .now()))
    }

    func mayRead(_ id: ConnectionID) -> Bool { backpressure.mayRead(id) }

    private func resume(_ ids: [ConnectionID]) {
        for id in ids {
            guard let handler = links[id]?.handler else { continue }
            handler.loop.execute { handler.resume() }
        }
    }

    func tick() {
        perform(core.tick(now: now, busy: backpressure.held))
        let deadline = NIODeadline.now() - TimeAmount(core.configuration.writeTimeout)
        for (destination, waiting) in backpressure.stalled(since: deadline) {
            guard let link = links[destination], !link.closing else { continue }
            perform(core.stalled(destination, waiting: waiting))
        }
        flushPending()
    }

    func shutdown(reason: String) {
        stopped = true
        perform(core.shutdown(reason: reason))
        flushPending()
    }

    func statistics() -> HubStatistics {
        HubStatistics(
            connections: core.connectionCount, peers: core.peerCount, watchers: core.watcherCount,
            peakQueuedBytes: counters.peakQueuedBytes, packetsWritten: packetsWritten
        )
    }

    var openConnections: Int { links.count }

    // MARK: carrying out actions

    /// Queues writes and closes as the core asked (``flushPending()`` hands them over). A relayed packet for a
    /// destination that last reported itself unwritable holds the source back.
    private func perform(_ actions: [HubAction], source: ConnectionID? = nil) {
        for action in actions {
            switch action {
            case .send(let id, let packet):
                guard let link = links[id], !link.closing else { continue }
                packetsWritten += 1
                let bytes = PacketHeader.size + packet.payload.readableBytes
                outgoing[id, default: ([], 0)].packets.append(packet)
                outgoing[id]!.bytes += bytes
                link.handler.queued.add(bytes, ordering: .sequentiallyConsistent)
                guard let source, let sourceLink = links[source], !sourceLink.closing else { continue }
                let relayed = Self.isRelayed(packet)
                var writable = link.writable
                if writable && relayed && overQueued(link.handler) {
                    // Full by the router's count before NIO's (part of it still in the loop's task queue): the same
                    // as unwritable, for holding sources back and for the write timeout alike.
                    writable = false
                    _ = backpressure.writabilityChanged(id, writable: false, now: .now())
                }
                if backpressure.wrote(relayed: relayed, from: source, to: id, writable: writable) {
                    let handler = sourceLink.handler
                    handler.loop.execute { handler.pause() }
                }
            case .enrolled(let entry):
                authorizedFile?.append(entry, logger: logger)
            case .close(let id):
                close(id)
            }
        }
    }

    /// Whether more than ``queuedHighMark`` bytes are queued towards `handler`. If so it is asked to report when they
    /// drain below ``queuedLowMark``, and checked again: the report and this check cannot both miss each other's update.
    private func overQueued(_ handler: HubConnectionHandler) -> Bool {
        guard handler.queued.load(ordering: .sequentiallyConsistent) > queuedHighMark else { return false }
        handler.drainWanted.store(true, ordering: .sequentiallyConsistent)
        return handler.queued.load(ordering: .sequentiallyConsistent) > queuedHighMark
    }

    private func close(_ id: ConnectionID) {
        guard let link = links[id], !link.closing else { return }
        links[id]?.closing = true
        closingAfter.append(id)
    }

    /// Whether a packet carries a peer's data (relayed), not a notice of the hub's own.
    static func isRelayed(_ packet: Packet) -> Bool {
        let type = packet.header.type
        return packet.header.idFrom != PacketHeader.hubID && !type.isHubOnly && type != .credentialsUpdate
    }

    /// Hands each connection what was queued for it: one task per connection, closing it after its packets when asked.
    func flushPending() {
        for id in closingAfter where outgoing[id] == nil { outgoing[id] = ([], 0) }
        guard !outgoing.isEmpty else { return }
        let closing = Set(closingAfter)
        for (id, (packets, bytes)) in outgoing {
            guard let handler = links[id]?.handler else { continue }
            let close = closing.contains(id)
            handler.loop.execute { handler.deliver(packets, close: close, bytes: bytes) }
        }
        outgoing.removeAll(keepingCapacity: true)
        closingAfter.removeAll(keepingCapacity: true)
    }
}
