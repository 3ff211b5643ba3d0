//! PyTorch's legacy (pre-zip) checkpoint format, read without Python: five pickles — the magic
//! number, the protocol version (1001), `sys_info` (byte order), the state dict, the list of
//! storage keys — then each storage's data (an i64 element count, then the raw little-endian
//! elements) in the order of that list.
//!
//! The unpickler is restricted: the opcodes protocol 2 writes for a state dict, and only the
//! globals that build one (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the
//! storage classes); anything else is an error, so a hostile file cannot run anything. Values are
//! copied, not shared: the memo holds what was put, which is enough for a state dict (its
//! containers are filled before anything fetches them again).

use std::collections::HashMap;

use crate::{Result, VisionError};

/// A tensor of the state dict, materialised row-major over its logical shape.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// Far above a real checkpoint's; bounds what a hostile file can make the reader hold.
const MAX_STACK: usize = 1 << 16;

#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Vec<u8>),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(&'static str),
    Storage { key: String, elem: Elem, numel: usize },
    Tensor(TensorRef),
    Mark,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Elem {
    F32,
    I64,
}

#[derive(Debug, Clone)]
struct TensorRef {
    key: String,
    elem: Elem,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

fn bad(msg: impl Into<String>) -> VisionError {
    VisionError::Weights(format!("checkpoint: {}", msg.into()))
}

/// The state dict's float tensors by name (integer ones, `num_batches_tracked`, are skipped).
pub fn read_state_dict(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut r = Reader {
        b: bytes,
        at: 0,
        elems: HashMap::new(),
    };
    match r.pickle()? {
        Value::BigInt(m) if m == MAGIC => {}
        _ => return Err(bad("not a legacy PyTorch file (magic number)")),
    }
    if !matches!(r.pickle()?, Value::Int(1001)) {
        return Err(bad("unknown protocol version"));
    }
    let little = match r.pickle()? {
        Value::Dict(d) => d
            .iter()
            .any(|(k, v)| matches!((k, v), (Value::Str(k), Value::Bool(true)) if k == "little_endian")),
        _ => false,
    };
    if !little {
        return Err(bad("saved big-endian"));
    }
    let Value::Dict(entries) = r.pickle()? else {
        return Err(bad("the object is not a state dict"));
    };
    let Value::List(keys) = r.pickle()? else {
        return Err(bad("no storage key list"));
    };
    let storages = r.storages(&keys)?;
    let mut out = Vec::new();
    for (name, v) in entries {
        let (Value::Str(name), Value::Tensor(t)) = (name, v) else {
            return Err(bad("a state dict entry is not name → tensor"));
        };
        if t.elem == Elem::F32 {
            let data = storages.get(&t.key).ok_or_else(|| bad(format!("{name}: no storage")))?;
            out.push((
                name.clone(),
                materialise(&t, data).map_err(|e| bad(format!("{name}: {e}")))?,
            ));
        }
    }
    Ok(out)
}

/// The strided view `t` of `storage` copied row-major; every index checked.
fn materialise(t: &TensorRef, storage: &[f32]) -> std::result::Result<Tensor, String> {
    let n: usize = t
        .size
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("size overflows")?;
    if t.size.len() != t.stride.len() {
        return Err("size and stride ranks differ".into());
    }
    let last = t.size.iter().zip(&t.stride).try_fold(t.offset, |a, (&d, &s)| {
        a.checked_add(d.saturating_sub(1).checked_mul(s)?)
    });
    if n > 0 && last.is_none_or(|l| l >= storage.len()) {
        return Err("view outside its storage".into());
    }
    let mut data = Vec::with_capacity(n);
    let mut idx = vec![0usize; t.size.len()];
    for _ in 0..n {
        let at = t.offset + idx.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        data.push(storage[at]);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < t.size[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(Tensor {
        shape: t.size.clone(),
        data,
    })
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    /// Each storage named by a persistent id: its element type and count.
    elems: HashMap<String, (Elem, usize)>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| bad("truncated"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    /// The float storages' data, in the order of `keys`; integer ones are read past.
    fn storages(&mut self, keys: &[Value]) -> Result<HashMap<String, Vec<f32>>> {
        let mut out = HashMap::new();
        for k in keys {
            let Value::Str(k) = k else {
                return Err(bad("a storage key is not a string"));
            };
            let n = i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
            let n = usize::try_from(n).map_err(|_| bad("negative element count"))?;
            let (elem, numel) = self
                .elems
                .get(k)
                .copied()
                .ok_or_else(|| bad(format!("storage {k} is not used")))?;
            if n != numel {
                return Err(bad(format!("storage {k} holds {n} elements, its tensors say {numel}")));
            }
            let width = if elem == Elem::F32 { 4 } else { 8 };
            let bytes = self.take(n.checked_mul(width).ok_or_else(|| bad("storage size overflows"))?)?;
            if elem == Elem::F32 {
                let v = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                    .collect();
                out.insert(k.clone(), v);
            }
        }
        Ok(out)
    }
}

impl Reader<'_> {
    /// One pickle, from PROTO to STOP.
    fn pickle(&mut self) -> Result<Value> {
        let mut stack: Vec<Value> = Vec::new();
        let mut memo: HashMap<u32, Value> = HashMap::new();
        loop {
            if stack.len() > MAX_STACK {
                return Err(bad("pickle stack too deep"));
            }
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO n
                }
                b'.' => return stack.pop().ok_or_else(|| bad("STOP on an empty stack")),
                b'N' => stack.push(Value::None),
                0x88 => stack.push(Value::Bool(true)),
                0x89 => stack.push(Value::Bool(false)),
                b'J' => stack.push(Value::Int(
                    i32::from_le_bytes(self.take(4)?.try_into().expect("4")) as i64
                )),
                b'K' => stack.push(Value::Int(self.u8()? as i64)),
                b'M' => stack.push(Value::Int(
                    u16::from_le_bytes(self.take(2)?.try_into().expect("2")) as i64
                )),
                0x8a => {
                    let n = self.u8()? as usize;
                    stack.push(long(self.take(n)?));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = std::str::from_utf8(self.take(n)?).map_err(|_| bad("a string is not UTF-8"))?;
                    stack.push(Value::Str(s.to_string()));
                }
                b'}' => stack.push(Value::Dict(Vec::new())),
                b']' => stack.push(Value::List(Vec::new())),
                b')' => stack.push(Value::Tuple(Vec::new())),
                b'(' => stack.push(Value::Mark),
                b't' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let at = stack
                        .len()
                        .checked_sub(n)
                        .ok_or_else(|| bad("TUPLE on a short stack"))?;
                    let items = stack.split_off(at);
                    stack.push(Value::Tuple(items));
                }
                b's' => {
                    let (v, k) = (pop(&mut stack)?, pop(&mut stack)?);
                    dict_of(&mut stack)?.push((k, v));
                }
                b'u' => {
                    let items = pop_mark(&mut stack)?;
                    if items.len() % 2 != 0 {
                        return Err(bad("SETITEMS with an odd count"));
                    }
                    let d = dict_of(&mut stack)?;
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
                b'a' => {
                    let v = pop(&mut stack)?;
                    list_of(&mut stack)?.push(v);
                }
                b'e' => {
                    let items = pop_mark(&mut stack)?;
                    list_of(&mut stack)?.extend(items);
                }
                b'q' | b'r' => {
                    let i = if op == b'q' { self.u8()? as u32 } else { self.u32()? };
                    let top = stack.last().ok_or_else(|| bad("PUT on an empty stack"))?;
                    memo.insert(i, top.clone());
                }
                b'h' | b'j' => {
                    let i = if op == b'h' { self.u8()? as u32 } else { self.u32()? };
                    stack.push(memo.get(&i).cloned().ok_or_else(|| bad("GET of an unknown memo"))?);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    stack.push(Value::Global(global(&module, &name)?));
                }
                b'R' => {
                    let args = pop(&mut stack)?;
                    let f = pop(&mut stack)?;
                    stack.push(reduce(f, args)?);
                }
                b'b' => {
                    pop(&mut stack)?; // BUILD's state: the state dict's `_metadata`, unused.
                }
                b'Q' => {
                    let pid = pop(&mut stack)?;
                    let v = self.persistent(pid)?;
                    stack.push(v);
                }
                _ => return Err(bad(format!("unsupported pickle opcode 0x{op:02x}"))),
            }
        }
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.b[self.at..];
        let n = rest
            .iter()
            .take(256)
            .position(|&c| c == b'\n')
            .ok_or_else(|| bad("GLOBAL name too long"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.at += n + 1;
        Ok(s)
    }

    /// `('storage', StorageClass, key, location, numel, None)`: a storage to be read at the end.
    fn persistent(&mut self, pid: Value) -> Result<Value> {
        let Value::Tuple(t) = pid else {
            return Err(bad("a persistent id is not a tuple"));
        };
        let [Value::Str(kind), Value::Global(class), Value::Str(key), _, Value::Int(numel), ..] = t.as_slice() else {
            return Err(bad("a persistent id has the wrong shape"));
        };
        if kind != "storage" {
            return Err(bad(format!("persistent id of kind {kind}")));
        }
        let elem = match *class {
            "torch.FloatStorage" => Elem::F32,
            "torch.LongStorage" => Elem::I64,
            other => return Err(bad(format!("storage class {other}"))),
        };
        let numel = usize::try_from(*numel).map_err(|_| bad("negative numel"))?;
        self.elems.insert(key.clone(), (elem, numel));
        Ok(Value::Storage {
            key: key.clone(),
            elem,
            numel,
        })
    }
}

/// LONG1's little-endian two's complement: an i64 when it fits, else the bytes.
fn long(b: &[u8]) -> Value {
    if b.len() > 8 {
        return Value::BigInt(b.to_vec());
    }
    let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut w = [fill; 8];
    w[..b.len()].copy_from_slice(b);
    Value::Int(i64::from_le_bytes(w))
}

fn global(module: &str, name: &str) -> Result<&'static str> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => "collections.OrderedDict",
        ("torch._utils", "_rebuild_tensor_v2") => "torch._utils._rebuild_tensor_v2",
        ("torch", "FloatStorage") => "torch.FloatStorage",
        ("torch", "LongStorage") => "torch.LongStorage",
        _ => return Err(bad(format!("forbidden global {module}.{name}"))),
    })
}

/// Calls one of the allowed globals.
fn reduce(f: Value, args: Value) -> Result<Value> {
    let (Value::Global(f), Value::Tuple(args)) = (f, args) else {
        return Err(bad("REDUCE of something not callable"));
    };
    match f {
        "collections.OrderedDict" => Ok(Value::Dict(Vec::new())),
        "torch._utils._rebuild_tensor_v2" => {
            let [Value::Storage { key, elem, numel }, Value::Int(offset), Value::Tuple(size), Value::Tuple(stride), ..] =
                args.as_slice()
            else {
                return Err(bad("_rebuild_tensor_v2 with the wrong arguments"));
            };
            let dims = |v: &[Value]| -> Result<Vec<usize>> {
                v.iter()
                    .map(|d| match d {
                        Value::Int(i) => usize::try_from(*i).map_err(|_| bad("negative dimension")),
                        _ => Err(bad("a dimension is not an integer")),
                    })
                    .collect()
            };
            let offset = usize::try_from(*offset).map_err(|_| bad("negative offset"))?;
            if offset > *numel {
                return Err(bad("offset past the storage"));
            }
            Ok(Value::Tensor(TensorRef {
                key: key.clone(),
                elem: *elem,
                offset,
                size: dims(size)?,
                stride: dims(stride)?,
            }))
        }
        other => Err(bad(format!("{other} cannot be called"))),
    }
}

fn pop(stack: &mut Vec<Value>) -> Result<Value> {
    match stack.pop() {
        Some(Value::Mark) | None => Err(bad("pop past a mark")),
        Some(v) => Ok(v),
    }
}

fn pop_mark(stack: &mut Vec<Value>) -> Result<Vec<Value>> {
    let at = stack
        .iter()
        .rposition(|v| matches!(v, Value::Mark))
        .ok_or_else(|| bad("no mark"))?;
    let items = stack.split_off(at + 1);
    stack.pop();
    Ok(items)
}

fn dict_of(stack: &mut [Value]) -> Result<&mut Vec<(Value, Value)>> {
    match stack.last_mut() {
        Some(Value::Dict(d)) => Ok(d),
        _ => Err(bad("SETITEM on something not a dict")),
    }
}

fn list_of(stack: &mut [Value]) -> Result<&mut Vec<Value>> {
    match stack.last_mut() {
        Some(Value::List(l)) => Ok(l),
        _ => Err(bad("APPEND on something not a list")),
    }
}
