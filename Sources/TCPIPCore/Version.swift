/// The version of the suite. Every program reports it with `--version` and sends it in MyCredentials.
public let tcpipVersion = "0.1.0"
