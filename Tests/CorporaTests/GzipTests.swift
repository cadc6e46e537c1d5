import Essentials
import XCTest
import Foundation
import Corpora
import FixtureSupport

/// Gzip against the real shared data files: decompressed sizes and sha256 as stated in data/*/SOURCE.md
/// (the C4 sizes, not stated there, were measured with Python's gzip module), plus hand-made streams for the
/// block types the big files do not use, and corrupted copies that must fail with a typed error.
final class GzipTests: XCTestCase {
    /// (file, decompressed bytes, sha256 of the decompressed bytes).
    static let files: [(String, Int, String)] = [
        ("data/wikitext2/wiki.test.raw.gz", 1_290_590, "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"),
        ("data/wikitext2/wiki.test.tokens.gz", 1_256_449, "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
        ("data/hellaswag/hellaswag_val.jsonl.gz", 12_246_618, "dc1be2fa1bef56aab8e92a5be597a617e363b09239fa66822939d7fb7a8da4ec"),
        ("data/tinystories/TinyStories-validation.head-794375B.txt.gz", 794_375, "5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6"),
        ("data/boolq/superglue-BoolQ-val.jsonl.gz", 2_261_105, "21acbfbd1e7908fddd9e626bc2a6101c5a5430bda3fbf74985b979af7a63b989"),
        ("data/boolq/google-boolq-validation.jsonl.gz", 2_129_849, "dbad2984e58eaa2184b6d0acfe2e94a73b9868381046255d6be6c3bed9088b68"),
        ("data/c4/c4-validation.00000-of-00008.first1025docs.jsonl.gz", 2_301_559, "c428660681e457469d2ff57bfd62636d52e6002e06c8cafe3aea714033787f78"),
        ("data/c4/c4-train.00000-of-01024.first1041docs.jsonl.gz", 2_284_112, "7cb5c1c8008c9d5ecd83509bb078c698a6f7fd17a8085a764cb6129b22869b08"),
        ("data/c4/olmo-test_fixtures-c4-sample.01.json.gz", 15_938, "7b29ec3b69406105a6a08ec264f8d4635db130e301a06572cc85918938a3eb1f"),
        ("data/c4/olmo-test_fixtures-c4-sample.02.json.gz", 22_089, "3cd4300cf812c662f54a38efa90224ed50423fd9ca8dcf5b7915a3680037f8d1"),
        ("data/c4/olmo-test_fixtures-c4-sample.03.json.gz", 19_305, "7f2aea3bbbb575db4d79f86ec33c338bf5cbf6cfce8dd2b1f2e30c4d92e06d0a"),
    ]

    func testRealFilesDecodeToStatedSizeAndHash() throws {
        for (path, size, sha) in Self.files {
            let raw = try Data(contentsOf: Shared.url(path))
            let out = try Gzip.decompress(raw, file: path)
            XCTAssertEqual(out.count, size, path)
            XCTAssertEqual(SHA256.hex(out), sha, path)
        }
    }

    /// The largest file (12 MB of HellaSwag): size and sha256 of the output as Python's zlib decodes it
    /// (`python3 -c "import gzip,hashlib; d=gzip.open(F).read(); print(len(d), hashlib.sha256(d).hexdigest())"`).
    /// Its decoding speed is a benchmark's business, not a test's.
    func testLargestFileDecodesLikeZlib() throws {
        let raw = try Data(contentsOf: Shared.url("data/hellaswag/hellaswag_val.jsonl.gz"))
        let out = try Gzip.decompress(raw)
        XCTAssertEqual(out.count, 12_246_618)
        XCTAssertEqual(SHA256.hex(out), "dc1be2fa1bef56aab8e92a5be597a617e363b09239fa66822939d7fb7a8da4ec")
    }

    /// `gzip -c` level 0 (one stored block), made with Python's gzip module.
    static let stored: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x03, 0x01, 0x1c, 0x00, 0xe3, 0xff, 0x53, 0x74, 0x6f,
        0x72, 0x65, 0x64, 0x20, 0x62, 0x6c, 0x6f, 0x63, 0x6b, 0x3a, 0x20, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, 0x20,
        0x77, 0x6f, 0x72, 0x6c, 0x64, 0x21, 0x0a, 0x80, 0xce, 0xa9, 0x1d, 0x1c, 0x00, 0x00, 0x00,
    ]
    /// zlib `Z_FIXED` (fixed Huffman codes, overlapping back-references of distance 3) in a gzip wrapper.
    static let fixed: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x4b, 0x4c, 0x4a, 0x4e, 0xc4, 0x40, 0x0a, 0xfe,
        0x79, 0xc9, 0xa9, 0x0a, 0xa5, 0x05, 0xf9, 0x79, 0x0a, 0x89, 0x0a, 0x25, 0x99, 0xb9, 0xa9, 0x3a, 0x0a, 0xf9,
        0x68, 0x22, 0x7a, 0x0a, 0x89, 0x03, 0xa0, 0x13, 0x00, 0x63, 0xad, 0xc2, 0x6b, 0xae, 0x00, 0x00, 0x00,
    ]
    static let fixedText = String(repeating: "abcabcabcabcabcabcabc Once upon a time, once upon a time. ", count: 3)
    /// Header with FNAME ("a.txt") and FCOMMENT ("hi").
    static let named: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x61, 0x2e, 0x74, 0x78, 0x74, 0x00, 0x68, 0x69,
        0x00, 0xcb, 0x4b, 0xcc, 0x4d, 0x4d, 0x01, 0x00, 0x87, 0xcc, 0xe0, 0x71, 0x05, 0x00, 0x00, 0x00,
    ]

    func testStoredFixedAndHeaderFields() throws {
        XCTAssertEqual(String(decoding: try Gzip.decompress(Data(Self.stored)), as: UTF8.self), "Stored block: hello, world!\n")
        XCTAssertEqual(String(decoding: try Gzip.decompress(Data(Self.fixed)), as: UTF8.self), Self.fixedText)
        XCTAssertEqual(String(decoding: try Gzip.decompress(Data(Self.named)), as: UTF8.self), "named")
    }

    func testConcatenatedMembers() throws {
        let a = try Data(contentsOf: Shared.url("data/wikitext2/wiki.test.raw.gz"))
        let out = try Gzip.decompress(a + Data(Self.stored) + Data(Self.fixed))
        XCTAssertEqual(out.count, 1_290_590 + 28 + Self.fixedText.utf8.count)
        XCTAssertEqual(SHA256.hex(out.prefix(1_290_590)), "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08")
        XCTAssertEqual(String(decoding: out.suffix(Self.fixedText.utf8.count), as: UTF8.self), Self.fixedText)
    }

    private func assertCorrupt(_ data: Data, mentions: String, _ message: String, line: UInt = #line) {
        XCTAssertThrowsError(try Gzip.decompress(data, file: "test.gz"), message, line: line) { error in
            guard let error = error as? GzipError else {
                return XCTFail("\(message): expected GzipError, got \(error)", line: line)
            }
            let (file, reason) = (error.file, error.reason)
            XCTAssertEqual(file, "test.gz", line: line)
            XCTAssertTrue(reason.contains(mentions), "\(message): reason '\(reason)' should mention '\(mentions)'", line: line)
        }
    }

    func testCorruptCopiesGiveTypedErrors() throws {
        let good = try Data(contentsOf: Shared.url("data/wikitext2/wiki.test.raw.gz"))
        // Truncations: inside the deflate data, inside the trailer, just after the header.
        for cut in [good.count / 2, good.count - 3, 12] {
            assertCorrupt(good.prefix(cut), mentions: "truncated", "cut at \(cut)")
        }
        // A flipped byte in the compressed data: whatever the decoder notices first (invalid code, bad distance,
        // CRC or size mismatch), it must be a typed `corrupt` error, never a crash or silent success.
        for offset in [1_000, good.count / 3, good.count - 20] {
            var bad = good
            bad[offset] ^= 0x5a
            XCTAssertThrowsError(try Gzip.decompress(bad, file: "test.gz"), "flip at \(offset)") { error in
                guard error is GzipError else { return XCTFail("flip at \(offset): got \(error)") }
            }
        }
        var badCRC = good
        badCRC[good.count - 6] ^= 0x01
        assertCorrupt(badCRC, mentions: "CRC-32 mismatch", "flipped CRC byte")
        var badSize = good
        badSize[good.count - 2] ^= 0x01
        assertCorrupt(badSize, mentions: "ISIZE mismatch", "flipped ISIZE byte")
        var badMagic = good
        badMagic[0] = 0x1e
        assertCorrupt(badMagic, mentions: "not gzip", "magic")
        assertCorrupt(good + Data([1, 2, 3]), mentions: "not a gzip member", "trailing garbage")
        assertCorrupt(Data(Self.stored.prefix(40)), mentions: "truncated", "truncated stored block")
        var badStored = Data(Self.stored)
        badStored[13] ^= 0xff  // NLEN no longer the complement of LEN
        assertCorrupt(badStored, mentions: "complement", "stored length check")
        XCTAssertThrowsError(try Gzip.decompress(Data())) { XCTAssertTrue($0 is GzipError) }
    }

    func testCRC32KnownValue() {
        XCTAssertEqual(CRC32.checksum(Data("123456789".utf8)), 0xCBF4_3926)  // the standard check value
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(ids: [1, 403, 407]), SHA256.hex("1,403,407"))
    }
}
