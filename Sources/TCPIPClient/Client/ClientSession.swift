import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// A registered connection to the hub, used from one task.
///
/// ``next()`` answers pings by itself, so any client that reads stays alive and measurable (`tcpipctl ping --to`).
public final class ClientSession {
    /// What the hub said when it accepted this client: its id, final name and the hub's clock.
    public private(set) var registered: Registered
    /// The peers connected when this client registered (empty unless the roster was asked for).
    public private(set) var roster: [PeerRecord] = []
    /// The hub's greeting.
    public private(set) var greeting: CredentialsRequest
    public let configuration: ClientConfiguration

    private let channel: any Channel
    /// Sends packets with a bounded number of bytes in flight.
    public let sender: PacketSender
    private var inbound: NIOAsyncChannelInboundStream<[Packet]>.AsyncIterator
    /// Packets of the last batch from the connection not handed out yet.
    private var received = CircularBuffer<Packet>()
    private let logger: Logger
    private let expired = NIOLockedValueBox<String?>(nil)
    private var deadlineTask: Scheduled<Void>?
    private var nextRequestID: UInt32 = 1
    /// Packets that arrived while a request waited for its answer; ``next()`` returns them first.
    private var pending = CircularBuffer<Packet>()
    /// Peers looked up by id; ids are never reused while the hub runs, so an entry stays right until the peer leaves.
    private var peerCache: [UInt32: PeerRecord] = [:]
    /// Lookups sent with the credentials, by the name or id asked for: their request ids.
    private var pipelinedLookups: [String: UInt32] = [:]
    /// Lookups sent and not answered yet, by request id.
    private var outstandingQueries: Set<UInt32> = []
    /// Answers to outstanding lookups, by request id, until the one who asked takes them. ``receive()`` files every
    /// answer here, whoever is reading: a lookup sent with the credentials may be answered while the caller waits for
    /// something else (a peer to join).
    private var answers: [UInt32: PeerQueryResult] = [:]
    /// Introductions asked for and not answered yet, and the answers that came.
    private var outstandingIntroductions: Set<UInt32> = []
    private var introductions: [UInt32: Introduction] = [:]
    /// Whether this client takes messages. When false, ``next()`` refuses each incoming message with a receipt, so
    /// its sender learns at once instead of waiting for a timeout.
    public var acceptsMessages = false
    /// Whether this client takes files. When false, ``next()`` refuses each FileStart with a receipt.
    public var acceptsFiles = false
    /// The role of a peer that takes files (``PeerRole/receiver``).
    public static let receiverRole = PeerRole.receiver
    /// The role of the hub's store (``PeerRole/store``).
    public static let storeRole = PeerRole.store

    /// This client as the hub knows it.
    public var me: PeerRecord { registered.peer }

    private init(
        channel: any Channel, inbound: NIOAsyncChannelInboundStream<[Packet]>,
        configuration: ClientConfiguration, lookingUp names: [String], logger: Logger
    ) async throws {
        self.channel = channel
        self.inbound = inbound.makeAsyncIterator()
        sender = PacketSender(channel: channel)
        self.configuration = configuration
        self.logger = logger
        registered = Registered(peer: PeerRecord(id: 0, name: ""), hubTime: 0, heartbeatMilliseconds: 0, rosterCount: 0)
        greeting = CredentialsRequest(hubVersion: "", tokenRequired: false)
        setDeadline(after: configuration.timeout, doing: "registering with the hub at \(configuration.server)")

        // MyCredentials goes out at once, not after the greeting: a hub takes it whenever it arrives, and the client
        // waits on the network once (for Registered) instead of twice. The lookups the caller will need follow it: a
        // hub handles a connection's packets in order, so it answers them right after Registered, in the same wait.
        var packets = [configuration.credentials.packet(PacketHeader(type: .myCredentials, maskTo: .hub))]
        for name in Set(names) {
            let query = takeRequestID(for: Self.query(for: name))
            pipelinedLookups[name] = query.requestID
            packets.append(query.packet(PacketHeader(type: .peerQuery, maskTo: .hub)))
        }
        try await sender.send(contentsOf: packets)
        let first: Packet
        do {
            first = try await nextPacket()
        } catch let error as TCPIPError where configuration.security == nil && error.kind == .temporary {
            // A TLS hub waits for a ClientHello that a plaintext client never sends, and closes at its registration
            // deadline.
            guard expired.withLockedValue({ $0 }) == nil else { throw error }
            throw TCPIPError(
                .unavailable,
                "\(error.message) before greeting; a hub that uses TLS does that to a plaintext client: "
                    + "pass --hub-id ID (see 'tcpipd id') or --trust-new-hub")
        }
        if first.header.type == .error { throw Self.error(from: try ErrorPayload(tlv: first.payload)) }
        guard first.header.type == .requestCredentials else {
            throw TCPIPError.internalError("the hub greeted with \(first.header.type), not RequestCredentials")
        }
        greeting = try CredentialsRequest(tlv: first.payload)
        let answer = try await nextPacket()
        switch answer.header.type {
        case .registered:
            registered = try Registered(tlv: answer.payload)
        case .error:
            throw Self.error(from: try ErrorPayload(tlv: answer.payload))
        default:
            throw TCPIPError.internalError("the hub answered MyCredentials with \(answer.header.type)")
        }
        while roster.count < registered.rosterCount {
            let packet = try await next()
            guard packet.header.type == .clientData else { continue }
            roster.append(try PeerRecord(tlv: packet.payload))
        }
        clearDeadline()
        logger.debug("registered", metadata: ["id": "\(me.id)", "name": "\(escapedForLog(me.name))"])
    }

    /// A session on a direct link to a receiver, admitted with a ticket: no registration, this client keeps the identity
    /// it has at the hub (`me`). The link's handler stamps what arrives with the receiver's id, as the hub would.
    init(
        direct channel: any Channel, inbound: NIOAsyncChannelInboundStream<[Packet]>,
        configuration: ClientConfiguration,
        me: Registered, logger: Logger
    ) {
        self.channel = channel
        self.inbound = inbound.makeAsyncIterator()
        sender = PacketSender(channel: channel)
        self.configuration = configuration
        self.logger = logger
        registered = me
        greeting = CredentialsRequest(hubVersion: "", tokenRequired: false)
    }

    /// Connects, registers, runs `body`, says Close and disconnects.
    ///
    /// `names`: peers `body` will look up (``lookUp(_:)``); the queries go out with the credentials, so their answers
    /// come with the registration instead of a round trip later.
    ///
    /// `acknowledged`: everything `body` sent that matters was answered (every receipt is in), so the hub has read it
    /// and a reset cannot lose it; the session then closes at once instead of waiting for the hub's end of the
    /// connection (a one-shot exits as soon as its receipt is in).
    public static func run<Result: Sendable>(
        _ configuration: ClientConfiguration, logger: Logger, lookingUp names: [String] = [],
        acknowledged: Bool = false, _ body: (ClientSession) async throws -> Result
    ) async throws -> Result {
        let server = configuration.server
        let maxFrameSize = configuration.maxFrameSize
        let timeout = TimeAmount(configuration.timeout)
        let security = configuration.security
        let connection: NIOAsyncChannel<[Packet], Packet>
        do {
            let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(min(timeout, .seconds(10)))
            let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<[Packet], Packet>> = {
                channel in
                channel.eventLoop.makeCompletedFuture {
                    if let security { try channel.pipeline.syncOperations.addHandlers(try security.makeHandlers()) }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(PacketDecoder(maxFrameSize: maxFrameSize)), PacketBatcher(),
                        PacketEncoder(),
                    ])
                    return try NIOAsyncChannel<[Packet], Packet>(wrappingChannelSynchronously: channel)
                }
            }
            if let socket = configuration.connectedSocket {
                connection = try await bootstrap.withConnectedSocket(socket, channelInitializer: initializer)
            } else if let address = try? SocketAddress(ipAddress: server.host, port: server.port) {
                // An address needs no resolver thread and no Happy Eyeballs race: a one-shot send starts sooner.
                connection = try await bootstrap.connect(to: address, channelInitializer: initializer)
            } else {
                connection = try await bootstrap.connect(
                    host: server.host, port: server.port, channelInitializer: initializer)
            }
        } catch {
            throw TCPIPError.unavailable("cannot reach the hub at \(server): \(describeNetworkError(error))")
        }
        return try await connection.executeThenClose { inbound, _ in
            let session = try await ClientSession(
                channel: connection.channel, inbound: inbound, configuration: configuration, lookingUp: names,
                logger: logger
            )
            let result = try await body(session)
            session.clearDeadline()
            // Everything written must reach the kernel before the connection closes, or it would be lost.
            try? await session.sender.send(Packet(header: PacketHeader(type: .close, maskTo: .hub)))
            try? await session.sender.drain()
            if !acknowledged { await session.awaitHubClosing(within: .seconds(2)) }
            return result
        }
    }

    /// After Close: stops sending and reads (discarding) until the hub closes the connection, for at most `bound`.
    /// Closing at once with unread bytes in the receive buffer (a heartbeat Ping that just arrived) makes the kernel
    /// reset the connection, and a reset can make the hub lose what this client sent and the hub had not read yet —
    /// its last receipts, when the hub was holding its reads back for a slow destination.
    func awaitHubClosing(within bound: TimeAmount) async {
        try? await channel.close(mode: .output)
        let channel = self.channel
        let timer = channel.eventLoop.scheduleTask(in: bound) { channel.close(promise: nil) }
        defer { timer.cancel() }
        while (try? await inbound.next()) != nil {}
    }

    // MARK: sending and receiving

    /// Sends a packet; waits while the connection is over its write mark.
    public func send(_ packet: Packet) async throws {
        try await sender.send(packet)
    }

    /// Whether ``next()`` has packets at hand, so it would return without waiting for the connection. A reader that
    /// answers packets can hold its answers while this is true and send them together.
    public var hasBufferedPackets: Bool { !pending.isEmpty || !received.isEmpty }

    /// What ``next()`` returns after ``PacketSender/wake()``: nothing arrived, something changed locally. Callers
    /// ignore it like any type they do not handle and look at their state again. Type 0 is no packet type, and one
    /// that comes from the wire is dropped, so a peer cannot fake it.
    public static let wakePacket = Packet(header: PacketHeader(type: .localWake, maskTo: .client))

    /// The next packet that is not a ping. Pings are answered here; HostExiting ends the session with exit 75.
    public func next() async throws -> Packet {
        if let packet = pending.popFirst() { return packet }
        return try await receive()
    }

    /// The next packet from the connection, past the ones set aside in `pending`.
    private func receive() async throws -> Packet {
        while true {
            let packet = try await nextPacket()
            switch packet.header.type {
            case .message where !acceptsMessages:
                // A malformed packet from a peer is dropped: it must never end this session.
                guard let part = try? MessagePart(packet) else { continue }
                if part.flags.contains(.start) && !part.flags.contains(.noReceipt) {
                    let receipt = MessageReceipt(
                        messageID: part.messageID, bytes: 0, status: .refused,
                        reason: "\(me.name) does not take messages (it is a \(me.role))"
                    )
                    try await send(receipt.packet(to: packet.header.idFrom))
                }
            case .fileStart where !acceptsFiles:
                // A malformed announcement costs its sender nothing more than silence, never this session.
                guard let start = try? FileStart(tlv: packet.payload) else { continue }
                let receipt = FileReceipt(
                    transferID: start.transferID, status: .refused,
                    reason: "\(me.name) does not take files (it is a \(me.role))")
                try await send(receipt.packet(to: packet.header.idFrom))
            case .ping:
                guard let ping = try? PingPayload(tlv: packet.payload) else { continue }
                let from = packet.header.idFrom
                let header = PacketHeader(
                    type: .pingResponse, dataType: packet.header.dataType,
                    maskTo: from == PacketHeader.hubID ? .hub : .client,
                    idTo: from
                )
                try await send(ping.answered(at: WireClock.now()).packet(header))
            case .clientDisconnecting:
                peerCache[packet.header.idFrom] = nil
                return packet
            case .peerQueryResult where packet.header.idFrom == PacketHeader.hubID:
                let result = try PeerQueryResult(tlv: packet.payload)
                // Only answers to questions asked are kept: a hub cannot fill memory with unasked ones.
                if outstandingQueries.remove(result.requestID) != nil { answers[result.requestID] = result }
                return Self.wakePacket
            case .introduction where packet.header.idFrom == PacketHeader.hubID:
                guard let introduction = try? Introduction(tlv: packet.payload),
                    outstandingIntroductions.remove(introduction.requestID) != nil
                else { continue }
                introductions[introduction.requestID] = introduction
                return Self.wakePacket
            case .hostExiting where packet.header.idFrom == PacketHeader.hubID:
                let reason = (try? Reason(tlv: packet.payload))?.text ?? ""
                throw TCPIPError.temporary(
                    "the hub is shutting down" + (reason.isEmpty ? "" : " (\(escapedForLog(reason)))"))
            default:
                return packet
            }
        }
    }

    private func nextPacket() async throws -> Packet {
        while true {
            if let packet = received.popFirst() { return packet }
            let batch: [Packet]?
            do {
                batch = try await inbound.next()
            } catch {
                if let explained = configuration.security?.explain(error, address: configuration.server) {
                    throw explained
                }
                if let wireError = error as? WireError {
                    if configuration.security == nil && wireError.looksLikeTLSRecord {
                        throw TCPIPError(
                            .unavailable,
                            "the hub at \(configuration.server) answered with TLS, and this client has no hub ID "
                                + "to check it against: pass --hub-id ID (see 'tcpipd id') or --trust-new-hub")
                    }
                    throw TCPIPError(.dataError, "the hub sent a bad frame: \(wireError)")
                }
                throw lostConnection(error)
            }
            guard let batch else { throw lostConnection(nil) }
            // An empty batch never comes from the wire: it is ``PacketSender/wake()``.
            if batch.isEmpty { return Self.wakePacket }
            received.append(contentsOf: batch.lazy.filter { $0.header.type != .localWake })
        }
    }

    private func lostConnection(_ error: (any Error)?) -> TCPIPError {
        if let what = expired.withLockedValue({ $0 }) {
            return TCPIPError.temporary("timed out after \(Self.format(configuration.timeout)) \(what)")
        }
        if let error { return TCPIPError.temporary("lost the connection to the hub: \(describeNetworkError(error))") }
        return TCPIPError.temporary("the hub closed the connection")
    }

    // MARK: deadlines

    /// After `duration`, closes the connection so that waiting ends with a timeout error (exit 75) naming `what`.
    public func setDeadline(after duration: Duration, doing what: String) {
        clearDeadline()
        let expired = self.expired
        let channel = self.channel
        deadlineTask = channel.eventLoop.scheduleTask(in: TimeAmount(duration)) {
            expired.withLockedValue { $0 = what }
            channel.close(promise: nil)
        }
    }

    public func clearDeadline() {
        deadlineTask?.cancel()
        deadlineTask = nil
    }

    // MARK: requests

    /// Finds a connected peer by name or numeric id, asking the hub (no roster download). Exit 68 when none matches.
    public func resolve(_ peer: String) async throws -> PeerRecord {
        if let found = try await lookUp(peer) { return found }
        throw TCPIPError.unknownPeer("no connected peer is named '\(escapedForLog(peer))'")
    }

    /// Finds a connected peer by name or numeric id, or nil.
    public func lookUp(_ peer: String) async throws -> PeerRecord? {
        // Asked already, with the credentials: the answer is here or on its way.
        if let requestID = pipelinedLookups.removeValue(forKey: peer) { return try await answer(to: requestID) }
        return try await lookUp(Self.query(for: peer))
    }

    /// The query for a peer name, or for an id when the text is a number.
    private static func query(for peer: String) -> PeerQuery {
        if let id = UInt32(peer) { return PeerQuery(requestID: 0, id: id) }
        return PeerQuery(requestID: 0, name: peer)
    }

    private func takeRequestID(for query: PeerQuery) -> PeerQuery {
        var query = query
        query.requestID = nextRequestID
        nextRequestID &+= 1
        outstandingQueries.insert(query.requestID)
        return query
    }

    /// The peer with this id, asked of the hub the first time and remembered after; nil when it is not connected.
    public func peer(id: UInt32) async throws -> PeerRecord? {
        if let known = peerCache[id] { return known }
        let found = try await lookUp(id: id)
        if let found { peerCache[id] = found }
        return found
    }

    /// The hub's store (`tcpipd --store`), or nil when the hub keeps none.
    public func lookUpStore() async throws -> PeerRecord? {
        guard let store = try await lookUp(PeerQuery(requestID: 0, store: true)), store.role == Self.storeRole else {
            return nil
        }
        return store
    }

    /// Finds a connected peer by id, or nil.
    public func lookUp(id: UInt32) async throws -> PeerRecord? {
        try await lookUp(PeerQuery(requestID: 0, id: id))
    }

    private func lookUp(_ query: PeerQuery) async throws -> PeerRecord? {
        let query = takeRequestID(for: query)
        try await send(query.packet(PacketHeader(type: .peerQuery, maskTo: .hub)))
        return try await answer(to: query.requestID)
    }

    /// Waits for the answer to the lookup `requestID`, setting aside what else arrives.
    private func answer(to requestID: UInt32) async throws -> PeerRecord? {
        switch try await reply(to: .peerQuery, { answers.removeValue(forKey: requestID) }) {
        case .answer(let result): return result.peer
        case .refused(let error): throw Self.error(from: error)
        }
    }

    /// What a request to the hub came to: its answer, or the Error the hub sent about it.
    private enum Reply<Answer> {
        case answer(Answer)
        case refused(ErrorPayload)
    }

    /// Waits until `take` finds the answer to a request of type `type` (``receive()`` files answers as they come), or
    /// the hub refuses such a request; sets aside what else arrives for ``next()``.
    private func reply<Answer>(to type: PacketType, _ take: () -> Answer?) async throws -> Reply<Answer> {
        while true {
            if let answer = take() { return .answer(answer) }
            let packet = try await receive()
            switch packet.header.type {
            case .localWake:
                continue
            case .error:
                let error = try ErrorPayload(tlv: packet.payload)
                guard error.packetType == type else {
                    pending.append(packet)
                    continue
                }
                return .refused(error)
            default:
                pending.append(packet)
            }
        }
    }

    /// Asks the hub to introduce this client to `peer` for a direct link: its hints and a one-time ticket, or nil
    /// when the hub or the peer takes no direct links (an older hub answers `unsupported`).
    public func introduce(to peer: UInt32) async throws -> Introduction? {
        let requestID = nextRequestID
        nextRequestID &+= 1
        outstandingIntroductions.insert(requestID)
        try await send(
            IntroductionRequest(requestID: requestID, peer: peer).packet(
                PacketHeader(type: .introductionRequest, maskTo: .hub)))
        switch try await reply(to: .introductionRequest, { introductions.removeValue(forKey: requestID) }) {
        case .answer(let introduction):
            return introduction
        case .refused(let error):
            outstandingIntroductions.remove(requestID)
            if error.code == .unknownPeer { throw Self.error(from: error) }
            return nil
        }
    }

    // MARK: errors

    /// The user-facing error for an Error packet from the hub.
    public static func error(from payload: ErrorPayload) -> TCPIPError {
        let text = "the hub refused: \(escapedForLog(payload.message)) (\(payload.code))"
        let kind: TCPIPError.Kind
        switch payload.code {
        case .authenticationFailed: kind = .permissionDenied
        case .unknownPeer: kind = .unknownPeer
        case .invalidCredentials: kind = .usage
        case .frameTooLarge: kind = .dataError
        case .nameInUse, .shuttingDown, .registrationTimeout, .heartbeatTimeout, .peerStalled, .busy:
            kind = .temporary
        default: kind = .internalError
        }
        return TCPIPError(kind, text, hubCode: payload.code)
    }

    package static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if attoseconds == 0 { return "\(seconds)s" }
        return "\(Double(seconds) + Double(attoseconds) / 1e18)s"
    }
}

/// Sends packets on a session's connection; safe to use from any task, so one task can send while another receives.
///
/// Each write is handed to the channel at once, and `send` waits while more than ``window`` bytes are written but not
/// yet taken by the kernel: a fast producer is held to the pace of the socket, and memory stays bounded however much
/// it sends.
public struct PacketSender: Sendable {
    /// Bytes that may be in flight (written, not yet in the kernel) before `send` waits.
    public static let window = 4 << 20

    private let channel: any Channel
    private let state: NIOLockedValueBox<InFlight>

    private struct InFlight {
        var writes: CircularBuffer<(future: EventLoopFuture<Void>, bytes: Int)> = []
        var bytes = 0
    }

    package init(channel: any Channel) {
        self.channel = channel
        state = NIOLockedValueBox(InFlight())
    }

    /// Sends a packet; waits while too many bytes are in flight.
    public func send(_ packet: Packet) async throws {
        try await send(contentsOf: CollectionOfOne(packet))
    }

    /// Sends several packets with one flush.
    public func send(contentsOf packets: some Collection<Packet>) async throws {
        guard !packets.isEmpty else { return }
        var bytes = 0
        for packet in packets { bytes += packet.wireSize }
        // One hop to the event loop for the whole batch, one flush, one promise for its last write.
        let channel = self.channel
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let batch = Array(packets)
        channel.eventLoop.execute {
            // Framed here, small frames copied together into one buffer, and written below the encoder: a line of
            // `send --lines` costs one header in a shared buffer instead of a trip through the pipeline.
            guard let encoder = try? channel.pipeline.syncOperations.context(handlerType: PacketEncoder.self) else {
                promise.fail(ChannelError.ioOnClosedChannel)
                return
            }
            PacketEncoder.write(batch, to: encoder, promise: promise)
        }
        state.withLockedValue {
            $0.writes.append((promise.futureResult, bytes))
            $0.bytes += bytes
        }
        try await waitUntilBelow(Self.window)
    }

    /// Wakes a task waiting in ``ClientSession/next()`` after something changed elsewhere, without a byte on the
    /// network: an empty batch goes up the pipeline, and ``ClientSession/next()`` returns
    /// ``ClientSession/wakePacket``.
    public func wake() {
        let channel = self.channel
        channel.eventLoop.execute {
            guard let context = try? channel.pipeline.syncOperations.context(handlerType: PacketBatcher.self) else {
                return
            }
            context.fireChannelRead(NIOAny([Packet]()))
            context.fireChannelReadComplete()
        }
    }

    /// ``wake()`` after `delay`, unless cancelled.
    public func wake(after delay: Duration) -> Scheduled<Void> {
        channel.eventLoop.scheduleTask(in: TimeAmount(delay)) { [self] in wake() }
    }

    /// Closes the connection now, from this side: a task waiting in ``ClientSession/next()`` ends at once, whether or
    /// not the hub answers (a daemon told to stop must not wait for a hub that hangs).
    public func close() {
        channel.close(promise: nil)
    }

    /// Waits until every packet sent so far has been handed to the kernel.
    public func drain() async throws {
        try await waitUntilBelow(1)
    }

    private func waitUntilBelow(_ limit: Int) async throws {
        while true {
            let oldest: EventLoopFuture<Void>? = state.withLockedValue { inFlight in
                guard inFlight.bytes >= limit, let first = inFlight.writes.first else { return nil }
                return first.future
            }
            guard let oldest else { return }
            do {
                try await oldest.get()
            } catch {
                throw TCPIPError.temporary("lost the connection to the hub: \(describeNetworkError(error))")
            }
            state.withLockedValue { inFlight in
                // Another task may have removed it already.
                if let first = inFlight.writes.first, first.future === oldest {
                    inFlight.writes.removeFirst()
                    inFlight.bytes -= first.bytes
                }
            }
        }
    }
}

extension PacketType {
    /// Not a packet type: the marker of a local wake-up (``ClientSession/wakePacket``).
    public static let localWake = PacketType(0)
}
