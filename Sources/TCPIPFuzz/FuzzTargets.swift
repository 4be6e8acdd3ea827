import Logging
import NIOCore
import TCPIPClient
import TCPIPCore
import TCPIPHub
import TCPIPWire

/// The fuzz targets: each takes arbitrary bytes, drives a decoder or a state machine with them, and checks the
/// invariants that must hold whatever a peer sends, stopping the process (a finding) when one does not. The libFuzzer
/// driver (`tcpip-fuzz`, built with `-sanitize=fuzzer,address`) and the regression replay in `swift test` both call
/// these.
public enum FuzzTargets {
    public static let names = [
        "frames", "payloads", "assembler", "hub", "hubkeys", "receiver", "direct", "classic", "sealed",
    ]

    /// Runs target `name` on `bytes`.
    public static func run(_ name: String, _ bytes: [UInt8]) {
        switch name {
        case "frames": frames(bytes)
        case "payloads": payloads(bytes)
        case "assembler": assembler(bytes)
        case "hub": hub(bytes)
        case "hubkeys": hub(bytes, keyed: true)
        case "receiver": receiver(bytes)
        case "direct": direct(bytes)
        case "classic": classic(bytes)
        case "sealed": sealed(bytes)
        default: fatalError("no fuzz target named \(name)")
        }
    }

    static func describe(_ actions: [HubAction]) -> String {
        actions.map { action in
            switch action {
            case .send(let to, let packet): "send \(packet.header.type) to \(to)"
            case .close(let id): "close \(id)"
            case .enrolled(let entry): "enrol \(entry.id)"
            }
        }.joined(separator: ", ")
    }

    static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("invariant broken: \(message())") }
    }

    /// The frame parser fed in pieces (the first byte picks the piece size): it never traps, never returns a packet
    /// past its limit, and a packet it returns encodes back to the bytes it came from.
    static func frames(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let parser = FrameParser(maxFrameSize: 4096)
        let piece = Int(first % 64) + 1
        var buffer = ByteBuffer()
        var offset = 1
        while offset < bytes.count {
            let end = min(bytes.count, offset + piece)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            while true {
                let before = buffer.readerIndex
                let unparsed = buffer
                let packet: Packet?
                do {
                    packet = try parser.nextPacket(from: &buffer)
                } catch {
                    return
                }
                guard let packet else { break }
                let consumed = buffer.readerIndex - before
                check(consumed <= parser.maxFrameSize, "a frame of \(consumed) bytes passed a limit of 4096")
                let encoded = packet.encoded()
                check(
                    encoded.readableBytesView.elementsEqual(unparsed.readableBytesView.prefix(consumed)),
                    "a packet does not encode back to its frame")
            }
        }
    }

    /// Every payload decoder on the same bytes (the first byte picks the packet header's dataType): none traps, and
    /// what one decodes re-encodes and decodes to the same value.
    static func payloads(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let payload = ByteBuffer(bytes: bytes.dropFirst())
        func roundTrip<P: ControlPayload & Equatable>(_ type: P.Type) {
            guard let value = try? P(tlv: payload) else { return }
            // A nested record re-encodes its integers at full width and may then outgrow one field: only what fits
            // is compared (the hub never re-encodes a record a peer sent).
            guard payload.readableBytes < 16_384 else { return }
            let again = try? P(tlv: value.encoded())
            check(again == value, "\(P.self) does not survive a round trip")
        }
        roundTrip(Credentials.self)
        roundTrip(CredentialsRequest.self)
        roundTrip(Registered.self)
        roundTrip(Reason.self)
        roundTrip(PeerRecord.self)
        roundTrip(PeerQuery.self)
        roundTrip(PeerQueryResult.self)
        roundTrip(Recipients.self)
        roundTrip(ErrorPayload.self)
        roundTrip(PingPayload.self)
        roundTrip(FileStart.self)
        roundTrip(FileEnd.self)
        roundTrip(FileReceipt.self)
        roundTrip(MessageReceipt.self)
        roundTrip(FileResume.self)
        roundTrip(FileSeek.self)
        roundTrip(StoreQuery.self)
        roundTrip(StoreReport.self)
        roundTrip(DirectHints.self)
        roundTrip(IntroductionRequest.self)
        roundTrip(Introduction.self)
        roundTrip(IntroductionNotice.self)
        roundTrip(DirectHello.self)
        roundTrip(DirectWelcome.self)
        for hints in [(try? DirectHints(tlv: payload))?.hints, (try? Introduction(tlv: payload))?.hints] {
            guard let hints else { continue }
            check(hints.count <= Direct.maxHints, "more than \(Direct.maxHints) hints")
            check(hints.allSatisfy { Direct.problem(withHint: $0) == nil }, "a hint that is not ADDRESS:PORT")
        }
        if let start = try? FileStart(tlv: payload) {
            check(start.sha256 == nil || start.sha256?.count == FileStart.digestSize, "a FileStart sha256 of bad size")
        }
        if let credentials = try? Credentials(tlv: payload) {
            for (tag, limit) in Credentials.limits {
                let value =
                    [
                        1: credentials.name, 2: credentials.host, 3: credentials.user, 4: credentials.role,
                        5: credentials.version, 6: credentials.token,
                    ][Int(tag)] ?? nil
                check((value?.utf8.count ?? 0) <= limit.bytes, "credentials \(limit.name) past its limit")
            }
        }
        for type in [PacketType.fileChunk, .message] {
            let packet = Packet(
                header: PacketHeader(type: type, dataType: UInt16(first % 4), maskTo: .client), payload: payload)
            if type == .fileChunk, let chunk = try? FileChunk(packet) {
                check(chunk.compressed || Int(chunk.rawLength) == chunk.data.readableBytes, "a raw chunk's length lies")
            }
            if type == .message, let part = try? MessagePart(packet) {
                check(part.bytes.readableBytes == payload.readableBytes - MessagePart.headerSize, "a part lost bytes")
            }
        }
    }

    /// Message parts from several senders in any order: a completed message is never larger than the limit, and
    /// its bytes are exactly the parts' bytes.
    static func assembler(_ bytes: [UInt8]) {
        var assembler = MessageAssembler(maxMessageSize: 64, maxInProgress: 4)
        var index = 0
        while index + 3 <= bytes.count {
            let flags = MessagePart.Flags(rawValue: UInt16(bytes[index] & 0x1F))
            let sender = UInt32(bytes[index + 1] % 3)
            let length = min(Int(bytes[index + 2] % 40), bytes.count - index - 3)
            let data = ByteBuffer(bytes: bytes[(index + 3)..<(index + 3 + length)])
            index += 3 + length
            let part = MessagePart(messageID: UInt32(bytes[index - length - 3] >> 5), flags: flags, bytes: data)
            if case .complete(let message) = assembler.add(part, from: sender) {
                check(message.bytes.readableBytes <= 64, "a message past its limit was completed")
                check(message.from == sender, "a message completed for the wrong sender")
            }
        }
    }

    /// The hub core driven by events from four connections (the bytes say which event, from which connection, and
    /// carry the frames): it never relays a packet type only the hub may send, every packet it sends encodes within
    /// the frame limit, and it never keeps a connection it asked to close.
    /// Stands in for TLS in the `hubkeys` target: the core only needs to know that links are secured.
    struct FakeTLS: LinkSecurity {
        func makeHandlers() throws -> [any ChannelHandler] { [] }
        func explain(_ error: any Error, address: HostPort) -> TCPIPError? { nil }
    }

    static let fuzzKeys = (1...3).map { NodeID(bytes: Array(repeating: UInt8($0), count: 32))! }

    /// `keyed` (the `hubkeys` target): a TLS hub with an authorized-peers list (keys 1 and 2 own "alice" and "bob") and
    /// an enrolment token ("t"); an op byte with its high bit set proves a key (1–3, the next byte says which) on its
    /// connection instead. Whatever happens, every peer the hub announces (Registered, a CredentialsUpdate notice) has a
    /// key, and a name its key owns (or that name with the hub's `#ID` suffix).
    static func hub(_ bytes: [UInt8], keyed: Bool = false) {
        var configuration = HubConfiguration()
        configuration.maxFrameSize = 2048
        configuration.maxUnregisteredPerSource = 2
        if keyed {
            configuration.security = FakeTLS()
            configuration.authorizedPeers = AuthorizedPeers(entries: [
                .init(id: fuzzKeys[0], name: "alice"), .init(id: fuzzKeys[1], name: "bob", roles: ["receiver"]),
            ])
            configuration.enrollToken = Token("t")
            configuration.ownID = fuzzKeys[2]
        }
        var core = HubCore(
            configuration: configuration,
            logger: Logger(
                label: "fuzz",
                factory: { _ in
                    SwiftLogNoOpLogHandler()
                }))
        let parser = FrameParser(maxFrameSize: configuration.maxFrameSize)
        var buffers: [UInt64: ByteBuffer] = [:]
        var now: WireTime = 1_000_000
        var index = 0
        func verify(_ actions: [HubAction], after received: Packet?) {
            var closed: Set<ConnectionID> = []
            for action in actions {
                switch action {
                case .send(let to, let packet):
                    check(!closed.contains(to), "a send to \(to) after closing it: \(describe(actions))")
                    check(packet.wireSize <= configuration.maxFrameSize, "a packet of \(packet.wireSize) bytes")
                    _ = packet.encoded()
                    if let received, received.header.type.isHubOnly || received.header.type == .myCredentials {
                        check(
                            packet.header.type != received.header.type || packet.payload != received.payload,
                            "relayed a \(received.header.type) a client sent")
                    }
                case .close(let id):
                    closed.insert(id)
                case .enrolled(let entry):
                    check(keyed, "enrolled a key on a hub without TLS")
                    check(
                        (try? AuthorizedPeers(parsing: entry.line))?.entries == [entry], "an enrolled line reads back")
                }
                if keyed, case .send(_, let packet) = action, packet.header.idFrom == PacketHeader.hubID,
                    packet.header.type == .registered || packet.header.type == .credentialsUpdate
                {
                    let peer =
                        packet.header.type == .registered
                        ? (try? Registered(tlv: packet.payload))?.peer : try? PeerRecord(tlv: packet.payload)
                    guard let peer else { continue }
                    guard let key = peer.key.flatMap(NodeID.init(bytes:)) else {
                        fatalError("invariant broken: \(peer.name) announced without a key on a TLS hub")
                    }
                    if peer.id == core.peerID(of: ConnectionID(3)) {
                        // The hub's own connection is announced with the hub's own key.
                        check(key == fuzzKeys[2], "\(peer.name) on the local connection announced with another key")
                        continue
                    }
                    let owned = core.configuration.authorizedPeers?.entries(for: key).map(\.name) ?? []
                    check(
                        owned.contains { peer.name == $0 || peer.name.hasPrefix($0 + "#") },
                        "\(peer.name) announced for key \(key.short), which owns \(owned)")
                }
            }
            for case .send(let to, let packet) in actions {
                let peer: PeerRecord?
                switch packet.header.type {
                case .registered: peer = (try? Registered(tlv: packet.payload))?.peer
                case .clientData, .credentialsUpdate: peer = try? PeerRecord(tlv: packet.payload)
                case .peerQueryResult: peer = (try? PeerQueryResult(tlv: packet.payload))?.peer
                default: peer = nil
                }
                guard let peer, peer.role == ClientSession.storeRole else { continue }
                let store = packet.header.type == .registered ? core.peerID(of: to) : core.peerID(of: ConnectionID(3))
                check(
                    store == peer.id && (packet.header.type != .registered || to == ConnectionID(3)),
                    "peer \(peer.id) announced with the role store, which only the local connection may have")
            }
            for id in closed { check(!core.isOpen(id), "kept \(id) after asking to close it") }
        }
        while index + 2 <= bytes.count {
            if keyed && bytes[index] & 0x80 != 0 {
                let id = ConnectionID(UInt64(bytes[index + 1] % 4))
                let key = fuzzKeys[Int((bytes[index] >> 4) % 3)]
                index += 2
                verify(core.authenticated(id, key: key), after: nil)
                continue
            }
            let op = bytes[index] % 6
            let id = ConnectionID(UInt64(bytes[index + 1] % 4))
            index += 2
            switch op {
            case 0:
                // Connection 3 is the hub's own store (a local connection): only it may have the role store.
                // Connections 0, 1 and 2 come from one address, which may have two waiting to register: the third is
                // turned away while two wait.
                verify(
                    core.connected(
                        id, address: "127.0.0.1:\(id.rawValue)", source: "127.0.0.1", now: now,
                        local: id.rawValue == 3),
                    after: nil)
                check(core.unregisteredCount <= 2, "\(core.unregisteredCount) connections wait from one address")
            case 1:
                buffers[id.rawValue] = nil
                verify(core.disconnected(id), after: nil)
            case 2, 3:
                // Bytes from the connection: as many as the next byte says (op 2), or 256 + 8 × that (op 3).
                guard index < bytes.count else { return }
                let announced = op == 2 ? Int(bytes[index]) : 256 + Int(bytes[index]) * 8
                let length = min(announced, bytes.count - index - 1)
                var buffer = buffers[id.rawValue] ?? ByteBuffer()
                buffer.writeBytes(bytes[(index + 1)..<(index + 1 + length)])
                index += 1 + length
                guard core.isOpen(id) else { continue }
                while true {
                    do {
                        guard let packet = try parser.nextPacket(from: &buffer) else { break }
                        verify(core.received(packet, from: id, now: now), after: packet)
                    } catch let error as WireError {
                        verify(core.protocolViolation(id, error: error), after: nil)
                        buffer.clear()
                        break
                    } catch {
                        fatalError("the frame parser threw \(error)")
                    }
                }
                buffers[id.rawValue] = buffer
            case 4:
                now += WireTime(bytes[index - 1]) * 1_000_000
                verify(core.tick(now: now), after: nil)
            default:
                let waiting = (0..<4).map { ConnectionID($0) }.filter { $0 != id }
                verify(core.stalled(id, waiting: waiting), after: nil)
            }
        }
    }
}
