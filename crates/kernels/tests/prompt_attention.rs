//! The tiled prompt attention (f32 tiles, AMX tiles, the bf16 flash kernel) against its scalar
//! twin (bit for bit), against attention computed in f64, and against itself with the query rows
//! tiled differently (chunk invariance).

use tandem_kernels::attention::{
    available, keys_ld, keys_t_f32, prompt_tile, prompt_tile_amx, prompt_tile_scalar, tile_kernel, to_tiles,
    value_tiles, values_f32, TileKernel, TileScratch,
};

use tandem_kernels::flash::{prompt_flash, FlashScratch};
use tandem_kernels::Isa;

mod common;
use common::activations;

struct Case {
    hd: usize,
    n: usize,
    limits: Vec<usize>,
    q: Vec<f32>,
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// `rows` query rows over a cache of `n` positions whose KV rows are `stride` apart (as in the
/// cache, where the heads of a position share a row); limits end at n, causal, several rows per
/// position (the heads of a group).
fn case(hd: usize, n: usize, rows: usize, group: usize) -> Case {
    let stride = 2 * hd;
    let cache_k = activations(n * stride, 0.3);
    let cache_v = activations(n * stride, 1.7);
    let mut keys = vec![0f32; hd * keys_ld(n)];
    let mut values = vec![0f32; n * hd];
    keys_t_f32(|p| &cache_k[hd + p * stride..], hd, n, &mut keys);
    values_f32(|p| &cache_v[hd + p * stride..], hd, n, &mut values);
    let tokens = rows.div_ceil(group);
    let limits = (0..rows).map(|i| n - (tokens - 1 - i / group)).collect();
    Case {
        hd,
        n,
        limits,
        q: activations(rows * hd, 2.9),
        keys,
        values,
    }
}

fn run(c: &Case, limits: &[usize], q: &[f32], scalar: bool) -> Vec<f32> {
    let mut out = vec![0f32; limits.len() * c.hd];
    let mut scores = TileScratch::default();
    let scale = 1.0 / (c.hd as f32).sqrt();
    let ld = keys_ld(c.n);
    let tile = if scalar { prompt_tile_scalar } else { prompt_tile };
    tile(
        q,
        c.hd,
        limits,
        &c.keys,
        ld,
        &c.values,
        scale,
        &mut scores,
        &mut out,
        Isa::detected(),
    );
    out
}

#[test]
fn tiles_match_the_twin_the_f64_attention_and_each_other() {
    if !available(64, Isa::detected()) {
        eprintln!("no AVX-512: the scalar twin is the path; comparing it with f64 only");
    }
    for (hd, n, rows, group) in [
        (64, 300, 28, 7),
        (64, 17, 13, 7),
        (128, 200, 24, 6),
        (128, 5, 3, 1),
        (64, 1, 1, 1),
    ] {
        let c = case(hd, n, rows, group);
        let fast = run(&c, &c.limits, &c.q, false);
        let twin = run(&c, &c.limits, &c.q, true);
        assert_eq!(bits(&fast), bits(&twin), "hd {hd} n {n}: SIMD vs twin");
        // Row by row, alone: the same bits (a row's chains never depend on its tile).
        for i in 0..rows {
            let alone = run(&c, &c.limits[i..i + 1], &c.q[i * hd..(i + 1) * hd], false);
            assert_eq!(
                bits(&alone),
                bits(&fast[i * hd..(i + 1) * hd]),
                "hd {hd} n {n} row {i} alone"
            );
        }
        // Against attention in f64.
        let ld = keys_ld(n);
        for (i, &lim) in c.limits.iter().enumerate() {
            let s: Vec<f64> = (0..lim)
                .map(|p| {
                    let key = |d: usize| c.keys[tandem_kernels::attention::key_at(p, d, hd)] as f64;
                    (0..hd).map(|d| c.q[i * hd + d] as f64 * key(d)).sum::<f64>() / (hd as f64).sqrt()
                })
                .collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                let want: f64 = (0..lim).map(|p| e[p] / z * c.values[p * hd + d] as f64).sum();
                let got = fast[i * hd + d] as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "hd {hd} row {i} d {d}: {got} vs {want}"
                );
            }
            assert!(ld >= lim);
        }
    }
}

/// The bits of each value: outputs compared exactly.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bf16(x: f32) -> f64 {
    tandem_kernels::scalar::bf16_to_f32(tandem_kernels::scalar::bf16(x)) as f64
}

/// The matrix-unit tiles: within bf16 rounding of attention computed in f64 on bf16-rounded
/// operands, and every row bit-equal to itself computed alone.
#[test]
fn amx_tiles_match_bf16_attention_and_each_other() {
    let k = tandem_kernels::KernelChoice::best();
    if tile_kernel(64, k) != Some(TileKernel::Amx) {
        eprintln!("no AMX here: nothing to check");
        return;
    }
    for (hd, n, rows, group) in [
        (64, 300, 28, 7),
        (64, 17, 13, 7),
        (128, 200, 24, 6),
        (128, 40, 40, 2),
        (64, 1, 1, 1),
    ] {
        let c = case(hd, n, rows, group);
        let ld = keys_ld(n);
        let (mut kt, mut vt) = (vec![0u32; ld * hd / 2], vec![0u32; ld * hd / 2]);
        to_tiles(&c.keys, &c.values, hd, n, (&mut kt, &mut vt), k.isa());
        let scale = 1.0 / (hd as f32).sqrt();
        let mut scratch = TileScratch::default();
        let run = |limits: &[usize], q: &[f32], scratch: &mut TileScratch| {
            let mut out = vec![0f32; limits.len() * hd];
            prompt_tile_amx(q, hd, limits, (&kt, &vt), n, scale, scratch, &mut out, k);
            out
        };
        let fast = run(&c.limits, &c.q, &mut scratch);
        for i in 0..rows {
            let alone = run(&c.limits[i..i + 1], &c.q[i * hd..(i + 1) * hd], &mut scratch);
            assert_eq!(
                bits(&alone),
                bits(&fast[i * hd..(i + 1) * hd]),
                "hd {hd} n {n} row {i} alone"
            );
        }
        for (i, &lim) in c.limits.iter().enumerate() {
            for (d, want) in bf16_attention(&c, i, lim, scale).into_iter().enumerate() {
                let got = fast[i * hd + d] as f64;
                assert!(
                    (got - want).abs() <= 2e-3 * (1.0 + want.abs()),
                    "hd {hd} row {i} d {d}: {got} vs {want}"
                );
            }
        }
    }
}

/// Row i's attention output ([hd]) in f64 on bf16-rounded query, keys, values and E.
fn bf16_attention(c: &Case, i: usize, lim: usize, scale: f32) -> Vec<f64> {
    let hd = c.hd;
    let key = |p: usize, d: usize| bf16(c.keys[tandem_kernels::attention::key_at(p, d, hd)]);
    let s: Vec<f64> = (0..lim)
        .map(|p| (0..hd).map(|d| bf16(c.q[i * hd + d]) * key(p, d)).sum::<f64>() * scale as f64)
        .collect();
    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
    let z: f64 = e.iter().sum();
    (0..hd)
        .map(|d| {
            (0..lim)
                .map(|p| bf16(e[p] as f32) * bf16(c.values[p * hd + d]))
                .sum::<f64>()
                / z
        })
        .collect()
}

/// Row i's attention output ([hd]) in f64 on f32 scores, bf16-rounded E and values (the flash
/// kernel's roundings).
fn bf16_sums_attention(c: &Case, i: usize, lim: usize, scale: f32) -> Vec<f64> {
    let hd = c.hd;
    let key = |p: usize, d: usize| c.keys[tandem_kernels::attention::key_at(p, d, hd)] as f64;
    let s: Vec<f64> = (0..lim)
        .map(|p| (0..hd).map(|d| c.q[i * hd + d] as f64 * key(p, d)).sum::<f64>() * scale as f64)
        .collect();
    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
    let z: f64 = e.iter().sum();
    (0..hd)
        .map(|d| {
            (0..lim)
                .map(|p| bf16(e[p] as f32) * bf16(c.values[p * hd + d]))
                .sum::<f64>()
                / z
        })
        .collect()
}

/// The flash kernel (online softmax over blocks of 64 positions, f32 scores, bf16 sums): the
/// vector kernel equals the scalar twin bit for bit, every row equals itself computed beside
/// other rows (new groups of rows, new neighbours), and all are within bf16 rounding of f64.
#[test]
fn flash_matches_its_twin_bf16_attention_and_itself() {
    let detected = Isa::detected();
    if !tandem_kernels::flash::runs(64, detected) {
        eprintln!("no AVX-512 BF16 here: the scalar twin is checked against f64 only");
    }
    // n 150: the last block holds 32 positions of tiles (ld 160); 7 heads per token make row
    // groups of 4 that straddle tokens, and a padded last group.
    for (hd, n, rows, group) in [
        (64, 150, 35, 7),
        (128, 200, 18, 6),
        (64, 1, 7, 7),
        (128, 97, 21, 3),
        (64, 300, 28, 7),
        // 70 one-head tokens: limits 61..=130 cross two block boundaries, so a block has rows
        // that see nothing of it beside rows that see part of it.
        (64, 130, 70, 1),
    ] {
        let c = case(hd, n, rows, group);
        let ld = keys_ld(n);
        let mut vt = vec![0u32; ld * hd / 2];
        value_tiles(&c.values, hd, n, &mut vt, detected);
        let mut vt2 = vec![0u32; ld * hd / 2];
        value_tiles(&c.values, hd, n, &mut vt2, Isa::scalar());
        assert!(vt == vt2, "hd {hd} n {n}: value tiles differ between ISAs");
        let scale = 1.0 / (hd as f32).sqrt();
        let run = |limits: &[usize], q: &[f32], isa: Isa| {
            let mut out = vec![0f32; limits.len() * hd];
            let operands = (&c.keys[..], &vt[..]);
            prompt_flash(
                q,
                hd,
                limits,
                operands,
                n,
                scale,
                &mut FlashScratch::default(),
                &mut out,
                isa,
            );
            out
        };
        let fast = run(&c.limits, &c.q, detected);
        let twin = run(&c.limits, &c.q, Isa::scalar());
        assert_eq!(bits(&fast), bits(&twin), "hd {hd} n {n}: vector kernel vs twin");
        for from in [1, 3, rows / 2, rows - 1] {
            let part = run(&c.limits[from..], &c.q[from * hd..], detected);
            assert_eq!(bits(&part), bits(&fast[from * hd..]), "hd {hd} n {n}: rows from {from}");
        }
        for (i, &lim) in c.limits.iter().enumerate() {
            for (d, want) in bf16_sums_attention(&c, i, lim, scale).into_iter().enumerate() {
                let got = fast[i * hd + d] as f64;
                // E's own error (~1e-6 relative) can move its bf16 rounding by one step.
                assert!(
                    (got - want).abs() <= 2e-3 * (1.0 + want.abs()),
                    "flash hd {hd} row {i} d {d}: {got} vs {want}"
                );
            }
        }
    }
}
