import Foundation

/// One tensor to write: name, shape outermost first, row-major Float32 values.
public struct TensorRecord: Sendable {
    /// Tensor name in the target format.
    public var name: String
    /// Shape, outermost first (`[out, in]` for a matrix).
    public var shape: [Int]
    /// Row-major values; `shape.reduce(1, *)` of them.
    public var values: [Float]

    /// A tensor record.
    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// Writes `.safetensors` files: an 8-byte little-endian header length, a JSON header (`{name: {dtype, shape,
/// data_offsets}}` plus `__metadata__`), padded with spaces to a multiple of 8, then the data in record order.
public enum SafetensorsWriter {
    /// Writes `tensors` stored as `dtype` (F32, F16 or BF16) to `path`, which must not exist (use `AtomicOutput`
    /// for atomic placement). `metadata` goes to `__metadata__`; `format: pt` is added as transformers expects.
    public static func write(_ tensors: [TensorRecord], dtype: WeightDType, metadata: [String: String] = [:], to path: String) throws {
        guard let dtypeName = dtype.safetensorsName else {
            throw CheckpointWriteError.unsupportedDType(format: "safetensors", dtype: dtype.rawValue)
        }
        let elementSize = dtype == .f32 ? 4 : 2
        var header: [String: Any] = [:]
        var meta = metadata
        if meta["format"] == nil { meta["format"] = "pt" }
        header["__metadata__"] = meta
        var offset = 0
        var names = Set<String>()
        for t in tensors {
            guard names.insert(t.name).inserted else {
                throw CheckpointWriteError.unsupportedModel(format: "safetensors", reason: "tensor '\(t.name)' given twice")
            }
            guard t.shape.reduce(1, *) == t.values.count else {
                throw CheckpointWriteError.unsupportedModel(format: "safetensors", reason: "tensor '\(t.name)' has \(t.values.count) values for shape \(t.shape)")
            }
            let bytes = t.values.count * elementSize
            header[t.name] = ["dtype": dtypeName, "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        let file = try OutputFile(creating: path)
        var length = UInt64(json.count).littleEndian
        try withUnsafeBytes(of: &length) { try file.write($0) }
        try json.withUnsafeBytes { try file.write($0) }
        for t in tensors { try file.write(TensorEncoding.bytes(t.values, as: dtype)) }
        try file.finish()
    }
}
