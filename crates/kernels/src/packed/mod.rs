//! Weights repacked once at load for generated tokens' matmuls: panels of 16 rows interleaved so
//! one `vpdpbusd` multiplies 4 weights of 16 rows by 4 activation bytes, a block's integers summed
//! exactly per row, then one float rescale per block (`twin` states the arithmetic). The unpacked
//! `q8` kernels decode two 32-blocks of one row per register and rescale every 4-product lane;
//! here the weight decoding and the rescale are shared by 16 rows, and every token after the first
//! costs only its `vpdpbusd`s.
//!
//! `PackedMatrix::pack` copies a GGUF matrix into `layout`'s panels; `unpack` restores its rows
//! bit for bit (for paths that read GGUF rows). `matmul_packed` runs AVX-512 VNNI (the twin
//! elsewhere: correct, slow — callers pack only where `packs(isa)`).
//!
//! Shapes: x: [n_tok, cols] f32, y: [n_tok, rows] f32; panel p holds rows 16p..16p + 16.

pub mod layout;
pub mod twin;

use std::cell::RefCell;

use rayon::prelude::*;

use crate::dispatch::Isa;
use crate::matmul::{OutPtr, QMatrix};
use crate::q8::{self, QuantActs};
use crate::GgmlType;
pub use layout::LANES;

/// A cache line, so panels start 64-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A weight matrix in packed panels (see `layout`).
pub struct PackedMatrix {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// Bytes per panel (a multiple of 64).
    panel: usize,
    lines: Vec<Line>,
}

/// Whether matrices are packed for this ISA: the packed kernels need AVX-512 BW + VNNI.
pub fn packs(isa: Isa) -> bool {
    isa.avx512_int8()
}

impl PackedMatrix {
    /// The packed copy of `w`, or `None` where its type has no packed layout or its shape does
    /// not divide into panels (16 rows) and groups (64 or 256 columns).
    pub fn pack(w: &QMatrix) -> Option<Self> {
        let panel = layout::panel_bytes(w.ty, w.cols)?;
        if !w.rows.is_multiple_of(LANES) || w.rows == 0 {
            return None;
        }
        let n = w.rows / LANES * panel / 64;
        let mut lines = Vec::with_capacity(n);
        crate::pages::advise_huge(lines.as_ptr() as *const u8, n * 64);
        lines.resize(n, Line([0; 64]));
        let bytes = as_bytes_mut(&mut lines);
        bytes.par_chunks_mut(panel).enumerate().for_each(|(p, out)| {
            let rows: [&[u8]; LANES] = std::array::from_fn(|l| w.row(LANES * p + l));
            layout::pack(w.ty, &rows, out);
        });
        Some(Self {
            ty: w.ty,
            rows: w.rows,
            cols: w.cols,
            panel,
            lines,
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.lines.len() * 64
    }

    pub fn panels(&self) -> usize {
        self.rows / LANES
    }

    pub(crate) fn panel(&self, p: usize) -> &[u8] {
        &as_bytes(&self.lines)[p * self.panel..(p + 1) * self.panel]
    }

    /// The GGUF bytes of rows 16p..16p + 16 into `out` (16 rows, row after row).
    pub fn unpack_panel(&self, p: usize, out: &mut [u8]) {
        let rb = out.len() / LANES;
        let mut it = out.chunks_exact_mut(rb);
        let mut rows: [&mut [u8]; LANES] = std::array::from_fn(|_| it.next().expect("16 rows"));
        layout::unpack(self.ty, self.panel(p), &mut rows);
    }

    /// Panel `p`'s 16 GGUF rows, unpacked into a new buffer, and the bytes of one row (the
    /// scalar paths' input).
    fn gguf_rows(&self, p: usize) -> (Vec<u8>, usize) {
        let rb = self.ty.bytes_for(self.cols as u64).expect("whole blocks") as usize;
        let mut rows = vec![0u8; LANES * rb];
        self.unpack_panel(p, &mut rows);
        (rows, rb)
    }

    /// Columns `c0..c1` of the panel's 16 rows as f32, equal to `scalar::dequantize_row` of the
    /// GGUF rows, into `out[l · stride + c − c0]`. `c0` and `c1` are multiples of `group()`.
    pub fn dequantize_panel(&self, p: usize, (c0, c1): (usize, usize), out: &mut [f32], stride: usize, isa: Isa) {
        let g = self.group();
        assert!(c0.is_multiple_of(g) && c1.is_multiple_of(g) && c0 < c1 && c1 <= self.cols);
        assert!(
            stride >= c1 - c0 && out.len() >= 15 * stride + (c1 - c0),
            "out holds 16 rows"
        );
        #[cfg(target_arch = "x86_64")]
        if packs(isa) {
            // SAFETY: AVX-512 checked by `packs`; `out` holds 16 rows of `stride` (asserted).
            unsafe { crate::x86::packed_dequant::dequantize(self, p, c0, c1, out.as_mut_ptr(), stride) };
            return;
        }
        let _ = isa;
        let (rows, rb) = self.gguf_rows(p);
        let (bl, bb) = (self.ty.block_len(), self.ty.block_bytes());
        for (l, row) in rows.chunks_exact(rb).enumerate() {
            let bytes = &row[c0 / bl * bb..c1 / bl * bb];
            crate::scalar::dequantize_row(self.ty, bytes, &mut out[l * stride..l * stride + c1 - c0]);
        }
    }

    /// Columns per packed group: the alignment `dequantize_panel` needs.
    pub fn group(&self) -> usize {
        layout::group(self.ty).expect("a packed type")
    }
}

fn as_bytes(lines: &[Line]) -> &[u8] {
    // SAFETY: `Line` is 64 plain bytes with no padding.
    unsafe { std::slice::from_raw_parts(lines.as_ptr() as *const u8, lines.len() * 64) }
}

fn as_bytes_mut(lines: &mut [Line]) -> &mut [u8] {
    // SAFETY: as `as_bytes`; the borrow is unique.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr() as *mut u8, lines.len() * 64) }
}

/// The offset packing adds to `ty`'s weights to store them unsigned, and the weights that share
/// one correction: a block (Q8_0: 128, Q5_0: 16) or a 16-weight group (Q6_K: 32). `None`: Q4_K's
/// nibbles are unsigned already.
fn offset(ty: GgmlType) -> Option<(i32, usize)> {
    match ty {
        GgmlType::Q8_0 => Some((128, 32)),
        GgmlType::Q5_0 => Some((16, 32)),
        GgmlType::Q6K => Some((32, 16)),
        _ => None,
    }
}

/// Per token, the integer offsets that turn a block's unsigned-weight dot product into the signed
/// one: `−offset · Σq` over each span of `offset`'s.
fn corrections(ty: GgmlType, acts: &QuantActs, out: &mut Vec<i32>) {
    out.clear();
    if let Some((offset, span)) = offset(ty) {
        let sums = acts
            .qs
            .chunks_exact(span)
            .map(|g| g.iter().map(|&q| q as i32).sum::<i32>());
        out.extend(sums.map(|s| -offset * s));
    }
}

/// Corrections per token (as `corrections` lays them out).
pub(crate) fn corrections_per_token(ty: GgmlType, cols: usize) -> usize {
    offset(ty).map_or(0, |(_, span)| cols / span)
}

thread_local! {
    /// The call's activations and their corrections (calling thread; read by the workers).
    static ACTS: RefCell<(QuantActs, Vec<i32>)> = RefCell::new((QuantActs::default(), Vec::new()));
}

/// Tokens multiplied per pass over a panel (their accumulators fill the registers).
const TOKENS_PER_PASS: usize = 8;

/// `y[t][r] = Σ_c x[t][c] · W[r][c]` under `twin`'s contract. x: [n_tok, cols], y: [n_tok, rows].
pub fn matmul_packed(w: &PackedMatrix, x: &[f32], y: &mut [f32], isa: Isa) {
    let n_tok = x.len() / w.cols;
    assert_eq!(x.len(), n_tok * w.cols, "x is not a whole number of rows");
    assert_eq!(y.len(), n_tok * w.rows, "y has the wrong size");
    let out = OutPtr(y.as_mut_ptr());
    let threads = rayon::current_num_threads().max(1);
    let panels = w.panels();
    // Enough chunks to balance the threads, none so small that scheduling dominates.
    let chunk = (panels / (threads * 4)).clamp(1, 64);
    ACTS.with(|cell| {
        let (acts, corr) = &mut *cell.borrow_mut();
        q8::quantize(x, w.cols, acts, isa);
        corrections(w.ty, acts, corr);
        let (acts, corr) = (&*acts, &corr[..]);
        (0..panels.div_ceil(chunk)).into_par_iter().for_each(|c| {
            for p in c * chunk..((c + 1) * chunk).min(panels) {
                run_panel(w, p, acts, corr, out, isa);
            }
        });
    });
}

/// Panel `p` for every token, `TOKENS_PER_PASS` at a time.
fn run_panel(w: &PackedMatrix, p: usize, acts: &QuantActs, corr: &[i32], out: OutPtr, isa: Isa) {
    let n_tok = acts.tokens();
    #[cfg(target_arch = "x86_64")]
    if packs(isa) {
        let mut t = 0;
        while t < n_tok {
            let nt = (n_tok - t).min(TOKENS_PER_PASS);
            // SAFETY: AVX-512 BW + VNNI checked by `packs`; the panel and the tokens' buffers
            // have the sizes the kernel reads; this task owns the panel's outputs.
            unsafe { crate::x86::packed::panel_tokens(w, p, acts, corr, t, nt, out) };
            t += nt;
        }
        return;
    }
    let _ = (isa, corr);
    let (rows, rb) = w.gguf_rows(p);
    for (l, row) in rows.chunks_exact(rb).enumerate() {
        for t in 0..n_tok {
            // SAFETY: this task owns rows 16p..16p + 16 of every token's output.
            unsafe { *out.at(t * w.rows + LANES * p + l) = twin::dot(w.ty, row, acts, t) };
        }
    }
}
