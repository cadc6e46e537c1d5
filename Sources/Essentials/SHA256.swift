import Crypto
import Foundation

/// SHA-256 (FIPS 180-4): model fingerprints, data and token-id hashes (`plan.json`, `options.json`, fixture checks).
/// swift-crypto's digest (BoringSSL, with the CPU's SHA extensions): 6.6-7.8x our former pure-Swift one on a 98 MB
/// model (BENCHMARKS.md "Essentials: SHA-256 and gzip"); the digests are the same bytes.
public struct SHA256 {
    private var hasher = Crypto.SHA256()

    /// A fresh digest.
    public init() {}

    /// Feeds more bytes.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
    }

    /// Feeds more bytes.
    public mutating func update(_ data: Data) {
        hasher.update(data: data)
    }

    /// Finishes and returns the 32-byte digest.
    public mutating func finalize() -> [UInt8] {
        Array(hasher.finalize())
    }

    /// The lowercase hex SHA-256 of `data`.
    public static func hex(_ data: Data) -> String {
        var digest = SHA256()
        digest.update(data)
        return hexString(digest.finalize())
    }

    /// Lowercase hex of digest bytes.
    public static func hexString(_ digest: [UInt8]) -> String {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The lowercase hex SHA-256 of a string's UTF-8 bytes.
    public static func hex(_ string: String) -> String { hex(Data(string.utf8)) }

    /// The fixtures' id-list hash: ids as decimal, comma-joined, no spaces, ASCII (`"1,403,407"`).
    public static func hex(ids: [Int]) -> String { hex(ids.map(String.init).joined(separator: ",")) }
}
