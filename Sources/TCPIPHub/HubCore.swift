import Logging
import NIOCore
import TCPIPCore
import TCPIPWire

/// A connection as the hub core knows it; the server maps it to a channel.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "#\(rawValue)" }
}

/// What the hub core asks its server to do.
public enum HubAction: Equatable, Sendable {
    /// Write this packet to the connection.
    case send(ConnectionID, Packet)
    /// Close the connection after what was written to it so far.
    case close(ConnectionID)
    /// A key enrolled itself with the enrolment token: add its line to the authorized-peers file.
    case enrolled(AuthorizedPeers.Entry)
}

/// The hub's logic as a value: registration, roster, routing, heartbeats. No sockets: events go in, actions come out,
/// and the clock is passed in, so every rule can be tested directly.
public struct HubCore {
    enum Phase {
        case waiting
        case registered(PeerRecord)
    }

    struct Connection {
        var address: String
        var openedAt: WireTime
        var lastHeard: WireTime
        /// Waiting to register (``Admission`` counts it), or registered as a peer.
        var phase: Phase = .waiting
        var peer: PeerRecord? {
            if case .registered(let peer) = phase { return peer }
            return nil
        }
        var flags: RegistrationFlags = []
        /// The key the peer proved over TLS.
        var key: NodeID?
        /// The public key whose hash is `key` (DER SPKI), announced as PeerRecord tag 11 for peers to seal to.
        var spki: [UInt8]?
        /// A connection the hub made to itself (``HubServer/connectLocal()``): its store. Only such a connection may
        /// register the role `store`, and it needs no token or key.
        var local = false
        /// Where the peer takes direct connections (its DirectHints, the address the hub sees first); given only to a
        /// peer the hub introduces.
        var hints: [String] = []
        /// A client of the seed's classic wire (``ClassicTranslator`` speaks for it): it learns its id before it
        /// registers (``reservedID``), proves no key and carries no token.
        var classic = false
        var reservedID: UInt32?
    }

    public internal(set) var configuration: HubConfiguration
    let logger: Logger
    var connections: [ConnectionID: Connection] = [:]
    var byPeerID: [UInt32: ConnectionID] = [:]
    var byName: [String: UInt32] = [:]
    var watchers: Set<ConnectionID> = []
    /// Each connection's group (its last Recipients), and for each peer the connections whose group holds it.
    private var groups: [ConnectionID: [UInt32]] = [:]
    private var inGroupsOf: [UInt32: Set<ConnectionID>] = [:]
    var nextPeerID: UInt32 = 1
    /// Ids given to classic connections that have not registered yet.
    var reservedIDs: Set<UInt32> = []
    /// The hub's store: the first local connection that registered the role `store` (PeerQuery tag 4 finds it).
    var storeConnection: ConnectionID?
    /// Connections waiting to register, by source: who is turned away or shed when too many wait.
    var admission: Admission
    private var admissionLog = AdmissionLog()
    private var lastPingAt: WireTime = 0
    private var pingSequence: UInt32 = 0

    public init(configuration: HubConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        admission = Admission(
            perSource: configuration.maxUnregisteredPerSource, total: configuration.maxUnregistered)
    }

    /// Connections open now, registered or not.
    public var connectionCount: Int { connections.count }
    /// Registered peers.
    public var peerCount: Int { byPeerID.count }
    /// Connections that asked for join/leave updates.
    public var watcherCount: Int { watchers.count }
    /// Connections waiting to register (the hub's own not counted).
    public var unregisteredCount: Int { admission.count }

    /// Whether the core still holds this connection (it forgets one as soon as it asks for it to be closed).
    public func isOpen(_ connection: ConnectionID) -> Bool { connections[connection] != nil }

    /// The peer id of a registered connection.
    public func peerID(of connection: ConnectionID) -> UInt32? { connections[connection]?.peer?.id }

    /// The authorized-peers file changed (SIGHUP, or a new version seen at a registration): registrations from now on
    /// follow the new list; peers already registered stay.
    public mutating func setAuthorizedPeers(_ peers: AuthorizedPeers) {
        configuration.authorizedPeers = peers
    }

    // MARK: events

    /// The TLS handshake on connection `id` proved that its peer holds the key `key`.
    public mutating func authenticated(_ id: ConnectionID, key: NodeID, spki: [UInt8]? = nil) -> [HubAction] {
        connections[id]?.key = key
        // Announced only when it is a key peers can seal to (P-256, its hash the ID): another kind of key (RSA, say)
        // is of no use to them, and may be larger than a record carries.
        connections[id]?.spki = spki.flatMap { SealingRecipient(id: key, spki: $0) == nil ? nil : $0 }
        return []
    }

    /// A connection was accepted: greet it with RequestCredentials, unless its source already has as many
    /// connections waiting to register as it may (``Admission``). When too many wait in all, one of them is shed to
    /// make room. `source` is what per-source limits count by (``Admission/source(of:)``); nil counts the connection
    /// as a source of its own.
    ///
    /// A `classic` connection (the classic listener's) is given its peer id now, in RequestCredentials' idTo, because a
    /// classic client learns its id only from there.
    public mutating func connected(
        _ id: ConnectionID, address: String, source: String? = nil, now: WireTime, local: Bool = false,
        classic: Bool = false
    ) -> [HubAction] {
        // The server never reuses an id; were it to, the old connection's peer must not stay behind under it (a
        // fuzzer found the hub then pinging a connection it had just closed).
        var actions: [HubAction] = []
        if connections[id] != nil { actions = remove(id, reason: .dropped) }
        // The hub's own connections (its store) are never turned away by strangers that do not register.
        if !local {
            switch admission.arrive(id, from: source ?? address) {
            case .admit:
                break
            case .refuse:
                admissionLog.count(refused: 1, address: address, now: now, logger: logger)
                return actions + [
                    .send(
                        id,
                        errorPacket(
                            .busy,
                            "too many connections from your address are waiting to register; try again later")),
                    .close(id),
                ]
            case .admitShedding(let victim):
                admissionLog.count(shed: 1, address: connections[victim]?.address ?? "?", now: now, logger: logger)
                actions += [
                    .send(
                        victim,
                        errorPacket(.busy, "too many connections are waiting to register; yours was the one shed"))
                ]
                actions += remove(victim, reason: .dropped) + [.close(victim)]
            }
        }
        var connection = Connection(address: address, openedAt: now, lastHeard: now, local: local)
        if classic {
            connection.classic = true
            let reserved = allocatePeerID()
            connection.reservedID = reserved
            reservedIDs.insert(reserved)
        }
        connections[id] = connection
        let request = CredentialsRequest(hubVersion: configuration.version, tokenRequired: configuration.token != nil)
        return actions + [
            .send(id, request.packet(hubHeader(.requestCredentials, to: connection.reservedID ?? 0)))
        ]
    }

    /// A connection ended (closed by the peer or by the hub).
    public mutating func disconnected(_ id: ConnectionID) -> [HubAction] {
        guard connections[id] != nil else { return [] }
        return remove(id, reason: .left)
    }

    /// A packet arrived on a connection.
    public mutating func received(_ packet: Packet, from id: ConnectionID, now: WireTime) -> [HubAction] {
        guard var connection = connections[id] else { return [] }
        connection.lastHeard = now
        connections[id] = connection
        guard let peer = connection.peer else {
            return receivedBeforeRegistration(packet, from: id, now: now)
        }
        let header = packet.header
        if header.type.isHubOnly || header.type == .myCredentials
            || (header.type == .credentialsUpdate && header.maskTo != .hub)
        {
            // A forgery (a roster event about someone else, an Error in the hub's name): never relayed.
            return violation(id, .unsupported, "\(header.type) may only be sent by the hub", type: header.type)
        }
        switch header.maskTo {
        case .hub:
            return receivedForHub(packet, from: id, peer: peer, now: now)
        case .client:
            guard let destination = byPeerID[header.idTo] else {
                return [
                    .send(
                        id,
                        errorPacket(
                            .unknownPeer, "no peer with id \(header.idTo) is connected", peer: header.idTo,
                            type: header.type))
                ]
            }
            var relayed = packet
            relayed.header.idFrom = peer.id
            return [.send(destination, relayed)]
        case .all:
            var relayed = packet
            relayed.header.idFrom = peer.id
            var actions: [HubAction] = []
            actions.reserveCapacity(byPeerID.count)
            for (peerID, destination) in byPeerID where peerID != peer.id {
                actions.append(.send(destination, relayed))
            }
            return actions
        case .group:
            var relayed = packet
            relayed.header.idFrom = peer.id
            // Members that left were taken out of the group when they left (and the sender was told).
            return (groups[id] ?? []).compactMap { member in
                byPeerID[member].map {
                    relayed.header.idTo = member
                    return .send($0, relayed)
                }
            }
        }
    }

    /// A connection sent bytes that are not a valid frame: tell it why and close it.
    public mutating func protocolViolation(_ id: ConnectionID, error: WireError) -> [HubAction] {
        guard let connection = connections[id] else { return [] }
        logger.warning(
            "closing connection: \(error)",
            metadata: [
                "connection": "\(id)", "address": "\(connection.address)", "peer": "\(describe(connection.peer))",
            ]
        )
        let code: ErrorCode = error.isFrameTooLarge ? .frameTooLarge : .malformed
        return [.send(id, errorPacket(code, error.description))] + remove(id, reason: .dropped) + [.close(id)]
    }

    /// A destination made no progress for the write deadline: drop it and tell the peers whose packets waited on it.
    public mutating func stalled(_ id: ConnectionID, waiting senders: [ConnectionID]) -> [HubAction] {
        guard let connection = connections[id] else { return [] }
        logger.warning(
            "dropping peer that stopped reading",
            metadata: ["connection": "\(id)", "peer": "\(describe(connection.peer))"]
        )
        let peerID = connection.peer?.id
        let message = "peer \(describe(connection.peer)) stopped reading and was dropped"
        var actions = senders.filter { $0 != id && connections[$0] != nil }.map {
            HubAction.send($0, errorPacket(.peerStalled, message, peer: peerID))
        }
        actions += [.send(id, errorPacket(.peerStalled, "you made no progress reading and were dropped"))]
        actions += remove(id, reason: .dropped) + [.close(id)]
        return actions
    }

    /// Called regularly: pings registered peers, drops the silent and the unregistered past their deadline.
    /// `busy` connections are ones the server stopped reading (backpressure); their silence is not their fault.
    public mutating func tick(now: WireTime, busy: Set<ConnectionID> = []) -> [HubAction] {
        var actions: [HubAction] = []
        admissionLog.flush(now: now, logger: logger)
        let registrationDeadline = configuration.registrationTimeout.microseconds
        let silenceLimit = 3 * configuration.pingInterval.microseconds
        for (id, connection) in connections {
            if case .waiting = connection.phase {
                if now >= connection.openedAt + registrationDeadline {
                    logger.info(
                        "closing connection that did not register in time",
                        metadata: ["connection": "\(id)", "address": "\(connection.address)"])
                    actions.append(
                        .send(
                            id,
                            errorPacket(
                                .registrationTimeout, "no MyCredentials within \(configuration.registrationTimeout)")))
                    actions += remove(id, reason: .dropped)
                    actions.append(.close(id))
                }
            } else if busy.contains(id) {
                connections[id]?.lastHeard = now
            } else if now >= connection.lastHeard + silenceLimit {
                logger.info(
                    "dropping silent peer", metadata: ["connection": "\(id)", "peer": "\(describe(connection.peer))"])
                actions.append(.send(id, errorPacket(.heartbeatTimeout, "silent for three heartbeats")))
                actions += remove(id, reason: .timedOut)
                actions.append(.close(id))
            }
        }
        if now >= lastPingAt + configuration.pingInterval.microseconds {
            lastPingAt = now
            pingSequence &+= 1
            let ping = PingPayload(sequence: pingSequence, sentAt: now).encoded()
            for (peerID, id) in byPeerID {
                actions.append(.send(id, Packet(header: hubHeader(.ping, to: peerID, mask: .client), payload: ping)))
            }
        }
        return actions
    }

    /// The hub is stopping: tell everyone, then close every connection.
    public mutating func shutdown(reason: String) -> [HubAction] {
        let exiting = Reason(reason).encoded()
        var actions: [HubAction] = []
        for id in connections.keys {
            actions.append(.send(id, Packet(header: hubHeader(.hostExiting), payload: exiting)))
            actions.append(.close(id))
        }
        connections.removeAll()
        reservedIDs.removeAll()
        admission = Admission(perSource: admission.perSource, total: admission.total)
        groups.removeAll()
        inGroupsOf.removeAll()
        byPeerID.removeAll()
        byName.removeAll()
        watchers.removeAll()
        storeConnection = nil
        return actions
    }

    // MARK: registered traffic for the hub itself

    /// A registered peer broke the protocol (a malformed control packet, a hub-only type): it is told why and
    /// disconnected, like a bad frame, so it cannot go on probing.
    private mutating func violation(_ id: ConnectionID, _ code: ErrorCode, _ message: String, type: PacketType)
        -> [HubAction]
    {
        logger.notice(
            "protocol violation", metadata: ["peer": "\(describe(connections[id]?.peer))", "error": "\(message)"])
        return [.send(id, errorPacket(code, message, type: type))] + remove(id, reason: .dropped) + [.close(id)]
    }

    private mutating func receivedForHub(_ packet: Packet, from id: ConnectionID, peer: PeerRecord, now: WireTime)
        -> [HubAction]
    {
        switch packet.header.type {
        case .ping:
            let answer: Packet
            do {
                let ping = try PingPayload(tlv: packet.payload)
                answer = ping.answered(at: now).packet(
                    hubHeader(.pingResponse, to: peer.id, dataType: packet.header.dataType))
            } catch {
                return violation(id, .malformed, "bad Ping payload: \(error)", type: .ping)
            }
            return [.send(id, answer)]
        case .pingResponse:
            return []
        case .close:
            logger.debug("peer said goodbye", metadata: ["peer": "\(describe(peer))"])
            return remove(id, reason: .left) + [.close(id)]
        case .credentialsUpdate:
            return updateCredentials(packet, from: id, peer: peer)
        case .recipients:
            do {
                return setGroup(try Recipients(tlv: packet.payload).ids, of: id)
            } catch {
                return violation(id, .malformed, "bad Recipients payload: \(error)", type: .recipients)
            }
        case .peerQuery:
            do {
                let query = try PeerQuery(tlv: packet.payload)
                var found: PeerRecord?
                if query.store {
                    found = storeConnection.flatMap { connections[$0]?.peer }
                } else if let name = query.name, let peerID = byName[name] {
                    found = record(of: peerID)
                } else if let wanted = query.id {
                    found = record(of: wanted)
                }
                let result = PeerQueryResult(requestID: query.requestID, peer: found)
                return [.send(id, result.packet(hubHeader(.peerQueryResult, to: peer.id)))]
            } catch {
                return violation(id, .malformed, "bad PeerQuery payload: \(error)", type: .peerQuery)
            }
        case .directHints:
            do {
                return setHints(try DirectHints(tlv: packet.payload), of: id)
            } catch {
                return violation(id, .malformed, "bad DirectHints payload: \(error)", type: .directHints)
            }
        case .introductionRequest:
            do {
                return introduce(try IntroductionRequest(tlv: packet.payload), from: id, peer: peer)
            } catch {
                return violation(
                    id, .malformed, "bad IntroductionRequest payload: \(error)", type: .introductionRequest)
            }
        default:
            return [
                .send(
                    id,
                    errorPacket(.unsupported, "the hub does not handle \(packet.header.type)", type: packet.header.type)
                )
            ]
        }
    }

    private mutating func updateCredentials(_ packet: Packet, from id: ConnectionID, peer: PeerRecord) -> [HubAction] {
        let update: Credentials
        do {
            update = try Credentials(tlv: packet.payload)
        } catch {
            return violation(id, .malformed, "bad CredentialsUpdate payload: \(error)", type: .credentialsUpdate)
        }
        // A name or role is bound to a key as much after registering as at it: a change goes through the same list.
        if let authorized = configuration.authorizedPeers, let key = connections[id]?.key,
            update.name.map({ $0 != peer.name }) ?? false || update.role.map({ $0 != peer.role }) ?? false,
            let problem = authorized.problem(id: key, name: update.name ?? peer.name, role: update.role ?? peer.role)
        {
            logger.warning(
                "refused a credentials update", metadata: ["key": "\(key)", "peer": "\(describe(peer))"])
            return [.send(id, errorPacket(.authenticationFailed, problem, type: .credentialsUpdate))]
        }
        if update.role == PeerRole.classic && peer.role != PeerRole.classic {
            return [
                .send(
                    id,
                    errorPacket(
                        .invalidCredentials, "the role 'classic' is the hub's for clients of its classic listener",
                        type: .credentialsUpdate))
            ]
        }
        if update.role == PeerRole.store && connections[id]?.local != true && peer.role != update.role {
            return [.send(id, errorPacket(.invalidCredentials, Self.storeRoleReserved, type: .credentialsUpdate))]
        }
        var changed = peer
        if let name = update.name, name != peer.name {
            if let problem = Credentials.problem(withName: name)
                ?? (Credentials.isRename(name) ? Self.renameReserved : nil)
            {
                return [.send(id, errorPacket(.invalidCredentials, problem, type: .credentialsUpdate))]
            }
            guard byName[name] == nil else {
                return [
                    .send(
                        id,
                        errorPacket(.nameInUse, "the name '\(name)' is used by another peer", type: .credentialsUpdate))
                ]
            }
            byName[peer.name] = nil
            byName[name] = peer.id
            changed.name = name
        }
        if let host = update.host { changed.host = host }
        if let user = update.user { changed.user = user }
        if let role = update.role { changed.role = role }
        if let version = update.version { changed.version = version }
        connections[id]?.phase = .registered(changed)
        let notice = changed.encoded()
        var targets = watchers
        targets.insert(id)
        return targets.map {
            .send($0, Packet(header: hubHeader(.credentialsUpdate, from: changed.id), payload: notice))
        }
    }

    private mutating func setGroup(_ ids: [UInt32], of id: ConnectionID) -> [HubAction] {
        leaveGroups(of: id)
        var members: [UInt32] = []
        var actions: [HubAction] = []
        for member in ids where !members.contains(member) {
            if byPeerID[member] == nil {
                actions.append(
                    .send(
                        id,
                        errorPacket(
                            .unknownPeer, "no peer with id \(member) is connected", peer: member, type: .recipients)))
            } else {
                members.append(member)
                inGroupsOf[member, default: []].insert(id)
            }
        }
        groups[id] = members
        return actions
    }

    private mutating func leaveGroups(of id: ConnectionID) {
        guard let old = groups.removeValue(forKey: id) else { return }
        for member in old {
            inGroupsOf[member]?.remove(id)
            if inGroupsOf[member]?.isEmpty == true { inGroupsOf[member] = nil }
        }
    }

    // MARK: helpers

    /// A peer's DirectHints: the port it listens on everywhere goes with the address the hub sees it at (first: it is
    /// the one a sender behind the same hub most likely reaches), then the addresses it named.
    private mutating func setHints(_ hints: DirectHints, of id: ConnectionID) -> [HubAction] {
        guard var connection = connections[id] else { return [] }
        var list: [String] = []
        if let port = hints.port, let observed = Direct.split(connection.address) {
            list.append(Direct.hint(host: observed.host, port: port))
        }
        for hint in hints.hints where !list.contains(hint) { list.append(hint) }
        connection.hints = Array(list.prefix(Direct.maxHints))
        connections[id] = connection
        return []
    }

    /// A sender asks to be introduced to a peer: it gets the peer's hints and a one-time ticket, and the peer is told
    /// who comes with that ticket. The hub keeps no ticket: the receiver checks it, once, against the sender's key.
    private mutating func introduce(_ request: IntroductionRequest, from id: ConnectionID, peer: PeerRecord)
        -> [HubAction]
    {
        guard let destination = byPeerID[request.peer], destination != id,
            let target = connections[destination], let record = target.peer
        else {
            return [
                .send(
                    id,
                    errorPacket(
                        .unknownPeer, "no peer with id \(request.peer) is connected", peer: request.peer,
                        type: .introductionRequest))
            ]
        }
        guard !target.hints.isEmpty else {
            // The peer takes no direct connections: the sender goes through the hub.
            let answer = Introduction(requestID: request.requestID, peer: record, ticket: nil, hints: [])
            return [.send(id, answer.packet(hubHeader(.introduction, to: peer.id)))]
        }
        var generator = SystemRandomNumberGenerator()
        let ticket = (0..<Direct.ticketSize).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let answer = Introduction(requestID: request.requestID, peer: record, ticket: ticket, hints: target.hints)
        let notice = IntroductionNotice(ticket: ticket, peer: peer)
        logger.debug(
            "introduced", metadata: ["sender": "\(describe(peer))", "receiver": "\(describe(record))"])
        return [
            .send(destination, notice.packet(hubHeader(.introductionNotice, to: record.id, from: peer.id))),
            .send(id, answer.packet(hubHeader(.introduction, to: peer.id))),
        ]
    }

    /// A new peer id. Ids count up from 1 and are not reused while the hub runs — unless it has a classic listener:
    /// then every id must fit in 16 bits (a classic client's roster and file packets carry 16), so they count up to
    /// 65535 and start again at 1, skipping the ids in use and the ones given to classic connections still
    /// registering.
    mutating func allocatePeerID() -> UInt32 {
        guard configuration.classicIDs else {
            defer { nextPeerID += 1 }
            return nextPeerID
        }
        for _ in 0..<Int(UInt16.max) {
            if nextPeerID > UInt32(UInt16.max) || nextPeerID == 0 { nextPeerID = 1 }
            let candidate = nextPeerID
            nextPeerID += 1
            if byPeerID[candidate] == nil && !reservedIDs.contains(candidate) { return candidate }
        }
        // Every 16-bit id is taken (65,535 connections): this one gets an id no classic client can see.
        var candidate = UInt32(UInt16.max) + 1
        while byPeerID[candidate] != nil || reservedIDs.contains(candidate) { candidate += 1 }
        return candidate
    }

    func record(of peerID: UInt32) -> PeerRecord? {
        byPeerID[peerID].flatMap { connections[$0]?.peer }
    }

    /// Forgets a connection that never registered.
    mutating func forget(_ id: ConnectionID) {
        if let reserved = connections[id]?.reservedID { reservedIDs.remove(reserved) }
        connections[id] = nil
        admission.leave(id)
    }

    /// Forgets a connection and tells the watchers if it was a registered peer.
    mutating func remove(_ id: ConnectionID, reason: DisconnectReason) -> [HubAction] {
        admission.leave(id)
        guard let connection = connections.removeValue(forKey: id) else { return [] }
        if let reserved = connection.reservedID { reservedIDs.remove(reserved) }
        watchers.remove(id)
        if storeConnection == id { storeConnection = nil }
        leaveGroups(of: id)
        guard let peer = connection.peer else { return [] }
        byPeerID[peer.id] = nil
        if byName[peer.name] == peer.id { byName[peer.name] = nil }
        logger.info("peer left", metadata: ["peer": "\(describe(peer))", "reason": "\(reason)"])
        // Watchers, and the connections that were sending to this peer as part of their group, are told.
        var told = watchers
        for sender in inGroupsOf.removeValue(forKey: peer.id) ?? [] {
            groups[sender]?.removeAll { $0 == peer.id }
            told.insert(sender)
        }
        guard !told.isEmpty else { return [] }
        let notice = Packet(
            header: hubHeader(.clientDisconnecting, dataType: reason.rawValue, from: peer.id), payload: peer.encoded()
        )
        return told.map { .send($0, notice) }
    }

    func hubHeader(
        _ type: PacketType, to peerID: UInt32 = 0, mask: MaskTo = .client, dataType: UInt16 = 0,
        from: UInt32 = PacketHeader.hubID
    ) -> PacketHeader {
        PacketHeader(type: type, dataType: dataType, maskTo: mask, idTo: peerID, idFrom: from)
    }

    func errorPacket(_ code: ErrorCode, _ message: String, peer: UInt32? = nil, type: PacketType? = nil)
        -> Packet
    {
        ErrorPayload(code: code, message: message, peerID: peer, packetType: type).packet(hubHeader(.error))
    }

    func describe(_ peer: PeerRecord?) -> String {
        guard let peer else { return "(unregistered)" }
        return "\(peer.id) \(escapedForLog(peer.name))"
    }
}
