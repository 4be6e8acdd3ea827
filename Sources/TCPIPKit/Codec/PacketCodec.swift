import NIOCore
import TCPIPWire

/// Turns received bytes into ``Packet``s with a ``FrameParser``. A frame over the limit or with a bad header fires
/// a ``WireError`` down the pipeline, and nothing more is read from that connection.
public struct PacketDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Packet
    private var parser: FrameParser
    private let limit: FrameLimit?

    public init(maxFrameSize: Int = FrameParser.defaultMaxFrameSize) {
        parser = FrameParser(maxFrameSize: maxFrameSize)
        limit = nil
    }

    /// A decoder whose limit can change while it runs: the hub's, which accepts only a MyCredentials-sized frame
    /// until the connection has registered.
    init(limit: FrameLimit) {
        parser = FrameParser(maxFrameSize: limit.bytes)
        self.limit = limit
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if let limit, limit.bytes != parser.maxFrameSize { parser = FrameParser(maxFrameSize: limit.bytes) }
        guard let packet = try parser.nextPacket(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(packet))
        return .continue
    }

    public mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // Bytes left at EOF are a truncated frame; the connection is ending anyway, so they are dropped.
        return .needMoreData
    }
}

/// The largest frame one connection's ``PacketDecoder`` accepts, shared with the handler that may change it. Used on
/// the connection's event loop only. The next frame decoded is held to the new value, even one already received.
final class FrameLimit {
    var bytes: Int
    init(_ bytes: Int) { self.bytes = bytes }
}

/// Writes ``Packet``s as frames: the header as a small buffer and the payload as its own buffer, so relayed and bulk
/// payloads are never copied (the socket sends both with one vectored write).
public final class PacketEncoder: ChannelOutboundHandler, Sendable {
    public typealias OutboundIn = Packet
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let packet = unwrapOutboundIn(data)
        var header = context.channel.allocator.buffer(capacity: PacketHeader.size)
        header.writePacketHeader(packet.header, payloadLength: packet.payload.readableBytes)
        if packet.payload.readableBytes == 0 {
            context.write(wrapOutboundOut(header), promise: promise)
        } else if packet.payload.readableBytes <= 512 {
            // Small control packets: one buffer is cheaper than two.
            header.writeImmutableBuffer(packet.payload)
            context.write(wrapOutboundOut(header), promise: promise)
        } else {
            context.write(wrapOutboundOut(header), promise: nil)
            context.write(wrapOutboundOut(packet.payload), promise: promise)
        }
    }
}

/// Hands on the packets decoded from one read as one array.
///
/// A client's inbound stream holds a bounded number of elements before the channel stops reading. Counted per packet,
/// ten small messages filled it and every few messages cost a round trip between the reading task and the event loop;
/// counted per read, the bound is still a few reads' worth of bytes.
public final class PacketBatcher: ChannelInboundHandler {
    public typealias InboundIn = Packet
    public typealias InboundOut = [Packet]

    private var batch: [Packet] = []

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        batch.append(unwrapInboundIn(data))
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        forward(context: context)
        context.fireChannelReadComplete()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        forward(context: context)
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // What arrived before the error is delivered before it.
        forward(context: context)
        context.fireErrorCaught(error)
    }

    private func forward(context: ChannelHandlerContext) {
        guard !batch.isEmpty else { return }
        let packets = batch
        batch.removeAll(keepingCapacity: true)
        context.fireChannelRead(wrapInboundOut(packets))
    }
}
