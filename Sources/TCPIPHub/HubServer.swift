import FoundationEssentials
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import TCPIPCore
import TCPIPWire

#if canImport(Glibc)
    import Glibc
#endif

/// The hub: accepts clients and relays their packets through a ``HubCore``.
///
/// Connections (accepting, TLS, framing, writing) run on a group of ``HubConfiguration/threads`` loops; the core, a
/// single-owner value, runs on a loop of its own, which they hand packets to in batches (``HubRouter``). Routing stays
/// free of locks, and TLS's record crypto, the costliest work per byte, runs on every core.
public final class HubServer: Sendable {
    public let configuration: HubConfiguration
    private let logger: Logger
    /// The connections' loops.
    private let group: MultiThreadedEventLoopGroup
    /// The core's loop.
    private let coreGroup: MultiThreadedEventLoopGroup
    private let router: HubRouter
    private let serverChannel = NIOLockedValueBox<(any Channel)?>(nil)
    private let classicChannel = NIOLockedValueBox<(any Channel)?>(nil)
    private let tickTask = NIOLockedValueBox<RepeatedTask?>(nil)

    public init(configuration: HubConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        coreGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        router = HubRouter(
            core: HubCore(configuration: configuration, logger: logger), loop: coreGroup.next(), logger: logger)
        router.authorizedFile = configuration.authorizedPeersFile
    }

    /// SIGHUP: reads the authorized peers again (connected peers stay).
    public func reloadAuthorizedPeers() {
        let router = self.router
        router.loop.execute { router.reloadAuthorizedPeers() }
    }

    /// Binds and starts accepting. Returns the address actually bound (the real port when asked for port 0).
    public func start() async throws -> SocketAddress {
        try configuration.validate()
        let router = self.router
        let configuration = self.configuration
        var maxConnections = DescriptorLimit.raise()
        // The classic listener's connections come out of the same descriptors: an eighth of them.
        let classicConnections = configuration.classicListen == nil ? 0 : max(1, maxConnections / 8)
        maxConnections = max(1, maxConnections - classicConnections)
        let channel = try await bind(configuration.listen, classic: false, maxConnections: maxConnections)
        serverChannel.withLockedValue { $0 = channel }
        if let classicListen = configuration.classicListen {
            let classic = try await bind(classicListen, classic: true, maxConnections: classicConnections)
            classicChannel.withLockedValue { $0 = classic }
            logger.info(
                "taking classic clients",
                metadata: ["address": "\(HubConnectionHandler.describe(classic.localAddress))"])
        }
        let tickEvery = Self.tickInterval(configuration)
        let task = router.loop.scheduleRepeatedTask(initialDelay: tickEvery, delay: tickEvery) { _ in router.tick() }
        tickTask.withLockedValue { $0 = task }
        guard let address = channel.localAddress else { throw TCPIPError.internalError("bound socket has no address") }
        logger.info("listening", metadata: ["address": "\(HubConnectionHandler.describe(address))"])
        return address
    }

    /// Where the classic listener took connections (`HubConfiguration/classicListen`), once ``start()`` returned.
    public var classicAddress: SocketAddress? { classicChannel.withLockedValue { $0?.localAddress } }

    /// Binds one listening socket: the hub's own (TLS when configured), or the classic listener's (plaintext, the
    /// seed's 1024-byte packets, translated).
    private func bind(_ listen: HostPort, classic: Bool, maxConnections: Int) async throws -> any Channel {
        let router = self.router
        let configuration = self.configuration
        let high = configuration.maxQueuedBytes / 2
        let logger = self.logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionLimiter(limit: maxConnections, logger: logger))
                }
            }
            .childChannelOption(.writeBufferWaterMark, value: .init(low: high / 2, high: high))
            // A peer's FIN ends its input, not the connection: the answers to what it sent still go out.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(configuration.receiveBufferSize))
            .childChannelOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65536)
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if !classic, let security = configuration.security {
                        try channel.pipeline.syncOperations.addHandlers(try security.makeHandlers())
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        HubConnectionHandler(router: router, loop: channel.eventLoop, classic: classic))
                }
            }
        do {
            return try await bootstrap.bind(host: listen.host, port: listen.port).get()
        } catch {
            // "address already in use", not NIO's `bind(descriptor:ptr:bytes:)…`.
            let what = classic ? "classic clients on" : "listen on"
            throw TCPIPError(.cannotCreate, "cannot \(what) \(listen): \(describeNetworkError(error))")
        }
    }

    /// Makes a connection to this hub that no one else can make: a socket pair, one end served like an accepted
    /// connection, marked local (it may register the role `store`, needs no token or key), the other end returned for
    /// a ``ClientConfiguration/connectedSocket``. The hub's store joins through it.
    public func connectLocal() async throws -> Int32 {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            throw TCPIPError.internalError("socketpair: \(String(cString: strerror(errno)))")
        }
        let router = self.router
        let configuration = self.configuration
        let high = configuration.maxQueuedBytes / 2
        do {
            _ = try await ClientBootstrap(group: group)
                .channelOption(.writeBufferWaterMark, value: .init(low: high / 2, high: high))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            HubConnectionHandler(router: router, loop: channel.eventLoop, local: true))
                    }
                }
                .withConnectedSocket(ends[0]).get()
        } catch {
            close(ends[0])
            close(ends[1])
            throw error
        }
        return ends[1]
    }

    /// Sends HostExiting to every client, closes every connection and stops accepting.
    public func shutdown(reason: String = "stopped") async {
        let router = self.router
        tickTask.withLockedValue { $0?.cancel() }
        let channel = serverChannel.withLockedValue { $0 }
        try? await channel?.close()
        try? await classicChannel.withLockedValue({ $0 })?.close()
        try? await router.loop.submit { router.shutdown(reason: reason) }.get()
        // Give the closes a moment to reach the clients before the loop goes away.
        for _ in 0..<100 {
            let open = (try? await router.loop.submit { router.openConnections }.get()) ?? 0
            if open == 0 { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        try? await group.shutdownGracefully()
        try? await coreGroup.shutdownGracefully()
    }

    /// Counters for tests and benchmarks.
    public func statistics() async throws -> HubStatistics {
        let router = self.router
        return try await router.loop.submit { router.statistics() }.get()
    }

    static func tickInterval(_ configuration: HubConfiguration) -> TimeAmount {
        let shortest = min(configuration.pingInterval, configuration.registrationTimeout, configuration.writeTimeout)
        let quarter = TimeAmount.nanoseconds(TimeAmount(shortest).nanoseconds / 4)
        return min(max(quarter, .milliseconds(10)), .seconds(1))
    }
}

/// The hub's file descriptors: one per connection, and up to one more per connection for the store's files.
enum DescriptorLimit {
    /// Descriptors kept free for everything that is not a connection (the authorized-peers file, the store's index,
    /// the few connections accepted at once past the limit), beyond the two per connection: 16, or an eighth of a
    /// small limit.
    static func reserve(_ descriptors: Int) -> Int { min(16, descriptors / 8) }

    /// Raises the soft RLIMIT_NOFILE to the hard limit (as far as 1,048,576) and returns how many connections fit in
    /// it: half of what is left after the descriptors already open and ``reserve``, at least 1.
    static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 480 }
        let wanted = min(limit.rlim_max, 1 << 20)
        if limit.rlim_cur < wanted {
            var raised = limit
            raised.rlim_cur = wanted
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let descriptors = Int(clamping: limit.rlim_cur)
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 16
        return max(1, (descriptors - open - reserve(descriptors)) / 2)
    }
}

/// Stops accepting while `limit` connections are open and accepts again when one closes: the connections past it wait
/// in the listening socket's backlog. Without it a hub out of descriptors spins: accept fails (EMFILE) with the
/// connection still waiting, the listening socket stays readable, and the loop tries again at full CPU for as long as
/// it waits (NIO's AcceptBackoffHandler cannot stop that: NIO keeps the socket registered until an accept succeeds).
///
/// Its state lives on the accepting loop alone (`@unchecked Sendable`): a connection's close, on its own loop, is sent
/// there as a task. (Not a future hopped there: that costs every idle connection a promise and a callback more.)
final class ConnectionLimiter: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel
    let limit: Int
    let logger: Logger
    private var open = 0
    private var paused = false
    private var warned: NIODeadline?

    init(limit: Int, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        open += 1
        // The child's close, however it happens (before its handlers were added included), is the one sure signal.
        let server = context.channel
        child.closeFuture.whenComplete { _ in server.eventLoop.execute { self.closed(server) } }
        if open >= limit && !paused {
            paused = true
            context.channel.setOption(.autoRead, value: false).whenFailure { _ in }
            // Once a minute at most: at the limit, accepting pauses and resumes with every connection that closes.
            if warned.map({ .now() - $0 > .seconds(60) }) ?? true {
                warned = .now()
                let limit = "as many as the descriptor limit allows (LimitNOFILE, ulimit -n)"
                logger.warning("\(open) connections, \(limit): new ones wait until one closes")
            }
        }
        context.fireChannelRead(data)
    }

    /// A connection closed (run on the accepting loop).
    private func closed(_ server: any Channel) {
        open -= 1
        guard paused, open < limit else { return }
        paused = false
        server.setOption(.autoRead, value: true).whenFailure { _ in }
        logger.debug("accepting connections again", metadata: ["connections": "\(open)"])
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // accept failed (a connection reset before it was accepted, or descriptors used elsewhere): the server goes on.
        logger.debug("accept failed", metadata: ["error": "\(error)"])
    }
}

/// A bound address as `HOST:PORT` (`[HOST]:PORT` for IPv6), for the "listening on" line.
public struct SocketAddressDescription: Sendable {
    public let text: String
    public init(_ address: SocketAddress) { text = HubConnectionHandler.describe(address) }
}
