import NIOCore
import TCPIPCore
import TCPIPWire

/// One hub connection, as the one handler of its pipeline (behind TLS's, when there is TLS): cuts the bytes received
/// into packets, hands them to the router, writes the router's packets as frames, and reads only when the router's
/// ``HubBackpressure`` allows. One handler, not a decoder, an encoder and a handler: each costs an idle connection a
/// pipeline context and an object of its own.
final class HubConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let router: HubRouter
    private(set) var id = ConnectionID(0)
    private(set) var context: ChannelHandlerContext?
    /// Set once the hub decided to close the connection: nothing more is read.
    var closing = false
    private var paused = false
    /// A connection the hub made to itself (its store), not one accepted from the network.
    let local: Bool
    /// Cuts frames: held to the largest MyCredentials until the connection registers, then to the hub's limit.
    private var parser = FrameParser(maxFrameSize: Credentials.maxFrameSize)
    /// Bytes received that do not make a whole frame yet; nil when there are none (an idle connection holds no buffer).
    private var received: ByteBuffer?
    /// Whether the connection has registered (its frame limit was raised).
    private(set) var registered = false
    init(router: HubRouter, local: Bool = false) {
        self.router = router
        self.local = local
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
        received = nil
        router.disconnected(self)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var bytes = unwrapInboundIn(data)
        if received == nil {
            received = bytes
        } else {
            received!.writeBuffer(&bytes)
        }
        // A packet may make the router close this connection (and run channelInactive) before the loop ends.
        while !closing, self.context != nil, var buffer = received {
            received = nil
            let packet: Packet?
            do {
                packet = try parser.nextPacket(from: &buffer)
            } catch {
                router.failed(self, error: error)
                // The stream is out of step: nothing more is read, whether or not the core still knew this connection.
                if !closing {
                    closing = true
                    context.close(promise: nil)
                }
                return
            }
            guard let packet else {
                buffer.discardReadBytes()
                received = buffer
                break
            }
            if buffer.readableBytes > 0 { received = buffer }
            router.received(packet, from: self)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        router.flushPending()
        context.fireChannelReadComplete()
    }

    /// Bytes held for a frame not yet whole.
    var bufferedBytes: Int { received?.readableBytes ?? 0 }

    /// The connection registered: from the next frame on (one already received included), the hub's limit applies.
    func registered(maxFrameSize: Int) {
        registered = true
        parser = FrameParser(maxFrameSize: maxFrameSize)
    }

    /// Writes a packet as a frame: the header as a small buffer and the payload as its own, so a relayed payload is
    /// never copied (the socket sends both with one vectored write).
    func write(_ packet: Packet, promise: EventLoopPromise<Void>?) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        let (header, payload) = PacketEncoder.frame(packet, allocator: context.channel.allocator)
        if let payload {
            context.write(wrapOutboundOut(header), promise: nil)
            context.write(wrapOutboundOut(payload), promise: promise)
        } else {
            context.write(wrapOutboundOut(header), promise: promise)
        }
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
