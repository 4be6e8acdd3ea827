import Foundation
import NIOCore
import TCPIPTestSupport
import TCPIPWire
import Testing

@Suite struct GoldenVectorTests {
    /// `golden NAME: HEX` lines from docs/PROTOCOL.md.
    static let documented: [String: String] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let text = (try? String(contentsOf: root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)) ?? ""
        var vectors: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("golden ") {
            let parts = line.dropFirst("golden ".count).split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            vectors[String(parts[0])] = parts[1].filter { $0.isHexDigit }
        }
        return vectors
    }()

    @Test(arguments: GoldenVectors.all.map(\.name))
    func encodesToDocumentedBytes(name: String) throws {
        let entry = GoldenVectors.all.first { $0.name == name }!
        let documented = try #require(Self.documented[name], "docs/PROTOCOL.md has no golden vector '\(name)'")
        #expect(Hex.string(entry.packet.encoded()) == documented)
    }

    @Test(arguments: GoldenVectors.all.map(\.name))
    func decodesDocumentedBytes(name: String) throws {
        let entry = GoldenVectors.all.first { $0.name == name }!
        var bytes = Hex.buffer(try #require(Self.documented[name]))
        let packet = try #require(try FrameParser().nextPacket(from: &bytes))
        #expect(bytes.readableBytes == 0)
        #expect(packet == entry.packet)
        if let payload = entry.payload {
            let decoded = try type(of: payload).init(tlv: packet.payload)
            #expect(decoded.encoded() == payload.encoded())
        }
    }

    @Test func everyDocumentedVectorIsTested() {
        let tested = Set(GoldenVectors.all.map(\.name))
        #expect(Set(Self.documented.keys).subtracting(tested).isEmpty)
        #expect(!Self.documented.isEmpty)
    }

    @Test func typedPayloadsRoundTrip() throws {
        let registered = try Registered(
            tlv: Registered(peer: GoldenVectors.alice, hubTime: 5, heartbeatMilliseconds: 9, rosterCount: 2).encoded())
        #expect(registered.peer == GoldenVectors.alice)
        #expect(registered.rosterCount == 2)
        let credentials = try Credentials(
            tlv: Credentials(name: "n", token: "t", flags: [.wantsUpdates, .allowRename]).encoded())
        #expect(credentials.name == "n")
        #expect(credentials.token == "t")
        #expect(credentials.flags == [.wantsUpdates, .allowRename])
        #expect(credentials.host == nil)
        let error = try ErrorPayload(tlv: ErrorPayload(code: .nameInUse, message: "x").encoded())
        #expect(error.code == .nameInUse)
        #expect(error.peerID == nil)
    }

    @Test func unknownTagsAreSkipped() throws {
        var writer = TLVWriter()
        writer.write(200, string: "from a future version")
        writer.write(1, string: "carol")
        writer.write(99, integer: UInt64(42))
        let credentials = try Credentials(tlv: writer.buffer)
        #expect(credentials.name == "carol")
    }
}
