//! A KV view read over a range of positions (a sliding window's) gives exactly what the whole
//! read gives at those positions, for every cache type and for ranges that start inside a block.

use tandem_kernels::Isa;
use tandem_model::{Activation, Arch, BlockTable, Config, KvPool, KvType};

fn config() -> Config {
    Config {
        arch: Arch::Gemma3,
        name: "t".into(),
        n_layer: 2,
        dim: 128,
        n_head: 4,
        n_kv_head: 2,
        head_dim: 64,
        ffn_dim: 256,
        vocab: 16,
        rope_base: 1e4,
        rms_eps: 1e-6,
        ctx_train: 512,
        yarn: None,
        activation: Activation::GeGlu,
        embed_scale: 1.0,
        sliding: None,
    }
}

#[test]
fn a_range_reads_what_the_whole_read_gives_there() {
    let cfg = config();
    let (n, g, hd, kv_dim) = (150, 2, 64, 128);
    for ty in [KvType::F32, KvType::F16, KvType::Q8_0, KvType::Q4_0] {
        let mut pool = KvPool::new(&cfg, 8, ty);
        // Blocks out of order, as a paged cache hands them out.
        let table = BlockTable::new(vec![5, 2, 7, 0, 3]);
        for p in 0..n {
            let row = |s: f32| {
                (0..kv_dim)
                    .map(|i| ((p * kv_dim + i) as f32 * 0.37 + s).sin())
                    .collect::<Vec<f32>>()
            };
            pool.write(&table, 1, p, (&row(0.0), &row(1.0)), Isa::detected());
        }
        let view = pool.view(&table);
        let q: Vec<f32> = (0..g * hd).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut whole = vec![0f32; g * n];
        view.scores(1, hd, &q, g, 0..n, 0.125, &mut whole, Isa::detected());
        for from in [0, 1, 31, 32, 33, 100, 149] {
            let mut part = vec![f32::NAN; g * n];
            view.scores(1, hd, &q, g, from..n, 0.125, &mut part, Isa::detected());
            for j in 0..g {
                assert!(
                    part[j * n..j * n + from].iter().all(|x| x.is_nan()),
                    "{ty:?}: nothing before {from}"
                );
                assert_eq!(
                    part[j * n + from..(j + 1) * n],
                    whole[j * n + from..(j + 1) * n],
                    "{ty:?} from {from}"
                );
            }
            // Sums over the range equal the whole sums with zero weights before it.
            let mut probs = whole.clone();
            for j in 0..g {
                probs[j * n..j * n + from].fill(0.0);
            }
            let (mut a, mut b) = (vec![0f32; g * hd], vec![0f32; g * hd]);
            view.attend(1, hd, &probs, g, from..n, &mut a, Isa::detected());
            view.attend(1, hd, &probs, g, 0..n, &mut b, Isa::detected());
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                    "{ty:?} from {from}: {x} vs {y}"
                );
            }
        }
    }
}

/// Every cache type reads back what was written, through every read (scores, sums, the prompt's
/// f32 operands), within its rounding — blocks out of order, a partly filled last block, the
/// second head: a layout error anywhere shows as a value far off.
#[test]
fn every_type_reads_back_what_was_written() {
    let cfg = config();
    let (n, g, hd, kv_dim) = (75, 2, 64, 128);
    let table = BlockTable::new(vec![5, 2, 7]);
    let row = |p: usize, s: f32| -> Vec<f32> {
        (0..kv_dim)
            .map(|i| ((p * kv_dim + i) as f32 * 0.37 + s).sin())
            .collect()
    };
    // Largest error of one value: f32 exact, f16 half an ulp at 1, q8_0 half a step of 1/127,
    // q4_0 a step of 1/8 (the end opposite a block's largest value clamps).
    for (ty, tol) in [
        (KvType::F32, 1e-6),
        (KvType::F16, 5e-4),
        (KvType::Q8_0, 5e-3),
        (KvType::Q4_0, 0.14),
    ] {
        let mut pool = KvPool::new(&cfg, 8, ty);
        for p in 0..n {
            pool.write(&table, 1, p, (&row(p, 0.0), &row(p, 1.0)), Isa::detected());
        }
        let view = pool.view(&table);
        let head = 1; // channels 64..128
        let (mut keys_t, mut values) = (
            vec![0f32; hd * tandem_kernels::attention::keys_ld(n)],
            vec![0f32; n * hd],
        );
        view.head_keys_f32(1, head * hd, hd, n, &mut keys_t, Isa::detected());
        view.head_values_f32(1, head * hd, hd, n, &mut values, Isa::detected());
        // The value tiles: the f32 values, rounded to bf16, in pairs of positions.
        let ld = tandem_kernels::attention::keys_ld(n);
        let (mut tiles, mut want_tiles) = (vec![0u32; ld * hd / 2], vec![0u32; ld * hd / 2]);
        view.head_value_tiles(1, head * hd, hd, n, &mut tiles, Isa::detected());
        tandem_kernels::attention::value_tiles(&values, hd, n, &mut want_tiles, Isa::scalar());
        assert!(tiles == want_tiles, "{ty:?}: value tiles");
        for p in 0..n {
            let (k, v) = (row(p, 0.0), row(p, 1.0));
            for d in 0..hd {
                let got_k = keys_t[tandem_kernels::attention::key_at(p, d, hd)];
                assert!((got_k - k[head * hd + d]).abs() <= tol, "{ty:?} key p {p} d {d}");
                assert!(
                    (values[p * hd + d] - v[head * hd + d]).abs() <= tol,
                    "{ty:?} value p {p} d {d}"
                );
            }
        }
        // Scores and sums of two query heads against the f32 arithmetic on the written rows.
        let q: Vec<f32> = (0..g * hd).map(|i| (i as f32 * 0.11).cos() / 8.0).collect();
        let mut s = vec![0f32; g * n];
        view.scores(1, head * hd, &q, g, 0..n, 1.0, &mut s, Isa::detected());
        let mut out = vec![0f32; g * hd];
        view.attend(1, head * hd, &s, g, 0..n, &mut out, Isa::detected());
        for j in 0..g {
            let mut want_out = vec![0f32; hd];
            for p in 0..n {
                let (k, v) = (row(p, 0.0), row(p, 1.0));
                let want: f32 = (0..hd).map(|d| q[j * hd + d] * k[head * hd + d]).sum();
                // |q| sums to at most 8 over a row, each key value off by tol.
                assert!(
                    (s[j * n + p] - want).abs() <= 8.0 * tol + 1e-4,
                    "{ty:?} score j {j} p {p}"
                );
                for d in 0..hd {
                    want_out[d] += s[j * n + p] * v[head * hd + d];
                }
            }
            let weight: f32 = (0..n).map(|p| s[j * n + p].abs()).sum();
            for d in 0..hd {
                let got = out[j * hd + d];
                assert!(
                    (got - want_out[d]).abs() <= weight * tol + 1e-3,
                    "{ty:?} sum j {j} d {d}"
                );
            }
        }
    }
}
