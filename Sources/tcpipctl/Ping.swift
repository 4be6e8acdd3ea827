import ArgumentParser
import TCPIPCLI
import TCPIPClient
import TCPIPCore
import TCPIPWire

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Measure the round trip and clock offset to the hub or to a peer.",
        discussion: """
            Prints one JSON line per reply: {"seq":N,"to":"hub" or {"id":…,"name":…},"rttMs":…,"offsetMs":…,\
            "time":RFC3339}. offsetMs is how far the responder's clock is ahead of this machine's. With --to, the \
            ping goes through the hub to that peer, whose client answers. A reply that does not come within \
            --timeout exits 75.

            \(ExitStatuses.client)
            """
    )

    @OptionGroup var connection: ConnectionOptions

    @Option(
        help: ArgumentHelp("Ping this peer (name or id) instead of the hub.", valueName: "peer"),
        completion: PeerCompletion.kind)
    var to: String?

    @Option(help: ArgumentHelp("Replies to wait for; 0 pings until interrupted.", valueName: "n"))
    var count = 1

    @Option(help: ArgumentHelp("Seconds between pings.", valueName: "seconds"))
    var interval: Double = 1

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must be 0 or more") }
        guard interval >= 0, interval.isFinite else { throw ValidationError("--interval must be 0 or more seconds") }
    }

    func run() async throws {
        try await reportingErrors("tcpipctl ping") {
            let logger = connection.bootstrapLogging(label: "tcpipctl")
            let configuration = try connection.configuration(role: "client")
            try await ClientSession.run(configuration, logger: logger) { session in
                var target: PeerRecord?
                if let to { target = try await session.resolve(to) }
                var sequence: UInt32 = 0
                while count == 0 || sequence < count {
                    if sequence > 0 && interval > 0 { try await Task.sleep(for: .milliseconds(Int64(interval * 1000))) }
                    sequence += 1
                    try await pingOnce(session, target: target, sequence: sequence)
                }
            }
        }
    }

    private func pingOnce(_ session: ClientSession, target: PeerRecord?, sequence: UInt32) async throws {
        let header =
            target.map { PacketHeader(type: .ping, maskTo: .client, idTo: $0.id) }
            ?? PacketHeader(type: .ping, maskTo: .hub)
        let sentAt = WireClock.now()
        let what =
            target.map { "waiting for peer '\(escapedForLog($0.name))' to answer ping \(sequence)" }
            ?? "waiting for the hub to answer ping \(sequence)"
        session.setDeadline(after: session.configuration.timeout, doing: what)
        try await session.send(PingPayload(sequence: sequence, sentAt: sentAt).packet(header))
        while true {
            let packet = try await session.next()
            switch packet.header.type {
            case .pingResponse:
                // Only the one asked answers; a malformed or stray reply from anyone else is ignored.
                guard packet.header.idFrom == (target?.id ?? PacketHeader.hubID),
                    let reply = try? PingPayload(tlv: packet.payload), reply.sequence == sequence,
                    reply.sentAt == sentAt
                else { continue }
                let receivedAt = WireClock.now()
                session.clearDeadline()
                let answeredAt = reply.answeredAt ?? receivedAt
                let rtt = Double(receivedAt - sentAt) / 1000
                let offset = (Double(answeredAt) - (Double(sentAt) + Double(receivedAt)) / 2) / 1000
                let to: JSON =
                    target.map { .object([("id", .int(Int64($0.id))), ("name", .string($0.name))]) } ?? .string("hub")
                let line = JSON.object([
                    ("seq", .int(Int64(sequence))), ("to", to), ("rttMs", .double((rtt * 1000).rounded() / 1000)),
                    ("offsetMs", .double((offset * 1000).rounded() / 1000)),
                    ("time", .string(WireClock.rfc3339(answeredAt))),
                ])
                try StandardOutput.write(line: line)
                return
            case .error:
                throw ClientSession.error(from: try ErrorPayload(tlv: packet.payload))
            case .clientDisconnecting where packet.header.idFrom == target?.id:
                throw TCPIPError.temporary("peer '\(escapedForLog(target?.name ?? ""))' left before answering")
            default:
                continue
            }
        }
    }
}
