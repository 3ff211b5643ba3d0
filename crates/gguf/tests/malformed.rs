//! Valid files read back exactly; truncated, corrupted and crafted files give one-line errors that
//! name the problem, never a panic (including a fuzz run over mutated headers).

use tandem_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value};

fn sample() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("qwen2".into()))
        .kv("general.alignment", Value::U32(32))
        .kv("qwen2.block_count", Value::U32(2))
        .kv("qwen2.rope.freq_base", Value::F32(1e6))
        .kv("some.i64", Value::I64(-5))
        .kv("some.f64", Value::F64(0.25))
        .kv("some.bool", Value::Bool(true))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
        )
        .kv(
            "nested",
            Value::Array(vec![Value::Array(vec![Value::U8(1), Value::U8(2)])]),
        )
        .tensor_f32("t.weight", &[4, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
        .tensor("q.weight", &[32, 1], GgmlType::Q8_0, vec![0u8; 34]);
    w.to_bytes()
}

#[test]
fn reads_back_what_was_written() {
    let f = GgufFile::from_bytes(sample()).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.get_str("general.architecture").unwrap(), "qwen2");
    assert_eq!(f.get_usize("qwen2.block_count").unwrap(), 2);
    assert_eq!(f.get_f64("qwen2.rope.freq_base").unwrap(), 1e6);
    assert_eq!(f.get("some.i64"), Some(&Value::I64(-5)));
    assert_eq!(f.get("some.f64"), Some(&Value::F64(0.25)));
    assert_eq!(f.get("some.bool"), Some(&Value::Bool(true)));
    assert_eq!(f.get_array("tokenizer.ggml.tokens").unwrap().len(), 2);
    let t = f.tensor_with_dims("t.weight", &[4, 2]).unwrap();
    let data = f.data(t);
    assert_eq!(f32::from_le_bytes(data[28..32].try_into().unwrap()), 8.0);
    assert_eq!(f.tensor("q.weight").unwrap().n_bytes, 34);
    assert_eq!(f.tensor("q.weight").unwrap().offset % 32, 0);
}

#[test]
fn errors_name_the_key_or_tensor() {
    let f = GgufFile::from_bytes(sample()).unwrap();
    let e = f.tensor_with_dims("t.weight", &[2, 4]).unwrap_err().to_string();
    assert!(e.contains("t.weight") && e.contains("[4, 2]"), "{e}");
    assert!(f
        .tensor_with_dims("missing.weight", &[1])
        .unwrap_err()
        .to_string()
        .contains("missing.weight"));
    assert!(f
        .get_str("qwen2.block_count")
        .unwrap_err()
        .to_string()
        .contains("qwen2.block_count"));
    assert!(matches!(f.get_usize("nope"), Err(GgufError::MissingKey(_))));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample();
    for len in 0..bytes.len() {
        let r = GgufFile::from_bytes(bytes[..len].to_vec());
        assert!(r.is_err(), "a file cut to {len} of {} bytes was accepted", bytes.len());
        let msg = r.err().unwrap().to_string();
        assert!(!msg.contains('\n'), "multi-line error: {msg}");
    }
}

#[test]
fn not_gguf_and_bad_versions() {
    let e = GgufFile::from_bytes(b"PK\x03\x04 this is a zip".to_vec())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a GGUF file"), "{e}");
    let mut b = sample();
    b[4] = 1;
    assert!(GgufFile::from_bytes(b).err().unwrap().to_string().contains("version 1"));
    let e = GgufFile::open("/nonexistent/model.gguf").err().unwrap().to_string();
    assert!(e.contains("/nonexistent/model.gguf"), "{e}");
}

#[test]
fn crafted_counts_cannot_exhaust_memory() {
    // A tensor count of 2^40 and a huge array length must be refused up front, not allocated.
    let mut b = sample();
    b[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(GgufFile::from_bytes(b)
        .err()
        .unwrap()
        .to_string()
        .contains("tensor count"));

    let mut w = GgufWriter::new();
    w.kv("arr", Value::Array(vec![Value::U32(1)]));
    let mut b = w.to_bytes();
    // header 24 bytes, key: 8 + 3, type 4, elem type 4, then the u64 count
    let at = 24 + 8 + 3 + 4 + 4;
    b[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(GgufFile::from_bytes(b).is_err());
}

#[test]
fn fuzz_mutated_headers_never_panic() {
    let base = sample();
    let header_len = base.len() - 64; // the tensor data is at the end
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % header_len;
            b[at] = match next() % 4 {
                0 => 0xFF,
                1 => 0,
                2 => b[at] ^ (1 << (next() % 8)),
                _ => next() as u8,
            };
        }
        if next() % 8 == 0 {
            b.truncate((next() as usize) % b.len());
        }
        if let Ok(f) = GgufFile::from_bytes(b) {
            accepted += 1;
            // Whatever was accepted must be internally consistent.
            for t in f.tensors() {
                assert_eq!(f.data(t).len() as u64, t.n_bytes);
            }
        }
    }
    eprintln!("{accepted} of 20000 mutated files parsed (the rest were refused with errors)");
}
