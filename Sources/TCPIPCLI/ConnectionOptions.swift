import ArgumentParser
import FoundationEssentials
import Logging
import TCPIPKit

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

    /// The log level the flags ask for.
    public var logLevel: Logger.Level { verbose ? .debug : (quiet ? .critical : .warning) }

    /// The client configuration from flags, then the environment, then the defaults.
    public func configuration(
        role: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ClientConfiguration {
        let explicitName = name ?? environment["TCPIP_NAME"].flatMap { $0.isEmpty ? nil : $0 }
        var configuration = ClientConfiguration(name: explicitName)
        if let explicitName, let problem = HubCore.problem(withName: explicitName) {
            throw TCPIPError.usage("invalid name '\(escapedForLog(explicitName))': \(problem)")
        }
        if let text = server ?? environment["TCPIP_SERVER"].flatMap({ $0.isEmpty ? nil : $0 }) {
            configuration.server = try HostPort(parsing: text)
        }
        configuration.token = try Token.resolve(tokenFile: tokenFile, environment: environment)
        configuration.timeout = .milliseconds(Int64(timeout * 1000))
        configuration.role = role
        return configuration
    }

    /// Sets up stderr logging for a client command and returns its logger.
    public func bootstrapLogging(label: String) -> Logger {
        StandardOutput.ignoreSIGPIPE()
        StderrLogHandler.bootstrap(level: logLevel, format: .text)
        return Logger(label: label)
    }
}

extension LogFormat: ExpressibleByArgument {}
