import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A plain blocking TCP socket to 127.0.0.1, for sending bytes no well-behaved client would send.
public final class RawSocket: @unchecked Sendable {
    public let fd: Int32

    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw TestFailure("connect to 127.0.0.1:\(port) failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A socket accepted by a ``RawListener``.
    init(accepted descriptor: Int32) {
        fd = descriptor
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    public func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { return }
            offset += sent
        }
    }

    /// Reads exactly `count` bytes (blocking, at most 10 s per read); nil when the peer closed or nothing came.
    private func read(exactly count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let got = out[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { return nil }
            offset += got
        }
        return out
    }

    /// Exactly `count` bytes, or nil when the peer closed or nothing came for 10 s.
    public func readExactly(_ count: Int) async -> [UInt8]? { await onItsOwnThread { self.read(exactly: count) } }

    /// Ends what this side sends (a FIN); the peer can still answer.
    public func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    public typealias Frame = (type: UInt16, dataType: UInt16, idFrom: UInt32, payload: [UInt8])

    /// One frame as the protocol document describes it (length u32, then type u16, dataType u16, maskTo u8, level u8,
    /// idTo u32, idFrom u32, payload), read byte by byte without the project's decoder; nil when the peer closed.
    public func readFrame() async -> Frame? { await onItsOwnThread { self.readFrameBlocking() } }

    /// The next frame that is not a Ping: a registered connection is pinged by the hub's heartbeat at any moment.
    public func readReply() async -> Frame? {
        await onItsOwnThread {
            while let frame = self.readFrameBlocking() {
                if frame.type != 1 { return frame }
            }
            return nil
        }
    }

    /// The blocking read behind ``readFrame()`` and ``readReply()``. Those run it on a thread of its own: with every
    /// test running at once on two cores, a pool thread blocked in a read holds back half the suite.
    private func readFrameBlocking() -> Frame? {
        guard let prefix = read(exactly: 4) else { return nil }
        let length = Int(prefix.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard length >= 14, length <= 16 << 20, let rest = read(exactly: length) else { return nil }
        func u16(_ at: Int) -> UInt16 { UInt16(rest[at]) << 8 | UInt16(rest[at + 1]) }
        let idFrom = rest[10..<14].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return (u16(0), u16(2), idFrom, Array(rest[14...]))
    }

    /// Reads until the peer closes (or 10 s pass); returns what arrived and whether the peer closed.
    public func readToEnd() async -> (bytes: [UInt8], closed: Bool) {
        await onItsOwnThread { self.readToEndBlocking() }
    }

    private func readToEndBlocking() -> (bytes: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { return (out, true) }
            if count < 0 { return (out, errno == ECONNRESET) }
            out += chunk[0..<count]
        }
    }
}

/// A listening socket on 127.0.0.1, port 0: a stand-in hub that says nothing unless the test makes it.
public final class RawListener: @unchecked Sendable {
    public let fd: Int32
    public let port: Int

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw TestFailure("cannot listen on 127.0.0.1: errno \(errno)")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }

    /// The next connection, or nil when none came within `timeout` seconds.
    public func accept(timeout: Double = 30) async -> RawSocket? {
        await onItsOwnThread {
            var descriptor = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(timeout * 1000)) == 1 else { return nil }
            let accepted = Glibc.accept(self.fd, nil, nil)
            return accepted >= 0 ? RawSocket(accepted: accepted) : nil
        }
    }
}
