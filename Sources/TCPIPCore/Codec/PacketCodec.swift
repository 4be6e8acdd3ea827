import NIOCore
import TCPIPWire

/// Turns received bytes into ``Packet``s with a ``FrameParser``. A frame over the limit or with a bad header fires
/// a ``WireError`` down the pipeline, and nothing more is read from that connection.
public struct PacketDecoder: ByteToMessageDecoder {
    public typealias InboundOut = Packet
    private let parser: FrameParser

    public init(maxFrameSize: Int = FrameParser.defaultMaxFrameSize) {
        parser = FrameParser(maxFrameSize: maxFrameSize)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
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

/// Writes ``Packet``s as frames (``write(_:to:promise:flush:)``): relayed and bulk payloads are never copied (the socket
/// sends the buffers with one vectored write).
public final class PacketEncoder: ChannelOutboundHandler, Sendable {
    public typealias OutboundIn = Packet
    public typealias OutboundOut = ByteBuffer

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        Self.write([unwrapOutboundIn(data)], to: context, promise: promise, flush: false)
    }

    /// Writes `packets` as frames through `context` (so they go to the handler below it), then flushes unless told not
    /// to: headers and payloads of 512 bytes or less are copied into shared buffers of up to 64 KiB, larger payloads
    /// go as they are. `promise` completes with the last write.
    public static func write(
        _ packets: [Packet], to context: ChannelHandlerContext, promise: EventLoopPromise<Void>?, flush: Bool = true
    ) {
        let limit = 64 << 10
        var buffers: [ByteBuffer] = []
        var shared: ByteBuffer?  // taken out while written to, so it has one owner and grows in place
        for packet in packets {
            let length = packet.payload.readableBytes
            let small = length <= 512
            var buffer: ByteBuffer
            if let held = shared, held.readableBytes + PacketHeader.size + (small ? length : 0) <= limit {
                shared = nil
                buffer = held
            } else {
                if let held = shared { buffers.append(held) }
                shared = nil
                // A header alone in front of a large payload needs no room for more; small frames share a buffer.
                buffer = context.channel.allocator.buffer(capacity: small ? 4096 : PacketHeader.size)
            }
            buffer.writePacketHeader(packet.header, payloadLength: length)
            if small {
                buffer.writeImmutableBuffer(packet.payload)
                shared = buffer
            } else {
                buffers.append(buffer)
                buffers.append(packet.payload)
            }
        }
        if let held = shared { buffers.append(held) }
        guard let last = buffers.popLast() else {
            promise?.succeed()
            return
        }
        for buffer in buffers { context.write(NIOAny(buffer), promise: nil) }
        context.write(NIOAny(last), promise: promise)
        if flush { context.flush() }
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
