/// The exit statuses, written once so every `--help`, the man pages and README say the same (sysexits.h; one cause
/// has one status whatever path it takes: a file, stdin or a message).
public enum ExitStatuses {
    /// The client's table, for `tcpipctl` and each of its subcommands.
    public static let client = """
        Exit statuses (sysexits.h): 0 ok (delivered, stored, or already stored); 64 usage (a bad option, address or \
        name); 65 data error (a checksum mismatch, a message over the size limit, an unsafe name); 66 an input \
        (a file to send, a token file) cannot be read; 68 unknown peer (nothing was sent); 69 the hub cannot be \
        reached; 70 internal error; 73 the receiver could not store it (no space, read-only, I/O error, quota); \
        75 temporary failure (a timeout, the hub or a recipient went away, the receiver is shutting down, the name \
        is in use): retry later; 77 refused (the token, or the receiver's policy: allow-from, size cap, not a \
        receiver); 130 or 143 stopped by SIGINT or SIGTERM.
        """

    /// The receiver daemon's table.
    public static let receiver = """
        Exit statuses: 0 stopped by SIGTERM or SIGINT; 64 usage; 66 the --exec command or the token file cannot be \
        used; 73 the spool cannot be used (or another tcpiprecvd holds it); 75 the name stayed taken by another \
        peer for --name-wait seconds; 77 the hub refused the token.
        """

    /// The hub's table.
    public static let hub = """
        Exit statuses: 0 stopped by SIGTERM or SIGINT; 64 usage; 66 the token file cannot be read; 73 the address \
        cannot be listened on (in use, not local, privileged).
        """
}
