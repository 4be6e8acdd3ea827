import ArgumentParser
import TCPIPCLI
import TCPIPClient
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

struct Peers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peers",
        abstract: "Print the peers connected to the hub as JSON.",
        discussion: """
            Prints a JSON array of the other connected peers (pretty when stdout is a terminal, one line otherwise): \
            id, name, host, user, address, role, connectedAt (RFC 3339, UTC), version, key (the node ID the peer proved \
            over TLS, or null), wire ("tcpip", or "classic" for a client of the hub's classic listener: no key, role \
            "classic").

            With --watch, prints NDJSON instead: one {"event":"present","peer":{…}} line per connected peer, then one \
            line per change ("joined", "left" with a "reason", "updated"), until interrupted, until --count changes, \
            or until the hub goes away (exit 75).

            \(ExitStatuses.client)
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Include this client itself.")
    var includeSelf = false

    @Flag(help: "Keep printing joins, leaves and updates as NDJSON.")
    var watch = false

    @Option(
        help: ArgumentHelp("With --watch: exit 0 after this many changes (present lines do not count).", valueName: "n")
    )
    var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if count != nil && !watch { throw ValidationError("--count needs --watch") }
    }

    func run() async throws {
        try await reportingErrors("tcpipctl peers") {
            let logger = connection.bootstrapLogging(label: "tcpipctl")
            // Nothing to acknowledge: end as soon as the reader of stdout goes away. _exit, not exit: stdout is
            // written unbuffered (and its reader is gone), and exit handlers must not race the main thread.
            if watch { StandardOutput.watchReader { Glibc._exit(0) } }
            var configuration = try connection.configuration(role: "client")
            configuration.flags = watch ? [.wantsRoster, .wantsUpdates] : [.wantsRoster]
            try await ClientSession.run(configuration, logger: logger) { session in
                var peers = session.roster
                if includeSelf { peers.append(session.me) }
                peers.sort { $0.id < $1.id }
                guard watch else {
                    let pretty = StandardOutput.isTerminal
                    try StandardOutput.write(JSON.array(peers.map(\.json)).rendered(pretty: pretty) + "\n")
                    return
                }
                for peer in peers { try emit("present", peer) }
                var changes = 0
                while count.map({ changes < $0 }) ?? true {
                    let packet = try await session.next()
                    // The hub stamps a notice's idFrom with the peer it is about: a record that names anyone else
                    // is not believed (nor is one that does not decode).
                    guard let peer = try? PeerRecord(tlv: packet.payload), peer.id == packet.header.idFrom else {
                        continue
                    }
                    switch packet.header.type {
                    case .clientData where packet.header.dataType == ClientDataKind.joined.rawValue:
                        try emit("joined", peer)
                    case .clientDisconnecting:
                        let reason = DisconnectReason(rawValue: packet.header.dataType)?.description ?? "left"
                        try emit("left", peer, extra: [("reason", .string(reason))])
                    case .credentialsUpdate where packet.header.idFrom != session.me.id:
                        try emit("updated", peer)
                    default:
                        continue
                    }
                    changes += 1
                }
            }
        }
    }

    private func emit(_ event: String, _ peer: PeerRecord, extra: [(String, JSON)] = []) throws {
        let line = JSON.object([("event", .string(event)), ("peer", peer.json)] + extra)
        try StandardOutput.write(line: line)
    }
}
