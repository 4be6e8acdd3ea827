import ArgumentParser
import FoundationEssentials
import TCPIPCLI
import TCPIPClient
import TCPIPCore
import TCPIPWire

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send stdin (or --message) as a message to peers, and wait for their receipts.",
        discussion: """
            Reads stdin to its end and sends it as one message, streamed as it is read (never loaded whole). Each \
            recipient acknowledges the message once it has handed it on (written to its stdout, or stored by a \
            receiver daemon); send exits 0 only when every recipient did so within --timeout.

            --lines sends each line of stdin as its own message as soon as the line arrives (for tail -F pipelines), \
            in order, with receipts pipelined. --all sends to every connected listener and receiver.

            0 means every recipient acknowledged. A message larger than --max-message-size is 65 (use send-file); one \
            larger than a recipient takes is refused by it (too-large, 77).

            When the receiver is away: with --queue (or TCPIP_QUEUE=1) a message for a receiver that is not \
            connected goes to the hub's store (tcpipd --store), which delivers it when the receiver connects; the \
            receiver stores it as any message. It reports status queued and send exits 0. Only a receiver the store \
            knows can be queued for (68 otherwise); the message is read whole first (up to --max-message-size). \
            --queue takes one --to, without --all, --lines, --type, --no-wait or --wait-for-peer; TCPIP_QUEUE=1 \
            applies only where --queue could.

            Over TLS each recipient's key is checked first: the key it proved the first time is remembered in \
            known_peers (state directory; a warning says so), and a recipient whose key changed under that name is \
            refused with 77, both IDs named, before anything is sent. --to-key ID pins the key explicitly instead. \
            Then messages are sealed end to end to each recipient's key (one session per recipient) and only it \
            can read them; a message the hub changed is refused by its recipient (77). A recipient that proves no \
            key (a classic client) gets its own copy unsealed; one whose record names a key without a public key to \
            seal to is refused (77, nothing sent; with --all too, as long as such a peer is connected). A queued \
            message is sealed to the key the hub's store saw the receiver register with (checked against the same \
            pins).

            \(ExitStatuses.client)
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(
        name: .long, help: ArgumentHelp("A recipient: a peer name or id. Repeat for several.", valueName: "peer"),
        completion: PeerCompletion.kind)
    var to: [String] = []

    @Option(
        name: .customLong("to-key"),
        help: ArgumentHelp(
            "A key ID each recipient must prove (repeatable), instead of the one known_peers remembers for its name.",
            valueName: "id"))
    var toKey: [String] = []

    @Flag(help: "Send to every connected peer whose role is listener, receiver or classic.")
    var all = false

    @Option(
        name: [.customShort("m"), .long],
        help: ArgumentHelp("Send this text instead of reading stdin.", valueName: "text"))
    var message: String?

    @Flag(help: "Send each line of stdin as its own message, as soon as it arrives.")
    var lines = false

    @Flag(help: "Do not wait for receipts: exit once the hub has taken the message.")
    var noWait = false

    @Flag(
        help: ArgumentHelp(
            "If the recipient is not connected, queue the message in the hub's store for it (or set TCPIP_QUEUE=1)."))
    var queue = false

    @Flag(help: "Print one JSON summary line per recipient to stdout.")
    var json = false

    @Option(help: ArgumentHelp("Largest message, in bytes.", valueName: "bytes"))
    var maxMessageSize = 64 << 20

    @Option(help: ArgumentHelp("Wait up to this long for the recipients to join.", valueName: "seconds"))
    var waitForPeer: Double?

    @Option(
        help: ArgumentHelp(
            "Send stdin as raw packets of this application type (4096–65535) instead of messages; no receipts.",
            valueName: "n"))
    var type: UInt16?

    func validate() throws {
        if to.isEmpty && !all { throw ValidationError("say who to send to: --to PEER (repeatable) or --all") }
        if !to.isEmpty && all { throw ValidationError("--to and --all cannot be used together") }
        if message != nil && lines { throw ValidationError("--message and --lines cannot be used together") }
        if queue && !queueable {
            throw ValidationError(
                "--queue takes one --to, without --all, --lines, --type, --no-wait or --wait-for-peer")
        }
        guard maxMessageSize > 0 else { throw ValidationError("--max-message-size must be positive") }
        if let waitForPeer, !(waitForPeer >= 0 && waitForPeer.isFinite) {
            throw ValidationError("--wait-for-peer must be 0 or more seconds")
        }
        if let type, !PacketType.applicationRange.contains(type) {
            throw ValidationError("--type must be an application type from 4096 to 65535")
        }
        if message == nil && InputReader().isTerminal {
            throw ValidationError("stdin is a terminal: pipe something in, or use --message TEXT")
        }
    }

    func run() async throws {
        // stdin is read from the start, while the session connects and registers.
        let reader = message == nil ? InputReader.prefetching() : InputReader()
        try await reportingErrors("tcpipctl send") {
            let logger = connection.bootstrapLogging(label: "tcpipctl")
            var configuration = try connection.configuration(role: "client")
            // Waiting for a peer listens to the hub's join notices instead of asking again and again.
            if all { configuration.flags.insert(.wantsRoster) }
            if waitForPeer != nil { configuration.flags.insert(.wantsUpdates) }
            var request = SendRequest(source: message.map { .text($0) } ?? (lines ? .lines(reader) : .stream(reader)))
            request.recipients = to
            request.all = all
            request.noWait = noWait
            request.checkRecipient = try connection.recipientCheck(
                toKeys: toKey, command: "send", hub: configuration.server)
            request.maxMessageSize = maxMessageSize
            request.timeout = configuration.timeout
            request.waitForPeer = waitForPeer.map { .milliseconds(Int64($0 * 1000)) }
            request.applicationType = type.map { PacketType($0) }
            let queueFor = queueing ? to.first : nil
            // With receipts, the hub has read all that matters once they are in: no need to wait for its close.
            let results = try await ClientSession.run(
                configuration, logger: logger, lookingUp: pipelinedLookups, acknowledged: !noWait && type == nil
            ) { session in
                // An absent receiver: the whole message goes to the hub's store.
                if let queueFor, try await session.lookUp(queueFor) == nil {
                    let bytes: [UInt8]
                    if let message {
                        bytes = Array(message.utf8)
                        guard bytes.count <= maxMessageSize else {
                            throw TCPIPError(
                                .dataError, "the message is larger than --max-message-size (\(maxMessageSize) bytes)")
                        }
                    } else {
                        guard let read = try await MessageQueueing.read(reader, limit: maxMessageSize) else {
                            throw TCPIPError(
                                .dataError, "the message is larger than --max-message-size (\(maxMessageSize) bytes)")
                        }
                        bytes = read
                    }
                    let started = WireClock.now()
                    let queued = try await MessageQueueing.run(
                        bytes, to: queueFor, session: session, timeout: configuration.timeout,
                        check: request.checkRecipient)
                    var result = DeliveryResult(peer: queued.recipient, startedAt: started)
                    result.bytes = UInt64(bytes.count)
                    result.messages = queued.exitStatus == 0 ? 1 : 0
                    result.finishedAt = queued.finishedAt
                    result.reason = queued.reason
                    result.queued = queued
                    return [result]
                }
                return try await MessageSending.run(request, session: session)
            }
            for result in results {
                if json { try StandardOutput.write(line: Self.summary(result)) }
                if result.exitStatus == 0, let warning = result.warning {
                    StandardOutput.error("tcpipctl send: \(escapedForLog(result.peer.name)): \(escapedForLog(warning))")
                }
                if result.exitStatus != 0 {
                    StandardOutput.error(
                        "tcpipctl send: \(escapedForLog(result.peer.name)): \(result.statusText)"
                            + (result.reason.map { " (\(escapedForLog($0)))" } ?? ""))
                }
            }
            let status = combinedExitStatus(results.map(\.exitStatus))
            if status != 0 { throw ExitCode(status) }
        }
    }

    /// `--queue`, or TCPIP_QUEUE=1 in the environment where it applies (one recipient, one whole message).
    var queueing: Bool { queueable && connection.queueing(flag: queue) }

    var queueable: Bool { to.count == 1 && !all && !lines && type == nil && !noWait && waitForPeer == nil }

    static func summary(_ result: DeliveryResult) -> JSON {
        var fields: [(String, JSON)] = [
            ("to", .object([("id", .int(Int64(result.peer.id))), ("name", .string(result.peer.name))])),
            ("status", .string(result.statusText)),
            ("messages", .int(Int64(result.messages))),
            ("bytes", .int(Int64(result.bytes))),
            ("ms", .double(Double((result.finishedAt ?? result.startedAt) - result.startedAt) / 1000)),
        ]
        if let reason = result.reason { fields.append(("error", .string(reason))) }
        if let warning = result.warning { fields.append(("warning", .string(warning))) }
        return .object(fields)
    }

    /// The recipients to look up while registering. Not when waiting for them to join: an answer from registration
    /// time would be stale by the time it is used, and their join notices may have gone by meanwhile.
    var pipelinedLookups: [String] { waitForPeer == nil ? to : [] }
}
