import Crypto
import Foundation
import Logging
import NIOCore
import TCPIPClient
import TCPIPCore
import TCPIPReceiver
import TCPIPTestSupport
import TCPIPWire
import Testing

/// The receiver daemon's logic in process, against hand-made transfers that a well-behaved sender would not send.
@Suite struct FileReceiverTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs a hub and a receiver service, then `body` with a registered client session and the receiver's id.
    static func withReceiver(
        _ configure: (inout ReceiverConfiguration) -> Void = { _ in },
        _ body: @escaping (ClientSession, UInt32, Spool) async throws -> Void
    ) async throws {
        let (hub, address) = try await HubServerTests.startHub()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("recv-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var receiverConfiguration = ReceiverConfiguration(spool: Spool(root: root))
        configure(&receiverConfiguration)
        let service = ReceiverService(
            client: HubServerTests.client("archive", address), receiver: receiverConfiguration, logger: logger)
        let running = Task { try await service.run() }
        defer { running.cancel() }
        try await ClientSession.run(HubServerTests.client("sender", address), logger: logger) { session in
            var receiver: PeerRecord?
            for _ in 0..<200 where receiver == nil {
                receiver = try await session.lookUp("archive")
                if receiver == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            let id = try #require(receiver).id
            try await body(session, id, receiverConfiguration.spool)
        }
        running.cancel()
        await hub.shutdown()
    }

    static func receipt(_ session: ClientSession) async throws -> FileReceipt {
        while true {
            let packet = try await session.next()
            if packet.header.type == .doneReceivingFile { return try FileReceipt(tlv: packet.payload) }
        }
    }

    static func visibleFiles(_ spool: Spool) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: spool.root).filter { !$0.hasPrefix(".") }
    }

    static func header(_ type: PacketType, to id: UInt32, dataType: UInt16 = 0) -> PacketHeader {
        PacketHeader(type: type, dataType: dataType, maskTo: .client, idTo: id)
    }

    /// The same file arriving twice at once (sent again while the hub's store delivers it) is published once: the
    /// second gets already-stored, never `NAME.1`.
    @Test func theSameFileArrivingTwiceAtOnceIsStoredOnce() async throws {
        try await Self.withReceiver { session, id, spool in
            let data = ByteBuffer(string: "one copy only")
            let digest = Array(SHA256.hash(data: Array(data.readableBytesView)))
            for transfer: UInt32 in [1, 2] {
                try await session.send(
                    FileStart(
                        transferID: transfer, name: "same.txt", size: UInt64(data.readableBytes), chunkSize: 1024,
                        sha256: digest
                    ).packet(Self.header(.fileStart, to: id)))
            }
            for transfer: UInt32 in [1, 2] {
                try await session.send(
                    FileChunk(
                        transferID: transfer, rawLength: UInt32(data.readableBytes), compressed: false, data: data
                    )
                    .packet(Self.header(.fileChunk, to: id)))
            }
            for transfer: UInt32 in [1, 2] {
                try await session.send(
                    FileEnd(transferID: transfer, size: UInt64(data.readableBytes), sha256: digest).packet(
                        Self.header(.fileEnd, to: id)))
            }
            let receipts = [try await Self.receipt(session), try await Self.receipt(session)]
            #expect(Set(receipts.map(\.status)) == [.stored, .alreadyStored], "\(receipts)")
            #expect(receipts.allSatisfy { $0.storedAs == "same.txt" })
            #expect(try Self.visibleFiles(spool) == ["same.txt"])
            let temporary = try FileManager.default.contentsOfDirectory(atPath: spool.temporaryDirectory)
            #expect(temporary.isEmpty, "\(temporary)")
        }
    }

    @Test func checksumMismatchIsRefusedAndLeavesNothing() async throws {
        try await Self.withReceiver { session, id, spool in
            let data = ByteBuffer(string: "the real content")
            try await session.send(
                FileStart(transferID: 1, name: "damaged.txt", size: UInt64(data.readableBytes), chunkSize: 1024).packet(
                    Self.header(.fileStart, to: id)))
            try await session.send(
                FileChunk(transferID: 1, rawLength: UInt32(data.readableBytes), compressed: false, data: data).packet(
                    Self.header(.fileChunk, to: id)))
            let wrong = Array(SHA256.hash(data: Array("something else".utf8)))
            try await session.send(
                FileEnd(transferID: 1, size: UInt64(data.readableBytes), sha256: wrong).packet(
                    Self.header(.fileEnd, to: id)))
            let receipt = try await Self.receipt(session)
            #expect(receipt.status == .corrupt)
            #expect(receipt.reason?.contains("SHA-256") == true)
            #expect(try Self.visibleFiles(spool).isEmpty)
            #expect(try FileManager.default.contentsOfDirectory(atPath: spool.temporaryDirectory).isEmpty)
        }
    }

    @Test func aZlibBombChunkAbortsTheTransferOnly() async throws {
        try await Self.withReceiver { session, id, spool in
            let bomb = try #require(try ChunkCompressor(level: 9).compress(ByteBuffer(repeating: 0, count: 32 << 20)))
            try await session.send(
                FileStart(transferID: 1, name: "bomb.bin", size: nil, chunkSize: 65536, compression: 1).packet(
                    Self.header(.fileStart, to: id)))
            // It claims 64 KiB but inflates to 32 MiB.
            try await session.send(
                FileChunk(transferID: 1, rawLength: 65536, compressed: true, data: bomb).packet(
                    Self.header(.fileChunk, to: id)))
            let receipt = try await Self.receipt(session)
            #expect(receipt.status == .corrupt)
            #expect(try Self.visibleFiles(spool).isEmpty)
            // The connection is unharmed: a good file goes through afterwards.
            let good = ByteBuffer(string: "fine")
            try await session.send(
                FileStart(transferID: 2, name: "good.txt", size: 4, chunkSize: 1024).packet(
                    Self.header(.fileStart, to: id)))
            try await session.send(
                FileChunk(transferID: 2, rawLength: 4, compressed: false, data: good).packet(
                    Self.header(.fileChunk, to: id)))
            try await session.send(
                FileEnd(transferID: 2, size: 4, sha256: Array(SHA256.hash(data: Array("fine".utf8)))).packet(
                    Self.header(.fileEnd, to: id)))
            let second = try await Self.receipt(session)
            #expect(second.status == .stored)
            #expect(second.storedAs == "good.txt")
            #expect(try Self.visibleFiles(spool) == ["good.txt"])
        }
    }

    @Test func moreBytesThanAnnouncedAbort() async throws {
        try await Self.withReceiver { session, id, spool in
            try await session.send(
                FileStart(transferID: 1, name: "liar.bin", size: 10, chunkSize: 1024).packet(
                    Self.header(.fileStart, to: id)))
            try await session.send(
                FileChunk(transferID: 1, rawLength: 20, compressed: false, data: ByteBuffer(repeating: 1, count: 20))
                    .packet(Self.header(.fileChunk, to: id)))
            #expect(try await Self.receipt(session).status == .corrupt)
            #expect(try Self.visibleFiles(spool).isEmpty)
        }
    }

    @Test(arguments: [
        "../escape.txt", "/etc/passwd", ".hidden", "a/../b", "a//b", "a/", "a/.tcpip/x", ".tcpip/tmp/x", "x\u{1B}[31m",
        String(repeating: "n", count: 246), Array(repeating: "d", count: 17).joined(separator: "/"),
    ])
    func unsafeNamesGetARefusal(name: String) async throws {
        try await Self.withReceiver { session, id, spool in
            try await session.send(
                FileStart(transferID: 1, name: name, size: 1, chunkSize: 1024).packet(Self.header(.fileStart, to: id)))
            let receipt = try await Self.receipt(session)
            #expect(receipt.status == .invalid)
            #expect(receipt.reason?.contains("unsafe file name") == true)
            #expect(try Self.visibleFiles(spool).isEmpty)
        }
    }

    @Test func tooLargeIsRefusedBeforeAnyDataIsWritten() async throws {
        let limit: (inout ReceiverConfiguration) -> Void = { $0.maxFileSize = 1000 }
        try await Self.withReceiver(limit) { session, id, spool in
            try await session.send(
                FileStart(transferID: 1, name: "big.bin", size: 1001, chunkSize: 1024).packet(
                    Self.header(.fileStart, to: id)))
            let receipt = try await Self.receipt(session)
            #expect(receipt.status == .refused)
            #expect(try FileManager.default.contentsOfDirectory(atPath: spool.temporaryDirectory).isEmpty)
        }
    }
}
