import Essentials
import XCTest
import Foundation
import Corpora
import FixtureSupport

/// The evaluation texts against the fixture conventions (fixtures/README.md) and counts measured independently
/// with Python (`str` lengths are code points).
final class CorpusTextTests: XCTestCase {
    private func dataRoot() throws -> URL { try Shared.url("data") }

    func testWikiText2RowsAndJoin() throws {
        let url = try Shared.url("data/wikitext2/wiki.test.raw.gz")
        let rows = try CorpusText.wikitext2Rows(url)
        XCTAssertEqual(rows.count, 4_358)
        XCTAssertEqual(rows.filter(\.isEmpty).count, 1_467)  // the " \n" blank lines (SOURCE.md)
        XCTAssertTrue(rows.allSatisfy { $0.isEmpty || $0.hasSuffix("\n") })
        let all = try CorpusText.wikitext2(url)
        XCTAssertEqual(all.unicodeScalars.count, 1_294_336)  // fixtures README
        XCTAssertEqual(SHA256.hex(all), "696cca6b65a171b0a358a4be6732cdfdf2dd6164a32e20fd70e3c13fc4dfae83")  // Python "\n\n".join
        XCTAssertEqual(try CorpusText.wikitext2(url, rows: 2_000).unicodeScalars.count, 614_961)
        XCTAssertEqual(try Dataset.wikitext2.text(dataRoot: dataRoot()), all)
    }

    func testPTBSentencesStrippedAndJoined() throws {
        let url = try Shared.url("data/ptb/ptb.test.txt")
        let sentences = try CorpusText.ptbSentences(url)
        XCTAssertEqual(sentences.count, 3_761)
        XCTAssertEqual(sentences.first, "no it was n't black monday")
        XCTAssertEqual(sentences.map { $0.split(separator: " ").count }.reduce(0, +), 78_669)  // SOURCE.md word count
        let text = try CorpusText.ptb(url)
        XCTAssertEqual(text.unicodeScalars.count, 446_182)
        // Python: "\n\n".join(line.strip() for line in open("ptb.test.txt"))
        XCTAssertEqual(SHA256.hex(text), "6d901ee536372c8b88eaa1c749960b867abf16e6e2ec5741facf9c73c83fa09c")
        XCTAssertEqual(try Dataset.ptb.text(dataRoot: dataRoot()), text)
    }

    func testTinyStoriesWholeFile() throws {
        let text = try Dataset.tinystories.text(dataRoot: dataRoot())
        XCTAssertEqual(text.unicodeScalars.count, 793_451)  // fixtures perplexity n_chars
        XCTAssertEqual(text.utf8.count, 794_375)
        XCTAssertEqual(SHA256.hex(text), "5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6")
    }

    func testC4ValidationAndTrainDocuments() throws {
        let root = try dataRoot()
        let validation = try CorpusText.c4Documents(Dataset.c4.url(dataRoot: root))
        XCTAssertEqual(validation.count, 1_025)
        XCTAssertTrue(validation[0].hasPrefix("The woman who died after falling from a bridge over the A21"))
        XCTAssertEqual(validation.joined(separator: " ").unicodeScalars.count, 2_261_633)  // SOURCE.md
        // Document 414 starts with U+FEFF; Linux JSONSerialization would drop it (the count above would be 1 short).
        XCTAssertEqual(validation[414].unicodeScalars.first, "\u{feff}")
        let text = try Dataset.c4.text(dataRoot: root)
        XCTAssertEqual(text.unicodeScalars.count, 2_262_657)
        XCTAssertEqual(SHA256.hex(text), "01eee171efa49110e77bb9e5c9464eed7ffae890a6ba97629487894b671b7ab7")  // Python "\n\n".join

        let train = try Dataset.calibrationDocuments(dataRoot: root)
        XCTAssertEqual(train.count, 1_041)
        XCTAssertTrue(train[0].hasPrefix("Beginners BBQ Class Taking Place in Missoula!"))
        XCTAssertEqual(train.joined(separator: " ").unicodeScalars.count, 2_251_388)  // SOURCE.md
        XCTAssertEqual(try Dataset.calibrationDocuments(dataRoot: root, limit: 8), Array(train.prefix(8)))
    }

    func testDatasetNamesAndPaths() throws {
        XCTAssertEqual(try Dataset("wikitext2"), .wikitext2)
        XCTAssertEqual(try Dataset("PTB"), .ptb)
        XCTAssertEqual(try Dataset("tinystories"), .tinystories)
        XCTAssertEqual(try Dataset("c4"), .c4)
        XCTAssertEqual(try Dataset("some/file.txt"), .file(path: "some/file.txt"))
        XCTAssertThrowsError(try Dataset("wikitext3")) { XCTAssertEqual($0 as? CorpusError, .unknownDataset(name: "wikitext3")) }

        let root = try dataRoot()
        // A relative path that is not under the working directory is looked up in the data root.
        let ptbFile = try Dataset("ptb/ptb.test.txt")
        XCTAssertEqual(try ptbFile.text(dataRoot: root).utf8.count, 449_945)
        let missing = try Dataset("/nonexistent/corpus.txt")
        XCTAssertThrowsError(try missing.text(dataRoot: root)) {
            XCTAssertEqual($0 as? CorpusError, .fileNotFound(file: "/nonexistent/corpus.txt"))
        }
        // A .gz file path is gunzipped.
        XCTAssertEqual(try Dataset(root.appendingPathComponent("tinystories/TinyStories-validation.head-794375B.txt.gz").path)
            .text(dataRoot: root).utf8.count, 794_375)
    }

    func testDataRootResolution() throws {
        let shared = Shared.root.path
        XCTAssertEqual(try DataRoot.resolve(environment: ["POLICYPRUNE_SHARED": shared]).standardizedFileURL.path,
                       URL(fileURLWithPath: shared).appendingPathComponent("data").standardizedFileURL.path)
        XCTAssertEqual(try DataRoot.resolve(explicit: try dataRoot().path).path, try dataRoot().path)
        XCTAssertThrowsError(try DataRoot.resolve(explicit: "/nonexistent/data")) {
            XCTAssertEqual($0 as? CorpusError, .dataRootNotFound(tried: ["/nonexistent/data"]))
        }
    }

    func testBadJSONLinesNameFileAndLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pp-corpora-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("docs.jsonl")
        try Data("{\"text\": \"ok\"}\n{\"text\": 3}\n".utf8).write(to: file)
        XCTAssertThrowsError(try CorpusText.c4Documents(file)) {
            XCTAssertEqual($0 as? CorpusError, .badRecord(file: file.path, line: 2, reason: "missing or non-string field 'text'"))
        }
        try Data("{\"text\": \"ok\"}\nnot json\n".utf8).write(to: file)
        XCTAssertThrowsError(try CorpusText.c4Documents(file)) {
            guard case CorpusError.badRecord(file.path, 2, _)? = $0 as? CorpusError else { return XCTFail("\($0)") }
        }
        let latin1 = dir.appendingPathComponent("latin1.txt")
        try Data([0x63, 0x61, 0x66, 0xe9]).write(to: latin1)
        XCTAssertThrowsError(try CorpusText.plain(latin1)) {
            XCTAssertEqual($0 as? CorpusError, .corrupt(file: latin1.path, reason: "not valid UTF-8"))
        }
    }

    func testPythonStringSemantics() {
        XCTAssertEqual(PythonString.strip("\u{a0} a b \u{3000}\n"), "a b")
        XCTAssertEqual(PythonString.rstrip("  ab \t\n"), "  ab")
        XCTAssertEqual(PythonString.capitalize("hELLO wORLD"), "Hello world")
        XCTAssertEqual(PythonString.capitalize(""), "")
        XCTAssertEqual(PythonString.replace("a   b", "  ", " "), "a  b")  // non-overlapping, one pass
        XCTAssertEqual(PythonString.length("e\u{301}"), 2)  // code points, not grapheme clusters
    }
}
