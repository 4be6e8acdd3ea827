import ArgumentParser
import FoundationEssentials
import Logging
import NIOCore
import ServiceLifecycle
import TCPIPCLI
import TCPIPCore
import TCPIPReceiver
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

@main
struct Tcpiprecvd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcpiprecvd",
        abstract: "The receiver daemon: lands incoming files and messages in a spool directory.",
        discussion: """
            Registers with the hub as role "receiver" and stays connected, reconnecting with exponential backoff and \
            jitter when the hub goes away. Each file is written to a temporary file under SPOOL/.tcpip/tmp, checked \
            (size and SHA-256) when it ends, synced, and published as SPOOL/NAME without ever replacing a file (a \
            clash gets NAME.1, NAME.2, …); only then is the sender told it is stored. A file of a tree lands as \
            SPOOL/DIR/NAME, its directories created inside the spool without following links. A metadata record lands \
            in SPOOL/.tcpip/meta/NAME.json (meta/DIR.d/NAME.json for a tree). A file sent again under the same name \
            with the same SHA-256, while it is still in the spool, is acknowledged as already stored, not stored \
            twice (--always-store stores it again). Messages land as SPOOL/message-TIME-FROMID-MSGID-FROM.txt. Entries whose names \
            start with a dot are the daemon's own: consumers ignore them.

            A file of 4 MiB or more sent to this receiver alone is resumable: when its transfer breaks off (the \
            sender, the hub or this daemon killed, the link cut), what arrived stays in SPOOL/.tcpip/partial, and when \
            the same sender sends the same file again (same name, size and SHA-256) the receiver offers what it holds; \
            the sender checks that prefix against its file and sends only the rest (or everything, if it differs). \
            The whole file is still checked before it is published. Partial files nobody comes back for are removed \
            once older than --partial-max-age (at start-up and when a resumable transfer starts). On a hub without \
            TLS a partial file is tied to the sender's name, which any peer the hub lets in can register.

            One daemon per spool: it holds SPOOL/.tcpip/lock while it runs, and a second one on the same spool exits \
            73 at once, naming the holder's PID, without touching anything. Published files get mode 0640 (less the \
            umask): readable by the daemon's group. While its name is taken by another peer (a restart race: the hub \
            drops a vanished predecessor within three heartbeats), it retries for --name-wait seconds, then exits 75.

            SIGTERM or SIGINT: new transfers are refused (the sender hears 75, retry), running ones may finish for \
            --grace seconds, what is left is removed (a resumable transfer's partial file is kept for its sender), \
            and the daemon exits 0. In every other state (connecting, \
            waiting to reconnect, idle) it exits at once.

            Direct transfers: the daemon listens for senders the hub introduces (--direct-listen; by default with \
            TLS on every address at a free port, without TLS on 127.0.0.1 only) and tells the hub where; the hub \
            gives those hints only to a sender it introduces, with a one-time ticket. A connection that does not \
            present a live ticket (over TLS: from the key the hub vouched for) within 5 s is closed. A direct sender \
            is treated exactly as one through the hub (--allow-from, limits, resume, records).

            Across machines the link to the hub is TLS 1.3 with the hub's key pinned (--hub-id, or known_hubs in the \
            state directory); the receiver proves its own key, whose ID ('tcpiprecvd id') the hub's operator puts in \
            --authorized-peers with the receiver's name. --allow-from then also takes senders' key IDs, which only \
            the key's holder can prove (a name alone can be registered by anyone the hub lets in). Senders are \
            pinned as senders pin receivers: the key a sender proved the first time is remembered in known_peers \
            (state directory), and files and messages under its name with another key, or none, are refused (the \
            sender exits 77) until that line is removed. Files and messages from peers with keys come sealed to this \
            receiver's key and signed by the sender's: each is opened and its signature checked before it is \
            published (records say "sealed":true and "signedBy"); one that does not open, or an unsealed one from \
            a peer that proved a key, is refused and nothing is published.

            \(ExitStatuses.receiver)
            """,
        version: tcpipVersion,
        subcommands: [ShowID.self]
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(help: ArgumentHelp("The spool directory (created if missing; required to run).", valueName: "dir"))
    var spool: String?

    @Option(
        help: ArgumentHelp(
            "After each file is stored, run this command (split on spaces, no shell; checked at start-up); TCPIP_FILE, "
                + "TCPIP_NAME, TCPIP_FROM, TCPIP_FROM_ID, TCPIP_SHA256, TCPIP_SIZE are set.", valueName: "command"))
    var exec: String?

    @Option(help: ArgumentHelp("Hooks running at once.", valueName: "n"))
    var execJobs = 4

    @Option(
        name: .customLong("allow-from"),
        help: ArgumentHelp(
            "Take files and messages only from this peer (name, id, or key ID: only a key ID is proof); repeatable.",
            valueName: "peer"))
    var allowFrom: [String] = []

    @Flag(
        name: .customLong("accept-classic"),
        help: ArgumentHelp(
            "Take files from clients of the hub's classic listener (tcpipd --classic-listen). Off by default: their "
                + "wire proves no key and carries no digest, so only the size is checked."))
    var acceptClassic = false

    @Option(help: ArgumentHelp("Refuse files larger than this many bytes.", valueName: "bytes"))
    var maxFileSize: UInt64?

    @Option(help: ArgumentHelp("Refuse a file when fewer than this many bytes would stay free.", valueName: "bytes"))
    var minFreeSpace: UInt64 = 0

    @Flag(
        help: ArgumentHelp(
            "Store every file, even one already in the spool under the name it was sent as with the same SHA-256 "
                + "(by default that is acknowledged as already-stored and not stored twice)."))
    var alwaysStore = false

    @Option(
        help: ArgumentHelp(
            "Seconds to keep the partial file of a resumable transfer that broke off, counted from its last write "
                + "(default 3 days, 60 at least); older ones are removed at start-up and whenever a resumable "
                + "transfer starts.",
            valueName: "seconds"))
    var partialMaxAge: Double = 259_200

    @Option(help: ArgumentHelp("Seconds running transfers may take to finish on SIGTERM.", valueName: "seconds"))
    var grace: Double = 10

    @Option(
        help: ArgumentHelp(
            "While the name is taken by another peer, retry for this long, then exit 75.", valueName: "seconds"))
    var nameWait: Double = 60

    @Option(help: ArgumentHelp("text or json.", valueName: "format"))
    var logFormat: LogFormat = .text

    @Option(
        help: ArgumentHelp(
            "Take files point to point from senders the hub introduces: ADDR:PORT (port 0: any free port), auto "
                + "(with TLS every address, any free port; without TLS 127.0.0.1 only) or off.",
            valueName: "addr:port"))
    var directListen = "auto"

    func validate() throws {
        guard execJobs > 0 else { throw ValidationError("--exec-jobs must be at least 1") }
        guard grace >= 0, grace.isFinite else { throw ValidationError("--grace must be 0 or more seconds") }
        guard nameWait >= 0, nameWait.isFinite else { throw ValidationError("--name-wait must be 0 or more seconds") }
        guard partialMaxAge >= 60, partialMaxAge <= 10 * 365 * 86400 else {
            throw ValidationError("--partial-max-age must be from 60 seconds to 10 years")
        }
        if let exec, HookRunner.split(exec).isEmpty { throw ValidationError("--exec is empty") }
    }

    /// Where `--direct-listen` says to listen: nil for off. A plaintext listener off loopback needs
    /// --insecure-plaintext, like a plaintext hub.
    func directAddress(tls: Bool) throws -> SocketAddress? {
        switch directListen {
        case "off":
            return nil
        case "auto":
            return try SocketAddress(ipAddress: tls ? "0.0.0.0" : "127.0.0.1", port: 0)
        default:
            guard let (host, port) = Direct.split(directListen),
                let address = try? SocketAddress(ipAddress: host, port: Int(port))
            else {
                throw TCPIPError.usage(
                    "--direct-listen takes ADDR:PORT with an IP address ([::]:PORT for IPv6), auto or off")
            }
            if !tls && !connection.insecurePlaintext && !HostPort(host: host, port: Int(port)).isLoopback {
                throw TCPIPError.usage(
                    "--direct-listen \(directListen) is not on loopback and the hub link has no TLS: anyone on the "
                        + "path could read the files; use a TLS hub (--hub-id), or --insecure-plaintext")
            }
            return address
        }
    }

    func run() async throws {
        try await reportingErrors("tcpiprecvd") {
            StandardOutput.ignoreSIGPIPE()
            // Past a file-size limit (ulimit -f) a write then fails with EFBIG, which becomes a storage-failed
            // receipt for that file, instead of SIGXFSZ killing the daemon and every transfer with it.
            _ = signal(SIGXFSZ, SIG_IGN)
            StderrLogHandler.bootstrap(
                level: connection.verbose ? .debug : (connection.quiet ? .error : .info), format: logFormat)
            let logger = Logger(label: "tcpiprecvd")
            guard let spool else { throw TCPIPError.usage("--spool DIR is required (the directory files land in)") }
            let client = try connection.configuration(role: "receiver")
            var receiver = ReceiverConfiguration(spool: Spool(root: spool))
            receiver.sealing = client.sealing
            receiver.allowFrom = allowFrom
            receiver.acceptClassic = acceptClassic
            // Senders are pinned as recipients are: the key a sender proved the first time is remembered, and another
            // key under its name (or none) is refused.
            let knownPeers = KnownPeers(
                stateDirectory: connection.state.resolved(), hub: client.server.description, sending: false)
            receiver.senderProblem = { sender in
                do {
                    try knownPeers.check(sender) { logger.notice("\($0)") }
                    return nil
                } catch let error as TCPIPError {
                    logger.warning("refused a sender", metadata: ["reason": "\(error.message)"])
                    return error.message
                } catch {
                    return "\(error)"
                }
            }
            receiver.maxFileSize = maxFileSize
            receiver.minFreeSpace = minFreeSpace
            receiver.alwaysStore = alwaysStore
            receiver.partialMaxAge = .seconds(partialMaxAge)
            receiver.directListen = try directAddress(tls: client.security != nil)
            var service = ReceiverService(client: client, receiver: receiver, logger: logger)
            service.grace = .milliseconds(Int64(grace * 1000))
            service.nameWait = .milliseconds(Int64(nameWait * 1000))
            if let exec {
                let argv = HookRunner.split(exec)
                // A hook that cannot run would fail for every file, long after start-up: refuse it now.
                if let problem = HookRunner.problem(with: argv) { throw TCPIPError(.noInput, "--exec: \(problem)") }
                service.hook = HookRunner(argv: argv, maxJobs: execJobs, logger: logger)
            }
            // One daemon per spool: the lock comes before anything in the spool is touched.
            let lock: SpoolLock
            do {
                lock = try receiver.spool.lock()
                let removed = try receiver.spool.prepare()
                if removed > 0 {
                    logger.notice(
                        "removed unfinished transfers left by an earlier run", metadata: ["count": "\(removed)"])
                }
            } catch let error as SpoolError {
                if case .locked = error { throw TCPIPError(.cannotCreate, "\(error)") }
                throw TCPIPError(.cannotCreate, "cannot use the spool \(spool): \(error)")
            }
            let group = ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
            withExtendedLifetime(lock) {}
            logger.info("stopped")
        }
    }
}
