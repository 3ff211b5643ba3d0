//! Numeric kernels. The only crate with hot-path `unsafe`.
//!
//! Layout
//! - `attention`: prompt tokens' attention over f32 copies of a KV head, as tiled GEMMs.
//! - `flash`: prompt tokens' attention on bf16 tiles with an online softmax (`vdpbf16ps`).
//! - `blocks`: `#[repr(C)]` quant block structs with size asserts, viewed straight from file bytes.
//! - `scalar`: the reference: dequantisation of every type and a plain dot product. The oracle.
//! - `x86`: AVX2+FMA dot products (dequantise-in-register, f32 activations) and the f32 GEMM tile.
//! - `dispatch`: picks the implementation once at run time from the CPU's features.
//! - `matmul`: `QMatrix` (a quantised weight matrix) and the parallel matmul over many tokens.
//! - `q8`: generated tokens' arithmetic: activations rounded to int8 blocks, its contract and scalar twin.
//! - `gemm_i8`: dense int8 matmul (per-row scales, VNNI) for models whose weights arrive as floats.
//! - `dense`: a dense layer from float weights, held as f32 or int8 rows (`Precision`).
//! - `decode`: generated tokens' matmul on the int8 kernels (`matmul_decode`).
//! - `packed`: weights repacked at load into 16-row panels for generated tokens (`matmul_packed`).
//! - `prompt`: prompt tokens' matmul on the CPU's matrix unit (AMX bf16) where there is one.
//! - `pages`: transparent huge pages for the KV pool and the packed weights.
//! - `pool`: the compute thread pool every forward step runs in.
//! - `rng`: a small seeded RNG (xoshiro256**) so the same seed gives the same samples on every build.
//! - `conv`: channels-last convolutions for image models (SAME padding, im2col, depthwise, ReLU6).
//! - `kv_f16`: an f16 KV cache's keys stored position-minor per block; generated tokens' scores on them.
//! - `kv_q8`, `kv_q4`: the KV cache in ggml's q8_0 / q4_0 blocks, read by attention row by row.
//! - `ops`: small f32 vector ops of the forward pass (rms_norm, softmax, silu, rope helpers).

/// Returns `$k::<G>(args)` for the group sizes the attention kernels are built for (`g` query heads
/// per KV head: 1, 2, 4, 6, 7, 8); any other size falls through to the caller's next path.
#[cfg(target_arch = "x86_64")]
macro_rules! by_group {
    ($g:expr, $k:ident($($a:expr),*)) => {
        match $g {
            1 => return $k::<1>($($a),*),
            2 => return $k::<2>($($a),*),
            4 => return $k::<4>($($a),*),
            6 => return $k::<6>($($a),*),
            7 => return $k::<7>($($a),*),
            8 => return $k::<8>($($a),*),
            _ => {}
        }
    };
}

pub mod attention;
pub mod bandwidth;
pub mod blocks;
pub mod conv;
pub mod decode;
pub mod dense;
pub mod dispatch;
pub mod flash;
pub mod gemm_i8;
pub mod kv_f16;
pub mod kv_q4;
pub mod kv_q8;
pub mod matmul;
pub mod ops;
pub mod packed;
pub mod pages;
pub mod pool;
pub mod prompt;
pub mod q8;
pub mod rng;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86;

pub use decode::matmul_decode;
pub use dispatch::{cpu_features, process_choice, DecodeKernel, Isa, KernelChoice, Level, PromptKernel};
pub use matmul::{matmul, QMatrix};
pub use prompt::matmul_prompt;
pub use tandem_gguf::GgmlType;
