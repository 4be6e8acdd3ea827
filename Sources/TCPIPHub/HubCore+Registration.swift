import Logging
import TCPIPCore
import TCPIPWire

/// Registration: what a connection may send before it has registered, MyCredentials checked against the token, the
/// name rules and the authorized keys, enrolment, and the peer record and roster a registration produces.
extension HubCore {
    mutating func receivedBeforeRegistration(_ packet: Packet, from id: ConnectionID, now: WireTime)
        -> [HubAction]
    {
        switch packet.header.type {
        case .myCredentials:
            return register(packet, from: id, now: now)
        case .close:
            forget(id)
            return [.close(id)]
        default:
            logger.info(
                "closing connection that sent \(packet.header.type) before registering",
                metadata: ["connection": "\(id)"])
            forget(id)
            return [
                .send(id, errorPacket(.notRegistered, "send MyCredentials first", type: packet.header.type)),
                .close(id),
            ]
        }
    }

    private mutating func refuse(_ id: ConnectionID, _ code: ErrorCode, _ message: String) -> [HubAction] {
        let address = connections[id]?.address ?? "?"
        logger.info("refused registration: \(message)", metadata: ["connection": "\(id)", "address": "\(address)"])
        forget(id)
        return [.send(id, errorPacket(code, message, type: .myCredentials)), .close(id)]
    }

    private mutating func register(_ packet: Packet, from id: ConnectionID, now: WireTime) -> [HubAction] {
        let credentials: Credentials
        do {
            credentials = try Credentials(tlv: packet.payload)
        } catch {
            return refuse(id, .malformed, "bad MyCredentials payload: \(error)")
        }
        // The hub's own store comes through a socket the hub made: no token, key or list applies to it.
        let local = connections[id]?.local ?? false
        if connections[id]?.classic == true { return registerClassic(credentials, from: id, now: now) }
        if credentials.role == PeerRole.classic {
            return refuse(
                id, .invalidCredentials, "the role 'classic' is the hub's for clients of its classic listener")
        }
        if credentials.role == PeerRole.store && !local {
            return refuse(id, .invalidCredentials, Self.storeRoleReserved)
        }
        if !local, let token = configuration.token, !token.matches(credentials.token) {
            return refuse(
                id, .authenticationFailed, credentials.token == nil ? "this hub requires a token" : "wrong token")
        }
        guard let requested = credentials.name else {
            return refuse(id, .invalidCredentials, "MyCredentials carries no name")
        }
        if let problem = Credentials.problem(withName: requested) { return refuse(id, .invalidCredentials, problem) }
        if Credentials.isRename(requested) { return refuse(id, .invalidCredentials, Self.renameReserved) }
        let key = local ? configuration.ownID : connections[id]?.key
        if !local && configuration.security != nil && key == nil {
            return refuse(id, .authenticationFailed, "this hub takes only clients that prove a key over TLS")
        }
        var requestedName = requested
        var enrolled: AuthorizedPeers.Entry?
        if !local, let authorized = configuration.authorizedPeers, let key {
            let role = credentials.role ?? "client"
            let mine = authorized.entries(for: key).filter { $0.roles.isEmpty || $0.roles.contains(role) }
            if credentials.flags.contains(.allowRename), !mine.contains(where: { $0.name == requested }),
                let own = mine.first
            {
                // A default name (USER@HOST) stands for "whatever my key may be": the name bound to it.
                requestedName = own.name
            } else if mine.isEmpty && authorized.entries(for: key).isEmpty, let enrollToken = configuration.enrollToken,
                enrollToken.matches(credentials.token), !authorized.owns(requested)
            {
                let entry = AuthorizedPeers.Entry(
                    id: key, name: requested, roles: [],
                    comment: "enrolled \(WireClock.rfc3339(now)) from \(connections[id]?.address ?? "?")")
                // The line must read back as this entry: a name with a space or a '#' would come back as another name.
                guard AuthorizedPeers.nameIsPlain(requested),
                    (try? AuthorizedPeers(parsing: entry.line))?.entries == [entry]
                else {
                    return refuse(
                        id, .invalidCredentials,
                        "an enrolled name may hold only letters, digits and . _ @ + - (not '\(escapedForLog(requested.clipped))')"
                    )
                }
                enrolled = entry
            }
            if enrolled == nil,
                let problem = authorized.problem(id: key, name: requestedName, role: role)
            {
                logger.warning(
                    "refused a key",
                    metadata: [
                        "key": "\(key)", "name": "\(escapedForLog(requested.clipped))",
                        "address": "\(connections[id]?.address ?? "?")",
                    ])
                return refuse(id, .authenticationFailed, problem)
            }
        }
        // A refused registration takes no id.
        let unused = nextPeerID
        let peerID = allocatePeerID()
        var name = requestedName
        if byName[name] != nil {
            guard credentials.flags.contains(.allowRename) else {
                nextPeerID = unused
                return refuse(id, .nameInUse, "the name '\(requested)' is used by another connected peer")
            }
            name = "\(requestedName)#\(peerID)"
            guard byName[name] == nil else {
                nextPeerID = unused
                return refuse(id, .nameInUse, "the name '\(name)' is in use")
            }
        }
        guard let connection = connections[id] else { return [] }
        if let enrolled {
            // Only now that the registration goes through: a refused one must not leave the key authorized.
            configuration.authorizedPeers?.add(enrolled)
            logger.notice("enrolled a key", metadata: ["key": "\(enrolled.id)", "name": "\(enrolled.name)"])
        }
        let peer = PeerRecord(
            id: peerID, name: name, host: credentials.host ?? "", user: credentials.user ?? "",
            address: connection.address, role: credentials.role ?? "client", connectedAt: now,
            version: credentials.version ?? "", key: key?.bytes, publicKey: key == nil ? nil : connection.spki
        )
        let enrolment: [HubAction] = enrolled.map { [.enrolled($0)] } ?? []
        return enrolment + admit(peer, on: id, flags: credentials.flags, now: now)
    }

    /// A classic client's MyCredentials (made by ``ClassicTranslator``): it has no token and no key, so none is asked
    /// for. It never gets a name a key owns, nor one in use: it is then registered as `name#ID`. Its id is the one
    /// RequestCredentials gave it.
    private mutating func registerClassic(_ credentials: Credentials, from id: ConnectionID, now: WireTime)
        -> [HubAction]
    {
        guard let connection = connections[id], let peerID = connection.reservedID else { return [] }
        var name = credentials.name ?? ""
        // Whatever a classic client typed (nothing, a number, control characters, a name of the hub's renames), it
        // still joins, by its id.
        if Credentials.problem(withName: name) != nil || Credentials.isRename(name) { name = PeerRole.classic }
        if name == PeerRole.classic || byName[name] != nil || configuration.authorizedPeers?.owns(name) == true {
            // Cut so that the rename still fits the name rule's 255 bytes.
            let suffix = "#\(peerID)"
            name = name.clippedUTF8(Credentials.maxNameBytes - suffix.utf8.count) + suffix
        }
        guard byName[name] == nil else { return refuse(id, .nameInUse, "the name '\(name)' is in use") }
        connections[id]?.reservedID = nil
        reservedIDs.remove(peerID)
        let peer = PeerRecord(
            id: peerID, name: name, host: credentials.host ?? "", user: credentials.user ?? "",
            address: connection.address, role: PeerRole.classic, connectedAt: now, version: credentials.version ?? "",
            wire: PeerRecord.classicWire)
        return admit(peer, on: id, flags: [.wantsRoster, .wantsUpdates], now: now)
    }

    /// Registers `peer` on connection `id`: Registered and the roster to it, ClientData to the watchers.
    private mutating func admit(_ peer: PeerRecord, on id: ConnectionID, flags: RegistrationFlags, now: WireTime)
        -> [HubAction]
    {
        guard var connection = connections[id] else { return [] }
        let peerID = peer.id
        connection.phase = .registered(peer)
        connection.flags = flags
        connections[id] = connection
        admission.leave(id)

        var actions: [HubAction] = []
        var roster: [PeerRecord] = []
        if flags.contains(.wantsRoster) {
            roster = byPeerID.keys.sorted().compactMap { record(of: $0) }
        }
        let registered = Registered(
            peer: peer, hubTime: now,
            heartbeatMilliseconds: UInt32(clamping: configuration.pingInterval.microseconds / 1000),
            rosterCount: UInt32(roster.count)
        )
        actions.append(.send(id, registered.packet(hubHeader(.registered, to: peerID))))
        for other in roster {
            let data = other.packet(
                hubHeader(.clientData, to: peerID, dataType: ClientDataKind.present.rawValue, from: other.id))
            actions.append(.send(id, data))
        }
        if !watchers.isEmpty {
            let joined = Packet(
                header: hubHeader(.clientData, dataType: ClientDataKind.joined.rawValue, from: peerID),
                payload: peer.encoded())
            for watcher in watchers { actions.append(.send(watcher, joined)) }
        }
        byPeerID[peerID] = id
        byName[peer.name] = peerID
        if flags.contains(.wantsUpdates) { watchers.insert(id) }
        // The store's intake is the local store connection that watches the roster; its couriers do not.
        if connection.local && peer.role == PeerRole.store && flags.contains(.wantsUpdates) && storeConnection == nil {
            storeConnection = id
        }
        logger.info(
            "registered",
            metadata: ["peer": "\(describe(peer))", "role": "\(peer.role)", "address": "\(peer.address)"]
        )
        return actions
    }

    static let storeRoleReserved = "the role 'store' is reserved for the hub's own store"

    static let renameReserved = "names ending in #NUMBER are the hub's (it gives them to a peer whose name is taken)"
}
