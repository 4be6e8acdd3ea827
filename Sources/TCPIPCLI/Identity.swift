import ArgumentParser
import FoundationEssentials
import Logging
import Synchronization
import TCPIPCore
import TCPIPTLS
import TCPIPWire

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

/// The known_peers file in the state directory: `HUB ID NAME` per line (the hub's `HOST:PORT`, the key's ID, then the
/// name, the rest of the line): the key each peer of that hub proved the first time this node sent to it, as ssh's
/// known_hosts keeps hosts. The keys come from the hub, so a hub that turns hostile could vouch for another key under
/// a known name, or for none: a name pinned to a key that now proves another key, or none, is refused (77) with the
/// IDs named, until the line is removed or the sender pins the key with `--to-key`.
public struct KnownPeers: Sendable {
    public let path: String
    /// The hub the names belong to (`HOST:PORT` as the client was told it).
    public let hub: String
    /// `--to-key`: the keys a recipient must prove instead of what known_peers remembers (nothing is remembered then).
    public let pinned: [NodeID]

    /// Names (with their key, or none) already found as pinned, remembered or unpinned: a receiver checks every file
    /// and message, and the file is read once per name, not once per message. Only this node writes its known_peers
    /// while it runs; a line removed by hand is seen at the next start (a key that does not match is never cached).
    private let checked = Checked()

    private final class Checked: Sendable {
        let names = Mutex<Set<String>>([])
    }

    /// Whether this node sends to the peers it checks (a sender, which can pin with --to-key), or takes from them (a
    /// receiver): only the wording of a refusal differs.
    public let sending: Bool

    public init(stateDirectory: String, hub: String, pinned: [NodeID] = [], sending: Bool = true) {
        path = stateDirectory + "/known_peers"
        self.hub = hub
        self.pinned = pinned
        self.sending = sending
    }

    /// Checks `peer` before anything is sent to it: its key against `--to-key`, or against known_peers (remembering it
    /// there, with a warning, the first time). A peer without a key (a plaintext hub, a classic client) passes unless
    /// its name is pinned to a key, or `--to-key` asks for one. The hub's renames (`NAME#ID`, given to whoever holds
    /// that id) are never remembered.
    public func check(_ peer: PeerRecord, warn: (String) -> Void) throws {
        let name = escapedForLog(peer.name)
        if !pinned.isEmpty {
            guard let id = peer.keyID else {
                throw TCPIPError(
                    .permissionDenied,
                    "\(name) proved no key (a plaintext link or a classic client): --to-key asks for one")
            }
            guard pinned.contains(id) else {
                throw TCPIPError(
                    .permissionDenied,
                    "\(name) proved key \(id), not the one --to-key gives "
                        + "(\(pinned.map(\.description).joined(separator: ", ")))")
            }
            return
        }
        let entry = peer.name + "\u{0}" + (peer.keyID?.description ?? "")
        if checked.names.withLock({ $0.contains(entry) }) { return }
        try verify(peer, name: name, warn: warn)
        checked.names.withLock { _ = $0.insert(entry) }
    }

    /// ``check(_:warn:)`` against the file.
    private func verify(_ peer: PeerRecord, name: String, warn: (String) -> Void) throws {
        let known = try remembered(peer.name)
        guard let id = peer.keyID else {
            if let known {
                throw TCPIPError(
                    .permissionDenied,
                    "\(name) proves no key now (a plaintext link or a classic client), but \(path) pins it to \(known) "
                        + "— \(sending ? "nothing was sent" : "refused"). If that is expected, remove that line")
            }
            return
        }
        if let known {
            guard known == id else {
                throw TCPIPError(
                    .permissionDenied,
                    "the key of \(name) changed: \(path) has \(known), the hub vouches for \(id) — "
                        + (sending
                            ? "nothing was sent. If the change is expected, remove that line (or pass --to-key \(id))"
                            : "refused. If the change is expected, remove that line on the receiver"))
            }
            return
        }
        // A rename is whoever holds that id now; a name the hub's own rules refuse is not written into a file.
        guard !Credentials.isRename(peer.name), Credentials.problem(withName: peer.name) == nil else { return }
        do {
            try appendLine("\(hub) \(id) \(peer.name)", to: path, creatingWithMode: 0o600)
            warn("remembering the key \(id) of \(name) in \(path) (first use)")
        } catch {
            warn("sending to \(name) with key \(id), seen for the first time, without remembering it: \(error)")
        }
    }

    /// The key remembered for `name` on this hub, if any. A file that is there but cannot be read, or a line whose ID
    /// does not parse, is an error: a pin must never quietly disappear.
    func remembered(_ name: String) throws -> NodeID? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            // None yet, or a state directory this user cannot even look into (another user's HOME, as known_hubs).
            if errno == ENOENT || errno == EACCES || errno == ENOTDIR { return nil }
            throw TCPIPError(.noInput, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let data = try readContents(of: path, label: "known_peers ", limit: 4 << 20)
        for line in data.split(separator: 0x0A) {
            let words = String(decoding: line.filter { $0 != 0x0D }, as: UTF8.self).split(
                separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
            guard words.count == 3, words[0] == hub[...], words[2] == name[...] else { continue }
            guard let id = NodeID(String(words[1])) else {
                throw TCPIPError(
                    .usage, "\(path) has a line for \(escapedForLog(name)) without a valid node ID: fix or remove it")
            }
            return id
        }
        return nil
    }
}
