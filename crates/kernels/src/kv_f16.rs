//! Keys of an f16 KV cache stored position-minor within each block of `BLOCK` positions:
//! one block of one layer is [kv_dim][BLOCK] (`keys[c · BLOCK + r]` = channel c of the key at row
//! r), so channel d of 16 consecutive positions is one 32-byte load.
//!
//! That layout lets a generated token's scores run 16 positions per vector with no horizontal
//! sums: for each channel d, one f16 → f32 conversion of 16 keys is shared by the `g` query heads
//! of the group, each adding `q[j][d] · K[p][d]` to its own 16 lanes. Each score is one FMA chain
//! over d in order, then `· scale` — the chain the prompt tiles (`attention::prompt_tile`) and the
//! scalar twin run — so every ISA, the twin and a prompt token at the same position give the
//! same bits. The same layout converts to the prompt tiles' key panels ([hd][16] per 16
//! positions) with contiguous loads.

use std::ops::Range;

use crate::dispatch::Isa;

/// Positions per block (the KV cache's page size).
pub const BLOCK: usize = 32;

/// Stores one position's key row (f32 [kv_dim]) at row `r` of a block's keys ([kv_dim][BLOCK]).
pub fn write_row(row: &[f32], r: usize, block: &mut [u16], isa: Isa) {
    assert!(r < BLOCK && block.len() == row.len() * BLOCK);
    let mut h = [0u16; 8];
    for (c0, chunk) in row.chunks(8).enumerate() {
        let h = &mut h[..chunk.len()];
        crate::ops::to_f16(chunk, h, isa);
        for (i, &x) in h.iter().enumerate() {
            block[(c0 * 8 + i) * BLOCK + r] = x;
        }
    }
}

/// Scores of `g` query heads (q: [g, hd]) against rows `rows` of one head's keys in one block
/// (`keys`: [hd][BLOCK], the head's channels): `scores[j·ld + i] = (Σ_d q[j][d] · K[r][d]) · scale`
/// with r = rows.start + i, one FMA chain over d in order. `next`: the keys the caller reads next
/// (the following block), fetched into cache meanwhile (a hint: blocks lie anywhere in the pool).
#[allow(clippy::too_many_arguments)]
pub fn scores(
    q: &[f32],
    g: usize,
    keys: &[u16],
    next: &[u16],
    rows: Range<usize>,
    ld: usize,
    scale: f32,
    scores: &mut [f32],
    isa: Isa,
) {
    let hd = q.len() / g;
    assert_shape(q, g, hd, keys, rows.clone(), ld, scores);
    #[cfg(target_arch = "x86_64")]
    {
        use crate::x86::attend::{scores_blocked_256 as s256, scores_blocked_512 as s512};
        let (r0, r1) = (rows.start, rows.end);
        if isa.avx512() {
            // SAFETY: AVX-512F and the AVX2 set detected; shapes asserted above.
            unsafe { by_group!(g, s512(q, hd, keys, next.as_ptr(), r0, r1, ld, scale, scores)) }
        }
        if isa.simd() {
            // SAFETY: AVX2, FMA and F16C detected; shapes asserted above.
            unsafe { by_group!(g, s256(q, hd, keys, next.as_ptr(), r0, r1, ld, scale, scores)) }
        }
    }
    scores_scalar(q, g, keys, rows, ld, scale, scores)
}

/// The shapes `scores` and its SIMD kernels need: q [g, hd], a whole block of the head's keys, a
/// non-empty run of the block's rows, and room for g rows of scores `ld` apart.
pub(crate) fn assert_shape(
    q: &[f32],
    g: usize,
    hd: usize,
    keys: &[u16],
    rows: Range<usize>,
    ld: usize,
    scores: &[f32],
) {
    assert!(q.len() == g * hd && keys.len() >= hd * BLOCK && rows.start < rows.end && rows.end <= BLOCK);
    assert!(ld >= rows.len() && scores.len() >= (g - 1) * ld + rows.len());
}

/// The scalar twin of `scores`: the same chains, element by element.
pub fn scores_scalar(q: &[f32], g: usize, keys: &[u16], rows: Range<usize>, ld: usize, scale: f32, scores: &mut [f32]) {
    let hd = q.len() / g;
    for (i, r) in rows.enumerate() {
        for j in 0..g {
            let mut acc = 0f32;
            for d in 0..hd {
                acc = q[j * hd + d].mul_add(half::f16::from_bits(keys[d * BLOCK + r]).to_f32(), acc);
            }
            scores[j * ld + i] = acc * scale;
        }
    }
}

/// One block of one head's keys ([hd][BLOCK]) as the prompt tiles' two key panels (f32
/// [2][hd][16], `attention::key_at`), rows `rows..BLOCK` as zeros. f16 → f32 is exact, so every
/// ISA gives the same bits.
pub fn to_panels(keys: &[u16], hd: usize, rows: usize, dst: &mut [f32], isa: Isa) {
    assert!(keys.len() >= hd * BLOCK && dst.len() == 2 * hd * 16 && rows <= BLOCK);
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: AVX-512F detected; lengths asserted above.
        return unsafe { crate::x86::attend::key_panels_512(keys, hd, rows, dst) };
    }
    for (half, panel) in dst.chunks_exact_mut(hd * 16).enumerate() {
        for (d, out) in panel.chunks_exact_mut(16).enumerate() {
            let at = d * BLOCK + half * 16;
            crate::attention::f16_row(&keys[at..at + 16], out, isa);
            let live = rows.saturating_sub(half * 16).min(16);
            out[live..].fill(0.0);
        }
    }
}

/// One block of one head's values ([BLOCK][hd]) as its 16 pairs of positions in the value tiles
/// of `ld` positions (`attention::value_tiles`' layout, [hd / 16][ld / 2][16]): pairs
/// `m0..m0 + 16`, u32 = bf16(v[2m][d]) | bf16(v[2m + 1][d]) << 16, rows `rows..BLOCK` as zeros —
/// the bits `value_tiles` gives on the same values as f32.
pub fn to_value_tiles(values: &[u16], hd: usize, rows: usize, ld: usize, m0: usize, out: &mut [u32], isa: Isa) {
    assert!(values.len() >= BLOCK * hd && rows <= BLOCK && hd.is_multiple_of(16));
    assert!(ld.is_multiple_of(32) && m0 + BLOCK / 2 <= ld / 2 && out.len() == ld * hd / 2);
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: AVX-512F detected; shapes asserted above.
        return unsafe { crate::x86::attend::value_pairs_512(values, hd, rows, ld, m0, out) };
    }
    let v = |r: usize, d: usize| {
        if r < rows {
            half::f16::from_bits(values[r * hd + d]).to_f32()
        } else {
            0.0
        }
    };
    for m in 0..BLOCK / 2 {
        for d in 0..hd {
            let pair = crate::attention::bf16_pair(v(2 * m, d), v(2 * m + 1, d));
            out[d / 16 * ld * 8 + (m0 + m) * 16 + d % 16] = pair;
        }
    }
}
