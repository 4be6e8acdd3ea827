import Logging
import NIOCore
import NIOEmbedded
import TCPIPCore
import TCPIPReceiver
import TCPIPWire

extension FuzzTargets {
    /// The ticket the direct target's receiver expects from peer 2 (seven, 32 times).
    static let directTicket = [UInt8](repeating: 7, count: Direct.ticketSize)

    /// A receiver's direct listener (id 1, expecting peer 2 with ``directTicket``) fed arbitrary bytes on one
    /// connection. Whatever arrives: the connection is admitted only if the bytes hold the ticket; the session is
    /// handed only file packets, each stamped with the admitted sender's id, and only from an admitted connection;
    /// the ticket admits once.
    static func direct(_ bytes: [UInt8]) {
        let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        let listener = DirectListener(unboundWith: nil, logger: logger)
        listener.reset(me: 1, wake: {})
        listener.expect(IntroductionNotice(ticket: directTicket, peer: PeerRecord(id: 2, name: "alice")))
        let holdsTicket =
            bytes.count >= directTicket.count
            && (0...(bytes.count - directTicket.count)).contains {
                bytes[$0..<($0 + directTicket.count)].elementsEqual(directTicket)
            }
        // The input arrives in two reads, split where its first byte says, as a peer's writes may be cut anywhere.
        let split = bytes.isEmpty ? 0 : min(bytes.count, Int(bytes[0]) * 4)
        var admitted = false
        var delivered: [Packet] = []
        for piece in [bytes[..<split], bytes[split...]] {
            let channel = EmbeddedChannel()
            do {
                try listener.addHandlers(to: channel)
                channel.pipeline.fireChannelActive()
                try channel.writeInbound(ByteBuffer(bytes: Array(piece)))
            } catch {
                // A decoding error closes the connection: that is the refusal.
            }
            admitted = listener.admittedCount > 0
            check(!admitted || holdsTicket, "admitted without the ticket")
            check(listener.admittedCount <= 1, "one ticket admitted two connections")
            _ = try? channel.finish()
            delivered += listener.take()
        }
        for packet in delivered {
            check(admitted, "a packet was handed on from a connection never admitted")
            check(packet.header.idFrom == 2, "a packet from the direct link was not stamped with its sender")
            check(
                [.fileStart, .fileChunk, .fileEnd, .fileSeek, .clientDisconnecting].contains(packet.header.type),
                "\(packet.header.type) was handed on from a direct link")
        }
    }
}
