import Essentials

/// The type tag of a GGUF metadata value (`enum gguf_type`).
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7, string = 8
    case array = 9, uint64 = 10, int64 = 11, float64 = 12
}

/// One GGUF metadata value.
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case array(GGUFArray)
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// The value's type tag.
    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }

    /// Any integer type as `Int` (nil for non-integers and for a uint64 beyond `Int.max`).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// A float32 or float64 as `Double` (integers too, since writers are not consistent).
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    /// A float32 value exactly; other numbers converted.
    public var float: Float? {
        if case .float32(let v) = self { return v }
        return double.map(Float.init)
    }

    /// The string, if this is a string.
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The boolean, if this is a bool.
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements of an array as individual values (nil if not an array). Prefer `strings`/`ints`/`floats`
    /// for large arrays: they return the stored typed array without boxing.
    public var array: [GGUFValue]? {
        if case .array(let a) = self { return a.values }
        return nil
    }

    /// A string array, as stored (no per-element boxing; the SmolLM2 vocabulary is 49,152 of them).
    public var strings: [String]? {
        if case .array(.string(let s)) = self { return s }
        return nil
    }

    /// An integer array of any integer element type, as `[Int]`.
    public var ints: [Int]? {
        guard case .array(let a) = self else { return nil }
        return a.ints
    }

    /// A float32/float64 array as `[Float]`.
    public var floats: [Float]? {
        guard case .array(let a) = self else { return nil }
        switch a {
        case .float32(let v): return v
        case .float64(let v): return v.map(Float.init)
        default: return nil
        }
    }
}

/// A GGUF array value, stored as a typed Swift array of its element type.
public enum GGUFArray: Sendable, Equatable {
    case uint8([UInt8])
    case int8([Int8])
    case uint16([UInt16])
    case int16([Int16])
    case uint32([UInt32])
    case int32([Int32])
    case float32([Float])
    case bool([Bool])
    case string([String])
    case array([GGUFArray])
    case uint64([UInt64])
    case int64([Int64])
    case float64([Double])

    /// Number of elements.
    public var count: Int {
        switch self {
        case .uint8(let v): return v.count
        case .int8(let v): return v.count
        case .uint16(let v): return v.count
        case .int16(let v): return v.count
        case .uint32(let v): return v.count
        case .int32(let v): return v.count
        case .float32(let v): return v.count
        case .bool(let v): return v.count
        case .string(let v): return v.count
        case .array(let v): return v.count
        case .uint64(let v): return v.count
        case .int64(let v): return v.count
        case .float64(let v): return v.count
        }
    }

    /// Integer elements as `[Int]` (nil for non-integer arrays or a uint64 beyond `Int.max`).
    public var ints: [Int]? {
        switch self {
        case .uint8(let v): return v.map(Int.init)
        case .int8(let v): return v.map(Int.init)
        case .uint16(let v): return v.map(Int.init)
        case .int16(let v): return v.map(Int.init)
        case .uint32(let v): return v.map(Int.init)
        case .int32(let v): return v.map(Int.init)
        case .int64(let v): return v.map(Int.init)
        case .uint64(let v):
            var out: [Int] = []
            out.reserveCapacity(v.count)
            for x in v { guard let i = Int(exactly: x) else { return nil }; out.append(i) }
            return out
        default: return nil
        }
    }

    /// Every element boxed as a `GGUFValue`.
    public var values: [GGUFValue] {
        switch self {
        case .uint8(let v): return v.map(GGUFValue.uint8)
        case .int8(let v): return v.map(GGUFValue.int8)
        case .uint16(let v): return v.map(GGUFValue.uint16)
        case .int16(let v): return v.map(GGUFValue.int16)
        case .uint32(let v): return v.map(GGUFValue.uint32)
        case .int32(let v): return v.map(GGUFValue.int32)
        case .float32(let v): return v.map(GGUFValue.float32)
        case .bool(let v): return v.map(GGUFValue.bool)
        case .string(let v): return v.map(GGUFValue.string)
        case .array(let v): return v.map(GGUFValue.array)
        case .uint64(let v): return v.map(GGUFValue.uint64)
        case .int64(let v): return v.map(GGUFValue.int64)
        case .float64(let v): return v.map(GGUFValue.float64)
        }
    }
}

extension MappedReader {
    /// Reads a GGUF string (uint64 length + UTF-8 bytes).
    mutating func ggufString(_ what: @autoclosure () -> String) throws -> String {
        let length = try integer(UInt64.self, what())
        guard let n = Int(exactly: length), n <= file.count - offset else {
            throw CheckpointError.truncated(file: file.path, what: what(), needed: Int(clamping: length), available: file.count - offset)
        }
        return try string(length: n, what())
    }

    /// Reads one metadata value of `type` for `key`.
    mutating func ggufValue(_ type: GGUFValueType, key: String, depth: Int = 0) throws -> GGUFValue {
        let what = "value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try integer(UInt8.self, what))
        case .int8: return .int8(try integer(Int8.self, what))
        case .uint16: return .uint16(try integer(UInt16.self, what))
        case .int16: return .int16(try integer(Int16.self, what))
        case .uint32: return .uint32(try integer(UInt32.self, what))
        case .int32: return .int32(try integer(Int32.self, what))
        case .float32: return .float32(try float32(what))
        case .uint64: return .uint64(try integer(UInt64.self, what))
        case .int64: return .int64(try integer(Int64.self, what))
        case .float64: return .float64(try float64(what))
        case .bool:
            let b = try integer(UInt8.self, what)
            guard b <= 1 else { throw CheckpointError.badValue(file: file.path, key: key, value: "\(b)", reason: "bool must be 0 or 1") }
            return .bool(b == 1)
        case .string: return .string(try ggufString(what))
        case .array: return .array(try ggufArray(key: key, depth: depth))
        }
    }

    /// Reads an array value (uint32 element type, uint64 count, elements), bulk-copying fixed-size elements.
    mutating func ggufArray(key: String, depth: Int) throws -> GGUFArray {
        let rawType = try integer(UInt32.self, "array element type of '\(key)'")
        guard let elementType = GGUFValueType(rawValue: rawType) else {
            throw CheckpointError.unknownValueType(file: file.path, key: key, type: Int(rawType))
        }
        guard depth < 4 else {
            throw CheckpointError.corrupt(file: file.path, reason: "metadata key '\(key)' nests arrays more than 4 deep")
        }
        let rawCount = try integer(UInt64.self, "array length of '\(key)'")
        // Every element takes at least one byte (strings at least 8), so a count beyond the remaining bytes is
        // corrupt; checking first avoids allocating for a garbage count.
        let minimumSize: Int
        switch elementType {
        case .uint8, .int8, .bool: minimumSize = 1
        case .uint16, .int16: minimumSize = 2
        case .uint32, .int32, .float32: minimumSize = 4
        case .uint64, .int64, .float64, .string: minimumSize = 8
        case .array: minimumSize = 12
        }
        let remaining = file.count - offset
        guard let count = Int(exactly: rawCount), count <= remaining / minimumSize else {
            throw CheckpointError.truncated(file: file.path, what: "array '\(key)' of \(rawCount) elements", needed: Int(clamping: rawCount.multipliedReportingOverflow(by: UInt64(minimumSize)).partialValue), available: remaining)
        }
        func bulk<T: FixedWidthInteger>(_ type: T.Type) throws -> [T] {
            let raw = try file.bytes(at: offset, length: count * MemoryLayout<T>.size, "array '\(key)'")
            offset += raw.count
            return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw) }
                for i in 0..<count { buffer[i] = T(littleEndian: buffer[i]) }
                initialized = count
            }
        }
        switch elementType {
        case .uint8: return .uint8(try bulk(UInt8.self))
        case .int8: return .int8(try bulk(Int8.self))
        case .uint16: return .uint16(try bulk(UInt16.self))
        case .int16: return .int16(try bulk(Int16.self))
        case .uint32: return .uint32(try bulk(UInt32.self))
        case .int32: return .int32(try bulk(Int32.self))
        case .uint64: return .uint64(try bulk(UInt64.self))
        case .int64: return .int64(try bulk(Int64.self))
        case .float32: return .float32(try bulk(UInt32.self).map { Float(bitPattern: $0) })
        case .float64: return .float64(try bulk(UInt64.self).map { Double(bitPattern: $0) })
        case .bool:
            let raw = try bulk(UInt8.self)
            if let bad = raw.first(where: { $0 > 1 }) {
                throw CheckpointError.badValue(file: file.path, key: key, value: "\(bad)", reason: "bool must be 0 or 1")
            }
            return .bool(raw.map { $0 == 1 })
        case .string:
            var strings: [String] = []
            strings.reserveCapacity(count)
            for i in 0..<count { strings.append(try ggufString("element \(i) of '\(key)'")) }
            return .string(strings)
        case .array:
            var arrays: [GGUFArray] = []
            for _ in 0..<count { arrays.append(try ggufArray(key: key, depth: depth + 1)) }
            return .array(arrays)
        }
    }
}
