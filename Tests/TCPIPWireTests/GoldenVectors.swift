import NIOCore
import TCPIPTestSupport
import TCPIPWire

/// The packets whose bytes docs/PROTOCOL.md lists as golden vectors, by the name used there.
enum GoldenVectors {
    static let time: WireTime = 1_764_064_140_000_000
    static let alice = PeerRecord(
        id: 7, name: "alice", host: "box", user: "alice", address: "127.0.0.1:50000", role: "client",
        connectedAt: time, version: "0.1.0"
    )
    static let bob = PeerRecord(
        id: 3, name: "bob", host: "srv", user: "bob", address: "127.0.0.1:50001", role: "receiver",
        connectedAt: time, version: "0.1.0"
    )

    /// A ticket: the bytes 0 to 31.
    static let ticket = (0..<32).map { UInt8($0) }

    static func header(
        _ type: PacketType, dataType: UInt16 = 0, mask: MaskTo, to: UInt32 = 0, from: UInt32 = 0
    ) -> PacketHeader {
        PacketHeader(type: type, dataType: dataType, maskTo: mask, idTo: to, idFrom: from)
    }

    /// Name, packet, and a check that the typed payload reads back to the value it was written from.
    static let all: [(name: String, packet: Packet, payload: (any ControlPayload)?)] = [
        entry("ping", header(.ping, mask: .hub, from: 7), PingPayload(sequence: 1, sentAt: time)),
        entry(
            "pingResponse", header(.pingResponse, mask: .client, to: 7),
            PingPayload(sequence: 1, sentAt: time, answeredAt: time + 250)
        ),
        entry(
            "requestCredentials", header(.requestCredentials, mask: .client),
            CredentialsRequest(hubVersion: "0.1.0", tokenRequired: true)),
        entry(
            "myCredentials", header(.myCredentials, mask: .hub),
            Credentials(
                name: "alice", host: "box", user: "alice", role: "client", version: "0.1.0", token: "s3cret",
                flags: [.wantsRoster]
            )
        ),
        entry(
            "registered", header(.registered, mask: .client, to: 7),
            Registered(peer: alice, hubTime: time, heartbeatMilliseconds: 15_000, rosterCount: 1)
        ),
        entry("hostExiting", header(.hostExiting, mask: .client), Reason("stopped")),
        entry(
            "clientData", header(.clientData, dataType: ClientDataKind.present.rawValue, mask: .client, to: 7, from: 3),
            bob),
        entry(
            "clientDataOverTLS",
            header(.clientData, dataType: ClientDataKind.joined.rawValue, mask: .client, to: 7, from: 3),
            PeerRecord(
                id: 3, name: "bob", role: "receiver", connectedAt: time, version: "0.1.0",
                key: Array(0..<32))),
        entry(
            "clientDisconnecting",
            header(.clientDisconnecting, dataType: DisconnectReason.left.rawValue, mask: .client, from: 3), bob),
        entry("credentialsUpdate", header(.credentialsUpdate, mask: .hub), Credentials(role: "receiver")),
        ("close", Packet(header: header(.close, mask: .hub)), nil),
        entry(
            "error", header(.error, mask: .client),
            ErrorPayload(code: .unknownPeer, message: "no peer with id 9 is connected", peerID: 9, packetType: .message)
        ),
        entry("peerQuery", header(.peerQuery, mask: .hub), PeerQuery(requestID: 1, name: "bob")),
        entry(
            "peerQueryResult", header(.peerQueryResult, mask: .client, to: 7), PeerQueryResult(requestID: 1, peer: bob)),
        (
            "message",
            MessagePart(messageID: 1, flags: [.start, .end], bytes: ByteBuffer(string: "hi\n"))
                .packet(header(.message, mask: .group, from: 7)),
            nil
        ),
        entry(
            "messageReceived", header(.messageReceived, mask: .client, to: 7), MessageReceipt(messageID: 1, bytes: 3)),
        entry("recipients", header(.recipients, mask: .hub), Recipients(ids: [3, 9])),
        entry(
            "fileStart", header(.fileStart, mask: .group, from: 7),
            FileStart(transferID: 1, name: "a.txt", size: 3, chunkSize: 262_144, compression: 1)),
        entry(
            "fileStartWithSHA256", header(.fileStart, mask: .group, from: 7),
            FileStart(
                transferID: 1, name: "a.txt", size: 3, chunkSize: 262_144, compression: 1,
                sha256: Hex.bytes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))),
        (
            "fileChunk",
            FileChunk(transferID: 1, rawLength: 3, compressed: false, data: ByteBuffer(string: "abc")).packet(
                header(.fileChunk, mask: .group, from: 7)),
            nil
        ),
        entry(
            "fileEnd", header(.fileEnd, mask: .group, from: 7),
            FileEnd(
                transferID: 1, size: 3,
                sha256: Hex.bytes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        ),
        entry(
            "doneReceivingFile", header(.doneReceivingFile, mask: .client, to: 7, from: 3),
            FileReceipt(transferID: 1, status: .stored, storedAs: "a.txt", size: 3)
        ),
        entry(
            "fileStartResumable", header(.fileStart, mask: .group, from: 7),
            FileStart(
                transferID: 1, name: "a.txt", size: 3, chunkSize: 4, compression: 1,
                sha256: Hex.bytes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), resumable: true)),
        entry(
            "fileResume", header(.fileResume, mask: .client, to: 7, from: 3),
            FileResume(
                transferID: 1, offset: 2,
                prefixSHA256: Hex.bytes("fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603"))),
        entry("fileSeek", header(.fileSeek, mask: .group, from: 7), FileSeek(transferID: 1, offset: 2)),
        entry("fileStartQueued", header(.fileStart, mask: .group, from: 7), queued),
        entry("fileStartFromStore", header(.fileStart, mask: .group, from: 2), fromStore),
        entry("peerQueryStore", header(.peerQuery, mask: .hub), PeerQuery(requestID: 2, store: true)),
        entry(
            "directHints", header(.directHints, mask: .hub), DirectHints(port: 7000, hints: ["192.0.2.3:7000"])),
        entry(
            "introductionRequest", header(.introductionRequest, mask: .hub),
            IntroductionRequest(requestID: 1, peer: 3)),
        entry(
            "introduction", header(.introduction, mask: .client, to: 7),
            Introduction(
                requestID: 1, peer: PeerRecord(id: 3, name: "bob", role: "receiver"), ticket: ticket,
                hints: ["127.0.0.1:7000", "[2001:db8::3]:7000"])),
        entry(
            "introductionNotice", header(.introductionNotice, mask: .client, to: 3, from: 7),
            IntroductionNotice(ticket: ticket, peer: PeerRecord(id: 7, name: "alice"))),
        entry(
            "directHello", header(.directHello, mask: .client, to: 3, from: 7),
            DirectHello(ticket: ticket, from: 7, to: 3)),
        entry("directWelcome", header(.directWelcome, mask: .client, to: 7, from: 3), DirectWelcome(id: 3)),
        entry(
            "storeQuery", header(.storeQuery, mask: .client, to: 2, from: 7),
            StoreQuery(requestID: 1, kind: .receipts)),
        entry(
            "storeReport", header(.storeReport, mask: .client, to: 7, from: 2),
            StoreReport(requestID: 1, entries: [#"{"file":"a.txt"}"#], final: true)),
        (
            "application",
            Packet(
                header: header(PacketType(4096), dataType: 1, mask: .all, from: 7),
                payload: ByteBuffer(string: "custom")),
            nil
        ),
    ]

    static let abcDigest = Hex.bytes("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")

    /// To the hub's store: queued for bob.
    static let queued: FileStart = {
        var start = FileStart(
            transferID: 1, name: "a.txt", size: 3, chunkSize: 4, compression: 0, sha256: abcDigest, resumable: true)
        start.queueFor = "bob"
        return start
    }()

    /// From the hub's store (peer 2): queued by alice, who proved the key 00 01 … 1f.
    static let fromStore: FileStart = {
        var start = FileStart(
            transferID: 1, name: "a.txt", size: 3, chunkSize: 4, compression: 0, sha256: abcDigest, resumable: true)
        start.origin = PeerRecord(id: 0, name: "alice", key: Array(0..<32))
        return start
    }()

    static func entry(_ name: String, _ header: PacketHeader, _ payload: some ControlPayload) -> (
        name: String, packet: Packet, payload: (any ControlPayload)?
    ) {
        (name, payload.packet(header), payload)
    }
}
