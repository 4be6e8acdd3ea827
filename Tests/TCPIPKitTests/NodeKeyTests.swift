import Crypto
import Foundation
import Logging
import TCPIPClient
import TCPIPCore
import TCPIPWire
import Testing
import X509

@testable import TCPIPTLS

/// Node keys, IDs and the authorized-peers file, and TLS between an in-process hub and client.
@Suite struct NodeKeyTests {
    static func directory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)").path
    }

    @Test func anIDPrintsAndParsesBackAndIsTheHashOfWhatTLSSees() throws {
        let root = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let key = try NodeKey.loadOrCreate(in: root)
        let text = key.id.description
        #expect(text.count == 52 + 12)
        #expect(NodeID(text) == key.id)
        #expect(
            NodeID(bytes: Array(repeating: 7, count: 32))?.description
                == "A4DQ-OBYH-A4DQ-OBYH-A4DQ-OBYH-A4DQ-OBYH-A4DQ-OBYH-A4DQ-OBYH-A4DQ", "RFC 4648 base32, as Python's")
        #expect(NodeID(text.lowercased().replacingOccurrences(of: "-", with: "")) == key.id)
        #expect(NodeKey.id(of: key.certificate) == key.id, "the ID peers compute from the certificate")
        #expect(try NodeKey.loadOrCreate(in: root).id == key.id, "the key is kept")
        for bad in [
            "", "ABCD", String(text.dropLast()), text + "A", text.replacingOccurrences(of: "A", with: "1"),
            String(text.dropLast()) + "B",
        ]
        where bad != text {
            #expect(NodeID(bad) == nil, "\(bad)")
        }
        // Written 0600 under a 0700 directory whatever the umask.
        var info = stat()
        #expect(stat(key.keyPath, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat(root, &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    @Test func authorizedPeersRefuseWhatTheyDoNotUnderstandByLine() throws {
        let id = NodeID(bytes: Array(repeating: 7, count: 32))!
        let other = NodeID(bytes: Array(repeating: 9, count: 32))!
        let peers = try AuthorizedPeers(
            parsing: "# the archive\n\n\(id) archive receiver,listener # files\n\(other) cron\n")
        #expect(peers.entries.count == 2)
        #expect(peers.entries[0].comment == "files")
        #expect(peers.problem(id: id, name: "archive", role: "receiver") == nil)
        #expect(peers.problem(id: id, name: "archive", role: "client") != nil)
        #expect(peers.problem(id: other, name: "archive", role: "client") != nil)
        #expect(peers.problem(id: NodeID(bytes: Array(repeating: 1, count: 32))!, name: "x", role: "client") != nil)
        for (text, line) in [
            ("\(id) a\nnot-an-id b\n", 2), ("\(id) a\n\(other) a\n", 2), ("\(id)\n", 1), ("\(id) a b c\n", 1),
            ("\(id) 42\n", 1),
        ] {
            #expect(throws: TCPIPError.self) { try AuthorizedPeers(parsing: text) }
            do {
                _ = try AuthorizedPeers(parsing: text)
            } catch let error as TCPIPError {
                #expect(error.message.contains("line \(line)"), "\(error.message)")
            }
        }
    }

    /// Pinning is by key: certificates long expired (or not valid yet) still carry the key, and nothing checks their
    /// dates.
    @Test func expiredCertificatesDoNotMatterOnlyKeysDo() async throws {
        let root = Self.directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        func expired(_ name: String) throws -> NodeKey {
            let key = try NodeKey.loadOrCreate(in: root + "/" + name)
            let pem = try String(contentsOfFile: key.keyPath, encoding: .utf8)
            let privateKey = try P256.Signing.PrivateKey(pemRepresentation: pem)
            let subject = try DistinguishedName { CommonName("old") }
            let old = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(privateKey.publicKey),
                notValidBefore: Date(timeIntervalSince1970: 946_684_800),
                notValidAfter: Date(timeIntervalSince1970: 978_307_200), issuer: subject, subject: subject,
                extensions: .init(), issuerPrivateKey: .init(privateKey))
            try old.serializeAsPEM().pemString.write(toFile: key.certificatePath, atomically: true, encoding: .utf8)
            return try NodeKey.loadOrCreate(in: root + "/" + name)
        }
        let hubKey = try expired("hub")
        let clientKey = try expired("client")
        let (hub, address) = try await HubServerTests.startHub { $0.security = try? HubTLS(key: hubKey) }
        var configuration = HubServerTests.client("old-timer", address)
        configuration.security = try HubPin(key: clientKey, expected: hubKey.id, source: .option, address: address)
        let me = try await ClientSession.run(configuration, logger: HubServerTests.logger) { $0.me }
        #expect(me.name == "old-timer")
        #expect(me.keyID == clientKey.id, "the hub put the proved key in the record")
        // The same client pinned to another key is refused before registering.
        configuration.security = try HubPin(key: clientKey, expected: clientKey.id, source: .option, address: address)
        await #expect(throws: TCPIPError.self) {
            try await ClientSession.run(configuration, logger: HubServerTests.logger) { _ in }
        }
        await hub.shutdown()
    }
}
