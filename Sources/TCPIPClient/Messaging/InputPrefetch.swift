import NIOConcurrencyHelpers
import NIOCore
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// Reads a descriptor on a thread of its own from the moment it is made, a bounded distance ahead of its consumer: a
/// one-shot `send` has its message in hand by the time the hub has registered it, instead of starting to read then,
/// and a stream of lines is read without a trip to a thread pool for every read.
///
/// At most `ahead` bytes wait unconsumed; past that the thread waits, so a fast pipe cannot fill memory.
final class InputPrefetch: @unchecked Sendable {
    private enum Item {
        case bytes(ByteBuffer)
        case end
        case failed(TCPIPError)
    }

    /// Its value is 1 while the reader thread may read (room ahead), 0 while it must wait.
    private let condition = ConditionLock(value: 1)
    // Guarded by `condition`; every unlock says `mayRead`.
    private var items = CircularBuffer<Item>()
    private var buffered = 0
    private var waiter: CheckedContinuation<Void, Never>?

    private let descriptor: Int32
    private let headroom: Int
    private let readSize: Int
    private let ahead: Int

    init(descriptor: Int32, headroom: Int, readSize: Int = 256 << 10, ahead: Int = 1 << 20) {
        self.descriptor = descriptor
        self.headroom = headroom
        self.readSize = readSize
        self.ahead = ahead
        if !startThread({ [self] in readLoop() }) {
            items.append(.failed(TCPIPError(.noInput, "cannot start a thread to read input")))
        }
    }

    private var mayRead: Int { buffered < ahead ? 1 : 0 }

    /// The next bytes read, up to `maximum` (the rest of a larger read stays for the next call); nil at the end.
    func read(upTo maximum: Int) async throws -> ByteBuffer? {
        await waitForItem()
        condition.lock()
        var item = items.removeFirst()
        switch item {
        case .bytes(var buffer):
            if buffer.readableBytes > maximum, let slice = buffer.readSlice(length: maximum) {
                items.prepend(.bytes(buffer))
                item = .bytes(slice)
                buffered -= slice.readableBytes
            } else {
                buffered -= buffer.readableBytes
            }
        case .end, .failed:
            items.prepend(item)  // the end stays the end for every later call
        }
        condition.unlock(withValue: mayRead)
        switch item {
        case .bytes(let buffer): return buffer
        case .end: return nil
        case .failed(let error): throw error
        }
    }

    private func waitForItem() async {
        condition.lock()
        if !items.isEmpty {
            condition.unlock(withValue: mayRead)
            return
        }
        // One consumer at a time: the reader thread resumes it when it appends.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            waiter = continuation
            condition.unlock(withValue: mayRead)
        }
    }

    private func append(_ item: Item) {
        condition.lock()
        items.append(item)
        if case .bytes(let buffer) = item { buffered += buffer.readableBytes }
        let waiter = self.waiter
        self.waiter = nil
        condition.unlock(withValue: mayRead)
        waiter?.resume()
    }

    private func readLoop() {
        while true {
            condition.lock(whenValue: 1)
            condition.unlock(withValue: mayRead)
            var buffer = ByteBufferAllocator().buffer(capacity: headroom + readSize)
            buffer.moveWriterIndex(forwardBy: headroom)
            buffer.moveReaderIndex(forwardBy: headroom)
            let count = buffer.withUnsafeMutableWritableBytes { Glibc.read(descriptor, $0.baseAddress, readSize) }
            if count < 0 {
                if errno == EINTR { continue }
                append(.failed(TCPIPError(.noInput, "cannot read input: \(String(cString: strerror(errno)))")))
                return
            }
            if count == 0 {
                append(.end)
                return
            }
            buffer.moveWriterIndex(forwardBy: count)
            append(.bytes(buffer))
        }
    }
}
