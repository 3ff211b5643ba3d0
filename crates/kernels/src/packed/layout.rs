//! The packed panel layouts: 16 weight rows interleaved so that one 64-byte vector holds the same
//! 4 consecutive weights of all 16 rows (lane `l` = row `l`, 4 bytes per lane), the unit
//! `vpdpbusd` multiplies against 4 broadcast activation bytes. Weights are stored unsigned (what
//! `vpdpbusd`'s first operand must be): Q8_0 as `q + 128`, Q5_0 as its 5-bit `q` (0..31), Q4_K
//! as its nibble, Q6_K as its 6-bit `q` (0..63); the kernels subtract the offset through the
//! activations' block sums. Scales sit in a header before the integers they scale, one lane per row.
//!
//! Every byte of a GGUF row survives packing (`unpack` gives the rows back bit for bit), so the
//! packed copy can replace the mapped tensor for every path. Per type, for a panel of 16 rows
//! (all offsets multiples of 64 from the panel's start):
//! - Q8_0, per pair of 32-blocks (1,088 B): f16 scales [2][16] · then per block 8 steps × [16][4] u8.
//! - Q5_0, per pair of 32-blocks (704 B): f16 scales [2][16] · then per block 4 vectors × [16][4]
//!   nibbles (low nibble: step 2v, high: step 2v + 1) and 8 u64 masks of the fifth bits (bit
//!   4l + j of mask s: row l, weight 4s + j).
//! - Q4_K, per 256-weight super-block (2,304 B, as in the file): f16 d [16] · f16 dmin [16] · the
//!   12 packed 6-bit scale/min bytes [12][16] · then per 32-weight sub-block 4 nibble vectors as
//!   Q5_0's.
//! - Q6_K, per super-block (3,392 B): f16 d [16], 32 bytes of padding · i8 scales [16][16] · then per 32-block 4 nibble
//!   vectors of the low bits as above and 2 vectors of the high 2 bits (vector h, bits 2k..2k+1:
//!   step 4h + k).

use crate::blocks::{as_blocks, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0};
use crate::GgmlType;

/// Rows per panel (the 16 i32 lanes of a 512-bit register).
pub const LANES: usize = 16;

/// Columns per packed group of `ty` and a panel's bytes per group, or `None` if `ty` has no
/// packed layout.
fn groups(ty: GgmlType) -> Option<(usize, usize)> {
    match ty {
        GgmlType::Q8_0 => Some((64, 1088)),
        GgmlType::Q5_0 => Some((64, 704)),
        GgmlType::Q4K => Some((256, 2304)),
        GgmlType::Q6K => Some((256, 3392)),
        _ => None,
    }
}

/// Columns per packed group of `ty` (the column alignment of a panel's parts), if it is packed.
pub fn group(ty: GgmlType) -> Option<usize> {
    groups(ty).map(|(g, _)| g)
}

/// Bytes of one panel of `cols` weights of `ty`, or `None` if `ty` has no packed layout or
/// `cols` does not divide into its groups.
pub fn panel_bytes(ty: GgmlType, cols: usize) -> Option<usize> {
    let (group, bytes) = groups(ty)?;
    (cols > 0 && cols.is_multiple_of(group)).then_some(cols / group * bytes)
}

/// Packs 16 GGUF rows of `ty` into `out` (`panel_bytes` long).
pub fn pack(ty: GgmlType, rows: &[&[u8]; LANES], out: &mut [u8]) {
    match ty {
        GgmlType::Q8_0 => pack_q8_0(&rows.map(as_blocks::<BlockQ8_0>), out),
        GgmlType::Q5_0 => pack_q5_0(&rows.map(as_blocks::<BlockQ5_0>), out),
        GgmlType::Q4K => pack_q4k(&rows.map(as_blocks::<BlockQ4K>), out),
        GgmlType::Q6K => pack_q6k(&rows.map(as_blocks::<BlockQ6K>), out),
        _ => panic!("no packed layout for {}", ty.name()),
    }
}

/// The 16 GGUF rows of a packed panel, written into `rows` (each `row_bytes` long).
pub fn unpack(ty: GgmlType, panel: &[u8], rows: &mut [&mut [u8]; LANES]) {
    match ty {
        GgmlType::Q8_0 => unpack_q8_0(panel, rows),
        GgmlType::Q5_0 => unpack_q5_0(panel, rows),
        GgmlType::Q4K => unpack_q4k(panel, rows),
        GgmlType::Q6K => unpack_q6k(panel, rows),
        _ => panic!("no packed layout for {}", ty.name()),
    }
}

/// Byte `j` of lane `l` in a [16][4] vector.
fn at(l: usize, j: usize) -> usize {
    4 * l + j
}

fn pack_q8_0(rows: &[&[BlockQ8_0]; LANES], out: &mut [u8]) {
    for (g, o) in out.chunks_exact_mut(1088).enumerate() {
        for h in 0..2 {
            let b = 2 * g + h;
            for (l, row) in rows.iter().enumerate() {
                o[32 * h + 2 * l..32 * h + 2 * l + 2].copy_from_slice(&row[b].d);
                for (e, &q) in row[b].qs.iter().enumerate() {
                    o[64 + 512 * h + 64 * (e / 4) + at(l, e % 4)] = (q as u8) ^ 0x80;
                }
            }
        }
    }
}

fn unpack_q8_0(panel: &[u8], rows: &mut [&mut [u8]; LANES]) {
    for (g, o) in panel.chunks_exact(1088).enumerate() {
        for h in 0..2 {
            let b = 2 * g + h;
            let data = &o[64 + 512 * h..];
            for (l, row) in rows.iter_mut().enumerate() {
                let blk = &mut row[34 * b..34 * (b + 1)];
                blk[..2].copy_from_slice(&o[32 * h + 2 * l..32 * h + 2 * l + 2]);
                for e in 0..32 {
                    blk[2 + e] = data[64 * (e / 4) + at(l, e % 4)] ^ 0x80;
                }
            }
        }
    }
}

/// Element `e` (0..32) of a Q5_0 block as its unsigned 5-bit value.
pub(super) fn q5(blk: &BlockQ5_0, e: usize) -> u8 {
    let nib = if e < 16 { blk.qs[e] & 0x0F } else { blk.qs[e - 16] >> 4 };
    nib | (((u32::from_le_bytes(blk.qh) >> e) & 1) as u8) << 4
}

/// A block's 32 unsigned values for each of the 16 rows.
type BlockValues = [[u8; 32]; LANES];

/// 32 unsigned values per lane as 4 nibble vectors (their low 4 bits) and, where `masks`, their
/// fifth bits as 8 u64 masks: the integer part of a Q5_0 / Q4_K / Q6_K block.
fn put_ints(out: &mut [u8], v: &BlockValues, masks: bool) {
    let mut m = [0u64; 8];
    for (l, v) in v.iter().enumerate() {
        for vec in 0..4 {
            for j in 0..4 {
                out[64 * vec + at(l, j)] = (v[8 * vec + j] & 0x0F) | (v[8 * vec + 4 + j] & 0x0F) << 4;
            }
        }
        for (s, m) in m.iter_mut().enumerate() {
            let bits = (0..4).fold(0u64, |b, j| b | (((v[4 * s + j] >> 4) & 1) as u64) << j);
            *m |= bits << (4 * l);
        }
    }
    if masks {
        for (s, m) in m.iter().enumerate() {
            out[256 + 8 * s..256 + 8 * s + 8].copy_from_slice(&m.to_le_bytes());
        }
    }
}

/// Each row's values of one block: `f(row, element)`.
fn values(f: impl Fn(usize, usize) -> u8) -> BlockValues {
    std::array::from_fn(|l| std::array::from_fn(|e| f(l, e)))
}

/// The inverse of `put_ints`: value `e` of lane `l`.
fn get_int(data: &[u8], l: usize, e: usize, masks: bool) -> u8 {
    let (vec, step, j) = (e / 8, e / 4 % 2, e % 4);
    let nib = (data[64 * vec + at(l, j)] >> (4 * step)) & 0x0F;
    if !masks {
        return nib;
    }
    let bit = at(l, j);
    nib | ((data[256 + 8 * (e / 4) + bit / 8] >> (bit % 8)) & 1) << 4
}

fn pack_q5_0(rows: &[&[BlockQ5_0]; LANES], out: &mut [u8]) {
    out.fill(0);
    for (g, o) in out.chunks_exact_mut(704).enumerate() {
        for h in 0..2 {
            let b = 2 * g + h;
            for (l, row) in rows.iter().enumerate() {
                o[32 * h + 2 * l..32 * h + 2 * l + 2].copy_from_slice(&row[b].d);
            }
            let v = values(|l, e| q5(&rows[l][b], e));
            put_ints(&mut o[64 + 320 * h..64 + 320 * (h + 1)], &v, true);
        }
    }
}

fn unpack_q5_0(panel: &[u8], rows: &mut [&mut [u8]; LANES]) {
    for (g, o) in panel.chunks_exact(704).enumerate() {
        for h in 0..2 {
            let b = 2 * g + h;
            let data = &o[64 + 320 * h..];
            for (l, row) in rows.iter_mut().enumerate() {
                let blk = &mut row[22 * b..22 * (b + 1)];
                blk[..2].copy_from_slice(&o[32 * h + 2 * l..32 * h + 2 * l + 2]);
                let mut qh = 0u32;
                for e in 0..32 {
                    let v = get_int(data, l, e, true);
                    qh |= ((v >> 4) as u32) << e;
                    let (i, shift) = (e % 16, 4 * (e / 16));
                    if shift == 0 {
                        blk[6 + i] = v & 0x0F;
                    } else {
                        blk[6 + i] |= (v & 0x0F) << 4;
                    }
                }
                blk[2..6].copy_from_slice(&qh.to_le_bytes());
            }
        }
    }
}

/// Nibble `i` (0..32) of Q4_K sub-block `j`.
fn q4k(blk: &BlockQ4K, j: usize, i: usize) -> u8 {
    let byte = blk.qs[32 * (j / 2) + i];
    if j.is_multiple_of(2) {
        byte & 0x0F
    } else {
        byte >> 4
    }
}

fn pack_q4k(rows: &[&[BlockQ4K]; LANES], out: &mut [u8]) {
    out.fill(0);
    for (k, o) in out.chunks_exact_mut(2304).enumerate() {
        for (l, row) in rows.iter().enumerate() {
            let blk = &row[k];
            o[2 * l..2 * l + 2].copy_from_slice(&blk.d);
            o[32 + 2 * l..32 + 2 * l + 2].copy_from_slice(&blk.dmin);
            for (i, &b) in blk.scales.iter().enumerate() {
                o[64 + 16 * i + l] = b;
            }
        }
        for j in 0..8 {
            let v = values(|l, i| q4k(&rows[l][k], j, i));
            put_ints(&mut o[256 + 256 * j..256 + 256 * (j + 1)], &v, false);
        }
    }
}

fn unpack_q4k(panel: &[u8], rows: &mut [&mut [u8]; LANES]) {
    for (k, o) in panel.chunks_exact(2304).enumerate() {
        for (l, row) in rows.iter_mut().enumerate() {
            let blk = &mut row[144 * k..144 * (k + 1)];
            blk[..2].copy_from_slice(&o[2 * l..2 * l + 2]);
            blk[2..4].copy_from_slice(&o[32 + 2 * l..32 + 2 * l + 2]);
            for i in 0..12 {
                blk[4 + i] = o[64 + 16 * i + l];
            }
            for j in 0..8 {
                let data = &o[256 + 256 * j..];
                for i in 0..32 {
                    let v = get_int(data, l, i, false);
                    let byte = &mut blk[16 + 32 * (j / 2) + i];
                    *byte = if j.is_multiple_of(2) {
                        (*byte & 0xF0) | v
                    } else {
                        (*byte & 0x0F) | v << 4
                    };
                }
            }
        }
    }
}

/// Where element `i` (0..32) of Q6_K 32-block `j` (0..8) keeps its bits: the `ql` byte and
/// nibble shift, the `qh` byte and 2-bit shift.
fn q6k_bits(j: usize, i: usize) -> (usize, u32, usize, u32) {
    let (half, r) = (j / 4, j % 4);
    (
        64 * half + 32 * (r % 2) + i,
        4 * (r as u32 / 2),
        32 * half + i,
        2 * r as u32,
    )
}

/// Element `i` of Q6_K 32-block `j` as its unsigned 6-bit value.
pub(super) fn q6k(blk: &BlockQ6K, j: usize, i: usize) -> u8 {
    let (ql, ls, qh, hs) = q6k_bits(j, i);
    ((blk.ql[ql] >> ls) & 0x0F) | ((blk.qh[qh] >> hs) & 3) << 4
}

fn pack_q6k(rows: &[&[BlockQ6K]; LANES], out: &mut [u8]) {
    out.fill(0);
    for (k, o) in out.chunks_exact_mut(3392).enumerate() {
        for (l, row) in rows.iter().enumerate() {
            let blk = &row[k];
            o[2 * l..2 * l + 2].copy_from_slice(&blk.d);
            for g in 0..16 {
                o[64 + 16 * g + l] = blk.scales[g] as u8;
            }
        }
        for j in 0..8 {
            let data = &mut o[320 + 384 * j..320 + 384 * (j + 1)];
            let v = values(|l, i| q6k(&rows[l][k], j, i));
            put_ints(data, &v, false);
            for (l, v) in v.iter().enumerate() {
                for (i, &v) in v.iter().enumerate() {
                    let (h, k2, jj) = (i / 16, i / 4 % 4, i % 4);
                    data[256 + 64 * h + at(l, jj)] |= (v >> 4) << (2 * k2);
                }
            }
        }
    }
}

fn unpack_q6k(panel: &[u8], rows: &mut [&mut [u8]; LANES]) {
    for (k, o) in panel.chunks_exact(3392).enumerate() {
        for (l, row) in rows.iter_mut().enumerate() {
            let blk = &mut row[210 * k..210 * (k + 1)];
            blk.fill(0);
            blk[208..210].copy_from_slice(&o[2 * l..2 * l + 2]);
            for g in 0..16 {
                blk[192 + g] = o[64 + 16 * g + l];
            }
            for j in 0..8 {
                let data = &o[320 + 384 * j..];
                for i in 0..32 {
                    let (h, k2, jj) = (i / 16, i / 4 % 4, i % 4);
                    let high = (data[256 + 64 * h + at(l, jj)] >> (2 * k2)) & 3;
                    let low = get_int(data, l, i, false);
                    let (ql, ls, qh, hs) = q6k_bits(j, i);
                    blk[ql] |= low << ls;
                    blk[128 + qh] |= high << hs;
                }
            }
        }
    }
}
