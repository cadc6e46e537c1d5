import Essentials
import Foundation
import Kernels

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    /// Tensor name.
    public var name: String
    /// The header's dtype string (`F32`, `BF16`, ...).
    public var dtype: String
    /// Shape, outermost first.
    public var shape: [Int]
    /// Absolute byte range of the data in the file (header `data_offsets` shifted past the header).
    public var byteRange: Range<Int>
}

/// A `.safetensors` file, memory-mapped: an 8-byte little-endian header length, a JSON header mapping tensor names
/// to `{dtype, shape, data_offsets}` (plus an optional `__metadata__` string map), then the data.
public final class SafetensorsFile: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; the mapping is read-only.

    /// The file's path.
    public let path: String
    /// The mapped file.
    public let file: MappedFile
    /// `__metadata__` (string to string), empty when absent.
    public let metadata: [String: String]
    /// Tensors in data order.
    public let tensorInfos: [SafetensorsTensorInfo]
    private let index: [String: Int]

    /// Bytes per element of the dtypes the safetensors format defines.
    static let elementSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4,
        "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    ]

    /// Opens `path` and validates the header: length within the file, valid JSON, known dtypes, and every tensor's
    /// offsets inside the data section with a byte count matching dtype and shape.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(checkpoint: path)
        let rawLength = try file.integer(UInt64.self, at: 0, "safetensors header length")
        guard let headerLength = Int(exactly: rawLength), headerLength <= file.count - 8 else {
            throw CheckpointError.truncated(file: path, what: "safetensors JSON header", needed: Int(clamping: rawLength), available: file.count - 8)
        }
        // Only the header is copied (to hand it to the JSON parser), never the tensor data.
        let headerBytes = try file.bytes(at: 8, length: headerLength, "safetensors JSON header")
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes))
        } catch {
            throw CheckpointError.corrupt(file: path, reason: "safetensors header is not valid JSON: \(error.localizedDescription)")
        }
        guard let header = json as? [String: Any] else {
            throw CheckpointError.corrupt(file: path, reason: "safetensors header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataSize = file.count - dataStart
        var metadata: [String: String] = [:]
        var infos: [SafetensorsTensorInfo] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else {
                    throw CheckpointError.badValue(file: path, key: name, value: "\(value)", reason: "must be an object of strings")
                }
                for (k, v) in m {
                    guard let s = v as? String else {
                        throw CheckpointError.badValue(file: path, key: "__metadata__.\(k)", value: "\(v)", reason: "must be a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shapeValues = entry["shape"] as? [NSNumber], let offsets = entry["data_offsets"] as? [NSNumber],
                  offsets.count == 2 else {
                throw CheckpointError.badValue(file: path, key: name, value: "\(value)", reason: "needs dtype, shape and data_offsets [begin, end]")
            }
            guard let elementSize = Self.elementSizes[dtype] else {
                throw CheckpointError.unknownTensorType(file: path, tensor: name, type: dtype)
            }
            var elements = 1
            var shape: [Int] = []
            for n in shapeValues {
                let d = n.intValue
                let (product, overflow) = elements.multipliedReportingOverflow(by: max(d, 0))
                guard d >= 0, n.doubleValue == Double(d), !overflow else {
                    throw CheckpointError.badValue(file: path, key: "\(name).shape", value: "\(shapeValues)", reason: "dimensions must be non-negative integers")
                }
                shape.append(d)
                elements = product
            }
            let begin = offsets[0].intValue, end = offsets[1].intValue
            guard begin >= 0, begin <= end, offsets[0].doubleValue == Double(begin), offsets[1].doubleValue == Double(end) else {
                throw CheckpointError.badValue(file: path, key: "\(name).data_offsets", value: "\(offsets)", reason: "need 0 <= begin <= end")
            }
            guard end <= dataSize else {
                throw CheckpointError.truncated(file: path, what: "data of tensor '\(name)' (data_offsets \(begin)..<\(end))", needed: end, available: dataSize)
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: elementSize)
            guard !overflow, bytes == end - begin else {
                throw CheckpointError.shapeMismatch(file: path, tensor: name, expected: "\(elements) x \(dtype) = \(bytes) bytes", found: "\(end - begin) bytes")
            }
            infos.append(SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: (dataStart + begin)..<(dataStart + end)))
        }
        infos.sort { ($0.byteRange.lowerBound, $0.name) < ($1.byteRange.lowerBound, $1.name) }
        self.metadata = metadata
        tensorInfos = infos
        var index: [String: Int] = [:]
        for (i, info) in infos.enumerated() { index[info.name] = i }
        self.index = index
    }

    /// The info for tensor `name`, or nil.
    public func tensorInfo(named name: String) -> SafetensorsTensorInfo? { index[name].map { tensorInfos[$0] } }

    /// Tensor `name` converted to Float32 (F32 copied; F16/BF16 widened exactly). Other dtypes throw
    /// `unknownTensorType` naming the tensor.
    public func floats(named name: String) throws -> [Float] {
        guard let info = tensorInfo(named: name) else { throw CheckpointError.missingTensor(file: path, tensor: name) }
        let type: GGMLType
        switch info.dtype {
        case "F32": type = .f32
        case "F16": type = .f16
        case "BF16": type = .bf16
        default: throw CheckpointError.unknownTensorType(file: path, tensor: name, type: info.dtype)
        }
        let raw = try file.bytes(at: info.byteRange.lowerBound, length: info.byteRange.count, "data of tensor '\(name)'")
        let count = info.shape.reduce(1, *)
        guard count > 0, let source = raw.baseAddress else { return [] }
        defer { file.releasePages(raw) }
        let size = type.blockLayout.bytes
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let destination = buffer.baseAddress!
            Parallel.forEachChunk(count, minimumPerChunk: 1 << 16) { range in
                Dequantize.blocks(type, source + range.lowerBound * size, destination + range.lowerBound, range.count)
            }
            initialized = count
        }
    }
}

/// The tensors of a Hugging Face checkpoint: one `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json` (`weight_map`: tensor name -> shard file name).
public final class SafetensorsStore: @unchecked Sendable {
    // @unchecked Sendable: immutable after init.

    /// The single file or the index file.
    public let path: String
    /// Shards by file name.
    public let shards: [String: SafetensorsFile]
    /// Tensor name -> shard file name.
    public let weightMap: [String: String]

    /// Opens a single `.safetensors` file.
    public init(file path: String) throws {
        let shard = try SafetensorsFile(path: path)
        let name = (path as NSString).lastPathComponent
        self.path = path
        shards = [name: shard]
        weightMap = Dictionary(shard.tensorInfos.map { ($0.name, name) }, uniquingKeysWith: { a, _ in a })
    }

    /// Opens `model.safetensors.index.json` and every shard it names (relative to its folder). Each listed
    /// tensor must be in its shard, and each shard tensor must be listed.
    public init(index path: String) throws {
        self.path = path
        let file = try MappedFile(checkpoint: path)
        let bytes = try file.bytes(at: 0, length: file.count, "index JSON")
        guard let json = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw CheckpointError.corrupt(file: path, reason: "not a JSON object")
        }
        guard let map = json["weight_map"] as? [String: Any] else { throw CheckpointError.missingKey(file: path, key: "weight_map") }
        var weightMap: [String: String] = [:]
        for (tensor, value) in map {
            guard let shard = value as? String, !shard.contains("/"), !shard.isEmpty else {
                throw CheckpointError.badValue(file: path, key: "weight_map.\(tensor)", value: "\(value)", reason: "must be a file name in the same folder")
            }
            weightMap[tensor] = shard
        }
        let folder = (path as NSString).deletingLastPathComponent
        var shards: [String: SafetensorsFile] = [:]
        for name in Set(weightMap.values).sorted() {
            shards[name] = try SafetensorsFile(path: (folder as NSString).appendingPathComponent(name))
        }
        for (tensor, shard) in weightMap where shards[shard]?.tensorInfo(named: tensor) == nil {
            throw CheckpointError.missingTensor(file: shards[shard]?.path ?? shard, tensor: tensor)
        }
        for (name, shard) in shards {
            for info in shard.tensorInfos where weightMap[info.name] != name {
                throw CheckpointError.unexpectedTensor(file: shard.path, tensor: info.name)
            }
        }
        self.shards = shards
        self.weightMap = weightMap
    }

    /// The info for tensor `name`, or nil.
    public func tensorInfo(named name: String) -> SafetensorsTensorInfo? {
        weightMap[name].flatMap { shards[$0]?.tensorInfo(named: name) }
    }
}

extension SafetensorsStore: TensorSource {
    var sourcePath: String { path }
    var tensorNames: [String] { weightMap.keys.sorted() }
    func file(of name: String) -> String { weightMap[name].flatMap { shards[$0]?.path } ?? path }
    func shape(of name: String) -> [Int]? { tensorInfo(named: name)?.shape }

    /// Tensor `name` as Float32, from whichever shard holds it.
    public func floats(named name: String) throws -> [Float] {
        guard let shard = weightMap[name].flatMap({ shards[$0] }) else { throw CheckpointError.missingTensor(file: path, tensor: name) }
        return try shard.floats(named: name)
    }
}
