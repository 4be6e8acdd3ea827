import NIOCore
import TCPIPCore
import TCPIPWire

/// What the receiver daemon accepts and where it puts it.
public struct ReceiverConfiguration: Sendable {
    public var spool: Spool
    /// Peer names or ids allowed to send; empty allows everyone.
    public var allowFrom: [String] = []
    /// Take files from clients of the hub's classic listener (`--accept-classic`): off by default, because their wire
    /// proves no key (anyone who reaches the classic port can use any free name) and carries no digest (only the size
    /// is checked).
    public var acceptClassic = false
    /// Why a sender (its record from the hub) is not believed to be who it says, or nil: its key against the one this
    /// node remembered for its name (`known_peers`, set by tcpiprecvd). Files and messages from it are refused.
    public var senderProblem: (@Sendable (PeerRecord) -> String?)?
    /// This receiver's key: files sealed to it are opened, and files from a peer that proved a key must be sealed.
    public var sealing: SealingKey?
    /// Largest file accepted, in bytes.
    public var maxFileSize: UInt64?
    /// Bytes that must stay free on the spool's file system after a file is stored.
    public var minFreeSpace: UInt64 = 0
    /// Largest chunk (original bytes) accepted, whatever a sender announces: the bound for inflating.
    public var maxChunkSize = 4 << 20
    /// Largest message stored.
    public var maxMessageSize = Self.defaultMaxMessageSize
    public static let defaultMaxMessageSize = 64 << 20
    /// Store every file, even one already stored under the same sent name with the same SHA-256.
    public var alwaysStore = false
    /// Transfers one sender may have open at once (each holds a file descriptor): a hostile sender cannot take them
    /// all. Ours sends one file at a time.
    public var maxTransfersPerSender = 16
    /// Transfers open at once, from everyone.
    public var maxTransfers = 256

    /// How long the partial file of a resumable transfer that broke off is kept for its sender to come back.
    public var partialMaxAge: Duration = .seconds(3 * 86400)
    /// Where to take direct transfers (port 0: any free port), or nil for none (`--direct-listen`).
    public var directListen: SocketAddress?

    public init(spool: Spool) { self.spool = spool }

    /// Whether `allowFrom` lets peer `from` (record `sender`, if known) send.
    func allows(_ from: UInt32, _ sender: PeerRecord?) -> Bool {
        allowFrom.isEmpty
            || allowFrom.contains { entry in
                // A key ID matches only the key the sender proved over TLS; a name or number matches what it says.
                if let id = NodeID(entry) { return sender?.keyID == id }
                return entry == String(from) || entry == sender?.name
            }
    }

    /// The limits and questions the transfer state machine works with.
    func policy(receiverName: String, index: SpoolIndex?) -> TransferMachine.Policy {
        var policy = TransferMachine.Policy()
        policy.allows = { [self] in allows($0, $1) }
        policy.maxFileSize = maxFileSize
        policy.maxMessageSize = maxMessageSize
        policy.maxChunkSize = maxChunkSize
        policy.maxTransfersPerSender = maxTransfersPerSender
        policy.maxTransfers = maxTransfers
        if let index {
            policy.alreadyStored = { sentAs, sha256 in index.stored(sentAs: sentAs, sha256: sha256) }
            policy.storedLike = { sentAs, size in
                index.stored(sentAs: sentAs, size: size).flatMap { found in
                    [UInt8](hex: found.sha256).map { ($0, found.storedAs) }
                }
            }
        }
        policy.spaceProblem = { [self] in spaceProblem(for: $0) }
        policy.receiverName = receiverName
        policy.takesClassic = acceptClassic
        policy.senderProblem = senderProblem
        policy.sealingKey = sealing
        return policy
    }

    /// Why `bytes` more would not fit within `minFreeSpace`, or nil when they would (or the space is unknown).
    func spaceProblem(for bytes: UInt64) -> String? {
        guard let free = spool.freeBytes() else { return nil }
        let (needed, overflow) = bytes.addingReportingOverflow(minFreeSpace)
        guard overflow || free < needed else { return nil }
        return "not enough free space on the receiver: \(free) bytes free, \(overflow ? UInt64.max : needed) needed"
    }
}
