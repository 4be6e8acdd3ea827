import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import TCPIPClient
import TCPIPCore
import TCPIPWire

/// The receiver daemon: stays registered with the hub (reconnecting with exponential backoff and jitter), lands files
/// and messages in the spool, and on graceful shutdown stops taking new transfers, lets running ones finish for
/// `grace`, removes what is left, and returns.
public struct ReceiverService: Service {
    public var client: ClientConfiguration
    public var receiver: ReceiverConfiguration
    public var grace: Duration = .seconds(10)
    public var hook: HookRunner?
    private let logger: Logger

    public init(client: ClientConfiguration, receiver: ReceiverConfiguration, logger: Logger) {
        var client = client
        client.role = "receiver"
        // Updates tell the daemon when a sender leaves mid-transfer, so its partial file goes at once.
        client.flags = [.wantsUpdates]
        self.client = client
        self.receiver = receiver
        self.logger = logger
    }

    /// How long a receiver keeps retrying while its name is taken: long enough for the hub to drop a predecessor that
    /// vanished without a word (three heartbeats of 15 s), so a restart race resolves itself.
    public var nameWait: Duration = .seconds(60)

    /// Shared between the reconnect loop, the session and the shutdown handler.
    final class Control: Sendable {
        private struct State {
            var stopping = false
            /// Set while a session is registered: a stop then drains it (running transfers get their grace).
            var sender: PacketSender?
            /// Set while connecting, registering or waiting to reconnect: a stop ends that wait at once.
            var interrupt: (@Sendable () -> Void)?
        }

        private let state = NIOLockedValueBox(State())

        var stopping: Bool { state.withLockedValue { $0.stopping } }

        /// The session is registered and serving; a stop from now on drains it through `sender`.
        func serving(_ sender: PacketSender?) {
            state.withLockedValue {
                $0.sender = sender
                $0.interrupt = nil
            }
        }

        /// Asks the daemon to stop: wakes a serving session so it drains, or ends a wait at once.
        func stop() async {
            let (sender, interrupt) = state.withLockedValue { state in
                state.stopping = true
                defer { state.interrupt = nil }
                return (state.sender, state.interrupt)
            }
            interrupt?()
            sender?.wake()
        }

        /// The grace is over: closes a serving session's connection from this side, so the drain ends even when the
        /// hub does not answer.
        func endNow() {
            state.withLockedValue({ $0.sender })?.close()
        }

        /// Runs `body` in a task of its own and returns its outcome, or nil at once when a stop comes before the
        /// body calls ``serving(_:)`` (a connect or a registration can take seconds; SIGTERM must not wait for them).
        func interruptibly<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async -> Result<T, any Error>?
        {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>?, Never>) in
                let once = NIOLockedValueBox<CheckedContinuation<Result<T, any Error>?, Never>?>(continuation)
                let resume: @Sendable (Result<T, any Error>?) -> Void = { outcome in
                    once.withLockedValue { pending in
                        pending?.resume(returning: outcome)
                        pending = nil
                    }
                }
                // The interrupt is in place before the body starts, so the body's ``serving(_:)`` always clears it.
                let task = NIOLockedValueBox<Task<Void, Never>?>(nil)
                let interrupt: @Sendable () -> Void = {
                    resume(nil)
                    task.withLockedValue { $0 }?.cancel()
                }
                let stopped = state.withLockedValue { state in
                    if !state.stopping { state.interrupt = interrupt }
                    return state.stopping
                }
                if stopped {
                    interrupt()
                    return
                }
                task.withLockedValue { $0 = Task { resume(await Result.capturing(body)) } }
            }
        }
    }

    public func run() async throws {
        let removed = try receiver.spool.prepare()
        if removed > 0 {
            logger.notice("removed unfinished transfers left by an earlier run", metadata: ["count": "\(removed)"])
        }
        let expired = receiver.spool.removePartials(olderThan: receiver.partialMaxAge)
        if expired > 0 {
            logger.notice(
                "removed partial files nobody came back for",
                metadata: ["count": "\(expired)", "older than": "\(receiver.partialMaxAge)"])
        }
        let index = SpoolIndex(spool: receiver.spool)
        if !receiver.alwaysStore {
            let known = index.load()
            logger.debug("indexed stored files", metadata: ["count": "\(known)"])
        }
        let direct = try await bindDirectListener()
        defer { if let direct { Task { await direct.close() } } }
        let control = Control()
        let grace = self.grace
        try await withGracefulShutdownHandler {
            var attempt = 0
            var nameTakenSince: ContinuousClock.Instant?
            while !control.stopping && !Task.isCancelled {
                let registered = NIOLockedValueBox(false)
                let outcome = await control.interruptibly {
                    try await session(control, index: index, direct: direct, registered: registered)
                }
                guard let outcome, !control.stopping else { break }
                if registered.withLockedValue({ $0 }) {
                    // A session that got as far as registering resets the backoff and the name wait.
                    attempt = 0
                    nameTakenSince = nil
                }
                switch outcome {
                case .success:
                    break
                case .failure(let error as TCPIPError) where error.kind == .permissionDenied || error.kind == .usage:
                    // A wrong token or name does not fix itself by retrying.
                    throw error
                case .failure(let error as TCPIPError) where error.hubCode == .nameInUse:
                    let since = nameTakenSince ?? .now
                    nameTakenSince = since
                    if ContinuousClock.now - since >= nameWait {
                        throw TCPIPError(
                            .temporary,
                            "the name '\(escapedForLog(client.name))' is still taken by another peer after "
                                + "\(ClientSession.format(nameWait)): is another tcpiprecvd using it?")
                    }
                    logger.warning(
                        "the name is taken by another peer; retrying until it is free",
                        metadata: [
                            "name": "\(escapedForLog(client.name))",
                            "giving up in": "\(ClientSession.format(nameWait - (ContinuousClock.now - since)))",
                        ])
                case .failure(let error):
                    logger.warning("lost the hub: \(error)")
                }
                let delay = Self.backoff(attempt: attempt)
                attempt += 1
                logger.notice("reconnecting", metadata: ["in": "\(delay)", "attempt": "\(attempt)"])
                guard await control.interruptibly({ try await Task.sleep(for: delay) }) != nil else { break }
            }
            logger.info("stopping")
        } onGracefulShutdown: {
            Task {
                await control.stop()
                logger.info("draining: new transfers are refused, running ones may take \(grace) to finish")
                try? await Task.sleep(for: grace)
                control.endNow()
            }
        }
    }

    private func session(
        _ control: Control, index: SpoolIndex, direct: DirectListener?, registered: NIOLockedValueBox<Bool>
    ) async throws {
        try await ClientSession.run(client, logger: logger) { session in
            session.acceptsMessages = true
            session.acceptsFiles = true
            var onPublished: (@Sendable (FileReceiver.Published) -> Void)?
            if let hook { onPublished = { hook.launch($0) } }
            let files = try FileReceiver(
                configuration: receiver, logger: logger, receiverName: session.me.name, index: index,
                direct: direct, onPublished: onPublished)
            let sender = session.sender
            if let direct {
                // Tickets and links of an earlier session are void: the hub gave this one a new id.
                direct.reset(me: session.me.id, wake: { sender.wake() })
                try await session.send(direct.hints().packet(PacketHeader(type: .directHints, maskTo: .hub)))
            }
            registered.withLockedValue { $0 = true }
            control.serving(sender)
            defer {
                control.serving(nil)
                direct?.reset(me: nil, wake: nil)
                files.abandonAll(reason: "the connection ended")
            }
            logger.info(
                "ready",
                metadata: [
                    "name": "\(escapedForLog(session.me.name))", "id": "\(session.me.id)",
                    "spool": "\(receiver.spool.root)",
                ])
            let committer = files.committer
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // While stopping, a finished batch may be the last thing the drain waits for: wake the loop.
                    await committer.run(sender: sender) {
                        if control.stopping { sender.wake() }
                    }
                }
                defer { committer.finish() }
                var drainUntil: ContinuousClock.Instant?
                while true {
                    if control.stopping {
                        files.stopTaking()
                        let end = drainUntil ?? .now + grace
                        drainUntil = end
                        if files.inProgress == 0 || ContinuousClock.now >= end { return }
                    }
                    let packet = try await session.next()
                    if let direct {
                        // A notice first: the sender it announces may be knocking already.
                        if packet.header.type == .introductionNotice {
                            // A hub-only type: the hub refuses it from any peer, so this one is the hub's.
                            if let notice = try? IntroductionNotice(tlv: packet.payload) { direct.expect(notice) }
                            continue
                        }
                        for packet in direct.take() { try await files.handle(packet, session: session) }
                        if [.fileStart, .fileChunk, .fileEnd, .fileSeek].contains(packet.header.type),
                            let stale = direct.supersede(packet.header.idFrom)
                        {
                            // The sender went over to the hub (its direct link broke, or it gave up on it): what its
                            // link delivered goes first, then its transfers end as if it had left (a resumable file
                            // keeps its part), then the relayed packet.
                            for packet in stale { try await files.handle(packet, session: session) }
                            try await files.handle(Self.left(packet.header.idFrom, me: session.me.id), session: session)
                        }
                    }
                    try await files.handle(packet, session: session)
                }
            }
        }
    }

    /// The direct listener `--direct-listen` asks for, bound; nil when it is off.
    private func bindDirectListener() async throws -> DirectListener? {
        guard let address = receiver.directListen else { return nil }
        let listener: DirectListener
        do {
            listener = try await DirectListener.bind(
                address, security: try client.directSecurity?.listening(), logger: logger)
        } catch {
            throw TCPIPError(
                .unavailable,
                "cannot listen for direct transfers on \(address): \(describeNetworkError(error)) "
                    + "(--direct-listen off turns them off)")
        }
        logger.info("listening for direct transfers", metadata: ["address": "\(listener.localAddress)"])
        return listener
    }

    /// What a sender's transfers end with when its direct link is given up.
    static func left(_ sender: UInt32, me: UInt32) -> Packet {
        Packet(header: PacketHeader(type: .clientDisconnecting, maskTo: .client, idTo: me, idFrom: sender))
    }

    /// 0.5 s doubling to 30 s, with ±25 % jitter so many receivers do not reconnect in step.
    static func backoff(attempt: Int) -> Duration {
        let base = min(30.0, 0.5 * Double(1 << min(attempt, 6)))
        return .milliseconds(Int64(base * Double.random(in: 0.75...1.25) * 1000))
    }
}
