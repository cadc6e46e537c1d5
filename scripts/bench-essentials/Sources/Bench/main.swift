// Best of 3 (SHA-256) / 5 (gzip) wall-clock runs of each, outputs checked equal.
// Usage: Bench MODEL_FILE [GZ_FILE...]
import Crypto
import CZlib
import Foundation

func best(_ n: Int, _ f: () throws -> Void) rethrows -> Double {
    var b = Double.infinity
    for _ in 0..<n { let t = Date(); try f(); b = min(b, Date().timeIntervalSince(t)) }
    return b
}
let args = CommandLine.arguments
// SHA-256 over a file (model hashing), read whole
let modelPath = args[1]
let model = try Data(contentsOf: URL(fileURLWithPath: modelPath), options: .alwaysMapped)
var ours = "", theirs = ""
let tOurs = best(3) { var d = ReplacedSHA256(); d.update(model); ours = d.finalize().map { String(format: "%02x", $0) }.joined() }
let tCrypto = best(3) { theirs = Crypto.SHA256.hash(data: model).map { String(format: "%02x", $0) }.joined() }
precondition(ours == theirs)
let mb = Double(model.count) / 1e6
print(String(format: "sha256 %@ (%.1f MB): pure Swift %.3f s (%.0f MB/s), swift-crypto %.3f s (%.0f MB/s), %@", modelPath, mb, tOurs, mb / tOurs, tCrypto, mb / tCrypto, ours))
// gzip
for gz in args.dropFirst(2) {
    let raw = try Data(contentsOf: URL(fileURLWithPath: gz))
    var a = Data(), b = Data()
    let tA = try best(5) { a = try Gzip.decompress(raw) }
    let tB = best(5) {
        var out = Data(count: 0)
        var stream = z_stream()
        inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        raw.withUnsafeBytes { (inp: UnsafeRawBufferPointer) in
            stream.next_in = UnsafeMutablePointer(mutating: inp.bindMemory(to: Bytef.self).baseAddress!)
            stream.avail_in = uInt(inp.count)
            var rc: Int32 = Z_OK
            repeat {
                buffer.withUnsafeMutableBufferPointer { o in
                    stream.next_out = o.baseAddress; stream.avail_out = uInt(o.count)
                    rc = inflate(&stream, Z_NO_FLUSH)
                    out.append(o.baseAddress!, count: o.count - Int(stream.avail_out))
                }
                if rc == Z_STREAM_END && stream.avail_in > 0 { inflateReset(&stream); rc = Z_OK }
            } while rc == Z_OK
        }
        inflateEnd(&stream)
        b = out
    }
    precondition(a == b)
    let m = Double(a.count) / 1e6
    print(String(format: "gunzip %@ (%.1f MB out): ours %.3f s (%.0f MB/s), zlib %.3f s (%.0f MB/s)", (gz as NSString).lastPathComponent, m, tA, m / tA, tB, m / tB))
}
