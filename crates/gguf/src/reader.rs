//! A bounds-checked little-endian cursor over the file bytes, with the size caps that keep a
//! crafted header from exhausting memory or the stack.

use crate::{GgufError, Result, Value};

/// Caps on header structures. Real files are far below them (Qwen2.5: ~300 tensors, ~30 keys,
/// a 151,936-entry token array).
pub const MAX_TENSORS: u64 = 1 << 16;
pub const MAX_KVS: u64 = 1 << 16;
pub const MAX_STRING: u64 = 16 << 20;
pub const MAX_ARRAY_DEPTH: u32 = 3;
pub const MAX_DIMS: u32 = 4;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if n > remaining {
            return Err(GgufError::Truncated {
                what: what.to_string(),
                offset: self.pos as u64,
                len: self.buf.len() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        Ok(s.try_into().expect("take returned N bytes"))
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(GgufError::TooLarge {
                what: format!("length of {what}"),
                value: len,
                limit: MAX_STRING,
            });
        }
        let bytes = self.take(len, what)?;
        // Token texts are not always valid UTF-8 in the wild; keep what we can rather than refuse.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// A metadata value of GGUF type `ty`; `key` names it in errors.
    pub fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.u8(key)?),
            1 => Value::I8(self.u8(key)? as i8),
            2 => Value::U16(self.u16(key)?),
            3 => Value::I16(self.u16(key)? as i16),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(self.u32(key)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(key)?)),
            7 => match self.u8(key)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(bad(key, format!("bool byte is {b}, expected 0 or 1"))),
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(bad(key, format!("arrays nested deeper than {MAX_ARRAY_DEPTH}")));
                }
                let elem_ty = self.u32(key)?;
                let n = self.u64(key)?;
                // Every element takes at least one byte, so a count above the bytes left is a lie;
                // checking it first keeps a crafted count from reserving huge memory.
                let remaining = (self.buf.len() - self.pos) as u64;
                if n > remaining {
                    return Err(GgufError::Truncated {
                        what: key.to_string(),
                        offset: self.pos as u64,
                        len: self.buf.len() as u64,
                    });
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem_ty, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(self.u64(key)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(key)?)),
            t => return Err(bad(key, format!("unknown value type {t}"))),
        })
    }
}

fn bad(key: &str, problem: String) -> GgufError {
    GgufError::BadValue {
        key: key.to_string(),
        problem,
    }
}
