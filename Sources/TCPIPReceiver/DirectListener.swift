import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TCPIPClient
import TCPIPCore
import TCPIPWire

/// Where a receiver takes direct connections from senders the hub introduced (`tcpiprecvd --direct-listen`).
///
/// A connection is admitted only with a live ticket: one the hub announced in an IntroductionNotice, presented once,
/// within its lifetime, by the peer it was issued to (over TLS: the key the hub vouched for). Until then it may send one
/// small frame, for at most ``Limits/helloDeadline``, and at most ``Limits/maxWaiting`` such connections wait at once
/// (the oldest is shed for a newcomer). An admitted connection carries the relay path's file packets, stamped with
/// the sender's id as the hub would stamp them, into the same ``FileReceiver``; its receipts go back on it.
public final class DirectListener: Sendable {
    public struct Limits: Sendable {
        /// How long a connection may take to present its ticket.
        public var helloDeadline: TimeAmount = .seconds(5)
        /// Connections waiting to present a ticket at once.
        public var maxWaiting = 32
        /// Tickets held at once (the oldest goes first).
        public var maxTickets = 256
        /// The largest frame before admission: a DirectHello is about 60 bytes.
        public var helloFrameSize = 512
        /// Bytes read from direct links and not yet handled before the links stop reading.
        public var inboxBytes = 8 << 20
        /// Tickets held at once for one sender (its oldest goes first): a peer that asks for introductions again and
        /// again cannot push out other senders' tickets.
        public var maxTicketsPerSender = 8
        /// How long a DirectHello with a ticket the hub has not announced yet waits for it (the notice and the
        /// Introduction leave the hub together, and may arrive in either order).
        public var ticketWait: TimeAmount = .seconds(2)
        /// An admitted link on which nothing arrives for this long is closed (the sender pings every second).
        public var idleTimeout: TimeAmount = .seconds(15)
        public init() {}
    }

    private struct Ticket {
        var peer: PeerRecord
        var expires: NIODeadline
    }

    struct Link {
        let serial: UInt64
        let channel: any Channel
        let peer: PeerRecord
    }

    /// What a DirectHello comes to.
    enum Redemption {
        case admitted(PeerRecord)
        case refused(String)
        /// No such ticket yet: the notice may still be on its way.
        case unknown
    }

    private struct State {
        var me: UInt32?
        var wake: (@Sendable () -> Void)?
        var tickets: [[UInt8]: Ticket] = [:]
        var links: [UInt32: Link] = [:]
        /// Packets read from admitted links, in arrival order, with the link and the sender each came from.
        var inbox = CircularBuffer<(serial: UInt64, sender: UInt32, packet: Packet)>()
        var inboxBytes = 0
        var woken = false
        /// Links that stopped reading because the inbox was full.
        var paused: [any Channel] = []
        /// Connections that have not presented a ticket, oldest first.
        var waiting: [(serial: UInt64, channel: any Channel)] = []
        var nextSerial: UInt64 = 1
        /// Connections admitted since the listener started.
        var admitted = 0
    }

    public let limits: Limits
    private let state = NIOLockedValueBox(State())
    private let security: (any LinkSecurity)?
    private let logger: Logger
    private let serverChannel: (any Channel)?
    /// The address the listener is bound to.
    public let localAddress: SocketAddress

    /// Binds `address` (port 0: any free port).
    public static func bind(
        _ address: SocketAddress, security: (any LinkSecurity)?, limits: Limits = Limits(), logger: Logger
    ) async throws -> DirectListener {
        let box = NIOLockedValueBox<DirectListener?>(nil)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let listener = box.withLockedValue({ $0 }) else { throw ChannelError.ioOnClosedChannel }
                    try listener.addHandlers(to: channel)
                }
            }
        let channel = try await bootstrap.bind(to: address).get()
        let listener = DirectListener(
            channel: channel, security: security, limits: limits, logger: logger,
            localAddress: channel.localAddress ?? address)
        box.withLockedValue { $0 = listener }
        return listener
    }

    /// A listener that is not bound: connections come through ``addHandlers(to:)`` (tests and fuzzers, on an
    /// EmbeddedChannel).
    package convenience init(unboundWith security: (any LinkSecurity)?, limits: Limits = Limits(), logger: Logger) {
        self.init(
            channel: nil, security: security, limits: limits, logger: logger,
            localAddress: SocketAddress(sockaddr_in(), host: ""))
    }

    /// Sets up a connection's pipeline: TLS if the listener has it, a gate that lets ``Limits/helloFrameSize`` bytes
    /// through until the ticket is accepted, the decoder, the encoder, and the connection's handler.
    package func addHandlers(to channel: any Channel) throws {
        if let security { try channel.pipeline.syncOperations.addHandlers(try security.makeHandlers()) }
        let gate = AdmissionGate(limit: limits.helloFrameSize)
        try channel.pipeline.syncOperations.addHandlers([
            // The encoder sits below the handler, so what the handler writes is framed.
            gate, ByteToMessageHandler(PacketDecoder()), PacketEncoder(),
            DirectServerHandler(listener: self, gate: gate),
        ])
    }

    private init(
        channel: (any Channel)?, security: (any LinkSecurity)?, limits: Limits, logger: Logger,
        localAddress: SocketAddress
    ) {
        serverChannel = channel
        self.security = security
        self.limits = limits
        self.logger = logger
        self.localAddress = localAddress
    }

    /// Stops listening and closes every link.
    public func close() async {
        reset(me: nil, wake: nil)
        try? await serverChannel?.close()
    }

    /// What the hub is told (DirectHints): for a listener on every address, its port (the hub adds the address it sees)
    /// and this machine's other addresses; for one address, that address.
    public func hints() -> DirectHints {
        guard let port = localAddress.port, let port = UInt16(exactly: port), let ip = localAddress.ipAddress else {
            return DirectHints()
        }
        guard ip == "0.0.0.0" || ip == "::" else { return DirectHints(hints: [Direct.hint(host: ip, port: port)]) }
        var hints: [String] = []
        for device in (try? System.enumerateDevices()) ?? [] {
            guard let address = device.address, let text = address.ipAddress else { continue }
            switch address {
            case .v4:
                // Loopback is no use to another machine.
                if text.hasPrefix("127.") { continue }
            case .v6:
                // A listener on 0.0.0.0 takes no IPv6; link-local addresses need a scope a hint cannot carry.
                if ip == "0.0.0.0" || text == "::1" || text.lowercased().hasPrefix("fe80") { continue }
            default:
                continue
            }
            let hint = Direct.hint(host: text, port: port)
            if !hints.contains(hint) && hints.count < Direct.maxHints - 1 { hints.append(hint) }
        }
        return DirectHints(port: port, hints: hints)
    }

    // MARK: the receiver's session

    /// A new session with the hub (id `me`): tickets and links of an earlier one are void. `wake` makes the session
    /// look at ``take()``.
    public func reset(me: UInt32?, wake: (@Sendable () -> Void)?) {
        let (links, waiting) = state.withLockedValue { state in
            state.me = me
            state.wake = wake
            state.tickets = [:]
            state.inbox.removeAll()
            state.inboxBytes = 0
            state.woken = false
            state.paused = []
            defer {
                state.links = [:]
                state.waiting = []
            }
            return (Array(state.links.values), state.waiting)
        }
        for link in links { link.channel.close(promise: nil) }
        for (_, channel) in waiting { channel.close(promise: nil) }
    }

    /// The hub introduced a sender: its ticket admits it once, until it expires.
    public func expect(_ notice: IntroductionNotice) {
        let lifetime = min(notice.lifetimeMilliseconds, Direct.ticketLifetimeMilliseconds)
        state.withLockedValue { state in
            let own = state.tickets.filter { $0.value.peer.id == notice.peer.id }
            if own.count >= limits.maxTicketsPerSender,
                let oldest = own.min(by: { $0.value.expires < $1.value.expires })?.key
            {
                state.tickets[oldest] = nil
            }
            if state.tickets.count >= limits.maxTickets,
                let oldest = state.tickets.min(by: { $0.value.expires < $1.value.expires })?.key
            {
                state.tickets[oldest] = nil
            }
            state.tickets[notice.ticket] = Ticket(
                peer: notice.peer, expires: .now() + .milliseconds(Int64(lifetime)))
        }
    }

    /// Packets read from direct links since the last call, oldest first, each stamped with its sender's id. Links
    /// paused for a full inbox read again.
    public func take() -> [Packet] {
        let (packets, paused) = state.withLockedValue { state in
            state.woken = false
            defer {
                state.inbox.removeAll(keepingCapacity: true)
                state.inboxBytes = 0
                state.paused = []
            }
            return (state.inbox.map(\.packet), state.paused)
        }
        for channel in paused { channel.setOption(.autoRead, value: true).whenComplete { _ in } }
        return packets
    }

    /// The sender `id` now uses the hub (a relayed file packet came from it): in one step its direct link, if still
    /// open, is closed and what it sent that the session has not taken is handed back, oldest first. Nil when there
    /// was neither: nothing to do. Otherwise the caller handles those packets, then ends that sender's transfers as
    /// when a sender leaves, and only then the relayed packet.
    public func supersede(_ id: UInt32) -> [Packet]? {
        let (link, stale) = state.withLockedValue { state -> (Link?, [Packet]?) in
            let link = state.links.removeValue(forKey: id)
            guard link != nil || state.inbox.contains(where: { $0.sender == id }) else { return (nil, nil) }
            var kept = CircularBuffer<(serial: UInt64, sender: UInt32, packet: Packet)>()
            var stale: [Packet] = []
            for entry in state.inbox {
                if entry.sender == id { stale.append(entry.packet) } else { kept.append(entry) }
            }
            state.inbox = kept
            state.inboxBytes = kept.reduce(0) { $0 + $1.packet.wireSize }
            return (link, stale)
        }
        link?.channel.close(promise: nil)
        return stale
    }

    /// Connections admitted since the listener started.
    package var admittedCount: Int { state.withLockedValue { $0.admitted } }

    /// The open direct link from sender `id`, to answer it on.
    func link(from id: UInt32) -> Link? { state.withLockedValue { $0.links[id] } }

    /// The peer a direct link is from, as introduced.
    public func peer(id: UInt32) -> PeerRecord? { state.withLockedValue { $0.links[id]?.peer } }

    /// Sends packets, each on the direct link to its idTo if one is open; returns those that must go through the hub.
    /// Never waits: a link that does not take what it is sent (its sender stopped reading) is closed, and the answers
    /// go through the hub, so no sender can hold up the session.
    public func send(_ packets: [Packet]) -> [Packet] {
        var viaHub: [Packet] = []
        var direct: [UInt32: (Link, [Packet])] = [:]
        for packet in packets {
            if let link = link(from: packet.header.idTo) {
                direct[packet.header.idTo, default: (link, [])].1.append(packet)
            } else {
                viaHub.append(packet)
            }
        }
        for (_, (link, batch)) in direct {
            guard link.channel.isWritable else {
                logger.notice(
                    "a direct sender does not read its answers: closing its link",
                    metadata: ["sender": "\(link.peer.id) \(escapedForLog(link.peer.name))"])
                _ = supersede(link.peer.id)
                viaHub += batch
                continue
            }
            let channel = link.channel
            channel.eventLoop.execute {
                guard let encoder = try? channel.pipeline.syncOperations.context(handlerType: PacketEncoder.self) else {
                    return
                }
                PacketEncoder.write(batch, to: encoder, promise: nil)
            }
        }
        return viaHub
    }

    // MARK: connections

    fileprivate func arrived(_ channel: any Channel) -> UInt64 {
        let (serial, shed) = state.withLockedValue { state -> (UInt64, (any Channel)?) in
            let serial = state.nextSerial
            state.nextSerial += 1
            var shed: (any Channel)?
            if state.waiting.count >= limits.maxWaiting { shed = state.waiting.removeFirst().channel }
            state.waiting.append((serial, channel))
            return (serial, shed)
        }
        if let shed {
            logger.notice("too many direct connections without a ticket: shedding the oldest")
            shed.close(promise: nil)
        }
        return serial
    }

    fileprivate func left(_ serial: UInt64, sender: UInt32?) {
        let ended = state.withLockedValue { state -> Bool in
            state.waiting.removeAll { $0.serial == serial }
            guard let sender, state.links[sender]?.serial == serial else { return false }
            state.links[sender] = nil
            // The session learns of it as if the sender had left: its transfers end, a resumable one keeps its part.
            let notice = Packet(
                header: PacketHeader(type: .clientDisconnecting, maskTo: .client, idTo: state.me ?? 0, idFrom: sender))
            state.inbox.append((serial, sender, notice))
            return true
        }
        if ended { wakeSession() }
    }

    /// Checks a DirectHello (`proven`: the key the connection proved over TLS). The ticket is spent whatever the
    /// outcome: it admits at most one connection, and a wrong try burns it.
    fileprivate func redeem(_ hello: DirectHello, proven: NodeID?, serial: UInt64, channel: any Channel)
        -> Redemption
    {
        let (outcome, old) = state.withLockedValue { state -> (Redemption, Link?) in
            guard let me = state.me else { return (.refused("this receiver is not registered with a hub"), nil) }
            guard let ticket = state.tickets.removeValue(forKey: hello.ticket) else { return (.unknown, nil) }
            guard ticket.expires > .now() else { return (.refused("the ticket expired"), nil) }
            guard hello.to == me else { return (.refused("the ticket is for another receiver"), nil) }
            guard hello.from == ticket.peer.id else { return (.refused("the ticket was issued to another peer"), nil) }
            if let key = ticket.peer.keyID {
                guard proven == key else {
                    let shown = proven.map { "\($0)" } ?? "none"
                    return (.refused("the ticket was issued to key \(key), not \(shown)"), nil)
                }
            } else if security != nil {
                return (.refused("the ticket's peer has no key, and this listener takes only keys"), nil)
            }
            state.waiting.removeAll { $0.serial == serial }
            let old = state.links.removeValue(forKey: hello.from)
            state.admitted += 1
            state.links[hello.from] = Link(serial: serial, channel: channel, peer: ticket.peer)
            return (.admitted(ticket.peer), old)
        }
        // Closed outside the lock: its handler's channelInactive may run right here and take the lock.
        old?.channel.close(promise: nil)
        return outcome
    }

    /// A packet from an admitted link, for the session. Returns false when the inbox is over its bound: the link
    /// then stops reading until ``take()``.
    fileprivate func deliver(_ packet: Packet, sender: UInt32, serial: UInt64, channel: any Channel) -> Bool {
        let (wake, full) = state.withLockedValue { state -> (Bool, Bool) in
            // A link superseded or closed meanwhile: what it still reads is nobody's.
            guard state.links[sender]?.serial == serial else { return (false, false) }
            state.inbox.append((serial, sender, packet))
            state.inboxBytes += packet.wireSize
            let full = state.inboxBytes >= limits.inboxBytes
            if full { state.paused.append(channel) }
            let wake = !state.woken
            state.woken = true
            return (wake, full)
        }
        if wake { wakeSession() }
        return !full
    }

    private func wakeSession() {
        state.withLockedValue { $0.wake }?()
    }

    fileprivate var log: Logger { logger }
}

/// One direct connection on the receiver's side: the ticket first, then file packets for the session.
private final class DirectServerHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = Packet
    typealias OutboundIn = Packet
    typealias OutboundOut = Packet

    private let listener: DirectListener
    private let gate: AdmissionGate
    private var serial: UInt64 = 0
    private var proven: NodeID?
    private var sender: PeerRecord?
    /// The receiver's id at the hub, as the admitted hello named it (0 before).
    private var me: UInt32 = 0
    private var deadline: Scheduled<Void>?
    /// Set after the last packet of the connection was read: anything else is ignored.
    private var done = false
    /// Looks left for a DirectHello whose ticket has not been announced yet (one every 20 ms for
    /// ``DirectListener/Limits/ticketWait``), nil when none waits.
    private var pending: Int?
    private var lastRead = NIODeadline.now()
    private var idleCheck: RepeatedTask?

    init(listener: DirectListener, gate: AdmissionGate) {
        self.listener = listener
        self.gate = gate
    }

    func channelActive(context: ChannelHandlerContext) {
        serial = listener.arrived(context.channel)
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: listener.limits.helloDeadline) {
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        idleCheck?.cancel()
        listener.left(serial, sender: sender?.id)
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let authenticated = event as? PeerAuthenticated { proven = authenticated.id }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        lastRead = .now()
        var packet = unwrapInboundIn(data)
        guard let sender else {
            guard pending == nil else {
                return refuse("nothing may follow DirectHello before DirectWelcome", context: context)
            }
            return hello(packet, context: context)
        }
        switch packet.header.type {
        case .ping:
            // Answered here, whatever the session is doing: the sender's watchdog hears that the link is alive. Not
            // while the sender does not read: a flood of pings must not pile answers up here.
            guard let ping = try? PingPayload(tlv: packet.payload) else { return refuse("bad Ping", context: context) }
            guard context.channel.isWritable else { return }
            let answer = ping.answered(at: WireClock.now()).packet(
                PacketHeader(
                    type: .pingResponse, dataType: packet.header.dataType, maskTo: .client, idTo: sender.id,
                    idFrom: me))
            context.writeAndFlush(wrapOutboundOut(answer), promise: nil)
        case .pingResponse, .recipients:
            return
        case .close:
            done = true
            context.close(promise: nil)
        case .fileStart, .fileChunk, .fileEnd, .fileSeek:
            packet.header.idFrom = sender.id
            packet.header.idTo = me
            if !listener.deliver(packet, sender: sender.id, serial: serial, channel: context.channel) {
                context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
            }
        default:
            refuse("a direct link carries files only, not \(packet.header.type)", context: context)
        }
    }

    private func hello(_ packet: Packet, context: ChannelHandlerContext) {
        guard packet.header.type == .directHello else {
            return refuse(
                "a direct connection must start with DirectHello, not \(packet.header.type)", context: context,
                code: .notRegistered)
        }
        let hello: DirectHello
        do {
            hello = try DirectHello(tlv: packet.payload)
        } catch {
            return refuse("bad DirectHello: \(error)", context: context)
        }
        redeem(hello, context: context)
    }

    private func redeem(_ hello: DirectHello, context: ChannelHandlerContext) {
        switch listener.redeem(hello, proven: proven, serial: serial, channel: context.channel) {
        case .unknown:
            let left = pending ?? Int(listener.limits.ticketWait.nanoseconds / 20_000_000)
            guard left > 0 else {
                pending = nil
                return refuse(
                    "no such ticket: it was never issued, was used already, or expired", context: context,
                    code: .authenticationFailed)
            }
            pending = left - 1
            let channel = context.channel
            context.eventLoop.scheduleTask(in: .milliseconds(20)) { [self] in
                guard channel.isActive, !done,
                    let context = try? channel.pipeline.syncOperations.context(
                        handlerType: DirectServerHandler.self)
                else { return }
                redeem(hello, context: context)
            }
        case .refused(let reason):
            pending = nil
            listener.log.notice(
                "refused a direct connection",
                metadata: ["from": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(reason)"])
            refuse(reason, context: context, code: .authenticationFailed)
        case .admitted(let peer):
            pending = nil
            deadline?.cancel()
            sender = peer
            me = hello.to
            let channel = context.channel
            let idle = listener.limits.idleTimeout
            idleCheck = context.eventLoop.scheduleRepeatedTask(initialDelay: idle, delay: .seconds(1)) { [self] _ in
                if NIODeadline.now() - lastRead > idle { channel.close(promise: nil) }
            }
            listener.log.debug(
                "direct link admitted", metadata: ["sender": "\(peer.id) \(escapedForLog(peer.name))"])
            // Admitted: from now on frames may be as large as the hub's.
            gate.open()
            let welcome = DirectWelcome(id: hello.to).packet(
                PacketHeader(type: .directWelcome, maskTo: .client, idTo: peer.id, idFrom: hello.to))
            context.writeAndFlush(wrapOutboundOut(welcome), promise: nil)
        }
    }

    private func refuse(_ reason: String, context: ChannelHandlerContext, code: ErrorCode = .malformed) {
        done = true
        let error = ErrorPayload(code: code, message: reason).packet(
            PacketHeader(type: .error, maskTo: .client, idTo: sender?.id ?? 0, idFrom: me))
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(error)).whenComplete { _ in channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done, let error = error as? WireError {
            return refuse("\(error)", context: context, code: error.isFrameTooLarge ? .frameTooLarge : .malformed)
        }
        context.close(promise: nil)
    }
}

/// In front of the decoder: until the connection is admitted, at most `limit` bytes pass (a DirectHello is about 60;
/// a sender sends nothing more before DirectWelcome), so a stranger can make the receiver hold no more than that.
final class AdmissionGate: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let limit: Int
    private var passed = 0
    private var isOpen = false

    init(limit: Int) { self.limit = limit }

    func open() { isOpen = true }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !isOpen {
            passed += unwrapInboundIn(data).readableBytes
            guard passed <= limit else {
                context.close(promise: nil)
                return
            }
        }
        context.fireChannelRead(data)
    }
}
