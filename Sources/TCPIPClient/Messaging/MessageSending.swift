import NIOCore
import TCPIPCore
import TCPIPWire

/// What `tcpipctl send` was asked to do.
public struct SendRequest: Sendable {
    public enum Source: Sendable {
        /// This text is the message.
        case text(String)
        /// The input, to its end, is one message.
        case stream(InputReader)
        /// Each line of the input is a message, sent as soon as it is read.
        case lines(InputReader)
    }

    /// Peer names or ids.
    public var recipients: [String] = []
    /// Every peer that takes messages (role listener or receiver) instead of named ones.
    public var all = false
    public var source: Source
    /// Send packets of this application type instead of messages (no receipts).
    public var applicationType: PacketType?
    public var maxMessageSize = 64 << 20
    /// Wait up to this long for the recipients to join.
    public var waitForPeer: Duration?
    /// Do not ask for receipts; finish once the hub has taken everything.
    public var noWait = false
    /// How long a receipt may take.
    public var timeout: Duration = .seconds(30)
    /// Largest read from the input at once.
    public var readSize = 256 << 10
    /// Checks each recipient before anything is sent to it (its key against known_peers or `--to-key`); throwing
    /// stops the send.
    public var checkRecipient: (@Sendable (PeerRecord) throws -> Void)?
    /// This node's key: messages to peers that proved keys are sealed to them. Nil: the session's.
    public var sealing: SealingKey?

    public init(source: Source) { self.source = source }

    /// The roles that take messages, for `--all`.
    public static let messageRoles: Set<String> = ["listener", "receiver", PeerRole.classic]
}

/// Sends messages to peers through the hub and collects their receipts.
///
/// One task reads the input and sends, the calling task collects the receipts (``ReceiptCollector``).
public enum MessageSending {
    public static func run(_ request: SendRequest, session: ClientSession) async throws -> [DeliveryResult] {
        // Application packets (--type) are the application's own bytes and go as they are: nothing to seal with.
        let own = request.applicationType == nil ? request.sealing ?? session.configuration.sealing : nil
        let recipients = try await resolveRecipients(
            request.recipients, all: request.all, waitForPeer: request.waitForPeer, session: session,
            check: request.checkRecipient, sealed: own != nil)
        let sender = session.sender
        try await sender.send(
            Recipients(ids: recipients.map(\.id)).packet(PacketHeader(type: .recipients, maskTo: .hub)))
        let tracker = DeliveryTracker(
            recipients: recipients, receipts: !request.noWait && request.applicationType == nil, now: WireClock.now()
        )
        // Sealed to each recipient that proved a key (one HPKE context each for the session) when this side has one;
        // a recipient without a key (a classic client) gets its own copy unsealed.
        let keys = recipients.map(SealingRecipient.init)
        let sealers: [Producer.Sealed]? =
            if let own, keys.contains(where: { $0 != nil }) {
                try zip(recipients, keys).map { peer, key in
                    Producer.Sealed(id: peer.id, sealer: try key.map { try MessageSealer(to: $0, from: own) })
                }
            } else { nil }
        let partSize =
            MessageChunking.maxPartBytes(maxFrameSize: session.configuration.maxFrameSize)
            - (sealers == nil ? 0 : MessageSealer.overhead)
        try await ReceiptCollector.run(
            session: session, tracker: tracker, timeout: request.timeout, receiptType: .messageReceived,
            produce: {
                var producer = Producer(
                    request: request, sender: sender, tracker: tracker, partSize: partSize, sealed: sealers)
                try await producer.run()
            },
            receipt: { packet, now in
                // A malformed receipt (from any peer) is ignored: the message then waits for a good one or times out.
                guard let receipt = try? MessageReceipt(tlv: packet.payload) else { return }
                tracker.receipt(receipt, from: packet.header.idFrom, now: now)
            },
            // Everyone left owing nothing while the input was still open: if it ends at once (a listener's --count
            // matched the lines sent), they had everything.
            linger: { tracker.nobodyLeft && !tracker.isProducerDone ? .milliseconds(200) : nil }
        )
        if let failure = tracker.failure { throw failure }
        return tracker.results(now: WireClock.now())
    }

    /// Looks the recipients up (waiting for them if asked). Fails with 68 before anything is sent.
    static func resolveRecipients(
        _ names: [String], all: Bool, waitForPeer: Duration?, session: ClientSession,
        check: (@Sendable (PeerRecord) throws -> Void)? = nil, sealed: Bool = false
    ) async throws -> [PeerRecord] {
        let found = try await findRecipients(names, all: all, waitForPeer: waitForPeer, session: session)
        if let check { for peer in found { try check(peer) } }
        if sealed { for peer in found { try requireSealable(peer) } }
        return found
    }

    /// A peer that proved a key (tag 9) must come with the public key to seal to (tag 11): a hub that left it out
    /// would have what is sent in the clear. Refused (77) before anything is sent.
    static func requireSealable(_ peer: PeerRecord) throws {
        guard let key = peer.keyID, SealingRecipient(peer) == nil else { return }
        throw TCPIPError(
            .permissionDenied,
            "the hub names the key \(key) for '\(escapedForLog(peer.name))' but announces no public key to seal to "
                + "(a hub that leaves it out would read what is sent): nothing was sent")
    }

    private static func findRecipients(
        _ names: [String], all: Bool, waitForPeer: Duration?, session: ClientSession
    ) async throws -> [PeerRecord] {
        let deadline = waitForPeer.map { ContinuousClock.now + $0 }
        if all {
            var found = session.roster.filter { SendRequest.messageRoles.contains($0.role) }
            if found.isEmpty, let wait = waitForPeer {
                // Registered with updates for this: wait for the first listener or receiver to join.
                session.setDeadline(after: wait, doing: "waiting for a listener to join")
                do {
                    while found.isEmpty {
                        let packet = try await session.next()
                        if packet.header.type == .clientData, let peer = try? PeerRecord(tlv: packet.payload),
                            SendRequest.messageRoles.contains(peer.role)
                        {
                            found.append(peer)
                        }
                    }
                } catch let error as TCPIPError where error.kind == .temporary {
                    throw TCPIPError.unknownPeer("no listener or receiver joined within \(ClientSession.format(wait))")
                }
                session.clearDeadline()
            }
            guard !found.isEmpty else { throw TCPIPError.unknownPeer("no listener or receiver is connected") }
            return found
        }
        var found: [PeerRecord] = []
        for name in names {
            var peer = try await session.lookUp(name)
            if peer == nil, let deadline, ContinuousClock.now < deadline {
                peer = try await waitForJoin(of: name, until: deadline, session: session)
            }
            guard let peer else {
                let waited = waitForPeer.map { " (waited \(ClientSession.format($0)))" } ?? ""
                throw TCPIPError.unknownPeer("no connected peer is named '\(escapedForLog(name))'\(waited)")
            }
            if peer.id == session.me.id { throw TCPIPError.usage("cannot send to yourself ('\(escapedForLog(name))')") }
            if !found.contains(where: { $0.id == peer.id }) { found.append(peer) }
        }
        return found
    }

    /// Waits until a peer named `name` (or with that id) joins, from the hub's join notices (the session registered
    /// with `wantsUpdates`, before the lookup that found nobody, so no join is missed); nil at `deadline`.
    static func waitForJoin(of name: String, until deadline: ContinuousClock.Instant, session: ClientSession)
        async throws -> PeerRecord?
    {
        session.setDeadline(after: deadline - .now, doing: "waiting for \(escapedForLog(name)) to join")
        defer { session.clearDeadline() }
        do {
            while true {
                let packet = try await session.next()
                guard packet.header.type == .clientData, let peer = try? PeerRecord(tlv: packet.payload),
                    peer.id == packet.header.idFrom, peer.name == name || String(peer.id) == name
                else { continue }
                return peer
            }
        } catch let error as TCPIPError where error.kind == .temporary && ContinuousClock.now >= deadline {
            return nil
        }
    }
}

/// Reads the input and sends it as message parts (or application packets) to the group.
struct Producer {
    let request: SendRequest
    let sender: PacketSender
    let tracker: DeliveryTracker
    let partSize: Int
    var nextID: UInt32 = 1
    /// One recipient's sealed session (nil: it has no key, its copy goes unsealed).
    struct Sealed {
        var id: UInt32
        var sealer: MessageSealer?
        var keySent = false
    }
    /// Per recipient when messages are sealed; nil sends each part once, to the group.
    var sealed: [Sealed]?

    init(request: SendRequest, sender: PacketSender, tracker: DeliveryTracker, partSize: Int, sealed: [Sealed]? = nil) {
        self.request = request
        self.sender = sender
        self.tracker = tracker
        self.partSize = partSize
        self.sealed = sealed
    }

    /// A part as it goes out: to the group, or sealed to each recipient in turn (the first part of each session with
    /// the encapsulated key in front).
    private mutating func packets(for part: MessagePart) throws -> [Packet] {
        guard var sealed else { return [part.packet(header)] }
        defer { self.sealed = sealed }
        var packets: [Packet] = []
        packets.reserveCapacity(sealed.count)
        for index in sealed.indices {
            let to = PacketHeader(type: .message, maskTo: .client, idTo: sealed[index].id)
            guard !part.flags.contains(.abort), var sealer = sealed[index].sealer else {
                packets.append(part.packet(to))
                continue
            }
            var flags = part.flags.union(.sealed)
            var body = try sealer.seal(part.bytes, messageID: part.messageID, flags: flags.rawValue)
            sealed[index].sealer = sealer
            if !sealed[index].keySent {
                let key = sealer.encapsulatedKey
                body.moveReaderIndex(to: body.readerIndex - key.count)
                body.setBytes(key, at: body.readerIndex)
                flags.insert(.keyed)
                sealed[index].keySent = true
            }
            packets.append(MessagePart(messageID: part.messageID, flags: flags, bytes: body).packet(to))
        }
        return packets
    }

    private var header: PacketHeader { PacketHeader(type: request.applicationType ?? .message, maskTo: .group) }

    private var baseFlags: MessagePart.Flags {
        var flags: MessagePart.Flags = []
        if request.noWait { flags.insert(.noReceipt) }
        if request.all { flags.insert(.broadcast) }
        return flags
    }

    mutating func run() async throws {
        switch request.source {
        case .text(let text):
            try await sendWhole(ByteBuffer(string: text))
        case .stream(let reader):
            if request.applicationType != nil {
                try await sendRawStream(reader)
            } else {
                try await sendStream(reader)
            }
        case .lines(let reader):
            try await sendLines(reader)
        }
        try await sender.drain()
    }

    /// One message from bytes already in memory.
    private mutating func sendWhole(_ bytes: ByteBuffer) async throws {
        try checkSize(bytes.readableBytes)
        var packets: [Packet] = []
        try appendMessage(bytes, to: &packets)
        // The only message: a recipient that acknowledges it and leaves at once has everything.
        tracker.producerFinished()
        try await sender.send(contentsOf: packets)
    }

    /// The input as one message of unknown length, streamed part by part with one read of look-ahead so the last part
    /// carries `end`.
    private mutating func sendStream(_ reader: InputReader) async throws {
        let id = takeID()
        var sent = 0
        var current = try await reader.read(upTo: min(partSize, request.readSize)) ?? ByteBuffer()
        var flags = baseFlags.union(.start)
        while true {
            let next = try await reader.read(upTo: min(partSize, request.readSize))
            sent += current.readableBytes
            if sent > request.maxMessageSize {
                if !flags.contains(.start) {
                    try await sender.send(
                        contentsOf: packets(for: MessagePart(messageID: id, flags: .abort, bytes: ByteBuffer())))
                }
                try checkSize(sent)
            }
            if next == nil {
                flags.insert(.end)
                expect(id, bytes: sent)
                tracker.producerFinished()
            }
            try await sender.send(contentsOf: packets(for: MessagePart(messageID: id, flags: flags, bytes: current)))
            guard let next else { return }
            guard !tracker.nobodyLeft else { return }
            current = next
            flags = baseFlags.subtracting(.broadcast)
        }
    }

    /// Application packets: the input cut into payloads as it comes.
    private func sendRawStream(_ reader: InputReader) async throws {
        let maxPayload = partSize + MessagePart.headerSize
        while let chunk = try await reader.read(upTo: min(maxPayload, request.readSize)) {
            try await sender.send(Packet(header: header, payload: chunk))
            tracker.sentWithoutReceipt(bytes: chunk.readableBytes)
        }
    }

    /// Each line is a message (or an application packet), sent as soon as it is read; one flush per read.
    private mutating func sendLines(_ reader: InputReader) async throws {
        var carry = ByteBuffer()
        while let chunk = try await reader.read(upTo: 64 << 10) {
            var data = chunk
            if carry.readableBytes > 0 {
                carry.writeImmutableBuffer(chunk)
                data = carry
                carry = ByteBuffer()
            }
            var packets: [Packet] = []
            while let newline = data.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                let line = data.readSlice(length: newline - data.readerIndex)!
                data.moveReaderIndex(forwardBy: 1)
                try appendLine(line, to: &packets)
            }
            if data.readableBytes > 0 {
                try checkSize(data.readableBytes)
                carry = ByteBufferAllocator().buffer(capacity: data.readableBytes + (64 << 10))
                carry.writeImmutableBuffer(data)
            }
            try await sender.send(contentsOf: packets)
            if tracker.nobodyLeft { return }
        }
        if carry.readableBytes > 0 {
            var packets: [Packet] = []
            try appendLine(carry, to: &packets)
            try await sender.send(contentsOf: packets)
        }
    }

    private mutating func appendLine(_ line: ByteBuffer, to packets: inout [Packet]) throws {
        try checkSize(line.readableBytes)
        if request.applicationType != nil {
            packets.append(Packet(header: header, payload: line))
            tracker.sentWithoutReceipt(bytes: line.readableBytes)
        } else {
            try appendMessage(line, to: &packets)
        }
    }

    private mutating func appendMessage(_ bytes: ByteBuffer, to packets: inout [Packet]) throws {
        if request.applicationType != nil {
            var rest = bytes
            repeat {
                packets.append(
                    Packet(header: header, payload: rest.readSlice(length: min(partSize, rest.readableBytes))!))
            } while rest.readableBytes > 0
            tracker.sentWithoutReceipt(bytes: bytes.readableBytes)
            return
        }
        let id = takeID()
        expect(id, bytes: bytes.readableBytes)
        for part in MessageChunking.parts(of: bytes, messageID: id, partSize: partSize, flags: baseFlags) {
            packets += try self.packets(for: part)
        }
    }

    private func expect(_ id: UInt32, bytes: Int) {
        if request.noWait {
            tracker.sentWithoutReceipt(bytes: bytes)
        } else {
            tracker.expect(messageID: id, bytes: bytes, now: WireClock.now())
        }
    }

    private func checkSize(_ bytes: Int) throws {
        guard bytes <= request.maxMessageSize else {
            throw TCPIPError(
                .dataError,
                "the message is larger than --max-message-size (\(request.maxMessageSize) bytes); use send-file for files"
            )
        }
    }

    private mutating func takeID() -> UInt32 {
        defer { nextID &+= 1 }
        return nextID
    }
}
