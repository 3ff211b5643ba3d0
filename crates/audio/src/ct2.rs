//! CTranslate2's `model.bin` (format version 6), read from bytes with every length checked: a bad
//! file is an error, never a panic or an allocation beyond the file.
//!
//! Layout (little-endian): u32 version, u16-length spec name, u32 revision, u32 tensor count; per
//! tensor a u16-length name, u8 rank, u32 dims, u8 dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16,
//! 5 bf16), u32 byte count, the bytes; then u32 alias count and (alias, target) name pairs.
//! Names are NUL-terminated inside their length.

use std::collections::HashMap;

use crate::{AudioError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tensor {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: Vec<u8>,
}

#[derive(Debug)]
pub struct Ct2Model {
    pub spec: String,
    pub revision: u32,
    tensors: HashMap<String, Tensor>,
    aliases: HashMap<String, String>,
}

const MAX_TENSORS: usize = 100_000;
const MAX_RANK: usize = 8;

fn bad(msg: impl Into<String>) -> AudioError {
    AudioError::Format(format!("model.bin: {}", msg.into()))
}

/// A cursor over the file that refuses to read past its end.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| bad(format!("truncated at byte {} (wanted {n} more)", self.at)))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn name(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        let raw = raw.split(|&c| c == 0).next().unwrap_or_default();
        String::from_utf8(raw.to_vec()).map_err(|_| bad("a name is not UTF-8"))
    }
}

impl Ct2Model {
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { b: bytes, at: 0 };
        let version = r.u32()?;
        if version != 6 {
            return Err(bad(format!("format version {version}, expected 6")));
        }
        let spec = r.name()?;
        let revision = r.u32()?;
        let count = r.u32()? as usize;
        if count > MAX_TENSORS {
            return Err(bad(format!("{count} tensors")));
        }
        let mut tensors = HashMap::with_capacity(count);
        for _ in 0..count {
            let name = r.name()?;
            let rank = r.u8()? as usize;
            if rank > MAX_RANK {
                return Err(bad(format!("{name}: rank {rank}")));
            }
            let dims = (0..rank)
                .map(|_| r.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>>>()?;
            let dtype = DType::from_code(r.u8()?).ok_or_else(|| bad(format!("{name}: unknown dtype")))?;
            let nbytes = r.u32()? as usize;
            let elems = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if elems.and_then(|e| e.checked_mul(dtype.size())) != Some(nbytes) {
                return Err(bad(format!("{name}: {nbytes} bytes do not hold {dims:?} of {dtype:?}")));
            }
            let data = r.take(nbytes)?.to_vec();
            tensors.insert(name, Tensor { dims, dtype, data });
        }
        let n_alias = r.u32()? as usize;
        if n_alias > MAX_TENSORS {
            return Err(bad(format!("{n_alias} aliases")));
        }
        let mut aliases = HashMap::new();
        for _ in 0..n_alias {
            let (alias, target) = (r.name()?, r.name()?);
            if !tensors.contains_key(&target) {
                return Err(bad(format!("alias {alias} names no tensor ({target})")));
            }
            aliases.insert(alias, target);
        }
        Ok(Self {
            spec,
            revision,
            tensors,
            aliases,
        })
    }

    pub fn get(&self, name: &str) -> Result<&Tensor> {
        let name = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        self.tensors.get(name).ok_or_else(|| bad(format!("no tensor {name}")))
    }

    /// A float tensor as f32 (f16 and bf16 widened), checked to have `dims`.
    pub fn f32s(&self, name: &str, dims: &[usize]) -> Result<Vec<f32>> {
        let t = self.get(name)?;
        if t.dims != dims {
            return Err(bad(format!("{name} is {:?}, expected {dims:?}", t.dims)));
        }
        let pairs = t.data.chunks_exact(2).map(|c| [c[0], c[1]]);
        Ok(match t.dtype {
            DType::F32 => t
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => pairs.map(|b| half::f16::from_le_bytes(b).to_f32()).collect(),
            DType::BF16 => pairs.map(|b| half::bf16::from_le_bytes(b).to_f32()).collect(),
            other => return Err(bad(format!("{name} is {other:?}, not a float tensor"))),
        })
    }

    /// A scalar integer (flags and counts the spec stores as rank-0 tensors).
    pub fn scalar(&self, name: &str) -> Result<i64> {
        let t = self.get(name)?;
        let b = &t.data;
        match (t.dims.is_empty(), t.dtype) {
            (true, DType::I8) => Ok(b[0] as i8 as i64),
            (true, DType::I16) => Ok(i16::from_le_bytes([b[0], b[1]]) as i64),
            (true, DType::I32) => Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
            _ => Err(bad(format!("{name} is not an integer scalar"))),
        }
    }

    /// How many numbered layers `prefix/layer_N/…` the file has.
    pub fn layers(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                let p = format!("{prefix}/layer_{i}/");
                self.tensors.keys().any(|k| k.starts_with(&p))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Vec<u8> {
        let mut v = ((s.len() + 1) as u16).to_le_bytes().to_vec();
        v.extend(s.as_bytes());
        v.push(0);
        v
    }

    fn tiny() -> Vec<u8> {
        let mut b = 6u32.to_le_bytes().to_vec();
        b.extend(name("TestSpec"));
        b.extend(1u32.to_le_bytes());
        b.extend(2u32.to_le_bytes());
        b.extend(name("w"));
        b.push(2);
        b.extend(2u32.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.push(4); // f16
        b.extend(4u32.to_le_bytes());
        b.extend(half::f16::from_f32(1.5).to_le_bytes());
        b.extend(half::f16::from_f32(-2.0).to_le_bytes());
        b.extend(name("n"));
        b.push(0);
        b.push(2); // i16
        b.extend(2u32.to_le_bytes());
        b.extend(6i16.to_le_bytes());
        b.extend(1u32.to_le_bytes());
        b.extend(name("v"));
        b.extend(name("w"));
        b
    }

    #[test]
    fn reads_tensors_scalars_and_aliases() {
        let m = Ct2Model::parse(&tiny()).unwrap();
        assert_eq!(m.spec, "TestSpec");
        assert_eq!(m.f32s("w", &[2, 1]).unwrap(), vec![1.5, -2.0]);
        assert_eq!(m.f32s("v", &[2, 1]).unwrap(), vec![1.5, -2.0]);
        assert_eq!(m.scalar("n").unwrap(), 6);
        assert!(m.f32s("w", &[1, 2]).is_err());
        assert!(m.get("missing").is_err());
    }

    #[test]
    fn every_truncation_and_byte_flip_is_an_error_or_a_model_never_a_panic() {
        let good = tiny();
        for cut in 0..good.len() {
            assert!(Ct2Model::parse(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % b.len();
                b[i] = (seed >> 32) as u8;
            }
            let _ = Ct2Model::parse(&b);
        }
    }
}
