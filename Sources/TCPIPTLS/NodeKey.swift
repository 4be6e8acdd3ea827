import Crypto
import FoundationEssentials
import NIOSSL
import TCPIPCore
import X509

#if canImport(Glibc)
    import Glibc
#endif

/// A node's long-lived key and self-signed certificate, kept in its state directory: `key.pem` (P-256, mode 0600)
/// and `cert.pem`. Made on first use. The certificate only carries the key through TLS: peers pin the key's
/// ``NodeID``, never a CA, so its validity dates are not checked by anyone (it is made valid for 100 years).
public struct NodeKey: Sendable {
    public let id: NodeID
    public let directory: String
    let privateKey: NIOSSLPrivateKey
    let certificate: NIOSSLCertificate
    /// The same key, for sealing files and messages end to end and signing them.
    public let sealing: SealingKey

    public var keyPath: String { directory + "/key.pem" }
    public var certificatePath: String { directory + "/cert.pem" }

    /// The state directory: `--state-dir`, else `TCPIP_STATE_DIR`, else `$XDG_CONFIG_HOME/tcpip`, else
    /// `~/.config/tcpip`.
    public static func stateDirectory(option: String?, environment: [String: String]) -> String {
        if let option, !option.isEmpty { return option }
        if let path = environment["TCPIP_STATE_DIR"], !path.isEmpty { return path }
        if let path = environment["XDG_CONFIG_HOME"], !path.isEmpty { return path + "/tcpip" }
        let home =
            environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? getpwuid(geteuid()).flatMap { String(validatingCString: $0.pointee.pw_dir) } ?? "/"
        return home + "/.config/tcpip"
    }

    /// Loads the key in `directory`, making the directory (mode 0700), the key and the certificate when missing.
    /// A key file that others may read is refused (77), as ssh does.
    public static func loadOrCreate(in directory: String) throws -> NodeKey {
        try makeDirectory(directory)
        let keyPath = directory + "/key.pem"
        let certificatePath = directory + "/cert.pem"
        let key: P256.Signing.PrivateKey
        var info = stat()
        if stat(keyPath, &info) == 0 {
            if info.st_mode & 0o077 != 0 {
                throw TCPIPError(
                    .permissionDenied,
                    "the key \(keyPath) may be read by others (mode \(String(info.st_mode & 0o777, radix: 8))): "
                        + "refusing to use it; chmod 600 \(keyPath)")
            }
            let pem = String(decoding: try readContents(of: keyPath, label: "key ", limit: 65536), as: UTF8.self)
            do {
                key = try P256.Signing.PrivateKey(pemRepresentation: pem)
            } catch {
                throw TCPIPError(.noInput, "the key \(keyPath) is not a P-256 private key in PEM: \(error)")
            }
        } else {
            let made = P256.Signing.PrivateKey()
            // Whole and synced under a temporary name, then linked into place: a crash never leaves half a key, and
            // of two first runs at once, the second uses the first one's key.
            let temporary = keyPath + ".new\(getpid())"
            try write(Array(made.pemRepresentation.utf8), to: temporary, mode: 0o600, exclusive: true)
            defer { unlink(temporary) }
            if link(temporary, keyPath) == 0 {
                key = made
            } else if errno == EEXIST {
                return try loadOrCreate(in: directory)
            } else {
                throw TCPIPError(.cannotCreate, "cannot create \(keyPath): \(String(cString: strerror(errno)))")
            }
        }
        // The certificate is remade whenever it is missing or does not carry this key.
        var certificatePEM: [UInt8]? = try? readContents(of: certificatePath, label: "certificate ", limit: 65536)
        if let pem = certificatePEM,
            (try? Certificate(pemEncoded: String(decoding: pem, as: UTF8.self)))?.publicKey
                != Certificate.PublicKey(key.publicKey)
        {
            certificatePEM = nil
        }
        if certificatePEM == nil {
            let pem = Array(try selfSigned(key).serializeAsPEM().pemString.utf8)
            try write(pem, to: certificatePath, mode: 0o644, exclusive: false)
            certificatePEM = pem
        }
        let certificate = try NIOSSLCertificate(bytes: certificatePEM ?? [], format: .pem)
        let privateKey = try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem)
        return NodeKey(
            id: NodeID(spki: Array(key.publicKey.derRepresentation)), directory: directory, privateKey: privateKey,
            certificate: certificate, sealing: SealingKey(key))
    }

    /// The ID of the key a peer presented in its (leaf) certificate.
    static func id(of certificate: NIOSSLCertificate) -> NodeID? {
        guard let spki = try? certificate.extractPublicKey().toSPKIBytes() else { return nil }
        return NodeID(spki: spki)
    }

    static func selfSigned(_ key: P256.Signing.PrivateKey) throws -> Certificate {
        let name = try DistinguishedName { CommonName("tcpip node") }
        let now = Date()
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 100 * 365 * 86400,
            issuer: name, subject: name, extensions: Certificate.Extensions(),
            issuerPrivateKey: Certificate.PrivateKey(key))
    }

    static func makeDirectory(_ path: String) throws {
        var built = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            built += "/" + component
            if mkdir(built, 0o700) != 0 && errno != EEXIST {
                throw TCPIPError(
                    .cannotCreate, "cannot create the state directory \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Writes a whole file (through a temporary name and a rename unless `exclusive`, which fails if it exists).
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t, exclusive: Bool) throws {
        let target = exclusive ? path : path + ".tmp\(getpid())"
        let fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), mode)
        guard fd >= 0 else {
            throw TCPIPError(.cannotCreate, "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        fchmod(fd, mode)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard written > 0 else {
                throw TCPIPError(.cannotCreate, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += written
        }
        fsync(fd)
        if !exclusive && rename(target, path) != 0 {
            throw TCPIPError(.cannotCreate, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
