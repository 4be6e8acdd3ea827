import NIOCore
import TCPIPWire

/// One hub connection in the pipeline: hands packets to the router and reads only when the router's
/// ``HubBackpressure`` allows.
final class HubConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = Packet
    typealias OutboundIn = Packet
    typealias OutboundOut = Packet

    let router: HubRouter
    private(set) var id = ConnectionID(0)
    private(set) var context: ChannelHandlerContext?
    /// Set once the hub decided to close the connection: nothing more is read.
    var closing = false
    private var paused = false
    /// A connection the hub made to itself (its store), not one accepted from the network.
    let local: Bool
    /// The largest frame this connection's decoder accepts: a MyCredentials until it registers, then the hub's limit.
    let frameLimit: FrameLimit
    /// Whether the connection has registered (its frame limit was raised).
    var registered = false

    init(router: HubRouter, frameLimit: FrameLimit, local: Bool = false) {
        self.router = router
        self.frameLimit = frameLimit
        self.local = local
    }

    /// The decoder and this handler for one connection, the decoder held to a MyCredentials-sized frame until the
    /// connection registers.
    static func pipeline(router: HubRouter, local: Bool = false) -> [any ChannelHandler] {
        let limit = FrameLimit(Credentials.maxFrameSize)
        return [
            ByteToMessageHandler(PacketDecoder(limit: limit)), PacketEncoder(),
            HubConnectionHandler(router: router, frameLimit: limit, local: local),
        ]
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        let remote = context.channel.remoteAddress
        id = router.connected(
            self, address: local ? "local" : Self.describe(remote), source: local ? nil : Admission.source(of: remote))
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        router.disconnected(self)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        router.received(unwrapInboundIn(data), from: self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        router.flushPending()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        router.writabilityChanged(self, writable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let proof = event as? PeerAuthenticated {
            router.authenticated(self, key: proof.id)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        router.failed(self, error: error)
    }

    func read(context: ChannelHandlerContext) {
        if !paused && !closing { context.read() }
    }

    /// Stops reading (the router calls this when ``HubBackpressure`` holds this connection back). Turning autoRead off
    /// takes the socket out of the poller at once, whether or not a read was already requested. (NIO still reads all
    /// that was received when the peer closes: ``HubConfiguration`` bounds that with the receive buffer's size.)
    func pause() {
        guard !paused, let context else { return }
        paused = true
        try? context.channel.syncOptions?.setOption(.autoRead, value: false)
    }

    /// Reads again (nothing holds this connection back any more).
    func resume() {
        guard paused, let context else { return }
        paused = false
        guard !closing else { return }
        try? context.channel.syncOptions?.setOption(.autoRead, value: true)
    }

    static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "unknown" }
        if case .v6 = address { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }
}
