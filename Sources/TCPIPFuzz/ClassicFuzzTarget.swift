import NIOCore
import TCPIPCore
import TCPIPHub
import TCPIPWire

extension FuzzTargets {
    /// A classic client's translator (``ClassicTranslator``, client id 1, registered) driven by arbitrary input: a
    /// sequence of segments, each `tag u8, length u16 LE, bytes`. An even tag: bytes from the classic client (cut into
    /// 1024-byte packets, as the socket's reads may cut them anywhere); an odd tag: frames of ours for the client (what
    /// the hub routes to it), parsed with the hub's frame limit. Whatever arrives:
    /// - every packet for the hub is a frame the hub's parser reads back as the same packet, never one of the hub's
    ///   own types (no roster event, Error or introduction in the client's name), and MyCredentials at most once;
    /// - every classic packet for the client is 1024 bytes; message chunks are Start, Guts or End with at most 300
    ///   characters (End counts the total); file chunks carry at most 1010 bytes;
    /// - file bytes for the hub never pass the size the client announced.
    static func classic(_ bytes: [UInt8]) {
        var translator = ClassicTranslator(address: "127.0.0.1:50000")
        var credentials = ClassicPacket(.myCredentials)
        credentials.setText(Array("fuzz".utf8), .string150)
        var outputs: [ClassicTranslator.Output] = [
            translator.deliver(
                CredentialsRequest(hubVersion: "0", tokenRequired: false).packet(
                    PacketHeader(type: .requestCredentials, maskTo: .client, idTo: 1)), now: 1),
            translator.received(credentials, now: 1),
            translator.deliver(
                Registered(peer: PeerRecord(id: 1, name: "fuzz"), hubTime: 1, heartbeatMilliseconds: 1, rosterCount: 0)
                    .packet(PacketHeader(type: .registered, maskTo: .client, idTo: 1)), now: 1),
        ]
        var framer = ClassicFramer()
        let parser = FrameParser(maxFrameSize: FrameParser.defaultMaxFrameSize)
        var offset = 0
        var now: WireTime = 2
        while offset + 3 <= bytes.count {
            let tag = bytes[offset]
            let length = Int(bytes[offset + 1]) | Int(bytes[offset + 2]) << 8
            let data = bytes[(offset + 3)..<min(bytes.count, offset + 3 + length)]
            offset += 3 + length
            now += 1000
            var buffer = ByteBuffer(bytes: data)
            if tag % 2 == 0 {
                for packet in framer.packets(from: &buffer) { outputs.append(translator.received(packet, now: now)) }
            } else {
                while let packet = try? parser.nextPacket(from: &buffer) {
                    outputs.append(translator.deliver(packet, now: now))
                }
            }
        }
        var credentialsSent = 0
        var announced: [UInt32: UInt64] = [:]
        var sent: [UInt32: UInt64] = [:]
        for output in outputs {
            for packet in output.toHub {
                check(!packet.header.type.isHubOnly, "the translator made a \(packet.header.type) for the hub")
                if packet.header.type == .myCredentials { credentialsSent += 1 }
                var encoded = packet.encoded()
                let decoded = try? parser.nextPacket(from: &encoded)
                check(decoded == packet, "a packet for the hub does not read back: \(packet.header)")
                if packet.header.type == .fileStart, let start = try? FileStart(tlv: packet.payload) {
                    announced[start.transferID] = start.size
                    sent[start.transferID] = 0
                }
                if packet.header.type == .fileChunk, let chunk = try? FileChunk(packet) {
                    check(chunk.data.readableBytes == Int(chunk.rawLength), "a chunk's length lies")
                    sent[chunk.transferID, default: 0] += UInt64(chunk.rawLength)
                    check(
                        sent[chunk.transferID, default: 0] <= announced[chunk.transferID] ?? 0,
                        "more file bytes for the hub than the client announced")
                }
            }
            for packet in output.toClient {
                check(packet.bytes.count == ClassicPacket.size, "a classic packet of \(packet.bytes.count) bytes")
                if packet.type == .message {
                    check(packet.dataType <= 2, "a message sub-type \(packet.dataType)")
                    check(packet.dataType == 2 || packet.data(1) <= 300, "a message chunk of \(packet.data(1))")
                }
                if packet.type == .fileChunk {
                    check(packet.chunkSize <= 1010, "a file chunk of \(packet.chunkSize) bytes")
                }
            }
        }
        check(credentialsSent == 1, "MyCredentials went to the hub \(credentialsSent) times")
    }
}
