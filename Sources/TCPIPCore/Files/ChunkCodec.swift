import CompressNIO
import NIOCore
import TCPIPWire

/// Compresses file chunks one by one with zlib (raw deflate, one complete stream per chunk), keeping a chunk raw when
/// compressing does not make it smaller, so incompressible data costs one attempt and no extra bytes.
/// One is used by one sending task, one chunk at a time.
public final class ChunkCompressor: @unchecked Sendable {
    private let compressor: ZlibCompressor
    /// Bytes left free in front of each output, for the FileChunk header.
    public let headroom: Int

    public init(level: Int32, headroom: Int = FileChunk.headerSize) throws {
        compressor = try ZlibCompressor(
            algorithm: .deflate,
            configuration: ZlibConfiguration(windowSize: 15, compressionLevel: level, memoryLevel: 8)
        )
        self.headroom = headroom
    }

    /// The compressed chunk, or nil when it would not be smaller than `chunk`.
    public func compress(_ chunk: ByteBuffer) -> ByteBuffer? {
        guard chunk.readableBytes > 16 else { return nil }
        var input = chunk
        var output = ByteBufferAllocator().buffer(capacity: headroom + chunk.readableBytes - 1)
        output.moveWriterIndex(forwardBy: headroom)
        output.moveReaderIndex(forwardBy: headroom)
        defer { try? compressor.reset() }
        do {
            try compressor.deflate(from: &input, to: &output, flush: .finish)
        } catch {
            return nil  // did not fit in fewer bytes than the original
        }
        return output.readableBytes < chunk.readableBytes ? output : nil
    }
}

/// Inflates compressed chunks into a buffer of the announced size and no larger: a chunk that would inflate past it
/// (a decompression bomb) or that is not valid deflate data is an error, and nothing grows without bound.
/// One is used by one receive loop, which handles one chunk at a time; it is never used from two threads at once.
public final class ChunkDecompressor: @unchecked Sendable {
    private let decompressor: ZlibDecompressor

    public init() throws {
        decompressor = try ZlibDecompressor(algorithm: .deflate)
    }

    public enum Failure: Error, CustomStringConvertible {
        case tooLarge(limit: Int)
        case corrupt
        case wrongLength(expected: Int, actual: Int)

        public var description: String {
            switch self {
            case .tooLarge(let limit): "a compressed chunk inflates past its announced \(limit) bytes"
            case .corrupt: "a compressed chunk is not valid deflate data"
            case .wrongLength(let expected, let actual):
                "a compressed chunk inflated to \(actual) bytes, not the announced \(expected)"
            }
        }
    }

    public func decompress(_ data: ByteBuffer, rawLength: Int) throws -> ByteBuffer {
        var input = data
        var output = ByteBufferAllocator().buffer(capacity: rawLength)
        defer { try? decompressor.reset() }
        do {
            try decompressor.inflate(from: &input, to: &output)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw Failure.tooLarge(limit: rawLength)
        } catch {
            throw Failure.corrupt
        }
        guard output.readableBytes == rawLength else {
            throw Failure.wrongLength(expected: rawLength, actual: output.readableBytes)
        }
        return output
    }
}
