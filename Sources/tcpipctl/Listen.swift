import ArgumentParser
import NIOConcurrencyHelpers
import TCPIPCLI
import TCPIPClient
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

struct Listen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Print incoming messages to stdout, acknowledging each once it is written.",
        discussion: """
            Registers with role "listener" and prints each message as one NDJSON line: \
            {"from":{"id":…,"name":…,"key":…},"to":"me"|"all","receivedAt":RFC3339,"bytes":N,"sealed":B,"text":…} — \
            "text" when the message is valid UTF-8, "base64" otherwise; "sealed" is true when it came sealed to this \
            node's key (over TLS, from a peer with a key; an unsealed one from such a peer is refused). --raw writes only the message bytes, each followed by \
            --separator. A message is acknowledged only after it was written; when stdout is closed (| head -1) \
            listen exits 0 without acknowledging what it could not write, and it exits as soon as the reader of \
            stdout goes away, even while no message arrives.

            \(ExitStatuses.client)
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Write only the message bytes, each followed by --separator.")
    var raw = false

    @Option(
        help: ArgumentHelp(
            "With --raw: what follows each message (\\n, \\0, \\t escapes; '' for nothing).", valueName: "text"))
    var separator = "\\n"

    @Option(
        help: ArgumentHelp("Take messages only from this peer (name or id); others are refused.", valueName: "peer"),
        completion: PeerCompletion.kind)
    var from: String?

    @Option(help: ArgumentHelp("Exit 0 after this many messages.", valueName: "n"))
    var count: Int?

    @Option(
        help: ArgumentHelp("Print packets of this application type (4096–65535) instead of messages.", valueName: "n"))
    var type: UInt16?

    @Option(help: ArgumentHelp("Largest message accepted, in bytes.", valueName: "bytes"))
    var maxMessageSize = 64 << 20

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if let type, !PacketType.applicationRange.contains(type) {
            throw ValidationError("--type must be an application type from 4096 to 65535")
        }
        guard maxMessageSize > 0 else { throw ValidationError("--max-message-size must be positive") }
    }

    func run() async throws {
        try await reportingErrors("tcpipctl listen") {
            let logger = connection.bootstrapLogging(label: "tcpipctl")
            // When the reader of stdout goes away, what was written is acknowledged and listen ends (exit 0); before
            // registering there is nothing to acknowledge.
            let session = NIOLockedValueBox<PacketSender?>(nil)
            let readerGone = NIOLockedValueBox(false)
            StandardOutput.watchReader {
                readerGone.withLockedValue { $0 = true }
                guard let sender = session.withLockedValue({ $0 }) else { Glibc._exit(0) }
                sender.wake()
            }
            let configuration = try connection.configuration(role: "listener")
            let separatorBytes = Array(Self.unescape(separator).utf8)
            var request = ListenRequest()
            request.count = count
            request.applicationType = type.map { PacketType($0) }
            request.maxMessageSize = maxMessageSize
            request.stopRequested = { readerGone.withLockedValue { $0 } }
            try await ClientSession.run(configuration, logger: logger) { client in
                session.withLockedValue { $0 = client.sender }
                if readerGone.withLockedValue({ $0 }) { return }
                let session = client
                if let from { request.from = try await session.resolve(from).id }
                try await MessageListening.run(request, session: session) { message in
                    if raw {
                        var bytes = message.bytes
                        bytes.writeBytes(separatorBytes)
                        try bytes.withUnsafeReadableBytes { try StandardOutput.write(bytes: $0) }
                    } else {
                        try StandardOutput.write(line: message.json)
                    }
                }
            }
        }
    }

    static func unescape(_ text: String) -> String {
        var out = ""
        var escaping = false
        for character in text {
            if escaping {
                switch character {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "0": out.append("\0")
                case "r": out.append("\r")
                default: out.append(character)
                }
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else {
                out.append(character)
            }
        }
        if escaping { out.append("\\") }
        return out
    }
}
