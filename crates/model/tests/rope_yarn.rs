//! YaRN RoPE against the independent numpy reference (tools/reference_yarn.py, written from HF
//! transformers' `_compute_yarn_parameters`): per-pair frequencies within 1e-12 relative, and the
//! cos/sin tables at positions up to 131,071 within f32 rounding of the angle (|Δ| ≤ 2e-6 with
//! the temperature included), for the tiers' head sizes and one other setting.

use tandem_model::{rope_table, Yarn};

#[test]
fn yarn_tables_match_the_numpy_reference() {
    let cases: serde_json::Value =
        serde_json::from_str(include_str!("data/yarn_reference.json")).expect("reference JSON");
    for c in cases.as_array().unwrap() {
        let f = |k: &str| c[k].as_f64().unwrap();
        let (base, hd) = (f("base"), c["head_dim"].as_u64().unwrap() as usize);
        let y = Yarn::new(f("factor") as f32, c["orig"].as_u64().unwrap() as usize);
        assert!((y.mscale() - f("attention_factor")).abs() < 1e-12);
        for (i, want) in c["inv_freq"].as_array().unwrap().iter().enumerate() {
            let (got, want) = (y.inv_freq(base, hd, i), want.as_f64().unwrap());
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "base {base} hd {hd} pair {i}: {got} vs {want}"
            );
        }
        let positions: Vec<usize> = c["positions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as usize)
            .collect();
        let ctx = positions.iter().max().unwrap() + 1;
        let (cos, sin) = rope_table(base as f32, hd, ctx, Some(y));
        let hd2 = hd / 2;
        for (k, &p) in positions.iter().enumerate() {
            for (table, name) in [(&cos, "cos"), (&sin, "sin")] {
                let want = c[name][k].as_array().unwrap();
                for i in 0..hd2 {
                    let (got, want) = (table[p * hd2 + i] as f64, want[i].as_f64().unwrap());
                    assert!(
                        (got - want).abs() <= 2e-6,
                        "{name} base {base} hd {hd} pos {p} pair {i}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// Without YaRN the table is plain RoPE; with it, the highest-frequency pair is unchanged and the
/// lowest is interpolated by the factor (both before the temperature).
#[test]
fn yarn_keeps_fast_pairs_and_interpolates_slow_ones() {
    let y = Yarn::new(4.0, 32768);
    let plain = |i: usize| 1e6f64.powf(-2.0 * i as f64 / 64.0);
    assert_eq!(y.inv_freq(1e6, 64, 0), plain(0));
    assert!((y.inv_freq(1e6, 64, 31) - plain(31) / 4.0).abs() <= 1e-15 * plain(31));
    let (cos, _) = rope_table(1e6, 64, 2, None);
    assert_eq!(cos[32], 1f64.cos() as f32, "position 1, pair 0 of plain RoPE");
}
