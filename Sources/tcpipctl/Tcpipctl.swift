import ArgumentParser
import NIOCore
import TCPIPCLI
import TCPIPCore

@main
struct Tcpipctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tcpipctl",
        abstract: "Talk to a tcpipd hub from shells and scripts.",
        discussion: """
            stdout carries data only (JSON, NDJSON); logs and errors go to stderr.

            \(ExitStatuses.client)
            """,
        version: tcpipVersion,
        subcommands: [
            Peers.self, Ping.self, Send.self, Listen.self, SendFile.self, Queue.self, Receipts.self, ShowID.self,
        ]
    )

    static func main() async {
        // One connection per run: one event-loop thread carries it. The default, a thread per core, costs a one-shot
        // the start of threads it never uses.
        NIOSingletons.groupLoopCountSuggestion = 1
        MemoryTuning.forLargeBuffers()
        var arguments = Array(CommandLine.arguments.dropFirst())
        // `send-file … -- NAMES`: the names after `--` are operands whatever they look like, so they skip the parser
        // (whose time grows with the square of their number).
        if arguments.first == SendFile.configuration.commandName, let dash = arguments.firstIndex(of: "--") {
            SendFile.afterDoubleDash = Array(arguments[(dash + 1)...])
            arguments.removeSubrange((dash + 1)...)
        }
        await main(arguments)
    }
}
