import NIOConcurrencyHelpers
import TCPIPCore
import TCPIPWire

/// What happened to a message (or a stream of them) for one recipient.
public struct DeliveryResult: Sendable {
    public enum Status: String, Sendable {
        case pending
        case delivered
        /// The recipient said no (it does not take messages, or not from this sender).
        case refused
        /// The recipient could not take it because of its size.
        case tooLarge = "too-large"
        /// The recipient could not store it (disk full, read-only, I/O error).
        case storageFailed = "storage-failed"
        /// The recipient left before acknowledging everything.
        case left
        /// No receipt within the timeout.
        case timeout
    }

    public var peer: PeerRecord
    public var status: Status = .pending
    public var messages = 0
    public var bytes: UInt64 = 0
    public var reason: String?
    /// What a recipient said about a message it took (a classic client's: characters its wire cannot carry arrived
    /// as '?').
    public var warning: String?
    public var startedAt: WireTime
    public var finishedAt: WireTime?
    /// For a message sent through the hub's store (`send --queue`): what the store (or the receiver) answered.
    public var queued: FileResult?

    public init(peer: PeerRecord, startedAt: WireTime) {
        self.peer = peer
        self.startedAt = startedAt
    }

    /// The status as printed: the file status of a queued message (`queued`, `unknown-recipient`, …).
    public var statusText: String {
        guard let queued else { return status.rawValue }
        return queued.status == .stored || queued.status == .alreadyStored ? "delivered" : queued.status.rawValue
    }

    /// The exit status this result alone calls for.
    public var exitStatus: Int32 {
        if let queued { return queued.exitStatus }
        return switch status {
        case .pending, .delivered: 0
        case .refused: TCPIPError.Kind.permissionDenied.exitStatus
        // A recipient's size cap is its policy, as --max-file-size is for files (77); over the sender's own
        // --max-message-size is a data error found before sending (65).
        case .tooLarge: TCPIPError.Kind.permissionDenied.exitStatus
        case .storageFailed: TCPIPError.Kind.cannotCreate.exitStatus
        case .left, .timeout: TCPIPError.Kind.temporary.exitStatus
        }
    }
}

/// Keeps track of which recipient acknowledged which message. Shared by the task that sends and the task that reads
/// receipts.
public final class DeliveryTracker: ReceiptTracking {
    private struct Outstanding {
        var sentAt: WireTime
        var bytes: UInt64
        var waiting: Set<UInt32>
    }

    private struct State {
        var order: [UInt32]
        var results: [UInt32: DeliveryResult]
        var outstanding: [UInt32: Outstanding] = [:]
        var producerDone = false
        var failure: TCPIPError?
        var receipts: Bool
        /// Recipients that left owing nothing: fine if nothing more is sent, "left" if something is.
        var gone: Set<UInt32> = []
        /// The recipients still pending, worked out once until one of them fails: every message's waiting set shares
        /// this one's storage instead of building its own (a set and an array per line of `send --lines`).
        var pending: Set<UInt32>?
    }

    private let state: NIOLockedValueBox<State>

    /// `receipts` false: nothing is acknowledged (`--no-wait`, application types), so success means the hub took
    /// everything, and a recipient leaving is not tracked.
    public init(recipients: [PeerRecord], receipts: Bool, now: WireTime) {
        var results: [UInt32: DeliveryResult] = [:]
        for peer in recipients { results[peer.id] = DeliveryResult(peer: peer, startedAt: now) }
        state = NIOLockedValueBox(State(order: recipients.map(\.id), results: results, receipts: receipts))
    }

    /// A message is about to be sent in full: every recipient still taking messages owes a receipt for it.
    public func expect(messageID: UInt32, bytes: Int, now: WireTime) {
        state.withLockedValue { state in
            for peer in state.gone { Self.fail(peer, .left, "left before the last message", in: &state, now: now) }
            let waiting = state.pending ?? Set(state.results.values.filter { $0.status == .pending }.map(\.peer.id))
            state.pending = waiting
            guard !waiting.isEmpty else { return }
            state.outstanding[messageID] = Outstanding(sentAt: now, bytes: UInt64(bytes), waiting: waiting)
        }
    }

    /// A message was sent without asking for receipts: count it as handed over.
    public func sentWithoutReceipt(bytes: Int) {
        state.withLockedValue { state in
            for id in state.order where state.results[id]?.status == .pending {
                state.results[id]?.messages += 1
                state.results[id]?.bytes += UInt64(bytes)
            }
        }
    }

    public func receipt(_ receipt: MessageReceipt, from peer: UInt32, now: WireTime) {
        state.withLockedValue { state in
            guard var outstanding = state.outstanding[receipt.messageID], outstanding.waiting.remove(peer) != nil else {
                return
            }
            state.outstanding[receipt.messageID] = outstanding.waiting.isEmpty ? nil : outstanding
            switch receipt.status {
            case .delivered:
                state.results[peer]?.messages += 1
                state.results[peer]?.bytes += receipt.bytes
                state.results[peer]?.finishedAt = now
                if let reason = receipt.reason { state.results[peer]?.warning = reason }
            case .refused:
                Self.fail(peer, .refused, receipt.reason, in: &state, now: now)
            case .tooLarge:
                Self.fail(peer, .tooLarge, receipt.reason, in: &state, now: now)
            case .storageFailed:
                Self.fail(peer, .storageFailed, receipt.reason, in: &state, now: now)
            }
        }
    }

    /// A recipient left the hub. Leaving after acknowledging everything, with nothing more to send, is no failure.
    public func left(_ peer: UInt32, now: WireTime) {
        state.withLockedValue { state in
            guard state.receipts else { return }
            if state.outstanding.values.contains(where: { $0.waiting.contains(peer) }) {
                Self.fail(peer, .left, "left before acknowledging everything", in: &state, now: now)
            } else {
                state.gone.insert(peer)
            }
        }
    }

    /// Marks recipients that owe a receipt older than `timeout`. Returns true if anything changed.
    public func expire(now: WireTime, timeout: UInt64) -> Bool {
        state.withLockedValue { state in
            var late: Set<UInt32> = []
            for outstanding in state.outstanding.values where now >= outstanding.sentAt + timeout {
                late.formUnion(outstanding.waiting)
            }
            for peer in late { Self.fail(peer, .timeout, "no receipt within the timeout", in: &state, now: now) }
            return !late.isEmpty
        }
    }

    /// Nothing more will be sent (called once the last message is queued).
    public func producerFinished() { state.withLockedValue { $0.producerDone = true } }

    public var isProducerDone: Bool { state.withLockedValue { $0.producerDone } }

    /// Sending failed: the whole command fails with this error.
    public func fail(_ error: TCPIPError) {
        state.withLockedValue { if $0.failure == nil { $0.failure = error } }
    }

    public var failure: TCPIPError? { state.withLockedValue { $0.failure } }

    /// True once there is nothing more to wait for.
    public var isComplete: Bool {
        state.withLockedValue { state in
            state.failure != nil || (state.producerDone && state.outstanding.isEmpty) || !Self.anyActive(state)
        }
    }

    /// True when no recipient takes messages any more: sending can stop.
    public var nobodyLeft: Bool { state.withLockedValue { !Self.anyActive($0) } }

    /// The results in the order the recipients were given. Recipients that owe nothing count as delivered.
    public func results(now: WireTime) -> [DeliveryResult] {
        state.withLockedValue { state in
            state.order.compactMap { id in
                guard var result = state.results[id] else { return nil }
                if result.status == .pending && state.gone.contains(id) && !state.producerDone {
                    result.status = .left
                    result.reason = "left before everything was sent"
                } else if result.status == .pending {
                    result.status = .delivered
                    result.finishedAt = result.finishedAt ?? now
                }
                return result
            }
        }
    }

    /// Whether some recipient can still take messages.
    private static func anyActive(_ state: State) -> Bool {
        state.results.values.contains { $0.status == .pending && !state.gone.contains($0.peer.id) }
    }

    private static func fail(
        _ peer: UInt32, _ status: DeliveryResult.Status, _ reason: String?, in state: inout State, now: WireTime
    ) {
        guard state.results[peer]?.status == .pending else { return }
        state.pending = nil
        state.results[peer]?.status = status
        state.results[peer]?.reason = reason
        state.results[peer]?.finishedAt = now
        for (id, var outstanding) in state.outstanding where outstanding.waiting.remove(peer) != nil {
            state.outstanding[id] = outstanding.waiting.isEmpty ? nil : outstanding
        }
    }
}
