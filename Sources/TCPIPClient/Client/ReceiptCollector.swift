import NIOConcurrencyHelpers
import NIOCore
import TCPIPCore
import TCPIPWire

/// What the receipt loop needs from a tracker of deliveries (messages or files).
public protocol ReceiptTracking: Sendable {
    /// Nothing more will be sent.
    func producerFinished()
    /// Sending failed: the command fails with this error.
    func fail(_ error: TCPIPError)
    var failure: TCPIPError? { get }
    /// A recipient left the hub.
    func left(_ peer: UInt32, now: WireTime)
    /// Fails receipts due for longer than `timeout`; true if anything changed.
    func expire(now: WireTime, timeout: UInt64) -> Bool
    /// Nothing more to wait for.
    var isComplete: Bool { get }
}

/// Sends with one task and collects receipts in the calling one.
///
/// `produce` runs in a task of its own (holding at most a bounded amount in flight); the calling task reads packets
/// until the tracker is complete, handing receipts of `receiptType` to `receipt`; a watchdog expires late receipts.
/// Whatever changes outside the loop (the producer finishing, a timeout) wakes the loop locally
/// (``PacketSender/wake()``). When `linger` gives a duration once the tracker is complete, the loop waits up to that
/// long more for the producer to finish before cancelling it.
enum ReceiptCollector {
    static func run(
        session: ClientSession, tracker: some ReceiptTracking, timeout: Duration, receiptType: PacketType,
        produce: @escaping @Sendable () async throws -> Void, receipt: (Packet, WireTime) throws -> Void,
        linger: () -> Duration? = { nil }, other: (Packet) -> Void = { _ in }
    ) async throws {
        let sender = session.sender
        let producer = Task {
            do {
                try await produce()
            } catch let error as TCPIPError {
                tracker.fail(error)
            } catch is CancellationError {
                return
            } catch {
                tracker.fail(TCPIPError.internalError("sending failed: \(error)"))
            }
            tracker.producerFinished()
            sender.wake()
        }
        let limit = timeout.microseconds
        let watchdog = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                if tracker.expire(now: WireClock.now(), timeout: limit) { sender.wake() }
            }
        }
        defer {
            producer.cancel()
            watchdog.cancel()
        }
        while !tracker.isComplete {
            let packet = try await session.next()
            let now = WireClock.now()
            switch packet.header.type {
            case receiptType:
                try receipt(packet, now)
            case .clientDisconnecting:
                tracker.left(packet.header.idFrom, now: now)
            case .error:
                let error = try ErrorPayload(tlv: packet.payload)
                guard error.code == .unknownPeer, let peer = error.peerID else {
                    throw ClientSession.error(from: error)
                }
                tracker.left(peer, now: now)
            default:
                other(packet)
            }
        }
        if let linger = linger() {
            let producerDone = NIOLockedValueBox(false)
            let finished = Task {
                await producer.value
                producerDone.withLockedValue { $0 = true }
                sender.wake()
            }
            defer { finished.cancel() }
            let timer = sender.wake(after: linger)
            defer { timer.cancel() }
            let end = ContinuousClock.now + linger
            while !producerDone.withLockedValue({ $0 }), ContinuousClock.now < end { _ = try await session.next() }
        }
    }
}
