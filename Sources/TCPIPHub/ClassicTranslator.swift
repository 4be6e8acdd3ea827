import Crypto
import Logging
import NIOCore
import TCPIPCore
import TCPIPWire

/// Speaks for one client of the seed's classic 1024-byte wire: what it sends becomes this protocol's packets for the
/// hub core, as if a client of ours had sent them, and what the core sends it becomes classic packets. The core sees an
/// ordinary member (role and wire `classic`, no key), so the roster, routing, heartbeats and limits are the same code
/// for everyone.
///
/// A value with no I/O (the connection's handler drives it), so every rule is tested and fuzzed directly:
/// - registration: MyCredentials becomes ours; the roster (ClientData) goes out before Registered;
/// - messages: Start/Guts/End become one message of ours (End's repeated text never appended), and ours become
///   Start/Guts/End of at most 300 characters; the classic MessageReceived becomes a receipt for the oldest message
///   the client has not acknowledged, and a receipt for the client's message becomes a MessageReceived from the
///   recipient;
/// - files: FileStart/FileChunk/FileEnd become a transfer of ours (no digest: the classic wire has none), and ours
///   become FileStart with the first 914 bytes, chunks of 1010 and FileEnd, once the bytes match the sender's size
///   and SHA-256; the client's DoneRecievingFile becomes the receipt that lets `send-file` exit 0;
/// - pings: each classic Ping carries its own ticks, so the answer goes back to whoever pinged, the hub or a peer.
package struct ClassicTranslator {
    /// What one step produced.
    package struct Output {
        /// Packets for the hub core, as if the client had sent them.
        package var toHub: [Packet] = []
        /// Classic packets for the client.
        package var toClient: [ClassicPacket] = []
        /// The client broke the wire: close it, for this reason.
        package var violation: String?
        package var logs: [(Logger.Level, String)] = []

        package init() {}
    }

    /// Most bytes a message to the client may have (the classic client has no limit; this keeps the hub's memory
    /// bounded): 1 MiB.
    static let maxMessageBytes = 1 << 20
    /// Messages to the client being reassembled at once, transfers to it in progress, answers kept.
    static let maxMessagesInProgress = 16
    static let maxDownloads = 16
    /// Messages and files from one peer in progress to the client at once: no peer can take every place.
    static let maxPerSender = 4
    static let maxRemembered = 1024
    /// Files the client may be sending at once, and messages (one per recipient): its keys (FileID and recipient, 32
    /// bits; recipient, 32 bits) would otherwise let it grow the hub's memory without end. The original sends one file
    /// to each selected recipient at a time, and one message at a time.
    static let maxUploads = 64
    static let maxMessagesOut = 64
    /// The ListeningPort the original server announces for every peer.
    static let listeningPort: UInt16 = 9998

    private struct MessageKey: Hashable {
        var from: UInt32
        var id: UInt32
    }

    private struct Acknowledgement {
        var from: UInt32
        var messageID: UInt32
        var bytes: UInt64
        var wantsReceipt: Bool
        var replaced: Int
    }

    private struct UploadKey: Hashable {
        var fileID: UInt16
        var to: UInt16
    }

    /// A file the client is sending.
    private struct Upload {
        var transferID: UInt32
        var size: UInt64
        var sent: UInt64 = 0
    }

    /// A file sent to the client.
    private struct Download {
        var from: UInt32
        var transferID: UInt32
        var fileID: UInt16
        var name: String
        var nameBytes: [UInt8]
        var size: UInt64
        var received: UInt64 = 0
        var hasher = SHA256()
        /// The first bytes, for FileStart's FilePart1 (and FileEnd's, which repeats them).
        var head: [UInt8] = []
        var headSent = false
        /// Bytes for the next FileChunk.
        var pending: [UInt8] = []
        var chunkCount: UInt32 = 0
    }

    private struct FileKey: Hashable {
        var from: UInt32
        var transferID: UInt32
    }

    private enum Pinger {
        case hub(PingPayload)
        case peer(UInt32, PingPayload, dataType: UInt16)
    }

    /// The client's address as the hub sees it (an IP literal), for RequestCredentials.
    let address: String
    package private(set) var ownID: UInt32 = 0
    package private(set) var registered = false
    private var credentialsSent = false
    /// Registered, held until the roster it announces has gone out.
    private var heldRegistered: ClassicPacket?
    private var rosterToCome = 0
    private var pings: [Int64: Pinger] = [:]
    private var pingOrder: [Int64] = []
    private var lastTicks: Int64 = 0
    private var nextMessageID: UInt32 = 1
    /// The client's message in progress to each recipient: our message id.
    private var sendingMessage: [UInt32: UInt32] = [:]
    /// What the client writes to the hub itself (idTo 0), for the log.
    private var hubMessage: [UInt8] = []
    private var assembling: [MessageKey: (bytes: [UInt8], noReceipt: Bool)] = [:]
    private var awaitingAck: [Acknowledgement] = []
    private var nextTransferID: UInt32 = 1
    private var uploads: [UploadKey: Upload] = [:]
    /// Names of the client's files by transfer id, for the DoneRecievingFile a receipt becomes.
    private var uploadNames: [UInt32: String] = [:]
    private var uploadOrder: [UInt32] = []
    private var downloads: [FileKey: Download] = [:]
    /// Files the client was sent whole, waiting for its DoneRecievingFile.
    private var delivered: [Download] = []
    private var nextFileID: UInt16 = UInt16.max - 1
    /// The peer ids the client was told of (ClientData), which a FileID must not be.
    private var announced: Set<UInt16> = []

    package init(address: String) { self.address = address }

    // MARK: from the client

    package mutating func received(_ packet: ClassicPacket, now: WireTime) -> Output {
        var out = Output()
        guard let type = packet.type else {
            out.logs.append((.debug, "ignored a classic packet of unknown type \(packet.rawType)"))
            return out
        }
        if !registered {
            switch type {
            case .myCredentials: register(packet, &out)
            case .close: out.toHub.append(Packet(header: PacketHeader(type: .close)))
            default: out.logs.append((.debug, "ignored classic \(type) before registration"))
            }
            return out
        }
        switch type {
        case .pingResponse:
            answerPing(packet.dataLong1, now: now, &out)
        case .close:
            out.toHub.append(Packet(header: PacketHeader(type: .close)))
        case .message:
            message(packet, &out)
        case .messageReceived:
            acknowledge(&out)
        case .fileStart, .fileChunk, .fileEnd:
            upload(packet, type, &out)
        case .doneReceivingFile:
            fileAcknowledged(packet, &out)
        case .ping:
            // The original client's "connection test" before a file: the original server broadcasts it, and every
            // client answers the server. Nothing is gained by that here.
            break
        case .myCredentials, .credentialsUpdate:
            // The original server repeats the registration for a second MyCredentials and ignores CredentialsUpdate:
            // a classic client cannot be renamed.
            break
        case .requestCredentials, .registered, .hostExiting, .clientData, .clientDisconnecting:
            // The server's types: the original would broadcast them in the sender's name; no one gets them here.
            out.logs.append((.debug, "dropped a classic \(type) from a client (only the hub sends it)"))
        }
        return out
    }

    private mutating func register(_ packet: ClassicPacket, _ out: inout Output) {
        guard !credentialsSent else { return }
        credentialsSent = true
        let credentials = Credentials(
            name: packet.text(.string150).clippedUTF8(Credentials.maxNameBytes),
            host: packet.text(.stringA).clippedUTF8(255), user: "",
            role: PeerRole.classic, version: packet.text(.stringB).clippedUTF8(64))
        out.toHub.append(credentials.packet(PacketHeader(type: .myCredentials)))
    }

    private mutating func answerPing(_ ticks: Int64, now: WireTime, _ out: inout Output) {
        guard let pinger = pings.removeValue(forKey: ticks) else { return }
        pingOrder.removeAll { $0 == ticks }
        switch pinger {
        case .hub(let ping):
            out.toHub.append(ping.answered(at: now).packet(PacketHeader(type: .pingResponse)))
        case .peer(let from, let ping, let dataType):
            out.toHub.append(
                ping.answered(at: now).packet(
                    PacketHeader(type: .pingResponse, dataType: dataType, maskTo: .client, idTo: from)))
        }
    }

    private mutating func message(_ packet: ClassicPacket, _ out: inout Output) {
        let to = packet.idTo
        // What the original recipient keeps of a chunk: the field with its trailing NULs trimmed (Data1 is not read).
        let chunk = packet.textBytes(.stringA)
        guard to != 0 else {
            // "Send data to server": logged, and acknowledged with an all-zero MessageReceived.
            switch packet.dataType {
            case 0:
                hubMessage = Array(chunk.prefix(4096))
            case 1:
                hubMessage += chunk.prefix(max(0, 4096 - hubMessage.count))
            case 2:
                // Logged as the original server shows it, but at debug: a client must not be able to fill the log.
                out.logs.append(
                    (
                        .debug,
                        "message from a classic client to the hub (\(Int32(bitPattern: packet.data(16))), "
                            + "\(Int32(bitPattern: packet.data(17)))): \(escapedForLog(ClassicText.decode(hubMessage)))"
                    ))
                hubMessage = []
                out.toClient.append(ClassicPacket(.messageReceived))
            default:
                break
            }
            return
        }
        let text = ByteBuffer(string: ClassicText.decode(chunk))
        switch packet.dataType {
        case 0:
            if let open = sendingMessage[to] {
                out.toHub.append(part(open, to: to, [.abort], ByteBuffer()))
            }
            guard sendingMessage[to] != nil || sendingMessage.count < Self.maxMessagesOut else {
                out.logs.append((.debug, "dropped a classic client's message: too many messages in progress"))
                return
            }
            let id = nextMessageID
            nextMessageID &+= 1
            sendingMessage[to] = id
            out.toHub.append(part(id, to: to, [.start], text))
        case 1:
            // Guts without a Start is lost, as the original recipient loses it.
            guard let id = sendingMessage[to] else { return }
            out.toHub.append(part(id, to: to, [], text))
        case 2:
            // End repeats the last chunk (or the whole text): never appended.
            guard let id = sendingMessage.removeValue(forKey: to) else { return }
            out.toHub.append(part(id, to: to, [.end], ByteBuffer()))
        default:
            // The original drops sub-types other than 0, 1 and 2.
            break
        }
    }

    private func part(_ id: UInt32, to: UInt32, _ flags: MessagePart.Flags, _ bytes: ByteBuffer) -> Packet {
        MessagePart(messageID: id, flags: flags, bytes: bytes).packet(
            PacketHeader(type: .message, maskTo: .client, idTo: to))
    }

    /// The client acknowledged a message: the oldest it had not.
    private mutating func acknowledge(_ out: inout Output) {
        guard !awaitingAck.isEmpty else { return }
        let ack = awaitingAck.removeFirst()
        guard ack.wantsReceipt else { return }
        let reason =
            ack.replaced > 0
            ? "\(ack.replaced) character\(ack.replaced == 1 ? "" : "s") the classic wire cannot carry "
                + "(Windows-1252 only) arrived as '?'" : nil
        let receipt = MessageReceipt(messageID: ack.messageID, bytes: ack.bytes, status: .delivered, reason: reason)
        out.toHub.append(receipt.packet(PacketHeader(type: .messageReceived, maskTo: .client, idTo: ack.from)))
    }

    private mutating func upload(_ packet: ClassicPacket, _ type: ClassicType, _ out: inout Output) {
        // The recipient is the UInt16 at 2–3; the sender's own id at 4–5 is not believed (the connection is the sender).
        let key = UploadKey(fileID: packet.fileID, to: packet.fileIDTo)
        let header = PacketHeader(
            type: .fileStart, maskTo: key.to == 0 ? .all : .client, idTo: UInt32(key.to))
        switch type {
        case .fileStart:
            if let old = uploads.removeValue(forKey: key) {
                // The original recipient ignores a second FileStart with a FileID in use; here the first one ends.
                out.toHub.append(abort(old.transferID, header, "the classic client started the file again"))
            }
            guard uploads.count < Self.maxUploads else {
                out.logs.append((.debug, "dropped a classic client's file: too many files in progress"))
                return
            }
            let size = UInt64(packet.fileSize)
            let name = packet.text(.fileName)
            // The original sends a file's name without its folder: a path, `..` or control characters are hostile.
            if let problem = Self.problem(withName: name, longest: ClassicField.fileName.length) {
                out.logs.append((.info, "dropped a classic client's file '\(escapedForLog(name))': \(problem)"))
                return
            }
            let transferID = nextTransferID
            nextTransferID &+= 1
            uploads[key] = Upload(transferID: transferID, size: size)
            remember(name, for: transferID)
            let start = FileStart(
                transferID: transferID, name: name, size: size, chunkSize: UInt32(ClassicField.fileChunk.length))
            out.toHub.append(start.packet(header))
            let first = Int(min(size, UInt64(ClassicField.filePart1.length)))
            forward(key, packet.bytes[ClassicField.filePart1.offset..<ClassicField.filePart1.offset + first], &out)
        case .fileChunk:
            // Chunks of a file not started are ignored, as the original recipient ignores them.
            guard uploads[key] != nil else { return }
            let length = Int(packet.chunkSize)
            guard length <= ClassicField.fileChunk.length else {
                out.violation = "a classic FileChunk of \(length) bytes (at most \(ClassicField.fileChunk.length))"
                return
            }
            let offset = ClassicField.fileChunk.offset
            forward(key, packet.bytes[offset..<offset + length], &out)
        default:
            guard let upload = uploads.removeValue(forKey: key) else { return }
            // No digest: the classic wire has none. The receiver checks the size, and says it checked nothing else.
            let end = FileEnd(transferID: upload.transferID, size: upload.sent, sha256: [])
            var endHeader = header
            endHeader.type = .fileEnd
            out.toHub.append(end.packet(endHeader))
        }
    }

    /// Sends bytes of the client's file on, unless they go past the size it announced.
    private mutating func forward(_ key: UploadKey, _ bytes: ArraySlice<UInt8>, _ out: inout Output) {
        guard var upload = uploads[key], !bytes.isEmpty else { return }
        var header = PacketHeader(type: .fileChunk, maskTo: key.to == 0 ? .all : .client, idTo: UInt32(key.to))
        guard upload.sent + UInt64(bytes.count) <= upload.size else {
            uploads[key] = nil
            header.type = .fileEnd
            out.toHub.append(
                abort(upload.transferID, header, "the classic client sent more than the size it announced"))
            out.logs.append(
                (.info, "a classic client sent more bytes than the size it announced; the file was dropped"))
            return
        }
        upload.sent += UInt64(bytes.count)
        uploads[key] = upload
        let chunk = FileChunk(
            transferID: upload.transferID, rawLength: UInt32(bytes.count), compressed: false,
            data: ByteBuffer(bytes: bytes))
        out.toHub.append(chunk.packet(header))
    }

    private func abort(_ transferID: UInt32, _ header: PacketHeader, _ reason: String) -> Packet {
        var header = header
        header.type = .fileEnd
        header.dataType = 1
        return FileEnd(transferID: transferID, size: 0, sha256: [], reason: reason).packet(header)
    }

    private mutating func remember(_ name: String, for transferID: UInt32) {
        uploadNames[transferID] = name
        uploadOrder.append(transferID)
        if uploadOrder.count > Self.maxRemembered { uploadNames[uploadOrder.removeFirst()] = nil }
    }

    /// The client's DoneRecievingFile: the file it was sent (from idTo, by name) is stored.
    private mutating func fileAcknowledged(_ packet: ClassicPacket, _ out: inout Output) {
        let name = packet.text(.stringA)
        guard let index = delivered.firstIndex(where: { $0.from == packet.idTo && $0.name == name }) else { return }
        let file = delivered.remove(at: index)
        let receipt = FileReceipt(transferID: file.transferID, status: .stored, storedAs: file.name, size: file.size)
        out.toHub.append(receipt.packet(PacketHeader(type: .doneReceivingFile, maskTo: .client, idTo: file.from)))
    }

    // MARK: to the client

    package mutating func deliver(_ packet: Packet, now: WireTime) -> Output {
        var out = Output()
        let header = packet.header
        do {
            switch header.type {
            case .requestCredentials:
                ownID = header.idTo
                var classic = ClassicPacket(.requestCredentials)
                classic.packetSize = 16
                classic.idTo = ownID
                classic.dataLong1 = ClassicTicks.ticks(microseconds: now)
                classic.setText(ClassicText.encode(Direct.split(address)?.host ?? address).bytes, .stringA)
                out.toClient.append(classic)
            case .registered:
                let registered = try Registered(tlv: packet.payload)
                var classic = ClassicPacket(.registered)
                classic.packetSize = 1024
                classic.idFrom = ownID
                let version = tcpipVersion.split(separator: ".").map { UInt32($0) ?? 0 } + [0, 0, 0]
                for (index, number) in version.prefix(3).enumerated() { classic.setData(6 + index, number) }
                rosterToCome = Int(min(registered.rosterCount, 1 << 20))
                heldRegistered = classic
                releaseRegistered(&out)
            case .clientData:
                let peer = try PeerRecord(tlv: packet.payload)
                if header.dataType == ClientDataKind.present.rawValue && rosterToCome > 0 {
                    rosterToCome -= 1
                    announce(peer, &out)
                    releaseRegistered(&out)
                } else {
                    announce(peer, &out)
                }
            case .credentialsUpdate:
                announce(try PeerRecord(tlv: packet.payload), &out)
            case .clientDisconnecting:
                left(header.idFrom, &out)
            case .hostExiting:
                var classic = ClassicPacket(.hostExiting)
                classic.packetSize = 16
                out.toClient.append(classic)
            case .ping:
                let ping = try PingPayload(tlv: packet.payload)
                sendPing(
                    header.idFrom == PacketHeader.hubID
                        ? .hub(ping) : .peer(header.idFrom, ping, dataType: header.dataType),
                    now, &out)
            case .message:
                try deliverMessage(packet, &out)
            case .messageReceived:
                let receipt = try MessageReceipt(tlv: packet.payload)
                if receipt.status == .delivered {
                    var classic = ClassicPacket(.messageReceived)
                    classic.idFrom = header.idFrom
                    out.toClient.append(classic)
                } else {
                    out.logs.append(
                        (.info, "peer \(header.idFrom) did not take a classic client's message: \(receipt.status)"))
                }
            case .fileStart:
                startDownload(try FileStart(tlv: packet.payload), from: header.idFrom, &out)
            case .fileChunk:
                try chunk(FileChunk(packet), from: header.idFrom, &out)
            case .fileEnd:
                finish(try FileEnd(tlv: packet.payload), aborted: header.dataType == 1, from: header.idFrom, &out)
            case .fileSeek:
                let seek = try FileSeek(tlv: packet.payload)
                let key = FileKey(from: header.idFrom, transferID: seek.transferID)
                if seek.offset != 0, let download = downloads.removeValue(forKey: key) {
                    refuse(download.transferID, to: download.from, .invalid, "FileSeek to \(seek.offset), not 0", &out)
                }
            case .doneReceivingFile:
                let receipt = try FileReceipt(tlv: packet.payload)
                if [.stored, .alreadyStored].contains(receipt.status), let name = uploadNames[receipt.transferID] {
                    var classic = ClassicPacket(.doneReceivingFile)
                    classic.idTo = ownID
                    classic.idFrom = header.idFrom
                    classic.setText(ClassicText.encode(name).bytes, .stringA, terminated: true)
                    out.toClient.append(classic)
                } else {
                    out.logs.append(
                        (
                            .info,
                            "peer \(header.idFrom) did not store a classic client's file: \(receipt.status) "
                                + escapedForLog(receipt.reason ?? "")
                        ))
                }
            case .error:
                let error = try ErrorPayload(tlv: packet.payload)
                out.logs.append((.debug, "to a classic client: \(error.code) \(escapedForLog(error.message))"))
            default:
                // Nothing a classic client understands (application types, direct transfers, the store's reports).
                if header.idFrom != PacketHeader.hubID, header.type == .fileResume || header.type.rawValue >= 4096 {
                    out.logs.append((.debug, "dropped \(header.type) to a classic client"))
                }
            }
        } catch {
            out.logs.append((.info, "dropped a malformed \(header.type) to a classic client: \(error)"))
        }
        return out
    }

    private mutating func releaseRegistered(_ out: inout Output) {
        guard rosterToCome == 0, let classic = heldRegistered else { return }
        heldRegistered = nil
        registered = true
        out.toClient.append(classic)
    }

    /// ClientData for a peer: the original reads iClientID (16 bits), wants a name and an IP literal.
    private mutating func announce(_ peer: PeerRecord, _ out: inout Output) {
        guard peer.id != ownID, let id = UInt16(exactly: peer.id) else { return }
        announced.insert(id)
        var classic = ClassicPacket(.clientData)
        classic.packetSize = 1024
        classic.clientID = id
        classic.setText(ClassicText.encode(peer.name).bytes, .userName, terminated: true)
        // The original client drops a peer whose address does not parse as an IP: an address that does not fit the field
        // (a long IPv6 literal) or is no address (the hub's store) is announced as 0.0.0.0.
        var host = Direct.split(peer.address)?.host ?? "0.0.0.0"
        if host.utf8.count > ClassicField.usersAddress.length - 1 { host = "0.0.0.0" }
        classic.setText(ClassicText.encode(host).bytes, .usersAddress)
        classic.setText(ClassicText.encode(peer.host).bytes, .stationName, terminated: true)
        classic.listeningPort = Self.listeningPort
        out.toClient.append(classic)
    }

    private mutating func left(_ peerID: UInt32, _ out: inout Output) {
        if let id = UInt16(exactly: peerID) {
            announced.remove(id)
            // The original client drops the file whose FileID is the departed id: that transfer cannot finish.
            for (key, download) in downloads where download.fileID == id && download.from != peerID {
                downloads[key] = nil
                refuse(
                    key.transferID, to: key.from, .unavailable, "the classic client dropped the file; send it again",
                    &out)
            }
            for download in delivered where download.fileID == id && download.from != peerID {
                refuse(
                    download.transferID, to: download.from, .unavailable,
                    "the classic client dropped the file; send it again",
                    &out)
            }
            delivered.removeAll { $0.fileID == id }
        }
        var classic = ClassicPacket(.clientDisconnecting)
        classic.packetSize = 1024
        classic.idFrom = peerID
        out.toClient.append(classic)
        assembling = assembling.filter { $0.key.from != peerID }
        // Its messages the client has not acknowledged stay in line (an acknowledgement is for the oldest), answered to
        // no one.
        for index in awaitingAck.indices where awaitingAck[index].from == peerID {
            awaitingAck[index].wantsReceipt = false
        }
        downloads = downloads.filter { $0.key.from != peerID }
        delivered.removeAll { $0.from == peerID }
        pings = pings.filter {
            if case .peer(let from, _, _) = $0.value { return from != peerID }
            return true
        }
        pingOrder.removeAll { pings[$0] == nil }
    }

    private mutating func sendPing(_ pinger: Pinger, _ now: WireTime, _ out: inout Output) {
        // Each ping its own ticks, so that the PingResponse (which echoes them) finds who pinged.
        let ticks = max(ClassicTicks.ticks(microseconds: now), lastTicks &+ 1)
        lastTicks = ticks
        pings[ticks] = pinger
        pingOrder.append(ticks)
        if pingOrder.count > 64 { pings[pingOrder.removeFirst()] = nil }
        var classic = ClassicPacket(.ping)
        classic.packetSize = 16
        classic.dataLong1 = ticks
        out.toClient.append(classic)
    }

    private mutating func deliverMessage(_ packet: Packet, _ out: inout Output) throws {
        let part = try MessagePart(packet)
        let key = MessageKey(from: packet.header.idFrom, id: part.messageID)
        if part.flags.contains(.abort) {
            assembling[key] = nil
            return
        }
        if part.flags.contains(.start) {
            guard assembling.count < Self.maxMessagesInProgress,
                assembling.keys.filter({ $0.from == key.from }).count < Self.maxPerSender
            else {
                receipt(key, .refused, "too many messages in progress to this classic client", &out)
                return
            }
            assembling[key] = ([], part.flags.contains(.noReceipt))
        }
        guard var message = assembling[key] else { return }
        guard message.bytes.count + part.bytes.readableBytes <= Self.maxMessageBytes else {
            assembling[key] = nil
            receipt(key, .tooLarge, "a classic client takes messages of at most \(Self.maxMessageBytes) bytes", &out)
            return
        }
        message.bytes += part.bytes.readableBytesView
        assembling[key] = message
        guard part.flags.contains(.end) else { return }
        assembling[key] = nil
        let (text, replaced) = ClassicText.encode(String(decoding: message.bytes, as: UTF8.self))
        // Start with the first 300 characters, Guts with each next 300, End with the total and the last chunk again.
        let room = ClassicField.stringA.length
        var classic = ClassicPacket(.message)
        classic.packetSize = 16
        classic.idTo = ownID
        classic.idFrom = key.from
        var offset = 0
        repeat {
            let chunk = text[offset..<min(offset + room, text.count)]
            classic.dataType = offset == 0 ? 0 : 1
            classic.setText(Array(chunk), .stringA)
            classic.setData(1, UInt32(chunk.count))
            out.toClient.append(classic)
            offset += room
        } while offset < text.count
        classic.dataType = 2
        classic.setData(1, UInt32(truncatingIfNeeded: text.count))
        out.toClient.append(classic)
        awaitingAck.append(
            Acknowledgement(
                from: key.from, messageID: key.id, bytes: UInt64(message.bytes.count),
                wantsReceipt: !message.noReceipt, replaced: replaced))
        if awaitingAck.count > Self.maxRemembered { awaitingAck.removeFirst() }
    }

    private func receipt(_ key: MessageKey, _ status: MessageReceipt.Status, _ reason: String, _ out: inout Output) {
        out.toHub.append(
            MessageReceipt(messageID: key.id, bytes: 0, status: status, reason: reason).packet(
                PacketHeader(type: .messageReceived, maskTo: .client, idTo: key.from)))
    }

    private func refuse(
        _ transferID: UInt32, to peer: UInt32, _ status: FileReceipt.Status, _ reason: String, _ out: inout Output
    ) {
        out.toHub.append(
            FileReceipt(transferID: transferID, status: status, reason: reason).packet(
                PacketHeader(type: .doneReceivingFile, maskTo: .client, idTo: peer)))
    }

    /// Why a classic client cannot take a file of this name: it writes the name into its own folder.
    static func problem(withName name: String, longest: Int = ClassicField.fileName.length - 1) -> String? {
        let (bytes, replaced) = ClassicText.encode(name)
        if name.isEmpty || name == "." || name == ".." { return "the name is empty, '.' or '..'" }
        if name.contains("/") || name.contains("\\") { return "a classic client takes a plain name, not a path" }
        if replaced > 0 { return "the name has characters the classic wire cannot carry (Windows-1252 only)" }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "the name has control characters" }
        if bytes.count > longest { return "a classic client takes names of at most \(longest) characters" }
        return nil
    }

    private mutating func startDownload(_ start: FileStart, from: UInt32, _ out: inout Output) {
        let key = FileKey(from: from, transferID: start.transferID)
        downloads[key] = nil
        func refused(_ status: FileReceipt.Status, _ reason: String) {
            refuse(start.transferID, to: from, status, reason, &out)
        }
        if start.message || start.queueFor != nil {
            return refused(.refused, "a classic client takes files, not queued messages or the store's work")
        }
        guard let size = start.size, size <= UInt64(UInt32.max) else {
            return refused(.refused, "a classic client takes files of known size under 4 GiB (not stdin)")
        }
        guard start.compression == 0 else {
            return refused(.invalid, "a classic client takes files sent without compression (no --compress)")
        }
        if let problem = Self.problem(withName: start.name) {
            return refused(.invalid, "unsafe file name for a classic client: \(problem)")
        }
        guard downloads.count < Self.maxDownloads,
            downloads.keys.filter({ $0.from == from }).count < Self.maxPerSender
        else {
            return refused(.unavailable, "too many files in progress to this classic client; try again later")
        }
        // A FileID no file in progress to this client has (the original keys its files by FileID alone), counting down
        // from 65534, and none of a peer it knows: the original also drops the file whose FileID is the id of a peer
        // that leaves.
        var fileID = nextFileID
        for _ in 0..<Int(UInt16.max) {
            if !downloads.values.contains(where: { $0.fileID == fileID }) && !announced.contains(fileID) { break }
            fileID = fileID <= 1 ? UInt16.max - 1 : fileID - 1
        }
        nextFileID = fileID <= 1 ? UInt16.max - 1 : fileID - 1
        var download = Download(
            from: from, transferID: start.transferID, fileID: fileID, name: start.name,
            nameBytes: ClassicText.encode(start.name).bytes, size: size)
        if start.resumable {
            // Nothing is kept of an earlier attempt: start from the beginning.
            out.toHub.append(
                FileResume(transferID: start.transferID, offset: 0, prefixSHA256: nil).packet(
                    PacketHeader(type: .fileResume, maskTo: .client, idTo: from)))
        }
        if size == 0 { sendHead(&download, &out) }
        downloads[key] = download
    }

    private func fileHeader(_ type: ClassicType, _ download: Download) -> ClassicPacket {
        var classic = ClassicPacket(type)
        classic.fileIDTo = UInt16(truncatingIfNeeded: ownID)
        classic.fileIDFrom = UInt16(truncatingIfNeeded: download.from)
        classic.fileID = download.fileID
        return classic
    }

    private func sendHead(_ download: inout Download, _ out: inout Output) {
        var classic = fileHeader(.fileStart, download)
        classic.fileSize = UInt32(download.size)
        classic.setText(download.nameBytes, .fileName)
        classic.setBytes(download.head, at: ClassicField.filePart1.offset)
        download.headSent = true
        out.toClient.append(classic)
    }

    private func sendChunk(_ download: inout Download, _ out: inout Output) {
        var classic = fileHeader(.fileChunk, download)
        classic.chunkSize = UInt16(download.pending.count)
        classic.chunkCount = download.chunkCount
        classic.setBytes(download.pending, at: ClassicField.fileChunk.offset)
        download.chunkCount &+= 1
        download.pending.removeAll(keepingCapacity: true)
        out.toClient.append(classic)
    }

    private mutating func chunk(_ chunk: FileChunk, from: UInt32, _ out: inout Output) {
        let key = FileKey(from: from, transferID: chunk.transferID)
        guard var download = downloads[key] else { return }
        guard !chunk.compressed, chunk.data.readableBytes == Int(chunk.rawLength),
            download.received + UInt64(chunk.rawLength) <= download.size
        else {
            downloads[key] = nil
            return refuse(chunk.transferID, to: from, .corrupt, "a chunk past the announced size, or compressed", &out)
        }
        download.received += UInt64(chunk.rawLength)
        chunk.data.withUnsafeReadableBytes { download.hasher.update(bufferPointer: $0) }
        var bytes = chunk.data.readableBytesView[...]
        let headSize = Int(min(download.size, UInt64(ClassicField.filePart1.length)))
        if !download.headSent {
            let take = min(headSize - download.head.count, bytes.count)
            download.head += bytes.prefix(take)
            bytes = bytes.dropFirst(take)
            if download.head.count == headSize { sendHead(&download, &out) }
        }
        while !bytes.isEmpty {
            let take = min(ClassicField.fileChunk.length - download.pending.count, bytes.count)
            download.pending += bytes.prefix(take)
            bytes = bytes.dropFirst(take)
            if download.pending.count == ClassicField.fileChunk.length { sendChunk(&download, &out) }
        }
        downloads[key] = download
    }

    private mutating func finish(_ end: FileEnd, aborted: Bool, from: UInt32, _ out: inout Output) {
        let key = FileKey(from: from, transferID: end.transferID)
        guard var download = downloads.removeValue(forKey: key), !aborted else { return }
        let digest = Array(download.hasher.finalize())
        guard end.size == download.received, download.received == download.size,
            end.sha256 == digest || end.sha256.isEmpty
        else {
            // The client is never told the file ended: it drops what it holds after a minute.
            return refuse(
                end.transferID, to: from, .corrupt, "the bytes did not match the announced size or SHA-256", &out)
        }
        if !download.pending.isEmpty { sendChunk(&download, &out) }
        var classic = fileHeader(.fileEnd, download)
        classic.fileSize = UInt32(download.size)
        classic.setBytes(download.head, at: ClassicField.filePart1.offset)
        let date = ClassicTicks.usDate(microseconds: WireClock.now())
        classic.setText(ClassicText.encode("\(date)|\(date)").bytes, .fileName)
        out.toClient.append(classic)
        delivered.append(download)
        if delivered.count > Self.maxRemembered { delivered.removeFirst() }
    }
}

extension String {
    /// The longest prefix of at most `bytes` UTF-8 bytes that ends on a character.
    func clippedUTF8(_ bytes: Int) -> String {
        guard utf8.count > bytes else { return self }
        var result = ""
        for character in self {
            guard result.utf8.count + character.utf8.count <= bytes else { break }
            result.append(character)
        }
        return result
    }
}
