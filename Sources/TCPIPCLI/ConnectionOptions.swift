import ArgumentParser
import FoundationEssentials
import Logging
import TCPIPClient
import TCPIPCore
import TCPIPTLS
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// Options every client command shares: where the hub is, who we are, the token, how long to wait, how much to say.
public struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The hub's address (env TCPIP_SERVER).", valueName: "host:port"))
    public var server: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The name to register (env TCPIP_NAME; default USER@HOSTNAME, made unique by the hub if taken).",
            valueName: "name"))
    public var name: String?

    @Option(
        name: .customLong("token-file"),
        help: ArgumentHelp(
            "Read the hub's token from this file (or set TCPIP_TOKEN or TCPIP_TOKEN_FILE; never on the command line).",
            valueName: "path"))
    public var tokenFile: String?

    @Option(
        name: .customLong("hub-id"),
        help: ArgumentHelp(
            "Talk TLS to the hub and accept it only if its key has this ID ('tcpipd id' on the hub; env "
                + "TCPIP_HUB_ID). Without it, an ID remembered in known_hubs for the address is used.",
            valueName: "id"))
    public var hubID: String?

    @Flag(
        name: .customLong("trust-new-hub"),
        help: ArgumentHelp(
            "Talk TLS to a hub that known_hubs does not know yet, accept the key it shows and remember it there "
                + "(said on stderr)."))
    public var trustNewHub = false

    @Flag(
        name: .customLong("insecure-plaintext"),
        help: ArgumentHelp(
            "Talk to a hub that is not on loopback without TLS: anyone on the path can read and change everything."))
    public var insecurePlaintext = false

    @OptionGroup public var state: StateOptions

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for the hub and for answers.", valueName: "seconds"))
    public var timeout: Double = 30

    @Flag(name: [.customShort("v"), .long], help: "Log what happens to stderr.")
    public var verbose = false

    @Flag(name: [.customShort("q"), .long], help: "Log nothing but the final error line.")
    public var quiet = false

    public init() {}

    public func validate() throws {
        guard timeout > 0, timeout.isFinite else {
            throw ValidationError("--timeout must be a positive number of seconds")
        }
        guard !(verbose && quiet) else { throw ValidationError("--verbose and --quiet cannot be used together") }
    }

    /// Whether a send queues in the hub's store when its receiver is away: `--queue` (given as `flag`), or
    /// TCPIP_QUEUE=1 in the environment.
    public func queueing(flag: Bool, environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        flag || environment["TCPIP_QUEUE"] == "1"
    }

    /// The log level the flags ask for.
    public var logLevel: Logger.Level { verbose ? .debug : (quiet ? .critical : .warning) }

    /// The client configuration from flags, then the environment, then the defaults.
    public func configuration(
        role: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ClientConfiguration {
        let explicitName = name ?? environment["TCPIP_NAME"].flatMap { $0.isEmpty ? nil : $0 }
        var configuration = ClientConfiguration(name: explicitName)
        if let explicitName, let problem = Credentials.problem(withName: explicitName) {
            throw TCPIPError.usage("invalid name '\(escapedForLog(explicitName))': \(problem)")
        }
        if let text = server ?? environment["TCPIP_SERVER"].flatMap({ $0.isEmpty ? nil : $0 }) {
            configuration.server = try HostPort(parsing: text)
        }
        configuration.token = try Token.resolve(tokenFile: tokenFile, environment: environment)
        configuration.timeout = .milliseconds(Int64(timeout * 1000))
        configuration.role = role
        let key: NodeKey?
        (configuration.security, key) = try security(for: configuration.server, environment: environment)
        if let key {
            configuration.sealing = key.sealing
            configuration.directSecurity = DirectSecurity(
                dialing: { expected, address in
                    try HubPin(key: key, expected: expected, source: .option, address: address)
                }, listening: { try HubTLS(key: key) })
        }
        if configuration.token != nil, let pin = configuration.security as? HubPin, pin.expected == nil {
            throw TCPIPError.usage(
                "refusing to give a token to a hub whose key is not pinned yet (--trust-new-hub): pin it with "
                    + "--hub-id or TCPIP_HUB_ID first")
        }
        return configuration
    }

    /// TLS with the hub's key pinned when anything asks for it (`--hub-id`, `TCPIP_HUB_ID`, a known_hubs line,
    /// `--trust-new-hub`), with the node key it proves; plaintext otherwise (no key), which only loopback allows
    /// without `--insecure-plaintext`.
    func security(for server: HostPort, environment: [String: String]) throws -> (
        security: (any LinkSecurity)?, key: NodeKey?
    ) {
        let stateDirectory = state.resolved(environment)
        let knownHubs = KnownHubs(stateDirectory: stateDirectory)
        let pinned = hubID ?? environment["TCPIP_HUB_ID"].flatMap { $0.isEmpty ? nil : $0 }
        let expected: NodeID?
        let source: HubPin.Source
        if let pinned {
            guard let id = NodeID(pinned) else {
                throw TCPIPError.usage(
                    "'\(escapedForLog(pinned))' is not a node ID (52 letters and digits, as 'tcpipd id' prints)")
            }
            (expected, source) = (id, .option)
        } else if let id = try knownHubs.id(for: server) {
            (expected, source) = (id, .knownHubs(path: knownHubs.path))
        } else if trustNewHub {
            (expected, source) = (nil, .trustNew(path: knownHubs.path))
        } else {
            if !server.isLoopback && !insecurePlaintext {
                throw TCPIPError.usage(
                    "the hub at \(server) is not on loopback: pin its key with --hub-id ID ('tcpipd id' on the hub), "
                        + "or pass --trust-new-hub to accept and remember the key it shows (or --insecure-plaintext)")
            }
            return (nil, nil)
        }
        let key = try NodeKey.loadOrCreate(in: stateDirectory)
        let pin = try HubPin(key: key, expected: expected, source: source, address: server) { id in
            // Said whatever --quiet asks: trusting a new key is never silent.
            do {
                try knownHubs.add(id, for: server)
                StandardOutput.error(
                    "warning: trusting the hub at \(server) with key \(id), seen for the first time; remembered in "
                        + knownHubs.path)
            } catch {
                StandardOutput.error("warning: trusting the hub at \(server) with key \(id) for now: \(error)")
            }
        }
        return (pin, key)
    }

    /// The check a sender makes of each recipient before sending it anything: the key it proved against `toKeys`
    /// (`--to-key`), or against known_peers in the state directory (``KnownPeers``).
    public func recipientCheck(toKeys: [String], command: String, hub: HostPort) throws
        -> @Sendable (PeerRecord) throws -> Void
    {
        let pinned = try toKeys.map { text in
            guard let id = NodeID(text) else {
                throw TCPIPError.usage(
                    "--to-key '\(escapedForLog(text))' is not a node ID (52 letters and digits, as 'tcpipctl id' prints)"
                )
            }
            return id
        }
        let knownPeers = KnownPeers(stateDirectory: state.resolved(), hub: hub.description, pinned: pinned)
        // Said whatever --quiet asks, as trusting a new hub is: remembering a key is never silent.
        return { peer in
            try knownPeers.check(peer) { StandardOutput.error("tcpipctl \(command): warning: \($0)") }
        }
    }

    /// Sets up stderr logging for a client command and returns its logger.
    public func bootstrapLogging(label: String) -> Logger {
        StandardOutput.ignoreSIGPIPE()
        StderrLogHandler.bootstrap(level: logLevel, format: .text)
        return Logger(label: label)
    }
}

extension LogFormat: ExpressibleByArgument {}
