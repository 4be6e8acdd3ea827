import Crypto
import Foundation
import Logging
import NIOCore
import TCPIPCore
import TCPIPReceiver
import TCPIPTestSupport
import TCPIPWire
import Testing

@Suite struct SpoolNameTests {
    @Test(arguments: [
        "../x", "/etc/x", "a/b", "..", ".", "", "x\0y", "\u{1B}[2Jclear", "tab\there", "new\nline", ".hidden",
        String(repeating: "a", count: 300), "a\\b", "CON", "nul.txt", "com1", "trailing ",
    ])
    func unsafeNamesAreRefused(name: String) {
        #expect(SpoolName.problem(with: name) != nil, "\(name.debugDescription) should be refused")
    }

    @Test(arguments: [
        "report.txt", "archive.tar.gz", "ünïcødé 文件.txt", "emoji 🚀.bin", "a", "name with spaces", "x..y", "CONFIG.txt",
        String(repeating: "a", count: SpoolName.maxLength),
    ])
    func safeNamesAreAccepted(name: String) {
        #expect(SpoolName.problem(with: name) == nil, "\(name) should be accepted")
    }
}

@Suite struct SpoolTests {
    static func temporarySpool() throws -> Spool {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
        let spool = Spool(root: root)
        try spool.prepare()
        return spool
    }

    /// A temporary file holding `content`, still open (an unnamed one is reached through its descriptor until
    /// published): close `descriptor` once it is published.
    static func temporaryFile(_ spool: Spool, _ content: String) throws -> (descriptor: Int32, path: String) {
        let (fd, path) = try spool.createTemporary(tag: "test")
        let bytes = Array(content.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        return (fd, path)
    }

    /// Publishes `content` as `name`; returns the name it got.
    static func publish(_ spool: Spool, _ content: String, as name: String) throws -> String {
        let (fd, path) = try temporaryFile(spool, content)
        defer { close(fd) }
        return try spool.publish(temporary: path, as: name)
    }

    @Test func publishNeverReplacesAndNumbersClashes() throws {
        let spool = try Self.temporarySpool()
        defer { try? FileManager.default.removeItem(atPath: spool.root) }
        let first = try Self.publish(spool, "one", as: "same.txt")
        let second = try Self.publish(spool, "two", as: "same.txt")
        let third = try Self.publish(spool, "three", as: "same.txt")
        #expect([first, second, third] == ["same.txt", "same.txt.1", "same.txt.2"])
        #expect(try String(contentsOfFile: spool.root + "/same.txt", encoding: .utf8) == "one")
        #expect(try String(contentsOfFile: spool.root + "/same.txt.1", encoding: .utf8) == "two")
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool.temporaryDirectory).isEmpty)
    }

    @Test func aCommittedBatchIsPublishedWithRecordsAndClashesNumbered() throws {
        let spool = try Self.temporarySpool()
        defer { try? FileManager.default.removeItem(atPath: spool.root) }
        _ = try Self.publish(spool, "already here", as: "b.txt")
        let batch = try ["a.txt", "b.txt", "b.txt", "c.txt", "d.txt"].enumerated().map { index, name in
            let (fd, path) = try spool.createTemporary(tag: "batch")
            let bytes = Array("file \(index)".utf8)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            return Spool.Finished(descriptor: fd, temporary: path, name: name) { #"{"name":"\#($0)"}"# }
        }
        let committed = spool.commit(batch)
        let stored = try committed.map { try $0.stored.get() }
        #expect(stored == ["a.txt", "b.txt.1", "b.txt.2", "c.txt", "d.txt"])
        #expect(committed.allSatisfy { $0.recordError == nil })
        for (index, name) in stored.enumerated() {
            #expect(try String(contentsOfFile: spool.root + "/" + name, encoding: .utf8) == "file \(index)")
            #expect(
                try String(contentsOfFile: spool.metadataDirectory + "/" + name + ".json", encoding: .utf8)
                    == #"{"name":"\#(name)"}"# + "\n")
        }
        #expect(try String(contentsOfFile: spool.root + "/b.txt", encoding: .utf8) == "already here")
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool.temporaryDirectory).isEmpty)
    }

    @Test func aRecordLeftByAFileAConsumerTookIsReplacedWhole() throws {
        let spool = try Self.temporarySpool()
        defer { try? FileManager.default.removeItem(atPath: spool.root) }
        func commit(_ content: String) throws -> String {
            let (fd, path) = try Self.temporaryFile(spool, content)
            let finished = Spool.Finished(descriptor: fd, temporary: path, name: "x.txt") {
                #"{"content":"\#(content)","storedAs":"\#($0)"}"#
            }
            return try #require(spool.commit([finished]).first).stored.get()
        }
        #expect(try commit("old") == "x.txt")
        // A consumer takes the file and leaves its record; the next x.txt gets the name, and the record is the new
        // one (replaced in one rename, never missing or mixed).
        unlink(spool.root + "/x.txt")
        #expect(try commit("new") == "x.txt")
        #expect(try String(contentsOfFile: spool.root + "/x.txt", encoding: .utf8) == "new")
        #expect(
            try String(contentsOfFile: spool.metadataDirectory + "/x.txt.json", encoding: .utf8)
                == #"{"content":"new","storedAs":"x.txt"}"# + "\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool.temporaryDirectory).isEmpty)
    }

    @Test func racingWritersWithTheSameNameEachGetTheirOwnFile() async throws {
        let spool = try Self.temporarySpool()
        defer { try? FileManager.default.removeItem(atPath: spool.root) }
        let writers = 16
        let files = try (0..<writers).map { try Self.temporaryFile(spool, "writer \($0)") }
        defer { for file in files { close(file.descriptor) } }
        let names = await withTaskGroup(of: String?.self) { group in
            for path in files.map(\.path) {
                group.addTask { try? spool.publish(temporary: path, as: "race.bin") }
            }
            var names: [String] = []
            for await name in group { if let name { names.append(name) } }
            return names
        }
        #expect(Set(names).count == writers)
        let contents = try Set(names.map { try String(contentsOfFile: spool.root + "/" + $0, encoding: .utf8) })
        #expect(contents == Set((0..<writers).map { "writer \($0)" }))
    }

    @Test func prepareRemovesLeftovers() throws {
        let spool = try Self.temporarySpool()
        defer { try? FileManager.default.removeItem(atPath: spool.root) }
        // What a crash leaves: named temporaries (unnamed ones vanish with the process).
        for _ in 0..<2 { close(try spool.createNamedTemporary(tag: "partial").descriptor) }
        let unnamed = try Self.temporaryFile(spool, "never published")
        close(unnamed.descriptor)
        #expect(try spool.prepare() == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: spool.temporaryDirectory).isEmpty)
    }

    @Test func theIndexNeverVouchesForContentTheSpoolNoLongerHolds() throws {
        let spool = try Self.temporarySpool()
        defer { try? FileManager.default.removeItem(atPath: spool.root) }
        let index = SpoolIndex(spool: spool)
        try Data("same".utf8).write(to: URL(fileURLWithPath: spool.root + "/a"))
        index.add(sentAs: "a", sha256: "h1", storedAs: "a", size: 4)
        #expect(index.stored(sentAs: "a", sha256: "h1") == "a")
        // A consumer took `a` away and another file of the same size now has its name.
        index.add(sentAs: "a", sha256: "h2", storedAs: "a", size: 4)
        #expect(index.stored(sentAs: "a", sha256: "h1") == nil)
        #expect(index.stored(sentAs: "a", sha256: "h2") == "a")
        try FileManager.default.removeItem(atPath: spool.root + "/a")
        #expect(index.stored(sentAs: "a", sha256: "h2") == nil)
    }
}

@Suite struct ChunkCodecTests {
    @Test func compressibleChunksShrinkAndIncompressibleOnesStayRaw() throws {
        let compressor = try ChunkCompressor(level: 1)
        let text = ByteBuffer(string: String(repeating: "2026-11-25 INFO request ok id=12345\n", count: 2000))
        let compressed = try #require(compressor.compress(text))
        #expect(compressed.readableBytes < text.readableBytes / 4)
        let restored = try ChunkDecompressor().decompress(compressed, rawLength: text.readableBytes)
        #expect(restored == text)
        var generator = SeededGenerator(seed: 9)
        let noise = ByteBuffer(bytes: generator.bytes(65536))
        #expect(compressor.compress(noise) == nil)
    }

    @Test func aBombIsStoppedAtTheAnnouncedSize() throws {
        // 64 MiB of zeros compress to about 64 KiB; announced as 256 KiB, it must fail without inflating it all.
        let compressor = try ChunkCompressor(level: 9)
        let zeros = ByteBuffer(repeating: 0, count: 64 << 20)
        let bomb = try #require(compressor.compress(zeros))
        #expect(bomb.readableBytes < 1 << 20)
        #expect(throws: ChunkDecompressor.Failure.self) {
            try ChunkDecompressor().decompress(bomb, rawLength: 256 << 10)
        }
    }

    @Test func garbageAndShortStreamsAreErrors() throws {
        let decompressor = try ChunkDecompressor()
        #expect(throws: ChunkDecompressor.Failure.self) {
            try decompressor.decompress(ByteBuffer(bytes: [0xFF, 0xFE, 0xFD, 0x00, 0x12]), rawLength: 100)
        }
        let compressor = try ChunkCompressor(level: 1)
        let text = ByteBuffer(string: String(repeating: "abc", count: 1000))
        let compressed = try #require(compressor.compress(text))
        #expect(throws: ChunkDecompressor.Failure.self) { try decompressor.decompress(compressed, rawLength: 2000) }
        // The decompressor is still usable after failures.
        #expect(try decompressor.decompress(compressed, rawLength: 3000) == text)
    }
}
