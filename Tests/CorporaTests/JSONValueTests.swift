import Essentials
import XCTest
import Corpora

final class JSONValueTests: XCTestCase {
    func testValuesEscapesAndSurrogates() throws {
        let v = try JSONValue.parse(Data(#"{"a": [1, -2.5e1, true, false, null], "s": "q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "b": "\#u{feff}x"}"#.utf8))
        XCTAssertEqual(v["a"], .array([.number(1), .number(-25), .bool(true), .bool(false), .null]))
        XCTAssertEqual(v["s"]?.string, "q\"\\/\u{8}\u{c}\n\r\té😀")
        XCTAssertEqual(v["b"]?.string?.unicodeScalars.first, "\u{feff}")  // kept (Linux JSONSerialization drops it)
        XCTAssertEqual(try JSONValue.parse(Data("[]".utf8)), .array([]))
        XCTAssertEqual(try JSONValue.parse(Data(" {} ".utf8)), .object([:]))
    }

    func testSyntaxErrors() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "\"\\ud800\"", "\"\\x\"", "1 2", "{\"a\":1,}", "\"a\nb\""] {
            XCTAssertThrowsError(try JSONValue.parse(Data(bad.utf8)), bad) { XCTAssertTrue($0 is JSONValue.SyntaxError, bad) }
        }
    }
}
