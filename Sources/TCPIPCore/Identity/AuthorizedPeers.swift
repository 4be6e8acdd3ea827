import TCPIPWire

/// The hub's list of who may join (`tcpipd --authorized-peers FILE`), like ssh's authorized_keys: one peer per line,
///
///     ID NAME [ROLE,ROLE…] [# comment]
///
/// a key's ID (as `tcpipctl id` prints it), the one name that key may register, optionally the roles it may register
/// with (any when absent), and a comment. Blank lines and lines starting with `#` are ignored. A name appears at most
/// once: a name is bound to one key.
public struct AuthorizedPeers: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var id: NodeID
        public var name: String
        /// Empty allows every role.
        public var roles: [String]
        public var comment: String

        public init(id: NodeID, name: String, roles: [String] = [], comment: String = "") {
            self.id = id
            self.name = name
            self.roles = roles
            self.comment = comment
        }

        /// The line that stands for this entry in the file.
        public var line: String {
            ([id.description, name] + (roles.isEmpty ? [] : [roles.joined(separator: ",")])
                + (comment.isEmpty ? [] : ["# " + comment])).joined(separator: " ")
        }
    }

    public private(set) var entries: [Entry] = []

    public init(entries: [Entry] = []) { self.entries = entries }

    /// Parses the file's text; a line that does not parse is an error naming its number (the hub must not start, or
    /// reload, with a list it half understood).
    public init(parsing text: String) throws {
        // Split on bytes: "\r\n" is one Character to Swift, and a file edited on Windows must still parse.
        let lines = Array(text.utf8).split(separator: 0x0A, omittingEmptySubsequences: false).map {
            String(decoding: $0.filter { $0 != 0x0D }, as: UTF8.self)
        }
        for (number, rawLine) in lines.enumerated() {
            var line = Substring(rawLine)
            var comment = ""
            if let hash = line.firstIndex(of: "#") {
                comment = line[line.index(after: hash)...].trimmingCharacters(in: " \t")
                line = line[..<hash]
            }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if words.isEmpty { continue }
            func fail(_ problem: String) -> TCPIPError {
                TCPIPError.usage("authorized peers, line \(number + 1): \(problem)")
            }
            guard words.count == 2 || words.count == 3 else {
                throw fail("expected 'ID NAME [ROLES] [# comment]', found \(words.count) words")
            }
            guard let id = NodeID(words[0]) else { throw fail("'\(escapedForLog(words[0]))' is not a node ID") }
            if let problem = Credentials.problem(withName: words[1]) {
                throw fail("invalid name '\(escapedForLog(words[1]))': \(problem)")
            }
            if entries.contains(where: { $0.name == words[1] }) {
                throw fail("the name '\(words[1])' is already bound to another line")
            }
            let roles = words.count == 3 ? words[2].split(separator: ",").map(String.init) : []
            entries.append(Entry(id: id, name: words[1], roles: roles, comment: comment))
        }
    }

    /// The entries for a key (a key may own several names).
    public func entries(for id: NodeID) -> [Entry] { entries.filter { $0.id == id } }

    /// Why `id` may not register `name` with `role`, or nil when it may.
    public func problem(id: NodeID, name: String, role: String) -> String? {
        let mine = entries(for: id)
        guard !mine.isEmpty else { return "key \(id) is not in the authorized peers" }
        guard let entry = mine.first(where: { $0.name == name }) else {
            let names = mine.map { "'\($0.name)'" }.joined(separator: ", ")
            return "key \(id) may register only as \(names), not '\(escapedForLog(name))'"
        }
        if !entry.roles.isEmpty && !entry.roles.contains(role) {
            return
                "'\(name)' may register only as \(entry.roles.joined(separator: " or ")), not '\(escapedForLog(role))'"
        }
        return nil
    }

    /// Whether a name can be written in the file and read back whole: letters, digits and `. _ @ + -`.
    public static func nameIsPlain(_ name: String) -> Bool {
        !name.isEmpty
            && name.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                    || "._@+-".unicodeScalars.contains($0)
            }
    }

    /// Whether some key owns `name`.
    public func owns(_ name: String) -> Bool { entries.contains { $0.name == name } }

    public mutating func add(_ entry: Entry) { entries.append(entry) }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}
