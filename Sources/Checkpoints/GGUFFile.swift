import Essentials
import Foundation
import Kernels

/// One tensor's entry in a GGUF header.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// Tensor name (`blk.0.attn_q.weight`).
    public var name: String
    /// Dimensions in ggml order, `ne0` (the contiguous one) first: an `[out, in]` matrix has dims `[in, out]`.
    public var dims: [Int]
    /// Storage type.
    public var type: GGMLType
    /// Byte offset of the data relative to the start of the data section.
    public var offset: Int
    /// Bytes of data.
    public var byteCount: Int

    /// Number of elements.
    public var elementCount: Int { dims.reduce(1, *) }
    /// Dimensions outermost first (row-major order, `[out, in]` for a matrix): `dims` reversed.
    public var shape: [Int] { Array(dims.reversed()) }
}

/// A GGUF v2/v3 file (llama.cpp's format), memory-mapped. The header (metadata and tensor infos) is parsed and
/// validated at init; tensor data is read on demand by `floats(named:)`.
public final class GGUFFile: @unchecked Sendable {
    // @unchecked Sendable: every stored property is immutable after init and the mapping is read-only.

    /// The file's path.
    public let path: String
    /// The mapped file.
    public let file: MappedFile
    /// Format version (2 or 3).
    public let version: Int
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor infos in file order.
    public let tensorInfos: [GGUFTensorInfo]
    /// Data alignment (`general.alignment`, default 32).
    public let alignment: Int
    /// Absolute byte offset of the data section.
    public let dataOffset: Int
    private let tensorIndex: [String: Int]

    /// Opens and validates `path`: magic, version, counts against the file size, every value type, every tensor
    /// type, and every tensor's data range.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(checkpoint: path)
        var reader = MappedReader(file)
        let magic = try file.bytes(at: 0, length: 4, "GGUF magic")
        guard Array(magic) == Array("GGUF".utf8) else {
            throw CheckpointError.badMagic(file: path, found: magic.map { String(format: "%02x", $0) }.joined())
        }
        reader.offset = 4
        let rawVersion = try reader.integer(UInt32.self, "GGUF version")
        guard rawVersion == 2 || rawVersion == 3 else { throw CheckpointError.unsupportedVersion(file: path, version: Int(rawVersion)) }
        version = Int(rawVersion)
        let rawTensorCount = try reader.integer(UInt64.self, "tensor count")
        let rawKVCount = try reader.integer(UInt64.self, "metadata count")
        // Smallest possible entries: a key-value is an 8-byte key length + 4-byte type + 1 byte; a tensor info is
        // an 8-byte name length + 4-byte n_dims + 4-byte type + 8-byte offset.
        guard rawKVCount <= UInt64(file.count / 13) else {
            throw CheckpointError.corrupt(file: path, reason: "metadata count \(rawKVCount) impossible for a \(file.count)-byte file")
        }
        guard rawTensorCount <= UInt64(file.count / 24) else {
            throw CheckpointError.corrupt(file: path, reason: "tensor count \(rawTensorCount) impossible for a \(file.count)-byte file")
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for i in 0..<Int(rawKVCount) {
            let key = try reader.ggufString("key of metadata entry \(i)")
            let rawType = try reader.integer(UInt32.self, "value type of '\(key)'")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw CheckpointError.unknownValueType(file: path, key: key, type: Int(rawType))
            }
            let value = try reader.ggufValue(type, key: key)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw CheckpointError.corrupt(file: path, reason: "metadata key '\(key)' appears twice")
            }
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys

        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard case .uint32(let a) = value, a > 0, a & (a - 1) == 0 else {
                throw CheckpointError.badValue(file: path, key: "general.alignment", value: "\(value)", reason: "must be a uint32 power of two")
            }
            alignment = Int(a)
        }
        self.alignment = alignment

        var infos: [GGUFTensorInfo] = []
        var index: [String: Int] = [:]
        infos.reserveCapacity(Int(rawTensorCount))
        for i in 0..<Int(rawTensorCount) {
            let name = try reader.ggufString("name of tensor info \(i)")
            let nDims = try reader.integer(UInt32.self, "n_dims of tensor '\(name)'")
            guard (1...4).contains(nDims) else {
                throw CheckpointError.corrupt(file: path, reason: "tensor '\(name)' has \(nDims) dimensions (ggml allows 1 to 4)")
            }
            var dims: [Int] = []
            var elements = 1
            for d in 0..<Int(nDims) {
                let raw = try reader.integer(UInt64.self, "dimension \(d) of tensor '\(name)'")
                let n = Int(exactly: raw) ?? -1
                let (product, overflow) = elements.multipliedReportingOverflow(by: max(n, 0))
                guard n >= 0, !overflow, product <= Int(Int32.max) * 64 else {
                    throw CheckpointError.corrupt(file: path, reason: "tensor '\(name)' has impossible dimension \(raw)")
                }
                dims.append(n)
                elements = product
            }
            let rawType = try reader.integer(UInt32.self, "type of tensor '\(name)'")
            guard let type = GGMLType(rawValue: rawType) else {
                throw CheckpointError.unknownTensorType(file: path, tensor: name, type: "ggml type id \(rawType)")
            }
            let rawOffset = try reader.integer(UInt64.self, "data offset of tensor '\(name)'")
            guard dims[0] % type.blockLayout.elements == 0, let bytes = type.byteCount(elements: elements) else {
                throw CheckpointError.corrupt(file: path, reason: "tensor '\(name)': row of \(dims[0]) is not a whole number of \(type) blocks")
            }
            guard let offset = Int(exactly: rawOffset), offset % alignment == 0 else {
                throw CheckpointError.corrupt(file: path, reason: "tensor '\(name)' data offset \(rawOffset) is not a multiple of the alignment \(alignment)")
            }
            guard index.updateValue(infos.count, forKey: name) == nil else {
                throw CheckpointError.corrupt(file: path, reason: "tensor '\(name)' appears twice")
            }
            infos.append(GGUFTensorInfo(name: name, dims: dims, type: type, offset: offset, byteCount: bytes))
        }
        // The data section starts at the next multiple of the alignment after the header.
        let dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        self.dataOffset = dataOffset
        for info in infos {
            let start = info.offset.addingReportingOverflow(dataOffset)
            guard !start.overflow else {
                throw CheckpointError.truncated(file: path, what: "data of tensor '\(info.name)'", needed: info.byteCount, available: 0)
            }
            try file.check(start.partialValue, info.byteCount, "data of tensor '\(info.name)'")
        }
        tensorInfos = infos
        tensorIndex = index
    }

    /// `general.architecture` (`llama`, `deci`, `qwen2`, ...).
    public var architecture: String? { metadata["general.architecture"]?.string }

    /// The info for tensor `name`, or nil.
    public func tensorInfo(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensorInfos[$0] }
    }

    /// Tensor `name` dequantised to Float32, in ggml element order (row-major with `ne0` contiguous).
    /// Throws `missingTensor` or `unknownTensorType` (a type this reader does not dequantise).
    public func floats(named name: String) throws -> [Float] {
        guard let info = tensorInfo(named: name) else { throw CheckpointError.missingTensor(file: path, tensor: name) }
        return try floats(info)
    }

    /// The data of `info` dequantised to Float32. Blocks are split over `Parallel.threads` workers.
    public func floats(_ info: GGUFTensorInfo) throws -> [Float] {
        guard info.type.isSupported else {
            throw CheckpointError.unknownTensorType(file: path, tensor: info.name, type: info.type.description)
        }
        let raw = try file.bytes(at: dataOffset + info.offset, length: info.byteCount, "data of tensor '\(info.name)'")
        let count = info.elementCount
        let (perBlock, blockBytes) = info.type.blockLayout
        let blocks = count / perBlock
        guard count > 0, let source = raw.baseAddress else { return [] }
        defer { file.releasePages(raw) }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let destination = buffer.baseAddress!
            // ~64K values per chunk keeps thread start-up negligible next to the work.
            Parallel.forEachChunk(blocks, minimumPerChunk: max(1, 65_536 / perBlock)) { range in
                Dequantize.blocks(info.type, source + range.lowerBound * blockBytes,
                                  destination + range.lowerBound * perBlock, range.count)
            }
            initialized = count
        }
    }
}
