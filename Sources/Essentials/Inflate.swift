/// DEFLATE (RFC 1951) block decoder used by `Gzip`.
///
/// Bits are read LSB-first through a 64-bit buffer refilled 8 bytes at a time; Huffman codes are decoded by one
/// table lookup on the next `HuffmanTable.primaryBits` bits, with a canonical bit-by-bit walk for the rare longer codes.
struct Inflater {
    private let base: UnsafePointer<UInt8>
    private let end: Int
    /// Next input byte to load. May run up to 16 bytes past `end` (those read as zeros) so the hot loop needs no
    /// bounds checks; consuming any of them is reported as truncation.
    private var pos: Int
    private var bitBuffer: UInt64 = 0
    private var bitCount = 0
    private let file: String
    private let member: Int

    init(input: UnsafeBufferPointer<UInt8>, position: Int, file: String, member: Int) {
        base = input.baseAddress!
        end = input.count
        pos = position
        self.file = file
        self.member = member
    }

    private func fail(_ reason: String) -> GzipError {
        GzipError(file: file, reason: member == 0 ? reason : "member \(member + 1): \(reason)")
    }

    private var truncated: GzipError { fail("truncated (compressed data ends inside a DEFLATE block)") }

    /// Bits consumed so far are beyond the input: the stream was cut.
    private var overran: Bool { pos * 8 - bitCount > end * 8 }

    // MARK: bits

    /// Ensures at least 56 bits in the buffer (enough for one literal/length code, its extra bits, a distance code
    /// and its extra bits: 15 + 5 + 15 + 13 = 48).
    @inline(__always) private mutating func refill() throws {
        if pos + 8 <= end {
            let word = UnsafeRawPointer(base + pos).loadUnaligned(as: UInt64.self).littleEndian
            bitBuffer |= word &<< UInt64(bitCount)
            let n = (63 - bitCount) >> 3
            pos += n
            bitCount += n << 3
        } else {
            try refillNearEnd()
        }
    }

    private mutating func refillNearEnd() throws {
        while bitCount <= 56 {
            if pos < end {
                bitBuffer |= UInt64(base[pos]) &<< UInt64(bitCount)
            } else if pos >= end + 16 {
                throw truncated
            }
            pos += 1
            bitCount += 8
        }
    }

    @inline(__always) private mutating func consume(_ n: Int) {
        bitBuffer &>>= UInt64(n)
        bitCount -= n
    }

    /// Reads `n` <= 32 bits (refilling as needed), LSB-first.
    private mutating func bits(_ n: Int) throws -> Int {
        if bitCount < n { try refill() }
        let v = Int(truncatingIfNeeded: bitBuffer & ((1 &<< UInt64(n)) &- 1))
        consume(n)
        return v
    }

    /// The byte offset of the next unread byte after discarding the bits up to the next byte boundary.
    mutating func bytePositionAfterAlignment() -> Int {
        consume(bitCount & 7)
        let p = pos - bitCount >> 3
        bitBuffer = 0
        bitCount = 0
        pos = p
        return p
    }

    // MARK: blocks

    /// Decodes blocks until the one marked final. `windowStart`: back-references may not reach before this offset.
    mutating func inflate(into out: inout OutputBuffer, windowStart: Int) throws {
        var isFinal = false
        while !isFinal {
            isFinal = try bits(1) == 1
            switch try bits(2) {
            case 0: try storedBlock(into: &out)
            case 1: try huffmanBlock(into: &out, windowStart: windowStart, literals: Self.fixedLiterals, distances: Self.fixedDistances)
            case 2:
                let (literals, distances) = try readDynamicTables()
                try huffmanBlock(into: &out, windowStart: windowStart, literals: literals, distances: distances)
            default: throw fail("invalid block type 3")
            }
            if overran { throw truncated }
        }
    }

    private mutating func storedBlock(into out: inout OutputBuffer) throws {
        let p = bytePositionAfterAlignment()
        guard p + 4 <= end else { throw truncated }
        let length = Int(base[p]) | Int(base[p + 1]) << 8
        let complement = Int(base[p + 2]) | Int(base[p + 3]) << 8
        guard length == complement ^ 0xffff else { throw fail("stored block length \(length) does not match its complement") }
        guard p + 4 + length <= end else { throw truncated }
        out.reserve(length)
        (out.pointer + out.count).update(from: base + p + 4, count: length)
        out.count += length
        pos = p + 4 + length
    }

    private static let fixedLiterals: HuffmanTable = {
        var lengths = [UInt8](repeating: 8, count: 288)
        for i in 144..<256 { lengths[i] = 9 }
        for i in 256..<280 { lengths[i] = 7 }
        return HuffmanTable(validLengths: lengths)
    }()

    private static let fixedDistances: HuffmanTable = {
        // 32 codes of 5 bits; symbols 30 and 31 take part in the code but are rejected when decoded.
        HuffmanTable(validLengths: [UInt8](repeating: 5, count: 32))
    }()

    /// The code-length alphabet is sent in this order (RFC 1951 §3.2.7).
    private static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    private mutating func readDynamicTables() throws -> (HuffmanTable, HuffmanTable) {
        let literalCount = try bits(5) + 257
        let distanceCount = try bits(5) + 1
        let codeLengthCount = try bits(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else {
            throw fail("dynamic block declares \(literalCount) literal/length and \(distanceCount) distance codes")
        }
        var codeLengthLengths = [UInt8](repeating: 0, count: 19)
        for i in 0..<codeLengthCount { codeLengthLengths[Self.codeLengthOrder[i]] = UInt8(try bits(3)) }
        let codeLengthCode: HuffmanTable
        do { codeLengthCode = try HuffmanTable(lengths: codeLengthLengths, allowIncomplete: false) } catch let reason as HuffmanTable.Invalid {
            throw fail("code-length code: \(reason.reason)")
        }

        var lengths = [UInt8](repeating: 0, count: literalCount + distanceCount)
        var i = 0
        while i < lengths.count {
            try refill()
            let symbol = try decode(codeLengthCode)
            if symbol < 16 {
                lengths[i] = UInt8(symbol)
                i += 1
                continue
            }
            let value: UInt8
            let repeatCount: Int
            switch symbol {
            case 16:
                guard i > 0 else { throw fail("repeat of the previous code length with no previous length") }
                value = lengths[i - 1]
                repeatCount = 3 + (try bits(2))
            case 17: value = 0; repeatCount = 3 + (try bits(3))
            default: value = 0; repeatCount = 11 + (try bits(7))
            }
            guard i + repeatCount <= lengths.count else { throw fail("code lengths overrun the declared \(lengths.count) codes") }
            for j in i..<(i + repeatCount) { lengths[j] = value }
            i += repeatCount
        }
        guard lengths[256] != 0 else { throw fail("dynamic block has no end-of-block code") }
        do {
            let literals = try HuffmanTable(lengths: Array(lengths[0..<literalCount]), allowIncomplete: true)
            let distances = try HuffmanTable(lengths: Array(lengths[literalCount...]), allowIncomplete: true)
            return (literals, distances)
        } catch let reason as HuffmanTable.Invalid {
            throw fail("literal/length or distance code: \(reason.reason)")
        }
    }

    /// Decodes one symbol; the caller has refilled the buffer (at least 15 valid bits).
    @inline(__always) private mutating func decode(_ table: HuffmanTable) throws -> Int {
        let entry = table.entries[Int(truncatingIfNeeded: bitBuffer) & HuffmanTable.primaryMask]
        if entry != 0 {
            consume(Int(entry & 15))
            return Int(entry >> 4)
        }
        return try decodeLong(table)
    }

    /// Canonical decoding bit by bit (codes longer than the primary table, or invalid codes).
    private mutating func decodeLong(_ table: HuffmanTable) throws -> Int {
        var code = 0, first = 0, index = 0
        var peek = bitBuffer
        for length in 1...15 {
            code |= Int(peek & 1)
            peek >>= 1
            let count = table.counts[length]
            if code - first < count {
                consume(length)
                return Int(table.symbols[index + code - first])
            }
            index += count
            first = (first + count) << 1
            code <<= 1
        }
        throw fail("invalid Huffman code")
    }

    private static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                                            67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4,
                                             5, 5, 5, 5, 0]
    private static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
                                              513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10,
                                               10, 11, 11, 12, 12, 13, 13]

    private mutating func huffmanBlock(into out: inout OutputBuffer, windowStart: Int,
                                       literals: HuffmanTable, distances: HuffmanTable) throws {
        let lengthBase = Self.lengthBase, lengthExtra = Self.lengthExtra
        let distanceBase = Self.distanceBase, distanceExtra = Self.distanceExtra
        while true {
            try refill()
            let symbol = try decode(literals)
            if symbol < 256 {
                out.reserve(1)
                out.pointer[out.count] = UInt8(truncatingIfNeeded: symbol)
                out.count += 1
                continue
            }
            if symbol == 256 { return }
            let lengthIndex = symbol - 257
            guard lengthIndex < 29 else { throw fail("invalid literal/length symbol \(symbol)") }
            let extra = lengthExtra[lengthIndex]
            let length = lengthBase[lengthIndex] + Int(truncatingIfNeeded: bitBuffer & ((1 &<< UInt64(extra)) &- 1))
            consume(extra)
            let distanceSymbol = try decode(distances)
            guard distanceSymbol < 30 else { throw fail("invalid distance symbol \(distanceSymbol)") }
            let dExtra = distanceExtra[distanceSymbol]
            let distance = distanceBase[distanceSymbol] + Int(truncatingIfNeeded: bitBuffer & ((1 &<< UInt64(dExtra)) &- 1))
            consume(dExtra)
            guard distance <= out.count - windowStart else {
                throw fail("back-reference distance \(distance) reaches before the start of the output (\(out.count - windowStart) bytes)")
            }
            out.reserve(length)
            let dst = out.pointer + out.count
            let src = dst - distance
            if distance >= length {
                dst.update(from: src, count: length)
            } else {
                for k in 0..<length { dst[k] = src[k] }  // overlapping copy repeats the pattern, byte by byte
            }
            out.count += length
        }
    }
}

/// A canonical Huffman code (RFC 1951 §3.2.2) with a lookup table over the first `primaryBits` bits.
struct HuffmanTable {
    /// Why a set of code lengths does not form a usable code.
    struct Invalid: Error { let reason: String }

    static let primaryBits = 10
    static let primaryMask = (1 << primaryBits) - 1
    /// Indexed by the next `primaryBits` input bits: `symbol << 4 | codeLength`, or 0 when the code is longer
    /// than `primaryBits` (or not assigned).
    let entries: [UInt32]
    /// Number of codes of each length 0...15.
    let counts: [Int]
    /// Symbols ordered by code (canonical order), for the long-code walk.
    let symbols: [UInt16]

    /// Builds the code from per-symbol lengths (0 = unused). An incomplete code is accepted only where RFC 1951
    /// decoders accept it (`allowIncomplete`: a single code of length 1, or no codes at all).
    init(lengths: [UInt8], allowIncomplete: Bool) throws {
        var counts = [Int](repeating: 0, count: 16)
        for l in lengths { counts[Int(l)] += 1 }
        var left = 1
        for length in 1...15 {
            left = (left << 1) - counts[length]
            if left < 0 { throw Invalid(reason: "over-subscribed code lengths") }
        }
        let used = lengths.count - counts[0]
        if left > 0 && !(allowIncomplete && used <= 1) {
            throw Invalid(reason: "incomplete code lengths (\(used) codes)")
        }
        self.init(validLengths: lengths)
    }

    /// Builds a code already known to be valid (the fixed codes of RFC 1951 §3.2.6).
    init(validLengths lengths: [UInt8]) {
        var counts = [Int](repeating: 0, count: 16)
        for l in lengths { counts[Int(l)] += 1 }
        let used = lengths.count - counts[0]
        var offsets = [Int](repeating: 0, count: 16)
        for length in 1..<15 { offsets[length + 1] = offsets[length] + counts[length] }
        var symbols = [UInt16](repeating: 0, count: max(used, 1))
        for (symbol, l) in lengths.enumerated() where l != 0 {
            symbols[offsets[Int(l)]] = UInt16(symbol)
            offsets[Int(l)] += 1
        }
        // Canonical codes: the first code of each length, then consecutive codes in symbol order.
        var nextCode = [Int](repeating: 0, count: 16)
        var code = 0
        for length in 1...15 {
            nextCode[length] = code
            code = (code + counts[length]) << 1
        }
        var entries = [UInt32](repeating: 0, count: 1 << Self.primaryBits)
        for (symbol, l) in lengths.enumerated() where l != 0 && Int(l) <= Self.primaryBits {
            let length = Int(l)
            let c = nextCode[length]
            nextCode[length] += 1
            var reversed = 0
            for b in 0..<length where c & (1 << b) != 0 { reversed |= 1 << (length - 1 - b) }
            let entry = UInt32(symbol) << 4 | UInt32(length)
            var index = reversed
            while index < entries.count {
                entries[index] = entry
                index += 1 << length
            }
        }
        self.entries = entries
        self.counts = counts
        self.symbols = symbols
    }
}
