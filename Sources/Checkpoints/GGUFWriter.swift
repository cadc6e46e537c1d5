import Foundation

/// Writes GGUF v3 files (llama.cpp's format): magic, version, counts, metadata in the given order, tensor infos,
/// then the data section at `alignment` with every tensor's data aligned too. Little-endian throughout.
public struct GGUFWriter {
    /// One tensor: its record (shape outermost first, row-major values) and its storage type.
    public struct Tensor {
        /// Name, shape and values.
        public var record: TensorRecord
        /// How the values are stored.
        public var type: WeightDType
        /// A tensor stored as `type`.
        public init(_ record: TensorRecord, type: WeightDType) {
            self.record = record
            self.type = type
        }
    }

    /// Metadata key-value pairs, written in this order.
    public var metadata: [(key: String, value: GGUFValue)] = []
    /// Tensors, written in this order.
    public var tensors: [Tensor] = []
    /// Data alignment (GGUF default 32; written as `general.alignment` only when different).
    public var alignment = 32

    /// An empty file description.
    public init() {}

    /// Appends a metadata pair.
    public mutating func set(_ key: String, _ value: GGUFValue) { metadata.append((key, value)) }

    /// Writes the file to `path`, which must not exist (use `AtomicOutput` for atomic placement).
    public func write(to path: String) throws {
        var seen = Set<String>()
        for (key, _) in metadata where !seen.insert(key).inserted {
            throw CheckpointWriteError.unsupportedModel(format: "GGUF", reason: "metadata key '\(key)' given twice")
        }
        seen.removeAll()
        var infos: [(name: String, dims: [Int], type: GGMLType, offset: Int, bytes: Int)] = []
        var offset = 0
        for t in tensors {
            let r = t.record
            guard seen.insert(r.name).inserted else {
                throw CheckpointWriteError.unsupportedModel(format: "GGUF", reason: "tensor '\(r.name)' given twice")
            }
            guard let type = t.type.ggmlType else { throw CheckpointWriteError.unsupportedDType(format: "GGUF", dtype: t.type.rawValue) }
            guard (1...4).contains(r.shape.count), r.shape.reduce(1, *) == r.values.count else {
                throw CheckpointWriteError.unsupportedModel(format: "GGUF", reason: "tensor '\(r.name)' has \(r.values.count) values for shape \(r.shape)")
            }
            let dims = Array(r.shape.reversed())  // ggml order: the contiguous dimension first
            guard dims[0] % type.blockLayout.elements == 0, let bytes = type.byteCount(elements: r.values.count) else {
                throw CheckpointWriteError.unsupportedModel(format: "GGUF", reason: "tensor '\(r.name)': rows of \(dims[0]) are not whole \(type) blocks")
            }
            infos.append((r.name, dims, type, offset, bytes))
            offset = (offset + bytes + alignment - 1) / alignment * alignment
        }

        var header: [UInt8] = Array("GGUF".utf8)
        Self.append(UInt32(3), to: &header)
        Self.append(UInt64(tensors.count), to: &header)
        let alignmentEntry: [(key: String, value: GGUFValue)] = alignment == 32 || metadata.contains { $0.key == "general.alignment" }
            ? [] : [("general.alignment", .uint32(UInt32(alignment)))]
        Self.append(UInt64(metadata.count + alignmentEntry.count), to: &header)
        for (key, value) in metadata + alignmentEntry {
            Self.append(key, to: &header)
            Self.append(value.type.rawValue, to: &header)
            Self.append(value, to: &header)
        }
        for info in infos {
            Self.append(info.name, to: &header)
            Self.append(UInt32(info.dims.count), to: &header)
            for d in info.dims { Self.append(UInt64(d), to: &header) }
            Self.append(info.type.rawValue, to: &header)
            Self.append(UInt64(info.offset), to: &header)
        }

        let file = try OutputFile(creating: path)
        try file.write(header)
        try file.pad(to: alignment)
        let dataStart = file.offset
        for (t, info) in zip(tensors, infos) {
            let padding = dataStart + info.offset - file.offset
            if padding > 0 { try file.write([UInt8](repeating: 0, count: padding)) }
            let bytes = TensorEncoding.bytes(t.record.values, as: t.type)
            assert(bytes.count == info.bytes)
            try file.write(bytes)
        }
        try file.finish()
    }

    private static func append<T: FixedWidthInteger>(_ v: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func append(_ s: String, to out: inout [UInt8]) {
        append(UInt64(s.utf8.count), to: &out)
        out.append(contentsOf: s.utf8)
    }

    /// A value's payload (its type tag is written by the caller).
    private static func append(_ value: GGUFValue, to out: inout [UInt8]) {
        switch value {
        case .uint8(let v): append(v, to: &out)
        case .int8(let v): append(v, to: &out)
        case .uint16(let v): append(v, to: &out)
        case .int16(let v): append(v, to: &out)
        case .uint32(let v): append(v, to: &out)
        case .int32(let v): append(v, to: &out)
        case .float32(let v): append(v.bitPattern, to: &out)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let s): append(s, to: &out)
        case .uint64(let v): append(v, to: &out)
        case .int64(let v): append(v, to: &out)
        case .float64(let v): append(v.bitPattern, to: &out)
        case .array(let a): append(a, to: &out)
        }
    }

    /// An array: element type, count, elements.
    private static func append(_ array: GGUFArray, to out: inout [UInt8]) {
        func header(_ type: GGUFValueType) {
            append(type.rawValue, to: &out)
            append(UInt64(array.count), to: &out)
        }
        switch array {
        case .uint8(let v): header(.uint8); out.append(contentsOf: v)
        case .int8(let v): header(.int8); for x in v { append(x, to: &out) }
        case .uint16(let v): header(.uint16); for x in v { append(x, to: &out) }
        case .int16(let v): header(.int16); for x in v { append(x, to: &out) }
        case .uint32(let v): header(.uint32); for x in v { append(x, to: &out) }
        case .int32(let v): header(.int32); for x in v { append(x, to: &out) }
        case .float32(let v): header(.float32); for x in v { append(x.bitPattern, to: &out) }
        case .bool(let v): header(.bool); for x in v { out.append(x ? 1 : 0) }
        case .string(let v): header(.string); for x in v { append(x, to: &out) }
        case .uint64(let v): header(.uint64); for x in v { append(x, to: &out) }
        case .int64(let v): header(.int64); for x in v { append(x, to: &out) }
        case .float64(let v): header(.float64); for x in v { append(x.bitPattern, to: &out) }
        case .array(let v):
            header(.array)
            for x in v { append(x, to: &out) }
        }
    }
}
