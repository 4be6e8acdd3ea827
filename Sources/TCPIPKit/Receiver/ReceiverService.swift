import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
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

    final class Control: Sendable {
        let stopping = NIOLockedValueBox(false)
        let wake = NIOLockedValueBox<PacketSender?>(nil)

        func poke() async {
            await wake.withLockedValue({ $0 })?.wake()
        }
    }

    public func run() async throws {
        let removed = try receiver.spool.prepare()
        if removed > 0 {
            logger.notice("removed unfinished transfers left by an earlier run", metadata: ["count": "\(removed)"])
        }
        let control = Control()
        let grace = self.grace
        try await withGracefulShutdownHandler {
            var attempt = 0
            while !control.stopping.withLockedValue({ $0 }) && !Task.isCancelled {
                let started = ContinuousClock.now
                do {
                    try await session(control)
                    if control.stopping.withLockedValue({ $0 }) { break }
                } catch let error as TCPIPError where error.kind == .permissionDenied || error.kind == .usage {
                    // A wrong token or name does not fix itself by retrying.
                    throw error
                } catch {
                    if control.stopping.withLockedValue({ $0 }) { break }
                    logger.warning("lost the hub: \(error)")
                }
                if ContinuousClock.now - started > .seconds(30) { attempt = 0 }
                let delay = Self.backoff(attempt: attempt)
                attempt += 1
                logger.notice("reconnecting", metadata: ["in": "\(delay)", "attempt": "\(attempt)"])
                try? await Task.sleep(for: delay)
            }
        } onGracefulShutdown: {
            control.stopping.withLockedValue { $0 = true }
            Task {
                await control.poke()
                try? await Task.sleep(for: grace)
                await control.poke()
            }
        }
    }

    private func session(_ control: Control) async throws {
        try await ClientSession.run(client, logger: logger) { session in
            session.acceptsMessages = true
            var onPublished: (@Sendable (FileReceiver.Published) -> Void)?
            if let hook { onPublished = { hook.launch($0) } }
            let files = try FileReceiver(configuration: receiver, logger: logger, onPublished: onPublished)
            let sender = session.sender
            control.wake.withLockedValue { $0 = sender }
            defer {
                control.wake.withLockedValue { $0 = nil }
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
                        if control.stopping.withLockedValue({ $0 }) { await sender.wake() }
                    }
                }
                defer { committer.finish() }
                var drainUntil: ContinuousClock.Instant?
                while true {
                    if control.stopping.withLockedValue({ $0 }) {
                        files.refusingNew = true
                        let end = drainUntil ?? .now + grace
                        drainUntil = end
                        if files.inProgress == 0 || ContinuousClock.now >= end { return }
                    }
                    let packet = try await session.next()
                    try await files.handle(packet, session: session)
                }
            }
        }
    }

    /// 0.5 s doubling to 30 s, with ±25 % jitter so many receivers do not reconnect in step.
    static func backoff(attempt: Int) -> Duration {
        let base = min(30.0, 0.5 * Double(1 << min(attempt, 6)))
        return .milliseconds(Int64(base * Double.random(in: 0.75...1.25) * 1000))
    }
}
