//! Run-time choice of kernels. Chosen once from the CPU's features (never from compile-time
//! `target-cpu`, so one binary runs on any x86_64), overridable for tests and benchmarks.

use crate::blocks::{as_blocks, Block, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};
use crate::{scalar, GgmlType};

/// A weight block type with SIMD kernels: its row kernels (`x86::RowKernels`) and int8 views
/// (`Int8Block`, `Int8Pairs`).
#[cfg(target_arch = "x86_64")]
pub(crate) trait KernelBlock:
    Block + crate::x86::RowKernels + crate::x86::int8::Int8Block + crate::x86::int8_512::Int8Pairs
{
}
#[cfg(target_arch = "x86_64")]
impl<B: Block + crate::x86::RowKernels + crate::x86::int8::Int8Block + crate::x86::int8_512::Int8Pairs> KernelBlock
    for B
{
}
#[cfg(not(target_arch = "x86_64"))]
pub(crate) trait KernelBlock: Block {}
#[cfg(not(target_arch = "x86_64"))]
impl<B: Block> KernelBlock for B {}

/// Something done with a weight block type's kernels (a closure generic over the type).
pub(crate) trait WithBlock {
    type Out;
    fn run<B: KernelBlock>(self) -> Self::Out;
}

/// The table of weight types with SIMD kernels: `f` run with `ty`'s block type, `None` for a type
/// without kernels (the scalar reference serves it). A new quant type joins here, once, with its
/// `KernelBlock` impls.
pub(crate) fn with_quant<F: WithBlock>(ty: GgmlType, f: F) -> Option<F::Out> {
    match ty {
        GgmlType::Q8_0 => Some(f.run::<BlockQ8_0>()),
        GgmlType::Q5_0 => Some(f.run::<BlockQ5_0>()),
        GgmlType::Q4K => Some(f.run::<BlockQ4K>()),
        GgmlType::Q6K => Some(f.run::<BlockQ6K>()),
        _ => None,
    }
}

/// Whether `ty` has SIMD kernels (fused rows, int8 dot products).
pub fn has_kernels(ty: GgmlType) -> bool {
    struct Probe;
    impl WithBlock for Probe {
        type Out = ();
        fn run<B: KernelBlock>(self) {}
    }
    with_quant(ty, Probe).is_some()
}

/// SIMD levels; each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Scalar,
    /// x86_64 with AVX2, FMA and F16C.
    Avx2,
    /// AVX-512F on top of the AVX2 set (the 512-bit f32 tiles).
    Avx512,
    /// AVX-512 BW and VNNI on top (the 512-bit int8 kernels).
    Avx512Vnni,
}

/// The SIMD level the kernels run at. A value: detected once from the CPU (`Isa::detected`, a
/// fact that never changes), capped where a flag or a test asks (`at_most`), carried by
/// `KernelChoice` and passed to every kernel with SIMD paths, so two models or two tests can run
/// different levels side by side. Only built from the detected level, so a safe caller cannot
/// hand a kernel an instruction set the CPU lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Isa(Level);

impl Isa {
    /// The best level this CPU runs.
    pub fn detected() -> Isa {
        static DETECTED: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        Isa(*DETECTED.get_or_init(detect))
    }

    /// The scalar kernels (the twins every SIMD kernel is checked against).
    pub fn scalar() -> Isa {
        Isa(Level::Scalar)
    }

    /// This level, or `cap` where that is lower.
    pub fn at_most(self, cap: Level) -> Isa {
        Isa(self.0.min(cap))
    }

    pub fn level(self) -> Level {
        self.0
    }

    /// Whether the AVX2 kernels run.
    pub fn simd(self) -> bool {
        self.0 >= Level::Avx2
    }

    /// Whether the AVX-512 f32 kernels run.
    pub fn avx512(self) -> bool {
        self.0 >= Level::Avx512
    }

    /// Whether the 512-bit int8 kernels run.
    pub fn avx512_int8(self) -> bool {
        self.0 >= Level::Avx512Vnni
    }

    /// Whether the AVX-512 BF16 dot product (`vdpbf16ps`) runs: AVX-512 and the CPU's BF16.
    pub fn bf16_dot(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            self.avx512()
                && *HAS.get_or_init(|| is_x86_feature_detected!("avx512bf16") && is_x86_feature_detected!("avx512bw"))
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")) {
        return Level::Scalar;
    }
    if !is_x86_feature_detected!("avx512f") {
        return Level::Avx2;
    }
    match is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni") {
        true => Level::Avx512Vnni,
        false => Level::Avx512,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Scalar
}

/// How prompt tokens' matmuls are computed (`prompt::matmul_prompt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKernel {
    /// AMX bf16 tiles (Intel Xeon since Sapphire Rapids, once Linux grants the tile state).
    Amx,
    /// AVX-512 BF16 dot products (`vdpbf16ps`: AMD Zen 4+, Intel Cooper Lake+).
    Bf16Dot,
    /// The generated tokens' int8 kernels (`matmul_decode`: the packed panels on AVX-512 VNNI):
    /// integer products at 4× the f32 FMA rate, for CPUs without AMX.
    Int8,
    /// The exact f32 kernels (`matmul::matmul`).
    Exact,
}

/// The prompt kernel for a request (`None`: automatic): AMX where the CPU and OS offer it (auto,
/// or asked for), AVX-512 BF16 only when asked for (on the Xeon it was measured on it is no faster
/// than the exact path: flagship pp512 70.6 vs 68.5 tok/s; unmeasured on Zen 4, where it may pay),
/// int8 (auto, or asked for), else exact — also for a kernel the CPU lacks.
fn resolve_prompt(asked: Option<PromptKernel>, decode: DecodeKernel, isa: Isa) -> PromptKernel {
    #[cfg(target_arch = "x86_64")]
    {
        if matches!(asked, None | Some(PromptKernel::Amx)) && isa.avx512() && crate::x86::amx::available() {
            return PromptKernel::Amx;
        }
        if asked == Some(PromptKernel::Bf16Dot) && isa.bf16_dot() {
            return PromptKernel::Bf16Dot;
        }
    }
    // Without AMX, the packed int8 panels (automatic where the weights are packed: int8 decoding
    // on AVX-512 VNNI; measured ~2× the exact path's prompt speed on Zen 4).
    let auto_int8 = asked.is_none() && decode == DecodeKernel::Int8 && crate::packed::packs(isa);
    if auto_int8 || asked == Some(PromptKernel::Int8) {
        return PromptKernel::Int8;
    }
    let _ = (asked, isa);
    PromptKernel::Exact
}

/// How generated tokens' matmuls are computed (`decode::matmul_decode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKernel {
    /// Activations rounded to int8 blocks, integer dot products, for the types that have kernels
    /// (Q8_0, Q5_0, Q4_K, Q6_K); others take the exact path. On packed copies of the weights
    /// (`crate::packed`) where the model made them (AVX-512 VNNI), else on the GGUF rows (`crate::q8`).
    Int8,
    /// As `Int8`, always on the GGUF rows: no packed copy is made (less memory, slower decoding).
    Int8Rows,
    /// The exact f32 kernels (`matmul::matmul`): weights dequantised, f32 activations.
    Exact,
}

/// How the matmuls of prompt and generated tokens are computed: chosen once (CPU features, the
/// `--prompt-kernel` and `--decode-kernel` flags), held by each model and passed to every call, so
/// two models (or two tests) can run different choices side by side.
///
/// The fields are private: a choice is only ever built resolved against the CPU, so no safe
/// caller can hand a kernel the CPU lacks to `matmul_prompt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelChoice {
    prompt: PromptKernel,
    decode: DecodeKernel,
    isa: Isa,
}

impl KernelChoice {
    /// `prompt`: the kernel asked for (`None`: the best the CPU offers; one it lacks gives the
    /// exact path).
    pub fn new(prompt: Option<PromptKernel>, decode: DecodeKernel) -> Self {
        Self::resolve(prompt, decode, Isa::detected())
    }

    fn resolve(prompt: Option<PromptKernel>, decode: DecodeKernel, isa: Isa) -> Self {
        Self {
            prompt: resolve_prompt(prompt, decode, isa),
            decode,
            isa,
        }
    }

    /// The best the CPU offers: AMX prompts where there are tiles, int8 decode.
    pub fn best() -> Self {
        Self::new(None, DecodeKernel::Int8)
    }

    /// The exact f32 kernels for both (reference checks).
    pub fn exact() -> Self {
        Self {
            prompt: PromptKernel::Exact,
            decode: DecodeKernel::Exact,
            isa: Isa::detected(),
        }
    }

    /// The same with the prompt kernel asked for (resolved as in `new`).
    pub fn with_prompt(self, prompt: Option<PromptKernel>) -> Self {
        Self::resolve(prompt, self.decode, self.isa)
    }

    /// The same with the SIMD level capped at `cap` (a prompt kernel the capped level cannot
    /// run falls back to the exact one).
    pub fn with_isa_at_most(self, cap: Level) -> Self {
        Self::resolve(Some(self.prompt), self.decode, self.isa.at_most(cap))
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    pub fn prompt(&self) -> PromptKernel {
        self.prompt
    }

    pub fn decode(&self) -> DecodeKernel {
        self.decode
    }
}

static PROCESS_CHOICE: std::sync::OnceLock<KernelChoice> = std::sync::OnceLock::new();

/// Sets the choice models take at load (`main`, from its flags, before loading any); false if it
/// was set or read already.
pub fn choose_for_process(c: KernelChoice) -> bool {
    PROCESS_CHOICE.set(c).is_ok()
}

/// The choice models take at load unless given another: `choose_for_process`'s, else the best.
pub fn process_choice() -> KernelChoice {
    *PROCESS_CHOICE.get_or_init(KernelChoice::best)
}

/// `R` rows of type `ty` dotted with tokens `t0..t0 + T` of `acts` on the int8 kernels:
/// `[row][token]`, each bit-identical to `q8::dot_scalar` (the scalar twin, used where there is no
/// SIMD). `ty` must be `q8::supported`.
pub fn dot_q8<const R: usize, const T: usize>(
    ty: GgmlType,
    rows: [&[u8]; R],
    acts: &crate::q8::QuantActs,
    t0: usize,
    isa: Isa,
) -> [[f32; T]; R] {
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        struct Dot<'a, const R: usize, const T: usize>([&'a [u8]; R], &'a crate::q8::QuantActs, usize, bool);
        impl<const R: usize, const T: usize> WithBlock for Dot<'_, R, T> {
            type Out = [[f32; T]; R];
            fn run<B: KernelBlock>(self) -> Self::Out {
                let Dot(rows, acts, t0, wide) = self;
                // SAFETY: the features `wide` or the AVX2 set were detected; the kernels assert
                // the block counts against `acts`.
                unsafe {
                    match wide {
                        true => crate::x86::int8_512::dot::<B, R, T>(rows.map(as_blocks), acts, t0),
                        false => crate::x86::int8::dot::<B, R, T>(rows.map(as_blocks), acts, t0),
                    }
                }
            }
        }
        if let Some(v) = with_quant(ty, Dot::<R, T>(rows, acts, t0, isa.avx512_int8())) {
            return v;
        }
    }
    std::array::from_fn(|r| std::array::from_fn(|t| crate::q8::dot_scalar(ty, rows[r], acts, t0 + t)))
}

/// A one-line description of the CPU features that matter here, for logs and bench reports.
pub fn cpu_features() -> String {
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("avx2", is_x86_feature_detected!("avx2")),
            ("fma", is_x86_feature_detected!("fma")),
            ("f16c", is_x86_feature_detected!("f16c")),
            ("avx512f", is_x86_feature_detected!("avx512f")),
            ("avx512bw", is_x86_feature_detected!("avx512bw")),
            ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
            ("avx512bf16", is_x86_feature_detected!("avx512bf16")),
        ] {
            if on {
                f.push(name);
            }
        }
        if crate::x86::amx::available() {
            f.push("amx-bf16");
        }
    }
    let k = process_choice();
    format!(
        "isa={:?} features=[{}] prompt={:?} decode={:?}",
        k.isa().level(),
        f.join(","),
        k.prompt(),
        k.decode()
    )
}

thread_local! {
    static ROW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Dequantises a row on the chosen ISA; the values are bit-identical to `scalar::dequantize_row`.
pub fn dequantize(ty: GgmlType, row: &[u8], out: &mut [f32], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        struct Dequant<'a>(&'a [u8], &'a mut [f32]);
        impl WithBlock for Dequant<'_> {
            type Out = bool;
            fn run<B: KernelBlock>(self) -> bool {
                let whole = self.1.len() == self.0.len() / std::mem::size_of::<B>() * B::SUBS * 32;
                // SAFETY: AVX2, FMA and F16C were detected; the length is checked just above.
                whole && {
                    unsafe { B::dequant(as_blocks(self.0), self.1) };
                    true
                }
            }
        }
        if with_quant(ty, Dequant(row, out)) == Some(true) {
            return;
        }
    }
    scalar::dequantize_row(ty, row, out)
}

/// The dot product every matmul path uses for one (row, token) pair, given the row's exact f32
/// weights: one 8-lane accumulator in element order, then a fixed horizontal sum.
pub fn dot_exact(w: &[f32], x: &[f32], isa: Isa) -> f32 {
    assert_eq!(w.len(), x.len());
    #[cfg(target_arch = "x86_64")]
    if isa.simd() && w.len().is_multiple_of(8) {
        // SAFETY: features detected; equal lengths, multiple of 8.
        return unsafe { crate::x86::tile_1x1(w.as_ptr(), x.as_ptr(), w.len()) };
    }
    dot8_scalar(w, x)
}

/// Scalar dot product with 8 lane accumulators (the scalar twin of the 8-lane SIMD sums).
fn dot8_scalar(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Four rows of the same type dotted with `x` in one pass (`None`: no fused kernel for `ty`).
/// Each result equals `dot_row` of that row, bit for bit.
pub fn dot_rows4(ty: GgmlType, rows: [&[u8]; 4], x: &[f32], isa: Isa) -> Option<[f32; 4]> {
    dot_rows(ty, rows, x, isa)
}

/// `R` rows dotted with `x` on the fused kernels (`None`: none for `ty` on this ISA).
fn dot_rows<const R: usize>(ty: GgmlType, rows: [&[u8]; R], x: &[f32], isa: Isa) -> Option<[f32; R]> {
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        struct Rows<'a, const R: usize>([&'a [u8]; R], &'a [f32]);
        impl<const R: usize> WithBlock for Rows<'_, R> {
            type Out = [f32; R];
            fn run<B: KernelBlock>(self) -> [f32; R] {
                // SAFETY: features detected; the kernel asserts the block counts against x.
                unsafe { B::dot_rows(self.0.map(as_blocks), self.1) }
            }
        }
        return with_quant(ty, Rows(rows, x));
    }
    let _ = (ty, rows, x, isa);
    None
}

/// Whether `ty` has fused dequantise-and-dot row kernels on the chosen ISA (`dot_rows4`,
/// `dot_tokens`).
pub fn fused_rows(ty: GgmlType, isa: Isa) -> bool {
    isa.simd() && has_kernels(ty)
}

/// `R` rows of the same type dotted with `T` tokens (`x`: [T, cols] from its start) in one pass
/// over the weights (`None`: no fused kernel for `ty`). Each result equals `dot_row` of that row
/// and token, bit for bit.
pub fn dot_tokens<const R: usize, const T: usize>(
    ty: GgmlType,
    rows: [&[u8]; R],
    x: &[f32],
    cols: usize,
    isa: Isa,
) -> Option<[[f32; T]; R]> {
    #[cfg(target_arch = "x86_64")]
    if isa.simd() {
        struct Tokens<'a, const R: usize, const T: usize>([&'a [u8]; R], &'a [f32], usize);
        impl<const R: usize, const T: usize> WithBlock for Tokens<'_, R, T> {
            type Out = [[f32; T]; R];
            fn run<B: KernelBlock>(self) -> Self::Out {
                // SAFETY: features detected; the kernel asserts the block counts against cols and x.
                unsafe { B::dot_tokens(self.0.map(as_blocks), self.1, self.2) }
            }
        }
        return with_quant(ty, Tokens::<R, T>(rows, x, cols));
    }
    let _ = (ty, rows, x, cols, isa);
    None
}

/// `dot_tokens` on AVX-512 for `P` token pairs packed by `x86::avx512::pack_pairs` (`None`: no
/// AVX-512 or no fused kernel for `ty`). `[row][pair] = (first, second)`, each bit-identical to
/// `dot_row`.
pub fn dot_pairs<const R: usize, const P: usize>(
    ty: GgmlType,
    rows: [&[u8]; R],
    xp: &[f32],
    cols: usize,
    isa: Isa,
) -> Option<[[(f32, f32); P]; R]> {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        struct Pairs<'a, const R: usize, const P: usize>([&'a [u8]; R], &'a [f32], usize);
        impl<const R: usize, const P: usize> WithBlock for Pairs<'_, R, P> {
            type Out = [[(f32, f32); P]; R];
            fn run<B: KernelBlock>(self) -> Self::Out {
                // SAFETY: AVX-512F and the AVX2 set detected; the kernel asserts the block counts.
                unsafe { B::dot_pairs(self.0.map(as_blocks), self.1, self.2) }
            }
        }
        return with_quant(ty, Pairs::<R, P>(rows, xp, cols));
    }
    let _ = (ty, rows, xp, cols, isa);
    None
}

/// Dot product of one quantised row with f32 activations: `dot_exact(dequantize(row), x)`, fused
/// in registers where a kernel exists.
pub fn dot_row(ty: GgmlType, row: &[u8], x: &[f32], isa: Isa) -> f32 {
    if let Some([v]) = dot_rows(ty, [row], x, isa) {
        return v;
    }
    ROW.with(|b| {
        let mut b = b.borrow_mut();
        b.resize(x.len(), 0.0);
        dequantize(ty, row, &mut b, isa);
        dot_exact(&b, x, isa)
    })
}

/// f32 dot product on the chosen ISA (attention; not part of the matmul's exactness contract).
pub fn dot_f32(a: &[f32], b: &[f32], isa: Isa) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if isa.simd() && a.len().is_multiple_of(8) {
        // SAFETY: features detected; equal lengths, multiple of 8.
        return unsafe { crate::x86::dot_f32(a, b) };
    }
    dot8_scalar(a, b)
}
