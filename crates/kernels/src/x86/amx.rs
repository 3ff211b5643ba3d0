//! AMX (Advanced Matrix Extensions, Intel Xeon since Sapphire Rapids): the CPU's matrix unit.
//! Eight tile registers of 16 rows × 64 bytes; `tdpbf16ps` multiplies a 16×32 bf16 tile by a
//! 32×16 one (stored as 16 rows of 16 bf16 pairs) into a 16×16 f32 tile — 8,192 multiply-adds in
//! one instruction, about 16× what the AVX-512 FMA units do in the same time.
//!
//! Linux hands the tile state out on request (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), which
//! `available` makes once per process. The instructions are written with `asm!`: Rust's AMX
//! intrinsics are not stable, and no compiler-generated code touches the tile registers, so
//! the separate `asm!` statements below cannot be disturbed between one another.
//!
//! Register use of `block_2x2`: tmm0..3 = C[j][i] (token tile j, weight tile i), tmm4..5 = A (token
//! tiles), tmm6..7 = B (weight tiles).

use std::arch::asm;
use std::sync::OnceLock;

const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
const XFEATURE_XTILEDATA: libc::c_long = 18;

/// Whether the CPU has AMX-TILE and AMX-BF16 (plus the AVX-512 set the packing uses) and the OS
/// granted this process the tile state.
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        // cpuid leaf 7, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE.
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        let (bf16, tile) = (leaf7.edx & (1 << 22) != 0, leaf7.edx & (1 << 24) != 0);
        if !(bf16 && tile && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")) {
            return false;
        }
        // SAFETY: arch_prctl with integer arguments touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
    })
}

/// The tile configuration: palette 1, every tile 16 rows of 64 bytes.
#[repr(C, align(64))]
struct Config([u8; 64]);

const CONFIG: Config = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64; // colsb[t], little-endian u16
        c[48 + t] = 16; // rows[t]
        t += 1;
    }
    Config(c)
};

/// Loads the tile configuration on this thread (the tile registers are per thread).
///
/// # Safety
/// `available()` must have returned true.
pub unsafe fn configure() {
    asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
}

/// Releases this thread's tile state (so context switches stop saving 8 KiB of it).
///
/// # Safety
/// As `configure`.
pub unsafe fn release() {
    asm!("tilerelease", options(nostack, nomem));
}

/// Runs `steps` k-steps of 32 elements for two token tiles × two weight tiles:
/// `C[j][i] (+)= Σ_s A[j][s] · B[i][s]`.
///
/// - `a[j]`: token tile j, `steps` consecutive 1 KiB tiles, each 16 tokens × 32 bf16.
/// - `b[i]`: weight tile i, `steps` consecutive 1 KiB tiles, each 16 k-pairs × 16 weight rows × 2
///   bf16 (the layout `tdpbf16ps` wants for its second operand).
/// - `c[j]`: 16 rows (tokens) of f32 at a row stride of `c_stride[j]` bytes; weight tile i is at
///   column 16·i. Loaded first when `accumulate`, else started from zero; stored at the end.
///
/// # Safety
/// `available()` and `configure()` on this thread; every pointer valid for the bytes described.
#[inline(never)]
pub unsafe fn block_2x2(
    a: [*const u16; 2],
    b: [*const u16; 2],
    steps: usize,
    c: [*mut f32; 2],
    c_stride: [usize; 2],
    accumulate: bool,
) {
    let (c0, c1) = (c[0], c[1]);
    let (c01, c11) = (c0.wrapping_add(16), c1.wrapping_add(16));
    let (s0, s1) = (c_stride[0], c_stride[1]);
    if accumulate {
        asm!("tileloadd tmm0, [{p} + {s}]", p = in(reg) c0, s = in(reg) s0, options(nostack, readonly));
        asm!("tileloadd tmm1, [{p} + {s}]", p = in(reg) c01, s = in(reg) s0, options(nostack, readonly));
        asm!("tileloadd tmm2, [{p} + {s}]", p = in(reg) c1, s = in(reg) s1, options(nostack, readonly));
        asm!("tileloadd tmm3, [{p} + {s}]", p = in(reg) c11, s = in(reg) s1, options(nostack, readonly));
    } else {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
    }
    let (mut a0, mut a1) = (a[0] as *const u8, a[1] as *const u8);
    let (mut b0, mut b1) = (b[0] as *const u8, b[1] as *const u8);
    for _ in 0..steps {
        asm!(
            "tileloadd tmm4, [{a0} + {sa}]",
            "tileloadd tmm5, [{a1} + {sa}]",
            "tileloadd tmm6, [{b0} + {sb}]",
            "tileloadd tmm7, [{b1} + {sb}]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            a0 = in(reg) a0,
            a1 = in(reg) a1,
            b0 = in(reg) b0,
            b1 = in(reg) b1,
            sa = in(reg) 64usize,
            sb = in(reg) 64usize,
            options(nostack, readonly),
        );
        a0 = a0.wrapping_add(1024);
        a1 = a1.wrapping_add(1024);
        b0 = b0.wrapping_add(1024);
        b1 = b1.wrapping_add(1024);
    }
    asm!("tilestored [{p} + {s}], tmm0", p = in(reg) c0, s = in(reg) s0, options(nostack));
    asm!("tilestored [{p} + {s}], tmm1", p = in(reg) c01, s = in(reg) s0, options(nostack));
    asm!("tilestored [{p} + {s}], tmm2", p = in(reg) c1, s = in(reg) s1, options(nostack));
    asm!("tilestored [{p} + {s}], tmm3", p = in(reg) c11, s = in(reg) s1, options(nostack));
}
