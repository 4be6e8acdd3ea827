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
/// hints (Happy Eyeballs, RFC 8305: one attempt every ``stagger``, the first to connect wins, the rest are closed),
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
        var security: (any LinkSecurity)?
        if let directSecurity = configuration.directSecurity {
            guard let key = introduction.peer.keyID else {
                throw Unavailable(description: "the hub vouched for no key of \(escapedForLog(peer.name))")
            }
            let address = HostPort(host: introduction.hints[0], port: 0)
            security = try directSecurity.dialing(key, address)
        } else if introduction.peer.key != nil {
            throw Unavailable(description: "this client has no key to prove on a direct link")
        }
        let addresses = introduction.hints.compactMap { hint -> SocketAddress? in
            guard let (host, port) = Direct.split(hint) else { return nil }
            return try? SocketAddress(ipAddress: host, port: Int(port))
        }
        let started = ContinuousClock.now
        let maxFrameSize = configuration.maxFrameSize
        let receiverID = peer.id
        guard
            let connection = await race(
                addresses, budget: budget,
                connect: { address, timeout in
                    try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                        .connectTimeout(timeout)
                        .connect(to: address) { channel in
                            channel.eventLoop.makeCompletedFuture {
                                if let security {
                                    try channel.pipeline.syncOperations.addHandlers(try security.makeHandlers())
                                }
                                try channel.pipeline.syncOperations.addHandlers([
                                    ByteToMessageHandler(PacketDecoder(maxFrameSize: maxFrameSize)),
                                    DirectClientHandler(receiverID: receiverID), PacketBatcher(), PacketEncoder(),
                                ])
                                return try NIOAsyncChannel<[Packet], Packet>(wrappingChannelSynchronously: channel)
                            }
                        }
                })
        else {
            throw Unavailable(
                description:
                    "no hint of \(escapedForLog(peer.name)) answered (\(introduction.hints.joined(separator: ", ")))")
        }
        let remote = connection.channel.remoteAddress.map { "\($0)" } ?? "?"
        return try await connection.executeThenClose { inbound, _ in
            let session = ClientSession(
                direct: connection.channel, inbound: inbound, configuration: configuration, me: hub.registered,
                logger: logger)
            // The rest of the budget for TLS and the ticket.
            let left = max(budget - (ContinuousClock.now - started), .milliseconds(200))
            session.setDeadline(after: left, doing: "opening a direct link to \(remote)")
            do {
                try await session.send(
                    DirectHello(ticket: ticket, from: hub.me.id, to: peer.id).packet(
                        PacketHeader(type: .directHello, maskTo: .client, idTo: peer.id, idFrom: hub.me.id)))
                let answer = try await session.firstDirectPacket()
                switch answer.header.type {
                case .directWelcome:
                    break
                case .error:
                    let error = try ErrorPayload(tlv: answer.payload)
                    throw Unavailable(description: "\(remote) refused the ticket: \(escapedForLog(error.message))")
                default:
                    throw Unavailable(description: "\(remote) answered the ticket with \(answer.header.type)")
                }
            } catch let error as Unavailable {
                throw error
            } catch {
                let explained = security?.explain(error, address: HostPort(host: remote, port: 0))
                throw Unavailable(
                    description: "the direct link to \(remote) failed: \(explained?.message ?? "\(error)")")
            }
            session.clearDeadline()
            logger.debug("direct link open", metadata: ["to": "\(remote)", "peer": "\(escapedForLog(peer.name))"])
            let result = try await body(session)
            session.clearDeadline()
            try? await session.sender.send(Packet(header: PacketHeader(type: .close, maskTo: .hub)))
            try? await session.sender.drain()
            return result
        }
    }

    /// Connects to `addresses` in turn, a new attempt every ``stagger`` or as soon as the one before fails, and returns
    /// the first connection made within `budget`; the others are closed as they complete.
    static func race(
        _ addresses: [SocketAddress], budget: Duration,
        connect: @escaping @Sendable (SocketAddress, TimeAmount) async throws -> NIOAsyncChannel<[Packet], Packet>
    ) async -> NIOAsyncChannel<[Packet], Packet>? {
        guard !addresses.isEmpty else { return nil }
        let race = FirstWins(attempts: addresses.count)
        let deadline = ContinuousClock.now + budget
        return await withCheckedContinuation { continuation in
            race.start(continuation)
            Task {
                for (index, address) in addresses.enumerated() {
                    if index > 0 { await race.waitTurn(stagger) }
                    if race.decided { return }
                    let timeout = TimeAmount(deadline - ContinuousClock.now)
                    guard timeout > .zero else { return race.failed() }
                    Task {
                        do {
                            race.won(try await connect(address, timeout))
                        } catch {
                            race.failed()
                        }
                    }
                }
            }
            Task {
                try? await Task.sleep(until: deadline)
                race.expire()
            }
        }
    }
}

/// The outcome of a connection race: the first connection, or nil when every attempt failed or time ran out.
private final class FirstWins: Sendable {
    private struct State {
        var continuation: CheckedContinuation<NIOAsyncChannel<[Packet], Packet>?, Never>?
        var decided = false
        var remaining: Int
        /// Woken early when an attempt fails, so the next one need not wait out the stagger.
        var turn: CheckedContinuation<Void, Never>?
        /// Which wait `turn` is: a stagger timer of an earlier wait must not end a later one.
        var turnNumber = 0
    }
    private let state: NIOLockedValueBox<State>

    init(attempts: Int) { state = NIOLockedValueBox(State(remaining: attempts)) }

    var decided: Bool { state.withLockedValue { $0.decided } }

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
            connection.channel.close(promise: nil)
            return
        }
        continuation.resume(returning: connection)
        nextTurn()
    }

    func failed() {
        let continuation = state.withLockedValue {
            state -> CheckedContinuation<NIOAsyncChannel<[Packet], Packet>?, Never>? in
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
