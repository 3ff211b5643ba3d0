//! `GgufFile`: the parsed header over a memory map of the whole file.

use std::collections::HashMap;
use std::path::Path;

use memmap2::Mmap;

use crate::reader::{Reader, MAX_DIMS, MAX_KVS, MAX_TENSORS};
use crate::{GgmlType, GgufError, Result, Value};

const MAGIC: u32 = 0x4655_4747; // "GGUF" little-endian
const DEFAULT_ALIGNMENT: u64 = 32;

/// One tensor's entry in the index. `dims[0]` is the contiguous (innermost) dimension, as in ggml:
/// a weight matrix of `dims = [n_in, n_out]` stores `n_out` rows of `n_in` elements.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

pub struct GgufFile {
    bytes: Bytes,
    pub version: u32,
    pub alignment: u64,
    metadata: HashMap<String, Value>,
    /// Keys in file order (for dumps).
    keys: Vec<String>,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
}

impl GgufFile {
    /// Memory-maps and parses `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only; a file changed underneath us while mapped can give
        // wrong numbers but not unsoundness in our code, which only reads bytes.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::parse(Bytes::Mapped(map))
    }

    /// Parses a file held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Bytes::Owned(bytes))
    }

    fn parse(bytes: Bytes) -> Result<Self> {
        let buf: &[u8] = match &bytes {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        };
        let file_len = buf.len() as u64;
        let mut r = Reader::new(buf);
        let magic = r.u32("magic")?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::BadVersion(version));
        }
        let n_tensors = r.u64("tensor count")?;
        if n_tensors > MAX_TENSORS {
            return Err(GgufError::TooLarge {
                what: "tensor count".into(),
                value: n_tensors,
                limit: MAX_TENSORS,
            });
        }
        let n_kv = r.u64("metadata count")?;
        if n_kv > MAX_KVS {
            return Err(GgufError::TooLarge {
                what: "metadata count".into(),
                value: n_kv,
                limit: MAX_KVS,
            });
        }

        let mut metadata = HashMap::new();
        let mut keys = Vec::new();
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let ty = r.u32(&key)?;
            let value = r.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(GgufError::BadValue {
                    key,
                    problem: "appears twice".into(),
                });
            }
            keys.push(key);
        }

        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_int() {
                Some(a) if a > 0 && a <= 1 << 20 && (a as u64).is_power_of_two() => a as u64,
                _ => {
                    return Err(GgufError::BadValue {
                        key: "general.alignment".into(),
                        problem: format!("{v:?} is not a power of two up to 1 MiB"),
                    })
                }
            },
        };

        let mut raw = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor #{i} name"))?;
            let n_dims = r.u32(&name)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(tensor_err(
                    &name,
                    format!("has {n_dims} dimensions (1..={MAX_DIMS} supported)"),
                ));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64(&name)?);
            }
            let ty_id = r.u32(&name)?;
            let offset = r.u64(&name)?;
            raw.push((name, dims, ty_id, offset));
        }
        let data_start = (r.pos() as u64).div_ceil(alignment) * alignment;

        let mut tensors = Vec::with_capacity(raw.len());
        let mut by_name = HashMap::new();
        for (name, dims, ty_id, rel) in raw {
            let ty = GgmlType::from_id(ty_id)
                .ok_or_else(|| tensor_err(&name, format!("has unsupported ggml type {ty_id}")))?;
            let mut n: u64 = 1;
            for &d in &dims {
                n = n
                    .checked_mul(d)
                    .filter(|_| d > 0)
                    .ok_or_else(|| tensor_err(&name, format!("has invalid dimensions {dims:?}")))?;
            }
            if dims[0] % ty.block_len() as u64 != 0 {
                return Err(tensor_err(
                    &name,
                    format!(
                        "row length {} is not a multiple of the {} block size {}",
                        dims[0],
                        ty.name(),
                        ty.block_len()
                    ),
                ));
            }
            let n_bytes = ty.bytes_for(n).expect("rows are whole blocks");
            if rel % alignment != 0 {
                return Err(tensor_err(
                    &name,
                    format!("data offset {rel} is not aligned to {alignment}"),
                ));
            }
            let offset = data_start
                .checked_add(rel)
                .filter(|o| o.checked_add(n_bytes).is_some_and(|end| end <= file_len))
                .ok_or_else(|| {
                    tensor_err(&name, format!("data ({n_bytes} bytes at offset {rel}) runs past the end of the file ({file_len} bytes); the file is truncated"))
                })?;
            if by_name.insert(name.clone(), tensors.len()).is_some() {
                return Err(tensor_err(&name, "appears twice".into()));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
                n_bytes,
            });
        }

        Ok(Self {
            bytes,
            version,
            alignment,
            metadata,
            keys,
            tensors,
            by_name,
        })
    }

    fn buf(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    fn type_err(&self, key: &str, want: &str) -> GgufError {
        let got = self.metadata.get(key).map(|v| v.type_name()).unwrap_or("nothing");
        GgufError::BadValue {
            key: key.to_string(),
            problem: format!("expected {want}, found {got}"),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str> {
        self.require(key)?
            .as_str()
            .ok_or_else(|| self.type_err(key, "a string"))
    }

    /// A non-negative integer of any width.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        let v = self
            .require(key)?
            .as_int()
            .ok_or_else(|| self.type_err(key, "an integer"))?;
        usize::try_from(v).map_err(|_| GgufError::BadValue {
            key: key.into(),
            problem: format!("{v} is out of range"),
        })
    }

    pub fn get_f64(&self, key: &str) -> Result<f64> {
        self.require(key)?
            .as_f64()
            .ok_or_else(|| self.type_err(key, "a number"))
    }

    pub fn get_array(&self, key: &str) -> Result<&[Value]> {
        self.require(key)?
            .as_array()
            .ok_or_else(|| self.type_err(key, "an array"))
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor `name`, checked to have exactly `dims`.
    pub fn tensor_with_dims(&self, name: &str, dims: &[u64]) -> Result<&TensorInfo> {
        let t = self
            .tensor(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
        if t.dims != dims {
            return Err(tensor_err(name, format!("has shape {:?}, expected {:?}", t.dims, dims)));
        }
        Ok(t)
    }

    /// `len` bytes at absolute `offset`, `None` past the end.
    pub fn slice(&self, offset: usize, len: usize) -> Option<&[u8]> {
        self.buf().get(offset..offset.checked_add(len)?)
    }

    /// Gives the pages wholly inside `len` bytes at `offset` back to the kernel (a mapped file's
    /// resident set shrinks; the bytes stay readable and are read from the file again if touched).
    /// For a copy of the data made elsewhere. No effect on a file held in memory.
    pub fn release(&self, offset: usize, len: usize) {
        #[cfg(unix)]
        if let Bytes::Mapped(m) = &self.bytes {
            let page = 4096;
            let (start, end) = (offset.div_ceil(page) * page, (offset + len).min(m.len()) / page * page);
            if start < end {
                // SAFETY: the map is read-only and file-backed, so MADV_DONTNEED only drops
                // clean pages: every byte reads back the same from the file.
                let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            }
        }
        let _ = (offset, len);
    }

    /// The raw bytes of a tensor (bounds were checked at parse time).
    pub fn data(&self, t: &TensorInfo) -> &[u8] {
        &self.buf()[t.offset as usize..(t.offset + t.n_bytes) as usize]
    }
}

fn tensor_err(name: &str, problem: String) -> GgufError {
    GgufError::BadTensor {
        name: name.to_string(),
        problem,
    }
}
