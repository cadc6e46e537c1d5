import Essentials
import Foundation

/// The on-disk format a checkpoint came from.
public enum CheckpointFormat: String, Sendable, Codable {
    /// llama2.c legacy `.bin`.
    case llama2c
    /// llama.cpp GGUF.
    case gguf
    /// Hugging Face directory (`config.json` + safetensors).
    case huggingFace
}

/// Where a checkpoint's tokenizer lives (the Tokenization module reads it).
public enum TokenizerSource: Sendable {
    /// A llama2.c `tokenizer.bin` / `tok*.bin` file.
    case llama2c(String)
    /// The tokenizer metadata (`tokenizer.ggml.*`) inside this GGUF file.
    case gguf(GGUFFile)
    /// A Hugging Face `tokenizer.json`.
    case huggingFaceJSON(String)
    /// None found.
    case none
}

/// A model read from disk: architecture, weights in the canonical layout (design.md decision 1), and where its
/// tokenizer is.
public struct LoadedCheckpoint: Sendable {
    /// Architecture as `[LayerSpec]`.
    public var config: ModelConfig
    /// Row-major `[out, in]` Float32 weights, q/k rows in the rotate-half RoPE order.
    public var weights: ModelWeights
    /// The format it was read from.
    public var format: CheckpointFormat
    /// The path given to the loader.
    public var path: String
    /// The tokenizer that goes with it.
    public var tokenizer: TokenizerSource

    /// Bundles the parts of a loaded checkpoint.
    public init(config: ModelConfig, weights: ModelWeights, format: CheckpointFormat, path: String, tokenizer: TokenizerSource) {
        self.config = config
        self.weights = weights
        self.format = format
        self.path = path
        self.tokenizer = tokenizer
    }
}

/// Resolves a checkpoint path to its format and loads it.
public enum CheckpointLoader {
    /// Loads a `.gguf` file, a llama2.c `.bin` file, or a Hugging Face directory (`config.json` plus
    /// `model.safetensors` or `model.safetensors.index.json`). The format is chosen by the file's magic bytes,
    /// not only its extension.
    public static func load(path: String) throws -> LoadedCheckpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CheckpointError.fileNotFound(file: path)
        }
        if isDirectory.boolValue { return try loadHuggingFace(directory: path) }
        let file = try MappedFile(checkpoint: path)
        if file.count >= 4, let magic = try? file.bytes(at: 0, length: 4, "magic"), Array(magic) == Array("GGUF".utf8) {
            return try loadGGUF(path: path)
        }
        let name = (path as NSString).lastPathComponent
        let ext = (path as NSString).pathExtension.lowercased()
        if ext == "bin" { return try loadLlama2c(path: path) }
        if name == "config.json" || ext == "safetensors" || name.hasSuffix(".safetensors.index.json") {
            return try loadHuggingFace(directory: (path as NSString).deletingLastPathComponent)
        }
        let head = (try? file.bytes(at: 0, length: min(4, file.count), "magic")).map { Array($0) } ?? []
        throw CheckpointError.badMagic(file: path, found: head.map { String(format: "%02x", $0) }.joined()
                                       + " (expected a .gguf, a llama2.c .bin or a Hugging Face directory)")
    }

    /// Loads a GGUF file; the tokenizer is the file's own metadata.
    public static func loadGGUF(path: String) throws -> LoadedCheckpoint {
        let gguf = try GGUFFile(path: path)
        let config = try gguf.modelConfig()
        let weights = try WeightAssembly.assemble(gguf, config: config, names: GGUFFile.names(architecture: config.architecture),
                                                  order: gguf.ropeRowOrder)
        return LoadedCheckpoint(config: config, weights: weights, format: .gguf, path: path, tokenizer: .gguf(gguf))
    }

    /// Loads a llama2.c checkpoint; the tokenizer is a `tokenizer.bin` or `tok*.bin` in the same folder.
    public static func loadLlama2c(path: String) throws -> LoadedCheckpoint {
        let checkpoint = try Llama2cCheckpoint(path: path)
        let config = checkpoint.config
        let weights = try WeightAssembly.assemble(checkpoint, config: config, names: Llama2cCheckpoint.names, order: .adjacentPairs)
        let folder = (path as NSString).deletingLastPathComponent
        let tokenizer = llama2cTokenizer(in: folder.isEmpty ? "." : folder, excluding: (path as NSString).lastPathComponent)
        return LoadedCheckpoint(config: config, weights: weights, format: .llama2c, path: path,
                                tokenizer: tokenizer.map(TokenizerSource.llama2c) ?? .none)
    }

    /// Loads a Hugging Face directory. Tokenizer: `tokenizer.json`, else a llama2.c `tokenizer.bin` / `tok*.bin`.
    public static func loadHuggingFace(directory: String) throws -> LoadedCheckpoint {
        let dir = directory.isEmpty ? "." : directory
        func inDir(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }
        let configPath = inDir("config.json")
        guard FileManager.default.fileExists(atPath: configPath) else { throw CheckpointError.fileNotFound(file: configPath) }
        let hf = try HFConfig.load(path: configPath)
        let store: SafetensorsStore
        if FileManager.default.fileExists(atPath: inDir("model.safetensors.index.json")) {
            store = try SafetensorsStore(index: inDir("model.safetensors.index.json"))
        } else if FileManager.default.fileExists(atPath: inDir("model.safetensors")) {
            store = try SafetensorsStore(file: inDir("model.safetensors"))
        } else {
            throw CheckpointError.fileNotFound(file: inDir("model.safetensors"))
        }
        // config.json is checked against the tensors actually present before its counts size anything.
        try ModelConfig.checkLayerCount(hf.layerCount, key: HFConfig.CodingKeys.layerCount.rawValue,
                                        limit: max(store.weightMap.count, hf.perLayerEntryCount), file: configPath)
        let config = hf.modelConfig
        // Safetensors' narrowest dtype is one byte per element.
        let dataBytes = store.shards.values.reduce(0) { $0 + $1.file.count }
        try config.checkFits(file: configPath, maxElements: dataBytes, keys: HFConfig.configKeys)
        let weights = try WeightAssembly.assemble(store, config: config, names: hf.weightNames, order: .rotateHalf)
        let tokenizer: TokenizerSource
        if FileManager.default.fileExists(atPath: inDir("tokenizer.json")) {
            tokenizer = .huggingFaceJSON(inDir("tokenizer.json"))
        } else if let bin = llama2cTokenizer(in: dir, excluding: nil) {
            tokenizer = .llama2c(bin)
        } else {
            tokenizer = .none
        }
        return LoadedCheckpoint(config: config, weights: weights, format: .huggingFace, path: directory, tokenizer: tokenizer)
    }

    /// `tokenizer.bin` in `folder`, else the first (by name) `tok*.bin` other than `excluding`.
    public static func llama2cTokenizer(in folder: String, excluding: String?) -> String? {
        let fm = FileManager.default
        let direct = (folder as NSString).appendingPathComponent("tokenizer.bin")
        if fm.fileExists(atPath: direct) { return direct }
        let names = (try? fm.contentsOfDirectory(atPath: folder)) ?? []
        let candidate = names.filter { $0.hasPrefix("tok") && $0.hasSuffix(".bin") && $0 != excluding }.sorted().first
        return candidate.map { (folder as NSString).appendingPathComponent($0) }
    }
}
