/// The type of a packet: the first field of the header.
///
/// The classic numbers 1–16 keep their meaning. Types this project adds live in 64–127. Types 4096 and above belong
/// to applications: the hub relays them untouched and never interprets them.
public struct PacketType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let ping = PacketType(1)
    public static let pingResponse = PacketType(2)
    public static let requestCredentials = PacketType(3)
    public static let myCredentials = PacketType(4)
    public static let registered = PacketType(5)
    public static let hostExiting = PacketType(6)
    public static let clientData = PacketType(7)
    public static let clientDisconnecting = PacketType(8)
    public static let credentialsUpdate = PacketType(9)
    public static let close = PacketType(10)
    public static let message = PacketType(11)
    public static let messageReceived = PacketType(12)
    public static let fileStart = PacketType(13)
    public static let fileChunk = PacketType(14)
    public static let fileEnd = PacketType(15)
    public static let doneReceivingFile = PacketType(16)
    /// Receiver → sender: where a resumable transfer starts (the bytes the receiver holds from an earlier attempt).
    public static let fileResume = PacketType(17)
    /// Sender → receiver: where the chunks that follow start (the offered offset, or 0 to start over).
    public static let fileSeek = PacketType(18)

    /// An error report: a code and a human-readable text (see ``ErrorPayload``).
    public static let error = PacketType(64)
    /// A client asks the hub for one peer by name or id (see ``PeerQuery``).
    public static let peerQuery = PacketType(65)
    /// The hub's answer to a ``peerQuery`` (see ``PeerQueryResult``).
    public static let peerQueryResult = PacketType(66)
    /// A client names the peers that packets with maskTo ``MaskTo/group`` go to (see ``Recipients``).
    public static let recipients = PacketType(67)
    /// A client asks the hub's store what waits in it or what became of queued files (see ``StoreQuery``).
    public static let storeQuery = PacketType(68)
    /// The store's answer to a ``storeQuery`` (see ``StoreReport``).
    public static let storeReport = PacketType(69)
    /// A receiver tells the hub where it takes direct connections (see ``DirectHints``).
    public static let directHints = PacketType(70)
    /// A sender asks the hub to introduce it to a peer (see ``IntroductionRequest``).
    public static let introductionRequest = PacketType(71)
    /// The hub's answer: the peer's hints and a one-time ticket (see ``Introduction``).
    public static let introduction = PacketType(72)
    /// The hub tells a receiver who will connect with which ticket (see ``IntroductionNotice``).
    public static let introductionNotice = PacketType(73)
    /// The sender's first packet on a direct connection (see ``DirectHello``).
    public static let directHello = PacketType(74)
    /// The receiver admits a direct sender (see ``DirectWelcome``).
    public static let directWelcome = PacketType(75)

    /// Types reserved for applications; the hub relays them without looking inside.
    public static let applicationRange: ClosedRange<UInt16> = 4096...UInt16.max

    /// Types only the hub may send. A client that sends one gets an error back.
    public var isHubOnly: Bool {
        switch self {
        case .requestCredentials, .registered, .hostExiting, .clientData, .clientDisconnecting, .peerQueryResult,
            .error, .introduction, .introductionNotice:
            return true
        default:
            return false
        }
    }

    public var description: String {
        switch self {
        case .ping: "Ping"
        case .pingResponse: "PingResponse"
        case .requestCredentials: "RequestCredentials"
        case .myCredentials: "MyCredentials"
        case .registered: "Registered"
        case .hostExiting: "HostExiting"
        case .clientData: "ClientData"
        case .clientDisconnecting: "ClientDisconnecting"
        case .credentialsUpdate: "CredentialsUpdate"
        case .close: "Close"
        case .message: "Message"
        case .messageReceived: "MessageReceived"
        case .fileStart: "FileStart"
        case .fileChunk: "FileChunk"
        case .fileEnd: "FileEnd"
        case .doneReceivingFile: "DoneReceivingFile"
        case .fileResume: "FileResume"
        case .fileSeek: "FileSeek"
        case .error: "Error"
        case .peerQuery: "PeerQuery"
        case .peerQueryResult: "PeerQueryResult"
        case .recipients: "Recipients"
        case .storeQuery: "StoreQuery"
        case .storeReport: "StoreReport"
        case .directHints: "DirectHints"
        case .introductionRequest: "IntroductionRequest"
        case .introduction: "Introduction"
        case .introductionNotice: "IntroductionNotice"
        case .directHello: "DirectHello"
        case .directWelcome: "DirectWelcome"
        default: "Type(\(rawValue))"
        }
    }
}

/// Where a packet goes: the hub alone, one client (`idTo`), every other registered client, or the sender's group
/// (the peers its last Recipients packet named), so data for several peers crosses the sender's link once.
public enum MaskTo: UInt8, Hashable, Sendable, CustomStringConvertible {
    case hub = 0
    case client = 1
    case all = 2
    case group = 3

    public var description: String {
        switch self {
        case .hub: "hub"
        case .client: "client"
        case .all: "all"
        case .group: "group"
        }
    }
}
