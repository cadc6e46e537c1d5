import Foundation
@testable import Checkpoints

/// Writes small GGUF v3 files for tests (little-endian, alignment 32), so the reader is exercised on real files.
struct GGUFBuilder {
    enum Value {
        case uint32(UInt32), int32(Int32), float32(Float), bool(Bool), string(String), uint64(UInt64), float64(Double)
        case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), int64(Int64)
        case strings([String]), int32s([Int32]), uint32s([UInt32]), float32s([Float])
    }
    var metadata: [(String, Value)] = []
    var tensors: [(name: String, dims: [Int], type: GGMLType, data: [UInt8])] = []

    private static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }
    private static func append(_ s: String, to out: inout [UInt8]) {
        append(UInt64(s.utf8.count), to: &out); out.append(contentsOf: s.utf8)
    }
    private static func append(_ value: Value, to out: inout [UInt8]) {
        switch value {
        case .uint8(let v): append(UInt32(0), to: &out); append(v, to: &out)
        case .int8(let v): append(UInt32(1), to: &out); append(v, to: &out)
        case .uint16(let v): append(UInt32(2), to: &out); append(v, to: &out)
        case .int16(let v): append(UInt32(3), to: &out); append(v, to: &out)
        case .uint32(let v): append(UInt32(4), to: &out); append(v, to: &out)
        case .int32(let v): append(UInt32(5), to: &out); append(v, to: &out)
        case .float32(let v): append(UInt32(6), to: &out); append(v.bitPattern, to: &out)
        case .bool(let v): append(UInt32(7), to: &out); out.append(v ? 1 : 0)
        case .string(let s): append(UInt32(8), to: &out); append(s, to: &out)
        case .uint64(let v): append(UInt32(10), to: &out); append(v, to: &out)
        case .int64(let v): append(UInt32(11), to: &out); append(v, to: &out)
        case .float64(let v): append(UInt32(12), to: &out); append(v.bitPattern, to: &out)
        case .strings(let a):
            append(UInt32(9), to: &out); append(UInt32(8), to: &out); append(UInt64(a.count), to: &out)
            for s in a { append(s, to: &out) }
        case .int32s(let a):
            append(UInt32(9), to: &out); append(UInt32(5), to: &out); append(UInt64(a.count), to: &out)
            for v in a { append(v, to: &out) }
        case .uint32s(let a):
            append(UInt32(9), to: &out); append(UInt32(4), to: &out); append(UInt64(a.count), to: &out)
            for v in a { append(v, to: &out) }
        case .float32s(let a):
            append(UInt32(9), to: &out); append(UInt32(6), to: &out); append(UInt64(a.count), to: &out)
            for v in a { append(v.bitPattern, to: &out) }
        }
    }

    /// The file's bytes.
    func bytes() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        Self.append(UInt32(3), to: &out)
        Self.append(UInt64(tensors.count), to: &out)
        Self.append(UInt64(metadata.count), to: &out)
        for (key, value) in metadata { Self.append(key, to: &out); Self.append(value, to: &out) }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset = (offset + t.data.count + 31) / 32 * 32
        }
        for (t, o) in zip(tensors, offsets) {
            Self.append(t.name, to: &out)
            Self.append(UInt32(t.dims.count), to: &out)
            for d in t.dims { Self.append(UInt64(d), to: &out) }
            Self.append(t.type.rawValue, to: &out)
            Self.append(UInt64(o), to: &out)
        }
        while out.count % 32 != 0 { out.append(0) }
        let dataStart = out.count
        for (t, o) in zip(tensors, offsets) {
            while out.count < dataStart + o { out.append(0) }
            out.append(contentsOf: t.data)
        }
        return out
    }

    /// Writes the file into `directory` and returns its path.
    func write(to directory: URL, name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(bytes()).write(to: url)
        return url.path
    }
}

/// A fresh temporary directory, removed by the caller's `addTeardownBlock`.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Hex string to bytes.
func bytes(fromHex hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = hex.utf8.makeIterator()
    func nibble(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
    while let a = it.next(), let b = it.next() { out.append(nibble(a) << 4 | nibble(b)) }
    return out
}

/// Hex string of big-endian 32-bit words (as printed by "%08x") to floats.
func floats(fromHexWords hex: String) -> [Float] {
    let b = bytes(fromHex: hex)
    return stride(from: 0, to: b.count, by: 4).map { i in
        Float(bitPattern: UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]))
    }
}
