import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// Whether `send-file` may go point to point (`--direct`, `TCPIP_DIRECT`).
public enum DirectMode: String, Sendable, CaseIterable {
    /// Direct when the receiver can be reached, through the hub otherwise (the default).
    case auto
    /// Always through the hub.
    case never
    /// Direct or not at all (75 when no direct link can be made).
    case only
}

/// The sender's side of a direct link: asks the hub for an introduction, races TCP connections to the receiver's
/// hints (Happy Eyeballs, RFC 8305: one attempt every ``stagger``, the first admitted wins, the rest are closed),
/// presents the ticket and waits to be admitted, all within ``budget``.
public enum DirectDialer {
    /// Time between the starts of two connection attempts.
    public static let stagger: Duration = .milliseconds(250)
    /// Time to connect, prove keys and be admitted; past it the hub carries the files. 1.5 s, or
    /// TCPIP_DIRECT_BUDGET_MS (the tests give a loaded machine more).
    public static let budget: Duration = .milliseconds(
        getenv("TCPIP_DIRECT_BUDGET_MS").flatMap { Int64(String(cString: $0)) } ?? 1500)
    /// A direct link on which nothing arrives (pings included) and no write reaches the kernel for this long is given
    /// up: a receiver that reads slowly still takes bytes, a link a firewall cut takes none.
    public static let stallTimeout: TimeAmount = .seconds(5)
    /// How often the sender pings the receiver on a direct link.
    public static let pingInterval: TimeAmount = .seconds(1)

    /// Why no direct link was made.
    public struct Unavailable: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs `body` on a direct link to `peer`; throws ``Unavailable`` (before `body` runs) when no link can be made.
    public static func run<Result: Sendable>(
        to peer: PeerRecord, hub: ClientSession, logger: Logger, _ body: (ClientSession) async throws -> Result
    ) async throws -> Result {
        let configuration = hub.configuration
        guard let introduction = try await hub.introduce(to: peer.id) else {
            throw Unavailable(description: "the hub makes no introductions")
        }
        guard let ticket = introduction.ticket, !introduction.hints.isEmpty else {
            throw Unavailable(description: "\(escapedForLog(peer.name)) takes no direct connections")
        }
        // Over TLS the receiver must prove the key the hub vouched for, and this client proves its own.
        let expected = introduction.peer.keyID
        let directSecurity = configuration.directSecurity
        if directSecurity != nil && expected == nil {
            throw Unavailable(description: "the hub vouched for no key of \(escapedForLog(peer.name))")
        }
        if directSecurity == nil && expected != nil {
            throw Unavailable(description: "this client has no key to prove on a direct link")
        }
        let addresses = introduction.hints.compactMap { hint -> SocketAddress? in
            guard let (host, port) = Direct.split(hint) else { return nil }
            return try? SocketAddress(ipAddress: host, port: Int(port))
        }
        let maxFrameSize = configuration.maxFrameSize
        let receiverID = peer.id
        let hello = DirectHello(ticket: ticket, from: hub.me.id, to: peer.id).packet(
            PacketHeader(type: .directHello, maskTo: .client, idTo: peer.id, idFrom: hub.me.id))
        let name = escapedForLog(peer.name)
        // Each attempt connects, proves keys (TLS) and presents the ticket; the first to be admitted wins. A hint that
        // answers but fails (another service, another key) does not end the race: the next one is tried at once.
        let outcome = await race(
            addresses, budget: budget,
            connect: { address, timeout in
                let remote =
                    address.ipAddress.map { Direct.hint(host: $0, port: UInt16(clamping: address.port ?? 0)) }
                    ?? "\(address)"
                let security = try directSecurity.map { try $0.dialing(expected!, HostPort(host: remote, port: 0)) }
                let (connection, admitted) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(timeout)
                    .connect(to: address) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            if let security {
                                try channel.pipeline.syncOperations.addHandlers(try security.makeHandlers())
                            }
                            let admission = DirectHelloHandler(hello: hello, within: timeout, on: channel.eventLoop)
                            try channel.pipeline.syncOperations.addHandlers([
                                ByteToMessageHandler(PacketDecoder(maxFrameSize: maxFrameSize)),
                                DirectClientHandler(receiverID: receiverID), admission, PacketBatcher(),
                                PacketEncoder(),
                            ])
                            return (
                                try NIOAsyncChannel<[Packet], Packet>(wrappingChannelSynchronously: channel),
                                admission.admitted.futureResult
                            )
                        }
                    }
                do {
                    try await admitted.get()
                } catch {
                    await DirectDialer.discard(connection)
                    if let expected, let shown = security?.shownKey, shown != expected {
                        throw Unavailable(
                            description: "\(remote) proved key \(shown), not \(expected), the key the hub vouched for "
                                + name)
                    }
                    if let refused = error as? Unavailable { throw Unavailable(description: "\(remote) \(refused)") }
                    throw Unavailable(description: "\(remote): \(describeNetworkError(error))")
                }
                return connection
            })
        let connection: NIOAsyncChannel<[Packet], Packet>
        switch outcome {
        case .success(let won):
            connection = won
        case .failure(let lost):
            let reasons = lost.reasons
            throw Unavailable(
                description: "no hint of \(name) answered: "
                    + (reasons.isEmpty ? introduction.hints.joined(separator: ", ") : reasons.joined(separator: "; ")))
        }
        let remote =
            connection.channel.remoteAddress.flatMap { address in
                address.ipAddress.flatMap { ip in address.port.map { Direct.hint(host: ip, port: UInt16(clamping: $0)) }
                }
            } ?? "?"
        return try await connection.executeThenClose { inbound, _ in
            let session = ClientSession(
                direct: connection.channel, inbound: inbound, configuration: configuration, me: hub.registered,
                logger: logger)
            logger.debug("direct link open", metadata: ["to": "\(remote)", "peer": "\(escapedForLog(peer.name))"])
            let result = try await body(session)
            session.clearDeadline()
            try? await session.sender.send(Packet(header: PacketHeader(type: .close, maskTo: .hub)))
            try? await session.sender.drain()
            return result
        }
    }

    /// Connects to `addresses` in turn, a new attempt every ``stagger`` or as soon as the one before fails, and returns
    /// the first that `connect` completes within `budget`, or why each failed; the others are closed as they complete.
    static func race(
        _ addresses: [SocketAddress], budget: Duration,
        connect: @escaping @Sendable (SocketAddress, TimeAmount) async throws -> NIOAsyncChannel<[Packet], Packet>
    ) async -> Swift.Result<NIOAsyncChannel<[Packet], Packet>, RaceLost> {
        guard !addresses.isEmpty else { return .failure(RaceLost(reasons: [])) }
        let race = FirstWins(attempts: addresses.count)
        let deadline = ContinuousClock.now + budget
        let won = await withCheckedContinuation { continuation in
            race.start(continuation)
            Task {
                for (index, address) in addresses.enumerated() {
                    if index > 0 { await race.waitTurn(stagger) }
                    if race.decided { return }
                    let timeout = TimeAmount(deadline - ContinuousClock.now)
                    guard timeout > .zero else { return race.failed("\(address): no time left") }
                    Task {
                        do {
                            race.won(try await connect(address, timeout))
                        } catch let error as Unavailable {
                            race.failed(error.description)
                        } catch {
                            race.failed(describeNetworkError(error))
                        }
                    }
                }
            }
            Task {
                try? await Task.sleep(until: deadline)
                race.expire()
            }
        }
        if let won { return .success(won) }
        return .failure(RaceLost(reasons: race.reasons))
    }

    /// Closes a connection that will not be used (its async wrapper must be finished, not dropped).
    static func discard(_ connection: NIOAsyncChannel<[Packet], Packet>) async {
        try? await connection.executeThenClose { _, _ in }
    }

    /// Why every attempt of a race failed.
    struct RaceLost: Error {
        var reasons: [String]
    }
}

/// The outcome of a connection race: the first connection, or nil when every attempt failed or time ran out.
private final class FirstWins: Sendable {
    private struct State {
        var continuation: CheckedContinuation<NIOAsyncChannel<[Packet], Packet>?, Never>?
        var decided = false
        var remaining: Int
        /// Why the attempts that failed did.
        var reasons: [String] = []
        /// Woken early when an attempt fails, so the next one need not wait out the stagger.
        var turn: CheckedContinuation<Void, Never>?
        /// Which wait `turn` is: a stagger timer of an earlier wait must not end a later one.
        var turnNumber = 0
    }
    private let state: NIOLockedValueBox<State>

    init(attempts: Int) { state = NIOLockedValueBox(State(remaining: attempts)) }

    var decided: Bool { state.withLockedValue { $0.decided } }

    var reasons: [String] { state.withLockedValue { $0.reasons } }

    func start(_ continuation: CheckedContinuation<NIOAsyncChannel<[Packet], Packet>?, Never>) {
        state.withLockedValue { $0.continuation = continuation }
    }

    func won(_ connection: NIOAsyncChannel<[Packet], Packet>) {
        let continuation = state.withLockedValue { state in
            defer {
                state.decided = true
                state.continuation = nil
            }
            return state.continuation
        }
        guard let continuation else {
            // Too late: another attempt won, or time ran out.
            Task { await DirectDialer.discard(connection) }
            return
        }
        continuation.resume(returning: connection)
        nextTurn()
    }

    func failed(_ reason: String) {
        let continuation = state.withLockedValue {
            state -> CheckedContinuation<NIOAsyncChannel<[Packet], Packet>?, Never>? in
            state.reasons.append(reason)
            state.remaining -= 1
            guard state.remaining <= 0 else { return nil }
            state.decided = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: nil)
        nextTurn()
    }

    func expire() {
        let continuation = state.withLockedValue { state in
            state.decided = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: nil)
        nextTurn()
    }

    /// Waits `stagger`, or less if an attempt fails meanwhile.
    func waitTurn(_ stagger: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let number = state.withLockedValue { state in
                state.turnNumber += 1
                state.turn = continuation
                return state.turnNumber
            }
            Task {
                try? await Task.sleep(for: stagger)
                self.nextTurn(number)
            }
        }
    }

    /// Ends the current wait (or only wait `number`, for its timer).
    private func nextTurn(_ number: Int? = nil) {
        state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            guard number == nil || number == state.turnNumber else { return nil }
            defer { state.turn = nil }
            return state.turn
        }?.resume()
    }
}

/// Presents the ticket once the connection is up (after the TLS handshake, which NIOSSL holds writes for) and waits
/// for the receiver's answer: DirectWelcome fulfils `admitted`, anything else fails it, and so does silence past the
/// attempt's time. Then it steps aside.
final class DirectHelloHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = Packet
    typealias InboundOut = Packet

    let admitted: EventLoopPromise<Void>
    private let hello: Packet
    private let within: TimeAmount
    private var timer: Scheduled<Void>?
    private var done = false

    init(hello: Packet, within: TimeAmount, on loop: any EventLoop) {
        self.hello = hello
        self.within = within
        admitted = loop.makePromise()
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: within) { channel.close(promise: nil) }
        if let encoder = try? context.pipeline.syncOperations.context(handlerType: PacketEncoder.self) {
            PacketEncoder.write([hello], to: encoder, promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return context.fireChannelRead(data) }
        let packet = unwrapInboundIn(data)
        switch packet.header.type {
        case .directWelcome:
            settle(nil)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        case .error:
            let message = (try? ErrorPayload(tlv: packet.payload)).map { escapedForLog($0.message) } ?? "an error"
            settle(DirectDialer.Unavailable(description: "refused the ticket: \(message)"))
            context.close(promise: nil)
        default:
            settle(DirectDialer.Unavailable(description: "answered the ticket with \(packet.header.type)"))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settle(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        settle(DirectDialer.Unavailable(description: "closed the connection before admitting it"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Also when the connection was never made: the promise must not be left.
        settle(DirectDialer.Unavailable(description: "no connection"))
    }

    private func settle(_ error: (any Error)?) {
        guard !done else { return }
        done = true
        timer?.cancel()
        if let error { admitted.fail(error) } else { admitted.succeed() }
    }
}

/// The sender's end of a direct link, between the frame decoder and the session: stamps what arrives with the
/// receiver's id (the hub's job on the relay path), answers nothing, and once admitted pings the receiver every
/// ``DirectDialer/pingInterval``; a link on which nothing arrives and no write completes for
/// ``DirectDialer/stallTimeout`` is closed, so a firewall that starts dropping mid-file ends the link in seconds, not
/// when TCP gives up.
final class DirectClientHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = Packet
    typealias InboundOut = Packet
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let receiverID: UInt32
    /// When the link last showed life: something read, or a write taken by the kernel.
    private var lastRead = NIODeadline.now()
    private var heartbeat: RepeatedTask?
    private var sequence: UInt32 = 0

    init(receiverID: UInt32) { self.receiverID = receiverID }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = .now()
        var packet = unwrapInboundIn(data)
        packet.header.idFrom = receiverID
        switch packet.header.type {
        case .pingResponse:
            return
        case .directWelcome where heartbeat == nil:
            startHeartbeat(context: context)
        case .ping, .localWake:
            // The receiver never pings; a wake marker from the wire would fake a local event.
            return
        default:
            break
        }
        context.fireChannelRead(wrapInboundOut(packet))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.whenSuccess { [self] in lastRead = .now() }
        context.write(data, promise: written)
    }

    func channelInactive(context: ChannelHandlerContext) {
        heartbeat?.cancel()
        heartbeat = nil
        context.fireChannelInactive()
    }

    private func startHeartbeat(context: ChannelHandlerContext) {
        let channel = context.channel
        let receiverID = self.receiverID
        heartbeat = context.eventLoop.scheduleRepeatedTask(
            initialDelay: DirectDialer.pingInterval, delay: DirectDialer.pingInterval
        ) { [self] task in
            guard NIODeadline.now() - lastRead < DirectDialer.stallTimeout else {
                task.cancel()
                channel.close(promise: nil)
                return
            }
            sequence &+= 1
            let ping = PingPayload(sequence: sequence, sentAt: WireClock.now()).packet(
                PacketHeader(type: .ping, maskTo: .client, idTo: receiverID))
            guard let encoder = try? channel.pipeline.syncOperations.context(handlerType: PacketEncoder.self) else {
                return
            }
            PacketEncoder.write([ping], to: encoder, promise: nil)
        }
    }
}
