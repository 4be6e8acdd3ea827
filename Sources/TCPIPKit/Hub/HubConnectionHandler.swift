import NIOCore
import TCPIPWire

/// One hub connection in the pipeline: hands packets to the router and holds reads while a destination this
/// connection feeds is over its high-water mark.
final class HubConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = Packet
    typealias OutboundIn = Packet
    typealias OutboundOut = Packet

    let router: HubRouter
    private(set) var id = ConnectionID(0)
    private(set) var context: ChannelHandlerContext?
    /// Destinations that are over their mark after packets from this connection; reading waits until all drain.
    var blockedOn: Set<ConnectionID> = []
    /// Connections whose reads wait for this one to drain.
    var waiters: Set<ConnectionID> = []
    /// When this connection stopped being writable, or nil while it is writable.
    var unwritableSince: NIODeadline?
    /// Set once the hub decided to close the connection: nothing more is read.
    var closing = false
    private var readPending = false

    init(router: HubRouter) { self.router = router }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        id = router.connected(self, address: Self.describe(context.channel.remoteAddress))
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

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        router.failed(self, error: error)
    }

    func read(context: ChannelHandlerContext) {
        if blockedOn.isEmpty && !closing {
            context.read()
        } else {
            readPending = true
        }
    }

    /// Reads again if a read was held and nothing blocks it any more.
    func resumeIfUnblocked() {
        guard blockedOn.isEmpty, !closing, readPending, let context else { return }
        readPending = false
        context.read()
    }

    static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "unknown" }
        if case .v6 = address { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }
}
