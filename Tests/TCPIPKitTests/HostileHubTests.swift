import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import TCPIPCore
import TCPIPHub
import TCPIPTLS
import TCPIPTestSupport
import TCPIPWire
import Testing

/// A hub that turned hostile, between the real programs: the hub of this process, over TLS, changes what it relays to
/// them (``HubConfiguration/rewriteOutbound``). Files and messages are sealed end to end, so every change is refused
/// with the right exit status and nothing is published.
@Suite struct HostileHubTests {
    /// What the hub does to the packets it writes.
    enum Attack: Sendable {
        case none
        case flipChunk
        case swapChunks
        case dropLastChunk
        /// The file replaced, hash and all, by one sent unsealed.
        case replaceUnsealed
        /// The file replaced by one the hub seals to the receiver's key, naming the sender's key, signed with its own.
        case replaceSealed
        /// A receiver named `archive` is presented with the hub's own key.
        case otherKeyForArchive
        /// `archive` keeps its key ID but comes without the public key to seal to (to have it sent in the clear).
        case stripPublicKey
        case flipMessage
    }

    final class Hostile: Sendable {
        struct State {
            var attack = Attack.none
            var chunks = 0
            var held: Packet?
            var forged: FileSealer?
        }
        let state = NIOLockedValueBox(State())
        let hubKey: SealingKey
        let receiver: SealingRecipient
        let sender: SealingKey
        static let evil = Array("the hub's own content\n".utf8)

        init(hubKey: SealingKey, receiver: SealingRecipient, sender: SealingKey) {
            self.hubKey = hubKey
            self.receiver = receiver
            self.sender = sender
        }

        func set(_ attack: Attack) { state.withLockedValue { $0 = State(attack: attack) } }

        func rewrite(_ packets: [Packet]) -> [Packet] {
            state.withLockedValue { state in packets.flatMap { rewrite($0, &state) } }
        }

        private func rewrite(_ packet: Packet, _ state: inout State) -> [Packet] {
            let type = packet.header.type
            switch state.attack {
            case .none:
                return [packet]
            case .flipChunk:
                guard type == .fileChunk else { return [packet] }
                state.chunks += 1
                guard state.chunks == 2 else { return [packet] }
                var payload = packet.payload
                let at = payload.readerIndex + FileChunk.headerSize + 100
                payload.setInteger((payload.getInteger(at: at, as: UInt8.self) ?? 0) ^ 0x40, at: at)
                return [Packet(header: packet.header, payload: payload)]
            case .swapChunks:
                guard type == .fileChunk else { return [packet] }
                state.chunks += 1
                if state.chunks == 2 {
                    state.held = packet
                    return []
                }
                if state.chunks == 3, let held = state.held {
                    state.held = nil
                    return [packet, held]
                }
                return [packet]
            case .dropLastChunk:
                // Each chunk waits for the next; the one FileEnd finds waiting is the last, and goes nowhere.
                if type == .fileChunk {
                    defer { state.held = packet }
                    return state.held.map { [$0] } ?? []
                }
                if type == .fileEnd { state.held = nil }
                return [packet]
            case .replaceUnsealed:
                switch type {
                case .fileStart:
                    guard let start = try? FileStart(tlv: packet.payload) else { return [packet] }
                    let replaced = FileStart(
                        transferID: start.transferID, name: "replaced.bin", size: UInt64(Self.evil.count),
                        chunkSize: start.chunkSize, sha256: Array(SHA256.hash(data: Self.evil)))
                    return [replaced.packet(packet.header)]
                case .fileChunk:
                    state.chunks += 1
                    guard state.chunks == 1, let id = chunkID(packet) else { return [] }
                    return [
                        FileChunk(
                            transferID: id, rawLength: UInt32(Self.evil.count), compressed: false,
                            data: ByteBuffer(bytes: Self.evil)
                        ).packet(packet.header)
                    ]
                case .fileEnd:
                    guard let end = try? FileEnd(tlv: packet.payload) else { return [packet] }
                    let replaced = FileEnd(
                        transferID: end.transferID, size: UInt64(Self.evil.count),
                        sha256: Array(SHA256.hash(data: Self.evil)))
                    return [Packet(header: packet.header, payload: replaced.encoded())]
                default:
                    return [packet]
                }
            case .replaceSealed:
                switch type {
                case .fileStart:
                    guard var start = try? FileStart(tlv: packet.payload) else { return [packet] }
                    let info = SealedFileInfo(
                        name: "replaced.bin", sha256: nil, message: false, senderSPKI: sender.spki)
                    guard let forged = try? FileSealer(recipients: [receiver], info: info, signer: hubKey) else {
                        return [packet]
                    }
                    state.forged = forged
                    start.sealed = forged.header
                    start.size = UInt64(Self.evil.count)
                    return [start.packet(packet.header)]
                case .fileChunk:
                    state.chunks += 1
                    guard state.chunks == 1, let id = chunkID(packet),
                        let sealed = try? state.forged?.seal(
                            ByteBuffer(bytes: Self.evil), compressed: false, rawLength: UInt32(Self.evil.count))
                    else { return [] }
                    return [
                        FileChunk(
                            transferID: id, rawLength: UInt32(Self.evil.count), compressed: false, data: sealed,
                            sealed: true
                        ).packet(packet.header)
                    ]
                case .fileEnd:
                    guard var end = try? FileEnd(tlv: packet.payload),
                        let trailer = try? state.forged?.trailer(
                            size: UInt64(Self.evil.count), sha256: Array(SHA256.hash(data: Self.evil)))
                    else { return [packet] }
                    end.sealed = trailer
                    return [Packet(header: packet.header, payload: end.encoded())]
                default:
                    return [packet]
                }
            case .otherKeyForArchive, .stripPublicKey:
                let strip = state.attack == .stripPublicKey
                func swapped(_ peer: PeerRecord) -> PeerRecord {
                    guard peer.name == "archive" else { return peer }
                    var peer = peer
                    if strip {
                        peer.publicKey = nil
                    } else {
                        peer.key = hubKey.id.bytes
                        peer.publicKey = hubKey.spki
                    }
                    return peer
                }
                switch type {
                case .clientData, .credentialsUpdate:
                    guard let peer = try? PeerRecord(tlv: packet.payload) else { return [packet] }
                    return [Packet(header: packet.header, payload: swapped(peer).encoded())]
                case .peerQueryResult:
                    guard var result = try? PeerQueryResult(tlv: packet.payload) else { return [packet] }
                    result.peer = result.peer.map(swapped)
                    return [Packet(header: packet.header, payload: result.encoded())]
                default:
                    return [packet]
                }
            case .flipMessage:
                guard type == .message, packet.payload.readableBytes > 20 else { return [packet] }
                var payload = packet.payload
                let at = payload.writerIndex - 1
                payload.setInteger((payload.getInteger(at: at, as: UInt8.self) ?? 0) ^ 0x01, at: at)
                return [Packet(header: packet.header, payload: payload)]
            }
        }

        private func chunkID(_ packet: Packet) -> UInt32? {
            packet.payload.getInteger(at: packet.payload.readerIndex, as: UInt32.self)
        }
    }

    @Test func everyChangeAHostileHubMakesIsRefusedAndNothingIsPublished() async throws {
        let directory = try Unprivileged.makeDirectory("hostile-hub")
        defer { try? FileManager.default.removeItem(at: directory) }
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        // The programs' keys, made by the programs themselves (as nobody); the hub reads them to forge with.
        for node in ["recv", "cron"] {
            let made = try await RunningProgram.run("tcpipctl", ["id", "--state-dir", path(node)])
            #expect(made.status == 0, "\(made.stderr)")
        }
        let hubKey = try NodeKey.loadOrCreate(in: path("hub"))
        let receiverKey = try NodeKey.loadOrCreate(in: path("recv")).sealing
        let senderKey = try NodeKey.loadOrCreate(in: path("cron")).sealing
        let hostile = Hostile(
            hubKey: hubKey.sealing,
            receiver: try #require(SealingRecipient(id: receiverKey.id, spki: receiverKey.spki)),
            sender: senderKey)
        let (hub, address) = try await HubServerTests.startHub {
            $0.security = try? HubTLS(key: hubKey)
            $0.ownID = hubKey.id
            $0.rewriteOutbound = { hostile.rewrite($0) }
        }
        func environment(_ node: String) -> [String: String] {
            ["TCPIP_SERVER": "\(address)", "TCPIP_HUB_ID": hubKey.id.description, "TCPIP_STATE_DIR": path(node)]
        }
        let spool = path("spool")
        let receiver = try RunningProgram(
            "tcpiprecvd", ["--spool", spool, "--name", "archive"], environment: environment("recv"))
        defer { receiver.signal(SIGKILL) }
        let registered = try await eventually(every: .milliseconds(50)) {
            try await RunningProgram.run("tcpipctl", ["peers"], environment: environment("cron")).stdout.contains(
                "\"archive\"")
        }
        #expect(registered, "\(receiver.stderr)")
        var generator = SeededGenerator(seed: 23)
        let content = generator.bytes(2 << 20)
        func send(_ name: String) async throws -> (status: Int32, stdout: String, stderr: String) {
            try Data(content).write(to: URL(fileURLWithPath: path(name)))
            try Unprivileged.handOver(path(name))
            return try await RunningProgram.run(
                "tcpipctl", ["send-file", path(name), "--to", "archive", "--direct", "never", "--timeout", "20"],
                environment: environment("cron"), timeout: 60)
        }
        func published() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
        }

        // An honest hub first: both sides pin each other's key.
        let honest = try await send("honest.bin")
        #expect(honest.status == 0, "\(honest.stderr)")
        #expect(published() == ["honest.bin"])
        let record = try String(contentsOfFile: spool + "/.tcpip/meta/honest.bin.json", encoding: .utf8)
        #expect(record.contains("\"signedBy\":\"\(senderKey.id)\""), "\(record)")

        let attacks: [(Attack, Int32, String)] = [
            (.flipChunk, 65, "sealed chunk 1 does not open"),
            (.swapChunks, 65, "sealed chunk 1 does not open"),
            (.dropLastChunk, 65, "the sealed end does not open"),
            (.replaceUnsealed, 77, "takes only sealed files"),
            (.replaceSealed, 65, "signature"),
            (.otherKeyForArchive, 77, "the key of archive changed"),
            (.stripPublicKey, 77, "announces no public key to seal to"),
        ]
        for (attack, status, words) in attacks {
            hostile.set(attack)
            let sent = try await send("\(attack).bin")
            #expect(sent.status == status, "\(attack): \(sent.stderr)")
            #expect(sent.stderr.contains(words), "\(attack): \(sent.stderr)")
            #expect(published() == ["honest.bin"], "\(attack) published something")
        }
        // A sealed message changed on the way: refused (77), nothing stored.
        hostile.set(.flipMessage)
        let message = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "--message", "a sealed note"], environment: environment("cron"))
        #expect(message.status == 77, "\(message.stderr)")
        #expect(published() == ["honest.bin"])
        // Nor is a message sent in the clear to a receiver whose public key the hub left out.
        hostile.set(.stripPublicKey)
        let stripped = try await RunningProgram.run(
            "tcpipctl", ["send", "--to", "archive", "--message", "a sealed note"], environment: environment("cron"))
        #expect(stripped.status == 77, "\(stripped.stderr)")
        #expect(stripped.stderr.contains("announces no public key to seal to"), "\(stripped.stderr)")
        #expect(published() == ["honest.bin"])

        // The receiver took all of it and is still there for an honest hub.
        hostile.set(.none)
        let after = try await send("after.bin")
        #expect(after.status == 0, "\(after.stderr)")
        #expect(published() == ["after.bin", "honest.bin"])
        #expect(FileManager.default.contents(atPath: spool + "/after.bin") == Data(content))
        receiver.signal(SIGTERM)
        #expect(try await receiver.waitForExit() == 0, "\(receiver.stderr)")
        await hub.shutdown()
    }
}
