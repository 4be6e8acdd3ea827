import ArgumentParser
import FoundationEssentials
import Logging
import TCPIPCore
import TCPIPTLS

#if canImport(Glibc)
    import Glibc
#endif

/// Where a node keeps its key: `--state-dir`, or `TCPIP_STATE_DIR`, or `$XDG_CONFIG_HOME/tcpip`, `~/.config/tcpip`.
public struct StateOptions: ParsableArguments {
    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp(
            "Where this node's key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default "
                + "$XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).",
            valueName: "path"))
    public var stateDirectory: String?

    public init() {}

    public func resolved(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        NodeKey.stateDirectory(option: stateDirectory, environment: environment)
    }

    /// This node's key, made on first use.
    public func key(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> NodeKey {
        try NodeKey.loadOrCreate(in: resolved(environment))
    }
}

/// `id`: prints this node's ID (the SHA-256 of its public key), making the key on first use.
public struct ShowID: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "id",
        abstract: "Print this node's ID, the SHA-256 of its public key (made on first use).",
        discussion: """
            The ID is what the other side pins: the hub's goes to clients (--hub-id or known_hubs), a client's or a \
            receiver's goes into the hub's --authorized-peers file. It is 52 letters and digits in groups of four; \
            compare it over a channel you trust. With --json: {"id", "stateDir", "key", "certificate"}.
            """)

    @OptionGroup public var state: StateOptions

    @Flag(help: "Print a JSON object instead of the bare ID.")
    public var json = false

    public init() {}

    public func run() throws {
        do {
            let key = try state.key()
            if json {
                let object = JSON.object([
                    ("id", .string(key.id.description)), ("stateDir", .string(key.directory)),
                    ("key", .string(key.keyPath)), ("certificate", .string(key.certificatePath)),
                ])
                try StandardOutput.write(line: object)
            } else {
                try StandardOutput.write(key.id.description + "\n")
            }
        } catch let error as TCPIPError {
            StandardOutput.error("id: \(error.message)")
            throw ExitCode(error.exitStatus)
        } catch {
            StandardOutput.error("id: \(error)")
            throw ExitCode(TCPIPError.Kind.internalError.exitStatus)
        }
    }
}

/// The known_hubs file in the state directory: `HOST:PORT ID` per line, as ssh's known_hosts.
public struct KnownHubs: Sendable {
    public let path: String

    public init(stateDirectory: String) { path = stateDirectory + "/known_hubs" }

    /// The ID remembered for `address`, if any. A file that cannot be read, or a line for this address whose ID does
    /// not parse, is an error: a pin must never quietly disappear.
    public func id(for address: HostPort) throws -> NodeID? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            // Missing, or in a directory this user cannot even look into (another user's HOME): not this user's pin.
            if errno == ENOENT || errno == EACCES || errno == ENOTDIR { return nil }
            throw TCPIPError(.noInput, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let data = try readContents(of: path, label: "known_hubs ", limit: 1 << 20)
        for line in data.split(separator: 0x0A) {
            let words = String(decoding: line.filter { $0 != 0x0D }, as: UTF8.self).split(separator: " ")
            guard words.count >= 1, words[0] == address.description else { continue }
            guard words.count >= 2, let id = NodeID(String(words[1])) else {
                throw TCPIPError(
                    .usage, "\(path) has a line for \(address) without a valid node ID: fix or remove that line")
            }
            return id
        }
        return nil
    }

    /// Remembers `id` for `address`.
    public func add(_ id: NodeID, for address: HostPort) throws {
        try appendLine("\(address) \(id)", to: path, creatingWithMode: 0o600)
    }
}
