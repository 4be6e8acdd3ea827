import ArgumentParser
import Dispatch
import FoundationEssentials
import Logging
import ServiceLifecycle
import TCPIPCLI
import TCPIPCore
import TCPIPHub
import TCPIPReceiver
import TCPIPStore
import TCPIPTLS
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

@main
struct Tcpipd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcpipd",
        abstract: "The tcpipctl hub: accepts clients and relays their packets.",
        discussion: """
            Clients register with a name; the hub gives each a numeric id, tells those who asked about peers joining \
            and leaving, and relays packets to one peer, to all, or answers them itself. When it accepts connections \
            it prints "listening on HOST:PORT" to stdout (the real port, also for port 0). Logs go to stderr. \
            SIGTERM or SIGINT: every client gets HostExiting, then the hub exits 0.

            The hub listens on loopback by default, in plaintext. With --tls (implied by --authorized-peers) every \
            link is TLS 1.3, mutually authenticated by node keys: the hub shows its key (print its ID with \
            'tcpipd id' and give it to clients as --hub-id), each client proves its own, and --authorized-peers \
            FILE says which key may register which name (one line per peer: ID NAME [ROLES] [# comment]); an \
            unknown key or a name its key does not own is refused and logged with the key's ID. The file is read \
            again when it changes and on SIGHUP, without dropping anyone. --enroll-token-file lets an unknown key \
            that presents the token (TCPIP_TOKEN on the client, inside TLS) add itself once, with the name it asks \
            for. On any other address than loopback the hub requires TLS (or --insecure-plaintext) and a way to \
            tell who joins: --authorized-peers, a token (TCPIP_TOKEN or --token-file), or --insecure-no-token.

            With --store DIR the hub also holds files for receivers that are away: 'tcpipctl send-file --queue' to \
            a receiver that is not connected hands the file to the store, which checks and syncs it like a receiver \
            and answers queued (the sender exits 0). Only receivers the store knows can be queued for: a name that \
            registered as a receiver while the store was on (with the key it had then), or one the authorized peers \
            give a key. When the receiver connects, its files are delivered in the order they came, each removed \
            from the store only after the receiver's receipt. What became of each file (delivered, refused, expired \
            after --store-max-age) is kept as a receipt for --store-receipt-max-age: 'tcpipctl receipts' shows a \
            sender its own, 'tcpipctl queue' what still waits. A file that would take the store past \
            --store-max-bytes is refused (73) before any of it crosses. The store is locked for one hub at a time.

            With --classic-listen HOST:PORT the hub also takes clients of the seed article's original TCPIPClient, \
            on their 1024-byte wire, and prints "classic clients on HOST:PORT". They are ordinary members (peers \
            lists them with "wire":"classic"), with no encryption, key or token: loopback only unless \
            --insecure-plaintext, never a name a key owns, and receivers take their files only with \
            --accept-classic. With a classic listener every peer id fits in 16 bits (ids wrap at 65535).

            \(ExitStatuses.hub)
            """,
        version: tcpipVersion,
        subcommands: [ShowID.self]
    )

    @Option(help: ArgumentHelp("Address to listen on; port 0 picks a free port.", valueName: "host:port"))
    var listen = HostPort.defaultAddress.description

    @Option(
        name: .customLong("token-file"),
        help: ArgumentHelp(
            "Require the token in this file from every client (or set TCPIP_TOKEN).", valueName: "path"))
    var tokenFile: String?

    @Flag(
        name: .customLong("insecure-no-token"),
        help: "Let anyone who can reach a non-loopback address join: no token and no --authorized-peers.")
    var insecureNoToken = false

    @Flag(help: "Use TLS 1.3 on every connection, with this hub's node key (see 'tcpipd id').")
    var tls = false

    @Option(
        name: .customLong("authorized-peers"),
        help: ArgumentHelp(
            "Let only the keys in this file register, each with its name (implies --tls).", valueName: "path"))
    var authorizedPeers: String?

    @Option(
        name: .customLong("enroll-token-file"),
        help: ArgumentHelp(
            "Let an unknown key that presents the token in this file add itself to --authorized-peers once.",
            valueName: "path"))
    var enrollTokenFile: String?

    @Flag(
        name: .customLong("insecure-plaintext"),
        help: "Allow a non-loopback address without TLS: everything, the token included, crosses in clear.")
    var insecurePlaintext = false

    @Option(
        name: .customLong("classic-listen"),
        help: ArgumentHelp(
            "Also take clients of the seed article's original TCPIPClient (its 1024-byte wire, port 9999 by default) on"
                + " this address: plaintext, no key, no token; loopback unless --insecure-plaintext.",
            valueName: "host:port"))
    var classicListen: String?

    @OptionGroup var state: StateOptions

    @Option(
        help: ArgumentHelp(
            "Hold files queued for receivers that are away in this directory (send-file --queue).", valueName: "dir"),
        completion: .directory)
    var store: String?

    @Option(
        help: ArgumentHelp(
            "Bytes the store may hold; a file that would pass it is refused before it is sent.", valueName: "bytes"))
    var storeMaxBytes: UInt64?

    @Option(
        help: ArgumentHelp(
            "Seconds a queued file waits for its receiver before it expires (default 7 days).", valueName: "seconds"))
    var storeMaxAge: Double = 604_800

    @Option(
        help: ArgumentHelp(
            "Seconds the store keeps receipts for senders to read (default 30 days).", valueName: "seconds"))
    var storeReceiptMaxAge: Double = 2_592_000

    @Option(help: ArgumentHelp("Largest frame accepted, header included.", valueName: "bytes"))
    var maxFrameSize = FrameParser.defaultMaxFrameSize

    @Option(
        help: ArgumentHelp(
            "Bytes queued towards one connection before the hub stops reading its senders.", valueName: "bytes"))
    var maxQueuedBytes = HubConfiguration().maxQueuedBytes

    @Option(help: ArgumentHelp("Seconds between heartbeats; a peer silent for three is dropped.", valueName: "seconds"))
    var pingInterval: Double = 15

    @Option(help: ArgumentHelp("Seconds a new connection has to register.", valueName: "seconds"))
    var registrationTimeout: Double = 5

    @Option(
        help: ArgumentHelp(
            "Connections waiting to register at once, from all sources; past it a waiting one is shed for a newcomer.",
            valueName: "n"))
    var maxUnregistered = HubConfiguration().maxUnregistered

    @Option(
        help: ArgumentHelp(
            "Connections waiting to register at once from one address (IPv6: one /64); more from it are told busy.",
            valueName: "n"))
    var maxUnregisteredPerSource = HubConfiguration().maxUnregisteredPerSource

    @Option(
        help: ArgumentHelp(
            "Seconds a peer may make no progress reading before it is dropped.", valueName: "seconds"))
    var writeTimeout: Double = 30

    @Option(
        help: ArgumentHelp(
            "Threads for connections (accepting, TLS, framing, writing); routing has one more of its own. Default: one"
                + " per core, less one (at least one).",
            valueName: "n"))
    var threads: Int?

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel = "info"

    @Option(help: ArgumentHelp("text or json.", valueName: "format"))
    var logFormat: LogFormat = .text

    func validate() throws {
        if store == nil && storeMaxBytes != nil {
            throw ValidationError("--store-max-bytes describes --store: give both")
        }
        for (value, option) in [(storeMaxAge, "--store-max-age"), (storeReceiptMaxAge, "--store-receipt-max-age")] {
            guard value >= 1, value <= 10 * 365 * 86400 else {
                throw ValidationError("\(option) must be from 1 second to 10 years")
            }
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError(
                "--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() async throws {
        try await reportingErrors("tcpipd") {
            StandardOutput.ignoreSIGPIPE()
            // A reload (SIGHUP) that comes while the hub starts must not kill it.
            signal(SIGHUP, SIG_IGN)
            StderrLogHandler.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .info, format: logFormat)
            let logger = Logger(label: "tcpipd")
            let configuration = try hubConfiguration()
            try configuration.validate()
            if !configuration.listen.isLoopback && configuration.security == nil {
                logger.warning(
                    "listening without TLS on a non-loopback address (--insecure-plaintext): everything crosses in clear",
                    metadata: ["address": "\(configuration.listen)"])
            }
            let server = HubServer(configuration: configuration, logger: logger)
            // The store is locked and ready before the hub takes anyone, so a second hub on it stops here (73).
            var storeService: StoreService?
            var storeLock: SpoolLock?
            if let store {
                var settings = StoreConfiguration(directory: store)
                settings.maxBytes = storeMaxBytes
                settings.maxAge = .milliseconds(Int64(storeMaxAge * 1000))
                settings.receiptMaxAge = .milliseconds(Int64(storeReceiptMaxAge * 1000))
                // Expiry is checked at a quarter of the age, at most every 30 s.
                settings.sweepInterval = .milliseconds(Int64(min(30, max(0.2, storeMaxAge / 4)) * 1000))
                settings.authorizedPeersPath = configuration.authorizedPeersFile?.path
                settings.maxFrameSize = configuration.maxFrameSize
                let service = StoreService(configuration: settings, hub: server, logger: logger)
                do {
                    storeLock = try service.open()
                } catch let error as SpoolError {
                    throw TCPIPError(.cannotCreate, "--store: \(error)")
                }
                storeService = service
            }
            defer { withExtendedLifetime(storeLock) {} }
            let hangUp = DispatchSource.makeSignalSource(signal: SIGHUP)
            hangUp.setEventHandler { server.reloadAuthorizedPeers() }
            hangUp.resume()
            defer { hangUp.cancel() }
            let address: SocketAddressDescription
            do {
                address = SocketAddressDescription(try await server.start())
            } catch {
                await server.shutdown()
                throw error
            }
            try StandardOutput.write("listening on \(address.text)\n")
            if let classic = server.classicAddress {
                try StandardOutput.write("classic clients on \(SocketAddressDescription(classic).text)\n")
                logger.warning(
                    "taking classic clients: their wire has no encryption and no authentication",
                    metadata: ["address": "\(SocketAddressDescription(classic).text)"])
            }
            // Services stop in reverse order: the store ends its sessions before the hub says HostExiting.
            let services: [any Service] = [WaitForShutdown(server: server)] + (storeService.map { [$0] } ?? [])
            let group = ServiceGroup(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
            try await group.run()
        }
    }

    func hubConfiguration() throws -> HubConfiguration {
        var configuration = HubConfiguration()
        configuration.listen = try HostPort(parsing: listen)
        configuration.token = try Token.resolve(
            tokenFile: tokenFile,
            environment: ProcessInfo.processInfo.environment
                .filter { $0.key == "TCPIP_TOKEN" || $0.key == "TCPIP_TOKEN_FILE" })
        configuration.allowInsecure = insecureNoToken
        configuration.allowPlaintext = insecurePlaintext
        configuration.classicListen = try classicListen.map { try HostPort(parsing: $0) }
        if let authorizedPeers {
            let file = AuthorizedPeersFile(path: authorizedPeers)
            configuration.authorizedPeers = try file.load()
            configuration.authorizedPeersFile = file
        }
        if tls || authorizedPeers != nil {
            let key = try state.key()
            configuration.security = try HubTLS(key: key)
            configuration.ownID = key.id
            Logger(label: "tcpipd").info("TLS on", metadata: ["id": "\(key.id)", "key": "\(key.keyPath)"])
        }
        if let enrollTokenFile {
            configuration.enrollToken = try Token.resolve(tokenFile: enrollTokenFile, environment: [:])
        }
        configuration.maxFrameSize = maxFrameSize
        configuration.maxQueuedBytes = maxQueuedBytes
        configuration.maxUnregistered = maxUnregistered
        configuration.maxUnregisteredPerSource = maxUnregisteredPerSource
        if let threads { configuration.threads = threads }
        configuration.pingInterval = try Self.duration(pingInterval, "--ping-interval")
        configuration.registrationTimeout = try Self.duration(registrationTimeout, "--registration-timeout")
        configuration.writeTimeout = try Self.duration(writeTimeout, "--write-timeout")
        return configuration
    }

    static func duration(_ seconds: Double, _ option: String) throws -> Duration {
        guard seconds.isFinite, seconds > 0 else {
            throw TCPIPError.usage("\(option) must be a positive number of seconds")
        }
        return .microseconds(Int64(seconds * 1_000_000))
    }
}

/// Keeps the group alive until SIGTERM/SIGINT, then stops the hub (HostExiting to every client).
struct WaitForShutdown: Service {
    let server: HubServer

    func run() async throws {
        try? await gracefulShutdown()
        await server.shutdown()
    }
}
