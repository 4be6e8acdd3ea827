import ArgumentParser
import FoundationEssentials
import NIOConcurrencyHelpers
import TCPIPCLI
import TCPIPClient
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

struct SendFile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send-file",
        abstract: "Send files to receivers and wait until each has verified and stored them.",
        discussion: """
            Streams each FILE in chunks (constant memory, whatever the size), hashing it with SHA-256 on the way; the \
            receiver checks size and hash, syncs the file and publishes it without replacing anything, and only then \
            confirms. send-file exits 0 only when every file was confirmed by every recipient. "-" reads stdin (name \
            it with --as). Names after -- are files whatever they look like, and are taken as they are: \
            send-file --to archive -- *.log is as fast with 10,000 names as --files-from.

            Cron jobs that retry: a receiver that already stored a file (same name sent, same SHA-256, still in its \
            spool) answers already-stored before it crosses again, so a job that failed half-way can simply run \
            again (a file under 4 MiB is hashed before it is sent; a larger one to one receiver is checked against \
            the stored file of the same name and size; stdin is always stored). An input that cannot be read does \
            not stop the others: each is reported (status unreadable, 66) and the rest are sent; --all-or-nothing \
            sends nothing unless every input can be read.

            Point to point: to a single receiver that listens for direct transfers (tcpiprecvd --direct-listen), \
            the hub only introduces the two and the file goes straight to the receiver, TLS with both keys pinned \
            when the hub link is TLS; when the receiver cannot be reached within 1.5 s, or the link breaks, the \
            rest goes through the hub (a large file resumes). --json says which in "path" ("direct" or "relay").

            0 means every file was stored by every recipient (or was already stored); otherwise the exit status is \
            the most severe of the files' (a failure to fix outranks one a retry may cure, 75). A recipient that is \
            not a receiver (a listener, a plain client) is refused at once with 77, before anything is sent.

            When the receiver is away: with --queue (or TCPIP_QUEUE=1) a receiver that is not connected gets the \
            files through the hub's store (tcpipd --store), which holds them, verified and synced, until it \
            connects; each file then reports status queued and send-file exits 0. Only a receiver the hub's store \
            knows can be queued for (68 otherwise), and a full store refuses with 73 before the file is sent. \
            Without --queue an absent receiver is 68, as always. 'tcpipctl receipts' shows later what became of \
            queued files.

            Over TLS each recipient's key is checked first: the key it proved the first time is remembered in \
            known_peers (state directory; a warning says so), and a recipient whose key changed under that name is \
            refused with 77, both IDs named, before anything is sent. --to-key ID pins the key explicitly instead. \
            Then each file is sealed end to end to the receivers' keys and signed with this node's (the hub relays \
            what it cannot read; a file it changed is refused by the receiver, 65). A recipient whose record \
            names a key but brings no public key to seal to is refused (77), and a classic client cannot be sent \
            the same files as receivers with keys (64: send its files separately). Queued files are sealed to the \
            key the hub's store saw the receiver register with (checked against the same pins): a receiver that \
            never connected with its key while the store was on cannot be queued for yet (77).

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

    @Argument(help: ArgumentHelp("Files to send (directories with -r); - for stdin.", valueName: "file"))
    var named: [String] = []

    /// The names after `--`, which need no parsing: `Tcpipctl.main` takes them out of the arguments before the parser
    /// sees them (swift-argument-parser 1.8 takes time quadratic in the number of positional values: 10,000 names cost
    /// 2.3 s). Set once, before parsing.
    nonisolated(unsafe) static var afterDoubleDash: [String] = []

    /// Every file named on the command line, in order.
    var files: [String] { named + Self.afterDoubleDash }

    @Flag(
        name: [.customShort("r"), .long],
        help: ArgumentHelp(
            "Send directories as trees: each file under its path relative to the directory's parent (to the "
                + "directory itself when it ends with /). The receiver recreates the tree inside its spool."))
    var recursive = false

    @Flag(help: "With -r: follow symbolic links inside directories (by default they are skipped).")
    var followSymlinks = false

    @Option(
        help: ArgumentHelp(
            "Also send the files named in this list, one per line (- reads the list from stdin). For long lists; "
                + "or put the names after -- (thousands of names before it parse slowly).",
            valueName: "list"),
        completion: .file())
    var filesFrom: String?

    @Flag(name: [.customShort("0"), .customLong("null")], help: "Names in --files-from end with NUL (find -print0).")
    var null = false

    @Option(
        name: .customLong("as"),
        help: ArgumentHelp("The name to store a single file (or stdin) under.", valueName: "name"))
    var storeAs: String?

    @Flag(help: "Compress each chunk with zlib; chunks that do not shrink go raw.")
    var compress = false

    @Option(help: ArgumentHelp("zlib level for --compress (1 fastest … 9 smallest).", valueName: "level"))
    var compressLevel: Int32 = 1

    @Option(help: ArgumentHelp("Bytes per chunk.", valueName: "bytes"))
    var chunkSize = 512 << 10

    @Option(help: ArgumentHelp("Wait up to this long for the recipients to join.", valueName: "seconds"))
    var waitForPeer: Double?

    @Flag(
        help: ArgumentHelp(
            "If the recipient is not connected, queue the files in the hub's store for it (or set TCPIP_QUEUE=1). "
                + "One --to only."))
    var queue = false

    @Option(
        help: ArgumentHelp(
            "auto: to a single receiver, point to point when the hub can introduce it and it answers, through the "
                + "hub otherwise (env TCPIP_DIRECT); never: always through the hub; only: point to point or fail (75).",
            valueName: "mode"))
    var direct: DirectMode?

    @Flag(help: "Print one JSON line per file and recipient to stdout.")
    var json = false

    @Option(
        help: ArgumentHelp("Progress on stderr: auto (when stderr is a terminal), always, never.", valueName: "when"))
    var progress: ProgressMode = .auto

    @Flag(help: "Delete each local file once every recipient has confirmed it.")
    var removeSourceFiles = false

    @Flag(
        help: ArgumentHelp(
            "Send nothing if any input cannot be read (66). Without it, what can be read is sent and each input that "
                + "cannot is reported; the exit status is then the most severe."))
    var allOrNothing = false

    @Flag(
        help: ArgumentHelp(
            "Send nothing: check that every recipient is connected and takes files, and print one JSON line per file "
                + "and recipient with status would-send (or unreadable)."))
    var dryRun = false

    /// `--queue`, or TCPIP_QUEUE=1 in the environment; either only with one recipient (TCPIP_QUEUE does not turn a
    /// command for several into a usage error).
    var queueing: Bool { to.count == 1 && connection.queueing(flag: queue) }

    /// `--direct`, else TCPIP_DIRECT, else auto.
    func directMode(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DirectMode {
        if let direct { return direct }
        guard let text = environment["TCPIP_DIRECT"], !text.isEmpty else { return .auto }
        guard let mode = DirectMode(rawValue: text) else {
            throw TCPIPError.usage("TCPIP_DIRECT must be auto, never or only, not '\(escapedForLog(text))'")
        }
        return mode
    }

    enum ProgressMode: String, ExpressibleByArgument, CaseIterable {
        case auto, always, never
    }

    func validate() throws {
        if to.isEmpty { throw ValidationError("say who to send to: --to PEER (repeatable)") }
        if queue && to.count > 1 { throw ValidationError("--queue takes one --to") }
        if direct == .only && to.count > 1 {
            throw ValidationError("--direct only takes one --to (several receivers share one upload through the hub)")
        }
        if files.isEmpty && filesFrom == nil {
            throw ValidationError("name at least one file, or - for stdin, or --files-from LIST")
        }
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("stdin (-) can be sent only once") }
        if filesFrom == "-" && files.contains("-") {
            throw ValidationError("stdin cannot be both the file list (--files-from -) and a file (-)")
        }
        if null && filesFrom == nil { throw ValidationError("--null describes --files-from: give both") }
        if files.contains("-") && storeAs == nil { throw ValidationError("name stdin with --as NAME") }
        if storeAs != nil && (files.count > 1 || filesFrom != nil || recursive) {
            throw ValidationError("--as names a single file")
        }
        if followSymlinks && !recursive { throw ValidationError("--follow-symlinks describes -r: give both") }
        if let storeAs, let problem = SpoolName.problem(with: storeAs) { throw ValidationError("--as: \(problem)") }
        guard (1...9).contains(compressLevel) else { throw ValidationError("--compress-level must be 1 to 9") }
        let maxChunk = FrameParser.defaultMaxPayloadSize - FileChunk.headerSize
        guard (1...maxChunk).contains(chunkSize) else {
            throw ValidationError("--chunk-size must be 1 to \(maxChunk) bytes")
        }
        if let waitForPeer, !(waitForPeer >= 0 && waitForPeer.isFinite) {
            throw ValidationError("--wait-for-peer must be 0 or more seconds")
        }
    }

    func run() async throws {
        try await reportingErrors("tcpipctl send-file") {
            let logger = connection.bootstrapLogging(label: "tcpipctl")
            var configuration = try connection.configuration(role: "client")
            // Waiting for the receiver listens to the hub's join notices instead of asking again and again.
            if waitForPeer != nil { configuration.flags.insert(.wantsUpdates) }
            let listed =
                try filesFrom.map {
                    // One name per line (or per NUL); empty entries are skipped.
                    try readContents(of: $0, label: "", stdinDash: true).split(separator: null ? 0 : 10)
                        .map { String(decoding: $0, as: UTF8.self) }
                } ?? []
            // An empty list is nothing to do, not an error: `find … -newer STAMP | send-file --files-from -` in cron.
            if files.isEmpty && listed.isEmpty { return }
            let warn: (String) -> Void = { if !connection.quiet { StandardOutput.error("tcpipctl send-file: \($0)") } }
            var sources: [FileSendRequest.Source] = []
            for path in files {
                if path == "-" {
                    sources.append(FileSendRequest.Source(path: nil, name: storeAs ?? "stdin"))
                } else {
                    sources += FileSendRequest.Source.expand(
                        [path], recursive: recursive, followingSymlinks: followSymlinks, keepingRelativePaths: false,
                        warn: warn)
                }
            }
            // The list keeps the relative paths it names: `find outbox -type f | send-file --files-from -` sends
            // outbox/… as a tree.
            sources += FileSendRequest.Source.expand(
                listed, recursive: recursive, followingSymlinks: followSymlinks, keepingRelativePaths: true, warn: warn)
            if let storeAs, sources.count == 1 { sources[0].name = storeAs }
            var request = FileSendRequest(sources: sources, recipients: to)
            request.compressionLevel = compress ? compressLevel : nil
            request.chunkSize = chunkSize
            request.checkRecipient = try connection.recipientCheck(
                toKeys: toKey, command: "send-file", hub: configuration.server)
            request.timeout = configuration.timeout
            request.queue = queueing
            request.direct = try directMode()
            request.waitForPeer = waitForPeer.map { .milliseconds(Int64($0 * 1000)) }
            if progress == .always || (progress == .auto && isatty(2) == 1) {
                request.progress = ProgressPrinter().update
            }
            let descriptors = try request.openInputs(allOrNothing: allOrNothing)
            if dryRun {
                defer { for case .success(let fd) in descriptors where fd > 0 { close(fd) } }
                let lookups = pipelinedLookups
                let recipients = try await ClientSession.run(configuration, logger: logger, lookingUp: lookups) {
                    session in
                    try await FileSending.resolveReceivers(request, session: session)
                }
                var statuses: [Int32] = []
                for (source, input) in zip(sources, descriptors) {
                    for peer in recipients {
                        try StandardOutput.write(line: Self.dryRunLine(source, input, peer))
                    }
                    if case .failure(let error) = input {
                        StandardOutput.error("tcpipctl send-file: \(escapedForLog(error.message))")
                        statuses.append(error.exitStatus)
                    }
                }
                let status = combinedExitStatus(statuses)
                if status != 0 { throw ExitCode(status) }
                return
            }
            let lookups = pipelinedLookups
            let results = try await ClientSession.run(configuration, logger: logger, lookingUp: lookups) { session in
                try await FileSending.run(request, descriptors: descriptors, session: session, logger: logger)
            }
            for result in results {
                if json { try StandardOutput.write(line: Self.summary(result)) }
                if result.exitStatus != 0 {
                    StandardOutput.error(
                        "tcpipctl send-file: \(escapedForLog(result.name)) to \(escapedForLog(result.recipient.name)): "
                            + "\(result.status.rawValue)" + (result.reason.map { " (\(escapedForLog($0)))" } ?? ""))
                }
            }
            if removeSourceFiles {
                // A file goes only when every recipient stored it.
                var stored: [String: Bool] = [:]
                for result in results {
                    if let path = result.path {
                        let kept = [.stored, .alreadyStored, .queued].contains(result.status)
                        stored[path, default: true] = stored[path, default: true] && kept
                    }
                }
                for (path, everywhere) in stored where everywhere {
                    if unlink(path) != 0 {
                        StandardOutput.error(
                            "tcpipctl send-file: cannot remove \(path): \(String(cString: strerror(errno)))")
                    }
                }
            }
            let status = combinedExitStatus(results.map(\.exitStatus))
            if status != 0 { throw ExitCode(status) }
        }
    }

    static func dryRunLine(_ source: FileSendRequest.Source, _ input: Result<Int32, TCPIPError>, _ peer: PeerRecord)
        -> JSON
    {
        var size: JSON = .null
        var info = stat()
        if case .success(let fd) = input, fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
            size = .int(Int64(info.st_size))
        }
        var error: JSON = .null
        if case .failure(let failure) = input { error = .string(failure.message) }
        return .object([
            ("name", .string(source.name)), ("path", source.path.map { .string($0) } ?? .null),
            ("to", .object([("id", .int(Int64(peer.id))), ("name", .string(peer.name))])),
            ("status", .string(error == .null ? "would-send" : "unreadable")), ("bytes", size), ("error", error),
        ])
    }

    static func summary(_ result: FileResult) -> JSON {
        var fields: [(String, JSON)] = [
            ("name", .string(result.name)),
            ("to", .object([("id", .int(Int64(result.recipient.id))), ("name", .string(result.recipient.name))])),
            ("status", .string(result.status.rawValue)),
            ("bytes", .int(Int64(result.bytes))), ("wireBytes", .int(Int64(result.wireBytes))),
            ("resumedFrom", .int(Int64(result.resumedFrom))),
            (
                "ratio",
                .double(
                    // Of what crossed this time: bytes resumed did not.
                    result.bytes <= result.resumedFrom
                        ? 1
                        : (Double(result.wireBytes) / Double(result.bytes - result.resumedFrom) * 1000).rounded()
                            / 1000)
            ),
            ("sha256", .string(result.sha256)),
            ("storedAs", result.storedAs.map { .string($0) } ?? .null),
            ("ms", .double(Double((result.finishedAt ?? result.startedAt) - result.startedAt) / 1000)),
            ("path", .string(result.route.rawValue)),
        ]
        fields.append(("error", result.reason.map { .string($0) } ?? .null))
        return .object(fields)
    }

    /// The recipients to look up while registering. Not when waiting for them to join: an answer from registration
    /// time would be stale by the time it is used, and their join notices may have gone by meanwhile.
    var pipelinedLookups: [String] { waitForPeer == nil ? to : [] }
}

/// Bytes, rate and ETA per file on stderr, redrawn at most five times a second. The rate is this file's, from its
/// first report: bytes a resume did not send again (the first report starts there) do not count as speed.
final class ProgressPrinter: Sendable {
    private struct Base {
        var name = ""
        var since: WireTime = 0
        var bytes: UInt64 = 0
    }
    private let lastDrawn = NIOLockedValueBox<WireTime>(0)
    private let base = NIOLockedValueBox(Base())

    func update(_ name: String, _ bytes: UInt64, _ total: UInt64?, _ done: Bool) {
        let now = WireClock.now()
        let from = base.withLockedValue { base in
            if base.name != name || base.since == 0 { base = Base(name: name, since: now, bytes: bytes) }
            return base
        }
        let seconds = max(Double(now - from.since) / 1e6, 0.001)
        let due = lastDrawn.withLockedValue { last in
            guard done || now >= last + 200_000 else { return false }
            last = now
            return true
        }
        guard due else { return }
        let rate = Double(bytes &- min(bytes, from.bytes)) / seconds
        var line = "\r\u{1B}[K\(escapedForLog(name))  \(Self.size(Double(bytes)))"
        if let total { line += " / \(Self.size(Double(total)))" }
        line += "  \(Self.size(rate))/s"
        if let total, rate > 0, !done { line += "  ETA \(Int((Double(total) - Double(bytes)) / rate))s" }
        if done { line += "\n" }
        StandardOutput.error(line, newline: false)
    }

    static func size(_ bytes: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = bytes
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(Int(value)) B" : "\(Int(value)).\(Int(value * 10) % 10) " + units[unit]
    }
}

extension DirectMode: ExpressibleByArgument {}
