import Checkpoints
import Essentials
import Foundation
import Transformer

/// A JSON value for free-form option records (method options of a plan). JSON does not distinguish `2` from `2.0`:
/// a whole-valued `.number` is read back as `.integer`, so record integers as `.integer`.
public enum PlanValue: Codable, Sendable, Equatable, Hashable {
    /// `true` / `false`.
    case bool(Bool)
    /// A whole number.
    case integer(Int)
    /// Any other number.
    case number(Double)
    /// A string.
    case string(String)
    /// A list.
    case array([PlanValue])
    /// A nested object.
    case object([String: PlanValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([PlanValue].self) { self = .array(a) }
        else if let o = try? c.decode([String: PlanValue].self) { self = .object(o) }
        else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value (null is not allowed)") }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .bool(let v): try c.encode(v)
        case .integer(let v): try c.encode(v)
        case .number(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .array(let v): try c.encode(v)
        case .object(let v): try c.encode(v)
        }
    }
}

/// The result of pruning (design.md decision 6): the hard mask per layer and the record needed to reproduce and
/// audit it. Applying it to the model it was made for is a pure function of the plan and the weights.
public struct PrunePlan: Codable, Sendable, Equatable {
    /// The format version this tool writes and reads.
    public static let currentFormatVersion = 1

    /// What one decoder layer keeps.
    public struct Layer: Codable, Sendable, Equatable {
        /// Kept KV-group ids, ascending.
        public var keptKVGroups: [Int]
        /// Kept MLP channel ids, ascending.
        public var keptChannels: [Int]
        /// Whether the attention sublayer is present (false, or no kept groups: it adds nothing).
        public var attention: Bool
        /// Whether the MLP sublayer is present.
        public var mlp: Bool
        /// Kept query-head ids, ascending, under the query-head granularity; absent otherwise (every head of the
        /// kept groups).
        public var keptQueryHeads: [Int]?

        public init(keptKVGroups: [Int], keptChannels: [Int], attention: Bool, mlp: Bool, keptQueryHeads: [Int]? = nil) {
            self.keptKVGroups = keptKVGroups
            self.keptChannels = keptChannels
            self.attention = attention
            self.mlp = mlp
            self.keptQueryHeads = keptQueryHeads
        }

        enum CodingKeys: String, CodingKey {
            case keptKVGroups = "kept_kv_groups"
            case keptChannels = "kept_channels"
            case keptQueryHeads = "kept_query_heads"
            case attention, mlp
        }
    }

    /// Format version of the file.
    public var formatVersion: Int
    /// Method that produced the plan (e.g. "policy-gradient", "wanda-sp").
    public var method: String
    /// The method's options, as recorded (free-form JSON object).
    public var options: [String: PlanValue]
    /// Seed of the run.
    public var seed: UInt64
    /// Pruning rate asked for (1 − keep ratio).
    public var requestedRate: Double
    /// Pruning rate achieved, in parameters.
    public var achievedRate: AchievedRate
    /// Parameters of the dense model.
    public var denseParameters: ParameterCount
    /// Parameters left after pruning.
    public var keptParameters: ParameterCount
    /// sha256 (hex) of the model file the plan was made for.
    public var modelSHA256: String
    /// sha256 (hex) of the calibration data.
    public var calibrationSHA256: String
    /// Version of the tool that wrote the plan.
    public var toolVersion: String
    /// One entry per decoder layer.
    public var layers: [Layer]

    /// A plan from a hard mask on `config`; rates and parameter counts are computed here.
    /// - Throws: `MaskError` when the mask does not fit the config; `PruningError` for a rate outside [0, 1].
    public init(mask: StructureMask, config: ModelConfig, method: String, options: [String: PlanValue] = [:],
                seed: UInt64, requestedRate: Double, modelSHA256: String, calibrationSHA256: String,
                toolVersion: String) throws {
        try mask.validate(against: config)
        try Self.checkRate(requestedRate)
        formatVersion = Self.currentFormatVersion
        self.method = method
        self.options = options
        self.seed = seed
        self.requestedRate = requestedRate
        denseParameters = config.parameterCount
        keptParameters = mask.keptParameters(in: config)
        achievedRate = AchievedRate(kept: keptParameters, dense: denseParameters)
        self.modelSHA256 = modelSHA256
        self.calibrationSHA256 = calibrationSHA256
        self.toolVersion = toolVersion
        layers = mask.layers.map {
            Layer(keptKVGroups: $0.keptKVGroups, keptChannels: $0.keptChannels, attention: $0.attention, mlp: $0.mlp,
                  keptQueryHeads: $0.keptQueryHeads)
        }
    }

    /// The plan as a mask for the forward pass.
    public var structureMask: StructureMask {
        StructureMask(layers: layers.map {
            StructureMask.Layer(keptKVGroups: $0.keptKVGroups, keptChannels: $0.keptChannels,
                                attention: $0.attention, mlp: $0.mlp, keptQueryHeads: $0.keptQueryHeads)
        })
    }

    /// Checks that the plan fits `config`: same layer count, every id in range, ids ascending and unique, and the
    /// recorded dense parameter count equal to the config's (a plan made for another model is rejected).
    public func validate(against config: ModelConfig) throws {
        guard layers.count == config.layers.count else {
            throw PruningError.layerCount(what: "plan", expected: config.layers.count, found: layers.count)
        }
        for (l, (layer, spec)) in zip(layers, config.layers).enumerated() {
            try Self.checkIds(layer.keptKVGroups, limit: spec.hasAttention ? spec.kvHeads : 0, layer: l, what: "plan kept_kv_groups")
            try Self.checkIds(layer.keptChannels, limit: spec.hasMLP ? spec.ffnDim : 0, layer: l, what: "plan kept_channels")
            if let heads = layer.keptQueryHeads {
                try Self.checkIds(heads, limit: spec.hasAttention ? spec.queryHeads : 0, layer: l, what: "plan kept_query_heads")
            }
        }
        let dense = config.parameterCount
        if dense != denseParameters {
            throw PruningError.invalidValue(key: "dense_parameters", value: "\(denseParameters.total)",
                                            reason: "the model has \(dense.total) parameters; the plan was made for another model")
        }
    }

    /// Pretty-printed JSON with sorted keys (stable diffs).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    /// Reads a plan from JSON; field errors name the key and the value.
    public static func decode(_ data: Data) throws -> PrunePlan {
        try JSONDecoder().decode(PrunePlan.self, from: data)
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version"
        case method, options, seed
        case requestedRate = "requested_rate"
        case achievedRate = "achieved_rate"
        case denseParameters = "dense_parameters"
        case keptParameters = "kept_parameters"
        case modelSHA256 = "model_sha256"
        case calibrationSHA256 = "calibration_sha256"
        case toolVersion = "tool_version"
        case layers
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        guard formatVersion == Self.currentFormatVersion else {
            throw PruningError.unsupportedFormatVersion(found: formatVersion, supported: Self.currentFormatVersion)
        }
        method = try c.decode(String.self, forKey: .method)
        options = try c.decode([String: PlanValue].self, forKey: .options)
        seed = try c.decode(UInt64.self, forKey: .seed)
        requestedRate = try c.decode(Double.self, forKey: .requestedRate)
        try Self.checkRate(requestedRate)
        achievedRate = try c.decode(AchievedRate.self, forKey: .achievedRate)
        denseParameters = try c.decode(ParameterCount.self, forKey: .denseParameters)
        keptParameters = try c.decode(ParameterCount.self, forKey: .keptParameters)
        modelSHA256 = try c.decode(String.self, forKey: .modelSHA256)
        calibrationSHA256 = try c.decode(String.self, forKey: .calibrationSHA256)
        toolVersion = try c.decode(String.self, forKey: .toolVersion)
        layers = try c.decode([Layer].self, forKey: .layers)
        // Ranges need the model (`validate(against:)`); order and sign can be checked now.
        for (l, layer) in layers.enumerated() {
            for (key, ids) in [("kept_kv_groups", layer.keptKVGroups), ("kept_channels", layer.keptChannels),
                               ("kept_query_heads", layer.keptQueryHeads ?? [])] {
                if let negative = ids.first(where: { $0 < 0 }) {
                    throw PruningError.invalidValue(key: "layers[\(l)].\(key)", value: "\(negative)", reason: "ids must be ≥ 0")
                }
                try Self.checkIds(ids, limit: .max, layer: l, what: "plan \(key)")
            }
        }
    }

    private static func checkRate(_ rate: Double) throws {
        if !(rate >= 0 && rate <= 1) {
            throw PruningError.invalidValue(key: "requested_rate", value: "\(rate)", reason: "must be in [0, 1]")
        }
    }

    private static func checkIds(_ ids: [Int], limit: Int, layer: Int, what: String) throws {
        var previous = -1
        for id in ids {
            if id < 0 || id >= limit { throw PruningError.idOutOfRange(what: what, layer: layer, id: id, limit: limit) }
            if id <= previous { throw PruningError.idsNotAscending(what: what, layer: layer, id: id) }
            previous = id
        }
    }
}
