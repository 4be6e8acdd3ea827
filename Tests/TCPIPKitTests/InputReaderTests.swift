import Foundation
import NIOCore
import TCPIPClient
import TCPIPTestSupport
import Testing

/// stdin read ahead on a thread of its own (`send`): every byte once and in order, cut where asked, the end sticky,
/// and never more than the bound ahead of the consumer.
@Suite struct InputReaderTests {
    /// A pipe whose write end a thread fills with `bytes` and closes.
    static func pipe(writing bytes: [UInt8]) -> Int32 {
        var ends: [Int32] = [0, 0]
        #expect(Foundation.pipe(&ends) == 0)
        let writer = ends[1]
        Thread {
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Foundation.write(writer, $0.baseAddress, $0.count) }
                if written <= 0 { break }
                offset += written
            }
            close(writer)
        }.start()
        return ends[0]
    }

    @Test func aPrefetchingReaderReturnsEveryByteOnceInOrderCutWhereAsked() async throws {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let descriptor = Self.pipe(writing: bytes)
        defer { close(descriptor) }
        let reader = InputReader.prefetching(descriptor: descriptor)
        var received: [UInt8] = []
        var sizes = [1, 7, 1000, 65536, 300_000]
        while let chunk = try await reader.read(upTo: sizes[received.count % sizes.count]) {
            #expect(chunk.readableBytes <= sizes[received.count % sizes.count] && chunk.readableBytes > 0)
            received += chunk.readableBytesView
            sizes.swapAt(0, sizes.count - 1)
        }
        #expect(received == bytes)
        #expect(try await reader.read(upTo: 10) == nil, "the end stays the end")
    }

    @Test func readFullFillsToTheBoundAndSaysWhereTheEndIs() async throws {
        let bytes = (0..<100_000).map { UInt8($0 % 251) }
        let descriptor = Self.pipe(writing: bytes)
        defer { close(descriptor) }
        let reader = InputReader.prefetching(descriptor: descriptor)
        let first = try await reader.readFull(upTo: 60_000)
        #expect(first.bytes?.readableBytes == 60_000 && !first.atEnd)
        let second = try await reader.readFull(upTo: 60_000)
        #expect(second.bytes?.readableBytes == 40_000 && second.atEnd)
        #expect(Array(first.bytes!.readableBytesView) + Array(second.bytes!.readableBytesView) == bytes)
    }

    @Test func aReaderNobodyConsumesStopsAtItsBound() async throws {
        // 8 MiB offered, nothing consumed: the thread takes about 1 MiB (and one read) and leaves the rest in the pipe.
        var ends: [Int32] = [0, 0]
        #expect(Foundation.pipe(&ends) == 0)
        defer { close(ends[0]) }
        let written = ManagedAtomicCounter()
        let writer = ends[1]
        Thread {
            let block = [UInt8](repeating: 0x61, count: 4096)
            for _ in 0..<2048 {
                let count = block.withUnsafeBytes { Foundation.write(writer, $0.baseAddress, $0.count) }
                if count <= 0 { break }
                written.add(count)
            }
            close(writer)
        }.start()
        let reader = InputReader.prefetching(descriptor: ends[0])
        #expect(try await eventually(within: 20) { written.value >= 1 << 20 })
        try await Task.sleep(for: .milliseconds(300))
        let taken = written.value
        // 1 MiB ahead, one 256 KiB read past it, and the pipe's own buffer (64 KiB here, up to 1 MiB if raised).
        #expect(taken < (1 << 20) + (256 << 10) + (1 << 20), "read \(taken) bytes ahead")
        // Consuming lets it go on, to the end.
        var total = 0
        while let chunk = try await reader.read(upTo: 1 << 20) { total += chunk.readableBytes }
        #expect(total == 8 << 20)
    }
}

/// A counter shared with a writer thread.
final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add(_ value: Int) { lock.withLock { count += value } }
    var value: Int { lock.withLock { count } }
}
