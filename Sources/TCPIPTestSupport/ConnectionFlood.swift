import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An attacker with raw sockets: connections to 127.0.0.1:`port` from chosen loopback source addresses that never
/// register. Each one, once open, sends its `opening` bytes (nothing for an idle connection; the first half of a
/// frame for a half-sent one) and then waits. A connection the hub closes is opened again, so the flood holds as many
/// as the hub lets it for as long as it runs. Runs on a thread of its own until ``stop()``.
public final class ConnectionFlood: @unchecked Sendable {
    public struct Group: Sendable {
        public var source: String
        public var count: Int
        public var opening: [UInt8]
        public init(from source: String, count: Int, opening: [UInt8] = []) {
            self.source = source
            self.count = count
            self.opening = opening
        }
    }

    private struct Slot {
        var fd: Int32
        let group: Int
    }

    private let port: Int
    private let groups: [Group]
    private let reopenPerPass: Int
    private let stopping = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let counters = Mutex<(opened: Int, closedByHub: Int)>((0, 0))

    /// Opens every connection once (before returning), then keeps them open from a thread of its own, opening again
    /// at most `reopenPerPass` of those the hub closed every 100 ms.
    public init(port: Int, _ groups: [Group], reopenPerPass: Int = 20) throws {
        self.port = port
        self.groups = groups
        self.reopenPerPass = reopenPerPass
        Self.raiseDescriptorLimit()
        var slots: [Slot] = []
        for (index, group) in groups.enumerated() {
            for _ in 0..<group.count { slots.append(Slot(fd: open(group: index), group: index)) }
        }
        let initial = slots
        let thread = Thread { [self] in
            run(initial)
            done.signal()
        }
        thread.start()
    }

    /// Connections opened so far, and how many of them the hub closed.
    public var statistics: (opened: Int, closedByHub: Int) { counters.withLock { $0 } }

    /// Stops reopening and closes every connection.
    public func stop() async {
        stopping.store(true, ordering: .relaxed)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                self.done.wait()
                continuation.resume()
            }.start()
        }
    }

    private func run(_ initial: [Slot]) {
        var slots = initial
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stopping.load(ordering: .relaxed) {
            // At most `reopenPerPass` new connections per pass of about 100 ms: a steady flood the hub can accept
            // (one past what it can accept fills the kernel's queue of connections to accept, and SYNs from
            // everyone are dropped; that is a rate limit's job, in the firewall, not the hub's).
            var reopened = 0
            for index in slots.indices {
                let fd = slots[index].fd
                var gone = fd < 0
                while !gone {
                    let count = buffer.withUnsafeMutableBytes {
                        recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
                    }
                    if count > 0 { continue }  // the greeting, or the hub's reason for closing: read and ignored
                    gone = count == 0 || [ECONNRESET, ECONNREFUSED, EPIPE, ETIMEDOUT].contains(errno)
                    break
                }
                guard gone else { continue }
                if fd >= 0 {
                    close(fd)
                    slots[index].fd = -1
                    counters.withLock { $0.closedByHub += 1 }
                }
                guard reopened < reopenPerPass else { continue }
                reopened += 1
                slots[index].fd = open(group: slots[index].group)
            }
            usleep(100_000)
        }
        for slot in slots where slot.fd >= 0 { close(slot.fd) }
    }

    /// A non-blocking connection from the group's source that has sent the group's opening bytes; -1 on failure (tried
    /// again on the next pass).
    private func open(group index: Int) -> Int32 {
        let group = groups[index]
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(group.source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, connected == 0 || errno == EINPROGRESS else {
            close(fd)
            return -1
        }
        counters.withLock { $0.opened += 1 }
        if !group.opening.isEmpty {
            _ = group.opening.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        return fd
    }

    /// The test process holds thousands of sockets at once: the soft descriptor limit goes up to the hard one.
    private static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
