#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A shared secret that clients present to the hub.
public struct Token: Sendable {
    fileprivate let bytes: [UInt8]

    public init(_ text: String) { bytes = Array(text.utf8) }

    public var isEmpty: Bool { bytes.isEmpty }

    /// Compares in time that depends only on the lengths, not on where the first difference is.
    public func matches(_ presented: String?) -> Bool {
        let other = Array((presented ?? "").utf8)
        var difference = UInt8(truncatingIfNeeded: bytes.count ^ other.count)
        let count = max(bytes.count, other.count)
        for index in 0..<count {
            let a = index < bytes.count ? bytes[index] : 0
            let b = index < other.count ? other[index] : 0
            difference |= a ^ b
        }
        return difference == 0 && presented != nil
    }

    /// The text of the token, to send it. Never log it.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Resolves the token from, in order: a token file given on the command line, `TCPIP_TOKEN`, `TCPIP_TOKEN_FILE`.
    /// The file's content is the token, with one trailing newline removed. Returns nil when none is set.
    public static func resolve(tokenFile: String?, environment: [String: String]) throws -> Token? {
        if let tokenFile { return try load(path: tokenFile) }
        if let text = environment["TCPIP_TOKEN"], !text.isEmpty { return Token(text) }
        if let path = environment["TCPIP_TOKEN_FILE"], !path.isEmpty { return try load(path: path) }
        return nil
    }

    static func load(path: String) throws -> Token {
        var data = try readContents(of: path, label: "token file ", limit: 65536)
        while let last = data.last, last == 0x0A || last == 0x0D { data.removeLast() }
        guard !data.isEmpty else { throw TCPIPError.usage("token file \(path) is empty") }
        return Token(String(decoding: data, as: UTF8.self))
    }
}
