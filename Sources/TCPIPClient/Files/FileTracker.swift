import NIOConcurrencyHelpers
import TCPIPCore
import TCPIPWire

/// The outcome of one file for one recipient.
public struct FileResult: Sendable {
    public enum Status: String, Sendable {
        case pending, stored
        /// The receiver already had this file (same sent name and SHA-256): not stored twice (0).
        case alreadyStored = "already-stored"
        /// The receiver's policy said no (allow-from, size cap, not a receiver): 77.
        case refused
        /// The bytes did not match (65).
        case corrupt
        /// The announcement was bad data, e.g. an unsafe name (65).
        case invalid
        /// The receiver could not store it (73).
        case storageFailed = "storage-failed"
        /// Retry later (75): the receiver left, did not answer, or is shutting down.
        case left, timeout, unavailable
        /// The file could not be read here; nothing of it was sent (66).
        case unreadable
        /// The file changed while it was being sent (a log still being written): aborted, retry later (75).
        case changed
        /// The hub's store holds the file, verified and synced, for a receiver that is away (`--queue`): 0.
        case queued
        /// The hub's store does not know the receiver (68).
        case unknownRecipient = "unknown-recipient"
    }

    public var name: String
    public var path: String?
    public var recipient: PeerRecord
    public var status: Status = .pending
    public var storedAs: String?
    public var reason: String?
    public var bytes: UInt64 = 0
    public var wireBytes: UInt64 = 0
    /// Bytes the receiver already held from an earlier attempt, which did not cross again.
    public var resumedFrom: UInt64 = 0
    public var sha256 = ""
    public var startedAt: WireTime
    public var finishedAt: WireTime?
    /// The transfer's id on the wire.
    public var transferID: UInt32 = 0
    /// How the file travelled: point to point, or through the hub.
    public var route: Route = .relay

    public enum Route: String, Sendable {
        case direct, relay
    }

    /// Whether the file may still be delivered by another attempt: nothing final was heard of it.
    public var retryable: Bool { [.pending, .left, .timeout, .unavailable].contains(status) }

    public init(name: String, path: String?, recipient: PeerRecord, startedAt: WireTime, transferID: UInt32 = 0) {
        self.name = name
        self.path = path
        self.recipient = recipient
        self.startedAt = startedAt
        self.transferID = transferID
    }

    /// The exit status this result alone calls for.
    public var exitStatus: Int32 {
        switch status {
        case .pending, .stored, .alreadyStored, .queued: 0
        case .unknownRecipient: TCPIPError.Kind.unknownPeer.exitStatus
        case .refused: TCPIPError.Kind.permissionDenied.exitStatus
        case .corrupt, .invalid: TCPIPError.Kind.dataError.exitStatus
        case .storageFailed: TCPIPError.Kind.cannotCreate.exitStatus
        case .left, .timeout, .unavailable: TCPIPError.Kind.temporary.exitStatus
        case .unreadable: TCPIPError.Kind.noInput.exitStatus
        case .changed: TCPIPError.Kind.temporary.exitStatus
        }
    }
}

/// Which recipient has confirmed which file. Shared by the sending task and the task that reads receipts.
public final class FileTracker: ReceiptTracking {
    private struct State {
        var order: [UInt32] = []
        var results: [UInt32: [UInt32: FileResult]] = [:]
        var recipientOrder: [UInt32]
        /// FileEnd times of files some recipient has not answered yet.
        var endSentAt: [UInt32: WireTime] = [:]
        /// (file, recipient) pairs still pending: kept as a count so each receipt costs O(1), not a scan.
        var pending = 0
        var producerDone = false
        var failure: TCPIPError?
        /// Resumable files whose FileStart went out and whose FileResume has not come yet, since when.
        var offerDueSince: [UInt32: WireTime] = [:]
        var offers: [UInt32: FileResume] = [:]
        var waiting: [UInt32: CheckedContinuation<FileResume?, Never>] = [:]

        /// One pending result of file `id` was settled.
        mutating func settled(_ id: UInt32) {
            pending -= 1
            if results[id]?.values.contains(where: { $0.status == .pending }) != true {
                endSentAt[id] = nil
                offerDueSince[id] = nil
                // Nobody will offer a resume for it any more (refused, already stored, gone, timed out).
                waiting.removeValue(forKey: id)?.resume(returning: nil)
            }
        }
    }

    private let state: NIOLockedValueBox<State>

    public init(recipients: [UInt32]) {
        state = NIOLockedValueBox(State(recipientOrder: recipients))
    }

    public func begin(_ id: UInt32, name: String, path: String?, recipients: [PeerRecord], now: WireTime) {
        state.withLockedValue { state in
            state.order.append(id)
            var results: [UInt32: FileResult] = [:]
            for peer in recipients {
                results[peer.id] = FileResult(name: name, path: path, recipient: peer, startedAt: now, transferID: id)
            }
            state.results[id] = results
            state.pending += results.count
        }
    }

    /// The file could not be read: it fails for every recipient with `reason`, and nothing of it is sent.
    public func unreadable(
        _ id: UInt32, name: String, path: String?, recipients: [PeerRecord], reason: String, now: WireTime
    ) {
        state.withLockedValue { state in
            state.order.append(id)
            var results: [UInt32: FileResult] = [:]
            for peer in recipients {
                var result = FileResult(name: name, path: path, recipient: peer, startedAt: now, transferID: id)
                result.status = .unreadable
                result.reason = reason
                result.finishedAt = now
                results[peer.id] = result
            }
            state.results[id] = results
        }
    }

    /// The sender gave up on a file it had begun (it could not read it, or it changed): every recipient still
    /// pending gets `status` and `reason`.
    public func failed(_ id: UInt32, _ status: FileResult.Status, reason: String, now: WireTime) {
        state.withLockedValue { state in
            for peer in state.results[id]?.keys.map({ $0 }) ?? [] where state.results[id]?[peer]?.status == .pending {
                state.results[id]?[peer]?.status = status
                state.results[id]?[peer]?.reason = reason
                state.results[id]?[peer]?.finishedAt = now
                state.settled(id)
            }
        }
    }

    /// A resumable FileStart went out: its FileResume is due from now on (within the receipt timeout).
    public func awaitingOffer(_ id: UInt32, now: WireTime) {
        state.withLockedValue { state in
            if state.offers[id] == nil && state.results[id]?.values.contains(where: { $0.status == .pending }) == true {
                state.offerDueSince[id] = now
            }
        }
    }

    /// A receiver's FileResume.
    public func offer(_ resume: FileResume, from peer: UInt32) {
        state.withLockedValue { state in
            guard state.results[resume.transferID]?[peer]?.status == .pending else { return }
            state.offerDueSince[resume.transferID] = nil
            if let waiter = state.waiting.removeValue(forKey: resume.transferID) {
                waiter.resume(returning: resume)
            } else {
                state.offers[resume.transferID] = resume
            }
        }
    }

    /// Waits for the FileResume of file `id`; nil when it will not come (the file was refused, already stored, its
    /// receiver left, or the answer timed out).
    public func nextOffer(_ id: UInt32) async -> FileResume? {
        await withCheckedContinuation { continuation in
            state.withLockedValue { state in
                if let offer = state.offers.removeValue(forKey: id) {
                    continuation.resume(returning: offer)
                } else if state.results[id]?.values.contains(where: { $0.status == .pending }) != true {
                    continuation.resume(returning: nil)
                } else {
                    state.waiting[id] = continuation
                }
            }
        }
    }

    /// FileEnd went out: receipts are due from now on.
    public func ended(
        _ id: UInt32, bytes: UInt64, wireBytes: UInt64, sha256: String, resumedFrom: UInt64 = 0, now: WireTime
    ) {
        state.withLockedValue { state in
            if state.results[id]?.values.contains(where: { $0.status == .pending }) == true {
                state.endSentAt[id] = now
            }
            for peer in state.results[id]?.keys.map({ $0 }) ?? [] {
                state.results[id]?[peer]?.bytes = bytes
                state.results[id]?[peer]?.wireBytes = wireBytes
                state.results[id]?[peer]?.sha256 = sha256
                state.results[id]?[peer]?.resumedFrom = resumedFrom
            }
        }
    }

    /// Whether any recipient may still take this file (if not, sending it can stop).
    public func wanted(_ id: UInt32) -> Bool {
        state.withLockedValue { $0.results[id]?.values.contains { $0.status == .pending } ?? false }
    }

    public func receipt(_ receipt: FileReceipt, from peer: UInt32, now: WireTime) {
        state.withLockedValue { state in
            guard var result = state.results[receipt.transferID]?[peer], result.status == .pending else { return }
            switch receipt.status {
            case .stored: result.status = .stored
            case .refused: result.status = .refused
            case .corrupt: result.status = .corrupt
            case .storageFailed: result.status = .storageFailed
            case .invalid: result.status = .invalid
            case .unavailable: result.status = .unavailable
            case .alreadyStored: result.status = .alreadyStored
            case .unknownRecipient: result.status = .unknownRecipient
            }
            // The store answers like a receiver; what it stored is queued, not delivered.
            if result.recipient.role == ClientSession.storeRole && [.stored, .alreadyStored].contains(result.status) {
                result.status = .queued
            }
            result.storedAs = receipt.storedAs
            result.reason = receipt.reason
            result.finishedAt = now
            state.results[receipt.transferID]?[peer] = result
            state.settled(receipt.transferID)
        }
    }

    /// A recipient left: every file it has not confirmed fails for it.
    public func left(_ peer: UInt32, now: WireTime) {
        state.withLockedValue { state in
            for id in state.order where state.results[id]?[peer]?.status == .pending {
                state.results[id]?[peer]?.status = .left
                state.results[id]?[peer]?.reason = "the receiver left before confirming the file"
                state.results[id]?[peer]?.finishedAt = now
                state.settled(id)
            }
            state.recipientOrder.removeAll { $0 == peer }
        }
    }

    /// Fails receipts due for longer than `timeout`. Returns true if anything changed.
    public func expire(now: WireTime, timeout: UInt64) -> Bool {
        state.withLockedValue { state in
            var changed = false
            for (id, since) in state.offerDueSince where now >= since + timeout {
                for peer in state.results[id]?.keys.map({ $0 }) ?? [] where state.results[id]?[peer]?.status == .pending
                {
                    state.results[id]?[peer]?.status = .timeout
                    state.results[id]?[peer]?.reason = "no answer to the resumable FileStart within the timeout"
                    state.results[id]?[peer]?.finishedAt = now
                    state.settled(id)
                    changed = true
                }
            }
            for (id, sentAt) in state.endSentAt where now >= sentAt + timeout {
                for peer in state.results[id]?.keys.map({ $0 }) ?? [] where state.results[id]?[peer]?.status == .pending
                {
                    state.results[id]?[peer]?.status = .timeout
                    state.results[id]?[peer]?.reason = "no confirmation within the timeout"
                    state.results[id]?[peer]?.finishedAt = now
                    state.settled(id)
                    changed = true
                }
            }
            return changed
        }
    }

    public func producerFinished() { state.withLockedValue { $0.producerDone = true } }

    public func fail(_ error: TCPIPError) { state.withLockedValue { if $0.failure == nil { $0.failure = error } } }

    public var failure: TCPIPError? { state.withLockedValue { $0.failure } }

    /// Whether every recipient has gone: nothing more can be delivered.
    public var nobodyLeft: Bool { state.withLockedValue { $0.recipientOrder.isEmpty } }

    public var isComplete: Bool {
        state.withLockedValue { state in
            if state.failure != nil || state.recipientOrder.isEmpty { return true }
            return state.producerDone && state.pending == 0
        }
    }

    /// Results per file, in sending order, and per recipient in the order given.
    public func results() -> [FileResult] {
        state.withLockedValue { state in
            state.order.flatMap { id in
                (state.results[id] ?? [:]).values.sorted { $0.recipient.id < $1.recipient.id }
            }
        }
    }
}
