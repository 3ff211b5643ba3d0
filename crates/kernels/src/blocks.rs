//! Quant block layouts, byte for byte as in GGUF files. Every field is a byte array so the
//! structs have alignment 1 and can be viewed in place from any offset of a mapped file.

use half::f16;

#[inline]
pub fn f16_le(b: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// 32 weights: `w = d * (q - 8)`, q 4-bit; low nibbles are elements 0..16, high 16..32.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4_0 {
    pub d: [u8; 2],
    pub qs: [u8; 16],
}

/// 32 weights: `w = d * (q - 16)`, q 5-bit: 4 low bits as in Q4_0, bit 4 of element `e` is bit `e` of `qh`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5_0 {
    pub d: [u8; 2],
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

/// 32 weights: `w = d * q`, q signed 8-bit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [i8; 32],
}

/// 256 weights in 8 sub-blocks of 32: `w = d * sc[j] * q - dmin * m[j]`, 6-bit sc/m packed in `scales`,
/// q 4-bit; each 32-byte run of `qs` holds sub-block 2c in low nibbles and 2c+1 in high nibbles.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ4K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}

/// As Q4_K with a fifth bit per weight in `qh` (bit 2c of qh[l] for the low nibble of run c, 2c+1 for the high).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ5K {
    pub d: [u8; 2],
    pub dmin: [u8; 2],
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}

/// 256 weights in 16 sub-blocks of 16: `w = d * scales[j] * (q - 32)`, q 6-bit (4 low bits in `ql`, 2 high in `qh`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: [u8; 2],
}

/// 256 values: `w = d * q` with f32 `d`; `bsums` are sums of 16-value groups (used by int8 dot products).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct BlockQ8K {
    pub d: [u8; 4],
    pub qs: [i8; 256],
    pub bsums: [u8; 32],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

/// Marker for the block structs above: alignment 1, no padding, every bit pattern valid.
///
/// # Safety
/// Implementors must be `#[repr(C)]` structs of byte arrays only.
pub unsafe trait Block: Copy {}
unsafe impl Block for BlockQ4_0 {}
unsafe impl Block for BlockQ5_0 {}
unsafe impl Block for BlockQ8_0 {}
unsafe impl Block for BlockQ4K {}
unsafe impl Block for BlockQ5K {}
unsafe impl Block for BlockQ6K {}
unsafe impl Block for BlockQ8K {}

/// Views `bytes` as a slice of blocks. Panics if the length is not a whole number of blocks
/// (callers pass rows whose length the GGUF reader already checked).
pub fn as_blocks<B: Block>(bytes: &[u8]) -> &[B] {
    let size = std::mem::size_of::<B>();
    assert_eq!(bytes.len() % size, 0, "byte length is not a whole number of blocks");
    // SAFETY: `B: Block` has alignment 1 and accepts any bit pattern; the length divides evenly.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const B, bytes.len() / size) }
}

/// The 6-bit (scale, min) pair `j` (0..8) of a Q4_K/Q5_K `scales` array.
#[inline]
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}
