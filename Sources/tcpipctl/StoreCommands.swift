import ArgumentParser
import TCPIPCLI
import TCPIPClient
import TCPIPCore
import TCPIPWire

/// What `queue` and `receipts` share: where to ask, and whose files.
struct StoreQueryOptions: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions

    @Flag(
        help: ArgumentHelp(
            "Everyone's files, not only yours (registers with role operator; with --authorized-peers the hub's line "
                + "for your key must name that role)."))
    var all = false

    func run(_ kind: StoreQuery.Kind, label: String) async throws {
        try await reportingErrors(label) {
            let logger = connection.bootstrapLogging(label: "tcpipctl")
            let configuration = try connection.configuration(role: all ? "operator" : "client")
            let entries = try await ClientSession.run(configuration, logger: logger) { session in
                try await StoreQuerying.run(kind, all: all, session: session, timeout: configuration.timeout)
            }
            for entry in entries { try StandardOutput.write(entry + "\n") }
        }
    }
}

struct Queue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "List the files waiting in the hub's store for receivers that are away, as JSON lines.",
        discussion: """
            Asks the hub's store (tcpipd --store) for the files queued with 'send-file --queue' that wait for their \
            receiver, oldest first: one JSON object per line with file (the name it was sent as), recipient, from \
            (name, key), size, sha256, queuedAt (RFC 3339, UTC), status (queued) and queuedAs (its name in the store). \
            A sender sees its own files: by key over TLS, by name on a plaintext hub; --all shows everyone's, to an \
            operator. Nothing waiting prints nothing and exits 0. A hub without a store: 69.

            \(ExitStatuses.client)
            """
    )

    @OptionGroup var options: StoreQueryOptions

    func run() async throws { try await options.run(.queue, label: "tcpipctl queue") }
}

struct Receipts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receipts",
        abstract: "Print what became of files queued in the hub's store, as JSON lines.",
        discussion: """
            Asks the hub's store (tcpipd --store) for the receipts it keeps (for tcpipd --store-receipt-max-age, 30 \
            days by default), oldest first: one JSON object per line with file, recipient, from (name, key), size, \
            sha256, queuedAt, status (delivered, refused or expired), at (when), storedAs (the name the receiver \
            stored it under, when delivered; null for a sealed file, whose name the hub does not see) and reason. A \
            sender sees its own files: by key over TLS, by name on a plaintext hub; --all shows everyone's, to an \
            operator. A hub without a store: 69.

            For cron: 'tcpipctl receipts | jq -r "select(.status != \\"delivered\\") | .file"' lists what never \
            arrived.

            \(ExitStatuses.client)
            """
    )

    @OptionGroup var options: StoreQueryOptions

    func run() async throws { try await options.run(.receipts, label: "tcpipctl receipts") }
}
