//! The scalar reference against values computed independently by the Python `gguf` package
//! (tools/quant_vectors.py wrote the vectors).

use tandem_kernels::{scalar, GgmlType};

fn cases() -> serde_json::Value {
    serde_json::from_str(include_str!("data/dequant_vectors.json")).expect("valid JSON")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn scalar_dequantisation_matches_gguf_py() {
    let all = cases();
    let types = [
        ("Q4_0", GgmlType::Q4_0),
        ("Q5_0", GgmlType::Q5_0),
        ("Q8_0", GgmlType::Q8_0),
        ("Q4_K", GgmlType::Q4K),
        ("Q5_K", GgmlType::Q5K),
        ("Q6_K", GgmlType::Q6K),
        ("Q8_K", GgmlType::Q8K),
        ("F16", GgmlType::F16),
        ("BF16", GgmlType::BF16),
    ];
    for (name, ty) in types {
        let case = &all[name];
        let bytes = hex(case["hex"].as_str().unwrap());
        let want: Vec<f32> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let mut got = vec![0f32; want.len()];
        scalar::dequantize_row(ty, &bytes, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let tol = 1e-6 * w.abs().max(1e-3);
            assert!((g - w).abs() <= tol, "{name} element {i}: ours {g}, gguf-py {w}");
        }
    }
}
