import Foundation

/// A gzip stream that does not decode: the file it came from (as the caller named it) and what is wrong.
public struct GzipError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The name used in the message (the path the bytes came from).
    public let file: String
    /// What is wrong (header, code, distance, truncation, checksum, trailing bytes).
    public let reason: String
    /// `<file>: corrupt: <reason>`, the text of Corpora's `corrupt` error.
    public var description: String { "\(file): corrupt: \(reason)" }
}

/// gzip (RFC 1952) / DEFLATE (RFC 1951) decompression in pure Swift, so that data sets read without zlib.
///
/// Every member's CRC-32 and ISIZE are checked; concatenated members are decoded in order and their outputs joined
/// (as `gzip -d` does). Any malformed header, invalid code, distance reaching before the member's output, truncation,
/// bad checksum or trailing bytes that are not a gzip member throw `GzipError` naming `file`.
public enum Gzip {
    /// Decompresses a whole gzip stream (one member or several concatenated members).
    /// - Parameter file: the name used in errors (the path the bytes came from).
    public static func decompress(_ data: Data, file: String = "<gzip>") throws -> Data {
        guard !data.isEmpty else { throw GzipError(file: file, reason: "empty gzip stream") }
        return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Data in
            let input = raw.bindMemory(to: UInt8.self)
            var output = OutputBuffer(initialCapacity: initialCapacity(input))
            var position = 0
            var member = 0
            do {
                repeat {
                    position = try decodeMember(input, from: position, into: &output, file: file, member: member)
                    member += 1
                } while position < input.count
            } catch {
                // The buffer is malloc'd and only `finish` hands it on; a corrupt stream must free it (the fuzz
                // harness saw ~100 KB leak per damaged .gz).
                output.deallocate()
                throw error
            }
            return output.finish()
        }
    }

    /// ISIZE of the last member (the uncompressed size mod 2^32) is a good first guess for the output size.
    private static func initialCapacity(_ input: UnsafeBufferPointer<UInt8>) -> Int {
        let n = input.count
        guard n >= 18 else { return 1 << 16 }
        let isize = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
        return max(1 << 16, min(isize, n * 1032) + 64)
    }

    /// Decodes the member starting at `start`; returns the offset just past its trailer.
    private static func decodeMember(_ input: UnsafeBufferPointer<UInt8>, from start: Int, into output: inout OutputBuffer,
                                     file: String, member: Int) throws -> Int {
        func fail(_ reason: String) -> GzipError {
            GzipError(file: file, reason: member == 0 ? reason : "member \(member + 1): \(reason)")
        }
        var p = start
        guard input.count - p >= 18 else {
            throw fail(member == 0 ? "truncated: \(input.count - p) bytes is too short for a gzip stream" : "trailing bytes are not a gzip member")
        }
        guard input[p] == 0x1f, input[p + 1] == 0x8b else {
            throw fail(member == 0 ? "not gzip (magic bytes missing)" : "trailing bytes are not a gzip member")
        }
        guard input[p + 2] == 8 else { throw fail("unsupported compression method \(input[p + 2])") }
        let flags = input[p + 3]
        guard flags & 0xe0 == 0 else { throw fail("reserved header flags set") }
        p += 10
        if flags & 0x04 != 0 {  // FEXTRA
            guard p + 2 <= input.count else { throw fail("truncated header") }
            p += 2 + (Int(input[p]) | Int(input[p + 1]) << 8)
        }
        for flag: UInt8 in [0x08, 0x10] where flags & flag != 0 {  // FNAME, FCOMMENT: zero-terminated
            while p < input.count && input[p] != 0 { p += 1 }
            p += 1
        }
        if flags & 0x02 != 0 { p += 2 }  // FHCRC
        guard p < input.count else { throw fail("truncated header") }

        let outputStart = output.count
        var inflater = Inflater(input: input, position: p, file: file, member: member)
        try inflater.inflate(into: &output, windowStart: outputStart)
        p = inflater.bytePositionAfterAlignment()
        guard p + 8 <= input.count else { throw fail("truncated (stream ends before the 8-byte trailer)") }
        let storedCRC = UInt32(input[p]) | UInt32(input[p + 1]) << 8 | UInt32(input[p + 2]) << 16 | UInt32(input[p + 3]) << 24
        let storedSize = UInt32(input[p + 4]) | UInt32(input[p + 5]) << 8 | UInt32(input[p + 6]) << 16 | UInt32(input[p + 7]) << 24
        let produced = output.count - outputStart
        guard UInt32(truncatingIfNeeded: produced) == storedSize else {
            throw fail("ISIZE mismatch: decoded \(produced) bytes, trailer says \(storedSize) (mod 2^32)")
        }
        let crc = CRC32.checksum(UnsafeBufferPointer(start: output.pointer + outputStart, count: produced))
        guard crc == storedCRC else {
            throw fail(String(format: "CRC-32 mismatch: computed %08x, trailer says %08x", crc, storedCRC))
        }
        return p + 8
    }
}

/// A growable byte buffer written through a raw pointer (the decoder's hot loop cannot afford Array's checks).
struct OutputBuffer {
    private(set) var pointer: UnsafeMutablePointer<UInt8>
    private(set) var capacity: Int
    var count = 0

    init(initialCapacity: Int) {
        capacity = max(initialCapacity, 1024)
        pointer = malloc(capacity)!.assumingMemoryBound(to: UInt8.self)
    }

    /// Makes room for `extra` more bytes.
    @inline(__always) mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    private mutating func grow(_ needed: Int) {
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        pointer = realloc(pointer, newCapacity)!.assumingMemoryBound(to: UInt8.self)
        capacity = newCapacity
    }

    /// Frees the buffer (after a failed decode; `finish` is the other way out).
    func deallocate() { free(pointer) }

    /// Hands the bytes to `Data` without copying.
    func finish() -> Data {
        Data(bytesNoCopy: pointer, count: count, deallocator: .free)
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) with slicing-by-8 tables.
public enum CRC32 {
    /// 8 tables of 256 entries; table k advances the CRC by k extra zero bytes.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xff)] }
        }
        return t
    }()

    /// The CRC-32 of `bytes` (as stored in gzip trailers and zip files).
    public static func checksum(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        tables.withUnsafeBufferPointer { t in
            guard var p = bytes.baseAddress else { return }
            var n = bytes.count
            while n >= 8 {
                let lo = UnsafeRawPointer(p).loadUnaligned(as: UInt32.self).littleEndian ^ crc
                let hi = UnsafeRawPointer(p + 4).loadUnaligned(as: UInt32.self).littleEndian
                crc = t[7 * 256 + Int(lo & 0xff)] ^ t[6 * 256 + Int((lo >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xff)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xff)] ^ t[2 * 256 + Int((hi >> 8) & 0xff)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xff)] ^ t[Int(hi >> 24)]
                p += 8
                n -= 8
            }
            while n > 0 {
                crc = t[Int((crc ^ UInt32(p.pointee)) & 0xff)] ^ (crc >> 8)
                p += 1
                n -= 1
            }
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// The CRC-32 of `data`.
    public static func checksum(_ data: Data) -> UInt32 {
        data.withUnsafeBytes { checksum($0.bindMemory(to: UInt8.self)) }
    }
}
