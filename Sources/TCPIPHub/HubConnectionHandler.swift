import Logging
import NIOCore
import Synchronization
import TCPIPCore
import TCPIPWire

/// One hub connection, as the one handler of its pipeline (behind TLS's, when there is TLS), on one of the hub's
/// connection loops: cuts the bytes received into packets and hands them to the router, on the hub's own loop, in one
/// batch per read; writes the packets the router hands back; and reads only when the router allows. One handler, not a
/// decoder, an encoder and a handler: each costs an idle connection a pipeline context and an object of its own.
///
/// At most one batch per connection is with the router at a time: the connection reads nothing more until the router
/// has carried that batch out, so what it may have read past a full destination (``HubBackpressure``) stays one read
/// burst, and a MyCredentials is registered before the frame behind it is cut with the registered limit.
///
/// `@unchecked Sendable`: its state is touched only on its channel's loop. The router holds it only to send it tasks
/// that run there.
final class HubConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let router: HubRouter
    let id: ConnectionID
    /// The connection's loop: where every method of this handler runs.
    let loop: any EventLoop
    /// A connection the hub made to itself (its store), not one accepted from the network.
    let local: Bool
    /// A connection of the classic listener: its bytes are the seed's 1024-byte packets, which ``translator`` turns
    /// into this protocol's and back.
    let classic: Bool
    private var translator: ClassicTranslator?
    private var classicFramer = ClassicFramer()
    private var context: ChannelHandlerContext?
    /// The hub decided to close the connection: nothing more is read, handed over or written.
    private var closing = false
    /// The stream ended or went out of step: nothing more is read or handed over (the router may still write a last
    /// packet and close).
    private var stopped = false
    /// The router holds this connection back (a destination it fed is full).
    private var paused = false
    /// autoRead was turned off by ``pause()`` and is not on again yet.
    private var autoReadOff = false
    /// A batch is with the router.
    private var inFlight = false
    /// NIO asked to read while reading was not allowed: read once it is.
    private var readWithheld = false
    /// A MyCredentials was cut and the router has not answered yet: the frames behind it wait for its frame limit.
    private var awaitingRegistration = false
    /// Packets cut and not handed to the router yet.
    private var batch: [Packet] = []
    /// Cuts frames: held to the largest MyCredentials until the connection registers, then to the hub's limit.
    private var parser = FrameParser(maxFrameSize: Credentials.maxFrameSize)
    /// Bytes received that do not make a whole frame yet (or wait for registration); nil when there are none (an idle
    /// connection holds no buffer).
    private var received: ByteBuffer?
    /// Whether the connection has registered (its frame limit was raised).
    private(set) var registered = false
    /// Bytes of packets the router queued for this connection that have not left the hub yet: in the router, in this
    /// loop's task queue, or in NIO's write buffer (until the socket took them). The router counts them in and holds
    /// sources back on them, exactly, whatever this loop's lag; this loop counts them out as writes complete.
    let queued = Atomic<Int>(0)
    /// The router held a source back on ``queued``: report when it drains.
    let drainWanted = Atomic<Bool>(false)

    init(router: HubRouter, loop: any EventLoop, local: Bool = false, classic: Bool = false) {
        self.router = router
        self.loop = loop
        self.local = local
        self.classic = classic
        id = router.makeConnectionID()
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        let remote = context.channel.remoteAddress
        let address = local ? "local" : Self.describe(remote)
        let source = local ? nil : Admission.source(of: remote)
        if classic { translator = ClassicTranslator(address: address) }
        let router = self.router
        router.loop.execute { router.connected(self, address: address, source: source) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finishInput()
        let router = self.router
        router.loop.execute { router.disconnected(self) }
        context.fireChannelInactive()
    }

    /// The peer sent all it will send (its FIN; the hub allows half-closure, so its answers can still go out), or the
    /// connection closed or failed. What arrived before still counts (a last message, a goodbye): cut all of it, with
    /// the limit in force (closing gets an unregistered connection no larger frame), and hand it over, whatever is with
    /// the router; a frame out of step is the router's to answer, as when reading. Returns whether there was input left
    /// to end.
    @discardableResult
    private func finishInput() -> Bool {
        guard !stopped else { return false }
        var failure: (any Error)?
        if !closing, translator != nil {
            awaitingRegistration = false
            cutClassic()
            if classicFramer.bufferedBytes > 0 {
                router.logger.info(
                    "a classic client's connection ended inside a packet; its \(classicFramer.bufferedBytes) bytes were dropped",
                    metadata: ["connection": "\(id)"])
            }
        } else if !closing, var bytes = received {
            do {
                while let packet = try parser.nextPacket(from: &bytes) { batch.append(packet) }
            } catch {
                failure = error
            }
        }
        stopped = true
        received = nil
        handOverLast(failure)
        return true
    }

    /// Hands over every packet cut, whatever is with the router, then the error that ended the input, if one did.
    private func handOverLast(_ error: (any Error)?) {
        let (packets, router) = (batch, self.router)
        batch = []
        guard !packets.isEmpty || error != nil else { return }
        router.loop.execute {
            if !packets.isEmpty { router.received(packets, from: self) }
            if let error { router.failed(self, error: error) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing, !stopped else { return }
        var bytes = unwrapInboundIn(data)
        if received == nil {
            received = bytes
        } else {
            received!.writeBuffer(&bytes)
        }
        cut()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        handOver()
        context.fireChannelReadComplete()
    }

    /// Cuts the packets held, up to and including a MyCredentials while unregistered.
    private func cut() {
        if translator != nil { return cutClassic() }
        while !closing, !stopped, !awaitingRegistration, var buffer = received {
            received = nil
            let packet: Packet?
            do {
                packet = try parser.nextPacket(from: &buffer)
            } catch {
                // The stream is out of step: nothing more is read. The router answers (an error, then the close)
                // after the packets cut before it.
                stopped = true
                handOverLast(error)
                return
            }
            guard let packet else {
                buffer.discardReadBytes()
                received = buffer
                break
            }
            if buffer.readableBytes > 0 { received = buffer }
            batch.append(packet)
            if !registered && packet.header.type == .myCredentials { awaitingRegistration = true }
        }
    }

    /// Cuts classic packets from the bytes held and translates each: this protocol's packets join the batch (up to and
    /// including a MyCredentials while unregistered), classic answers go straight back, and a packet that breaks the
    /// wire closes the connection.
    private func cutClassic() {
        while !closing, !stopped, !awaitingRegistration, var buffer = received, let context {
            received = nil
            let packet = classicFramer.next(from: &buffer)
            if buffer.readableBytes > 0 { received = buffer }
            guard let packet, var translator else { break }
            // The only reference while it changes: its arrays and dictionaries are not copied.
            self.translator = nil
            var out = translator.received(packet, now: WireClock.now())
            self.translator = translator
            // An answer the translator makes itself (the acknowledgement of a message to the hub) is not counted in
            // what the router queues: a client that sends and never reads gets none while its queue is full, so it
            // cannot make the hub hold what it sends.
            if !out.toClient.isEmpty && !context.channel.isWritable { out.toClient = [] }
            batch += out.toHub
            if !registered && out.toHub.contains(where: { $0.header.type == .myCredentials }) {
                awaitingRegistration = true
            }
            writeClassic(out, context: context)
        }
    }

    /// Writes a translation's classic packets to the client, logs what it says, and closes on a violation.
    private func writeClassic(
        _ out: ClassicTranslator.Output, context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil
    ) {
        for (level, message) in out.logs {
            router.logger.log(level: level, "\(message)", metadata: ["connection": "\(id)"])
        }
        for (index, packet) in out.toClient.enumerated() {
            let last = index == out.toClient.count - 1
            context.write(wrapOutboundOut(packet.buffer), promise: last ? promise : nil)
        }
        if out.toClient.isEmpty { promise?.succeed() }
        if !out.toClient.isEmpty { context.flush() }
        if let violation = out.violation {
            router.logger.notice("closing a classic client: \(violation)", metadata: ["connection": "\(id)"])
            // What it sent before the offending packet still counts.
            stopped = true
            received = nil
            handOverLast(nil)
            context.close(promise: nil)
        }
    }

    /// Hands the packets cut to the router, unless a batch is with it already.
    private func handOver() {
        guard !inFlight, !closing, !stopped, !batch.isEmpty else { return }
        inFlight = true
        let (packets, router) = (batch, self.router)
        batch = []
        router.loop.execute { router.received(packets, from: self) }
    }

    /// The router carried out the last batch (run on this connection's loop); `maxFrameSize` when the connection
    /// registered with it.
    func acknowledged(registeredWith maxFrameSize: Int?) {
        inFlight = false
        if autoReadOff, !paused, !closing, !stopped, let context {
            // Resumed while the batch was out: reading comes back on now.
            autoReadOff = false
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        }
        if let maxFrameSize, !registered {
            registered = true
            parser = FrameParser(maxFrameSize: maxFrameSize)
        }
        if awaitingRegistration {
            awaitingRegistration = false
            cut()
        }
        handOver()
        readIfAllowed()
    }

    /// Bytes held for a frame not yet whole.
    var bufferedBytes: Int { received?.readableBytes ?? 0 }

    /// Writes packets as frames (run on this connection's loop; ``PacketEncoder/write(_:to:promise:flush:)``: small
    /// frames share buffers, a relayed payload is never copied); then closes, when `close`, once they are written. `bytes` is what the router counted for them in ``queued``.
    func deliver(_ packets: [Packet], close: Bool, bytes: Int) {
        let packets = router.rewriteOutbound?(packets) ?? packets
        guard let context, !closing else {
            left(bytes)
            return
        }
        let channel = context.channel
        var last: EventLoopPromise<Void>?
        if close && packets.isEmpty {
            // Closed after what earlier deliveries wrote: an empty write completes once they are written.
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.write(wrapOutboundOut(channel.allocator.buffer(capacity: 0)), promise: promise)
            last = promise
        }
        if !packets.isEmpty, var translator {
            // A classic client: each packet becomes classic ones (or none); answers made for it go to the hub.
            self.translator = nil
            let promise = context.eventLoop.makePromise(of: Void.self)
            var out = ClassicTranslator.Output()
            let now = WireClock.now()
            for packet in packets {
                let step = translator.deliver(packet, now: now)
                out.toClient += step.toClient
                out.toHub += step.toHub
                out.logs += step.logs
            }
            self.translator = translator
            writeClassic(out, context: context, promise: promise)
            last = promise
            if !out.toHub.isEmpty {
                batch += out.toHub
                handOver()
            }
        } else if !packets.isEmpty {
            let promise = context.eventLoop.makePromise(of: Void.self)
            PacketEncoder.write(packets, to: context, promise: promise, flush: false)
            last = promise
        }
        if bytes > 0 {
            // Writes complete in order: the last one's completion says all of them left (or the connection is gone).
            if let last { last.futureResult.whenComplete { _ in self.left(bytes) } } else { left(bytes) }
        }
        // Measured before the flush: what waits for the socket, the kernel's share not counted.
        if let buffered = try? channel.syncOptions?.getOption(.bufferedWritableBytes) {
            router.counters.buffered(buffered, connection: id, writable: channel.isWritable, logger: router.logger)
        }
        context.flush()
        guard close else { return }
        closing = true
        let closeNow: @Sendable () -> Void = { channel.close(promise: nil) }
        if let last {
            last.futureResult.whenComplete { _ in closeNow() }
            // A peer that never reads must not keep the connection open forever. Cancelled once closed: the task holds
            // the channel, and a flood of refused connections must not keep thousands alive.
            let deadline = context.eventLoop.scheduleTask(in: .seconds(5)) { closeNow() }
            channel.closeFuture.whenComplete { _ in deadline.cancel() }
        } else {
            closeNow()
        }
    }

    /// `bytes` counted in ``queued`` left the hub (written to the socket, or dropped with the connection); run on this
    /// connection's loop. Reports the drain to the router when it asked and the count is below its low mark.
    private func left(_ bytes: Int) {
        guard bytes > 0 else { return }
        let now = queued.wrappingSubtract(bytes, ordering: .sequentiallyConsistent).newValue
        guard now <= router.queuedLowMark, drainWanted.exchange(false, ordering: .sequentiallyConsistent) else {
            return
        }
        let (router, writable) = (self.router, context?.channel.isWritable ?? true)
        router.loop.execute { router.writabilityChanged(self, writable: writable) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let (router, writable) = (self.router, context.channel.isWritable)
        router.loop.execute { router.writabilityChanged(self, writable: writable) }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            // Answer what it sent, then close: the router closes it after everything queued for it so far.
            if finishInput() {
                let router = self.router
                router.loop.execute { router.ended(self) }
            }
        } else if let proof = event as? PeerAuthenticated {
            let router = self.router
            router.loop.execute { router.authenticated(self, key: proof.id, spki: proof.spki) }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Not the stream's content (that is the router's to judge): a reset, a TLS failure (a TLS peer's FIN without
        // close_notify arrives as one). The connection ends, but what it sent before still counts.
        router.logger.debug("connection error: \(error)", metadata: ["connection": "\(id)"])
        finishInput()
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if paused || closing || stopped || inFlight {
            readWithheld = true
        } else {
            context.read()
        }
    }

    private func readIfAllowed() {
        guard readWithheld, !paused, !closing, !stopped, !inFlight, let context else { return }
        readWithheld = false
        context.read()
    }

    /// Stops reading (the router holds this connection back; run on its loop). Turning autoRead off takes the socket
    /// out of the poller at once, whether or not a read was already requested. (NIO still reads all that was received
    /// when the peer closes: ``HubConfiguration`` bounds that with the receive buffer's size.)
    func pause() {
        guard !paused, let context else { return }
        paused = true
        autoReadOff = true
        try? context.channel.syncOptions?.setOption(.autoRead, value: false)
    }

    /// Reads again (nothing holds this connection back any more; run on its loop).
    func resume() {
        guard paused, let context else { return }
        paused = false
        // With a batch out, reading comes back on with its acknowledgement (turning autoRead on reads at once).
        guard !closing, !stopped, !inFlight else { return }
        autoReadOff = false
        try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        readIfAllowed()
    }

    /// Closes the connection (run on its loop), without a last packet.
    func close() {
        deliver([], close: true, bytes: 0)
    }

    static func describe(_ address: SocketAddress?) -> String {
        guard let address, let ip = address.ipAddress, let port = address.port else { return "unknown" }
        let text = if case .v6 = address { "[\(ip)]:\(port)" } else { "\(ip):\(port)" }
        // Interpolation leaves even a short result in heap storage; an IPv4 address and port fit in a String's own 15
        // bytes, which every idle connection then keeps without an allocation.
        return String(decoding: Array(text.utf8), as: UTF8.self)
    }
}
