import ArgumentParser
import TCPIPKit

@main
struct Tcpipctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcpipctl",
        abstract: "Talk to a tcpipd hub from shells and scripts.",
        discussion: """
            stdout carries data only (JSON, NDJSON); logs and errors go to stderr. Exit statuses follow sysexits.h: \
            0 ok, 64 usage, 65 data error, 66 no input, 68 unknown peer, 69 hub unavailable, 70 internal error, \
            73 cannot create, 75 temporary failure (retry later), 77 token refused.
            """,
        version: tcpipVersion,
        subcommands: [Peers.self, Ping.self, Send.self, Listen.self, SendFile.self]
    )
}
