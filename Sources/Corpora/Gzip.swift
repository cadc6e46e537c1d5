import Foundation

/// gzip (RFC 1952) / DEFLATE (RFC 1951) decompression in pure Swift, so that data sets read without zlib.
public enum Gzip {
    /// Decompresses a whole gzip member (or concatenated members).
    public static func decompress(_ data: Data) throws -> Data {
        throw CorpusError.corrupt(file: "<gzip>", reason: "gzip decoding not implemented yet")
    }
}
