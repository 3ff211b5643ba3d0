//! Opus packets (from Ogg or WebM, as browsers record) decoded by the system's libopus, loaded at
//! run time (`libopus.so.0`, Debian's `libopus0`): symphonia demuxes Opus but has no decoder, and
//! linking libopus at build time would make building tandem need a C toolchain and its headers.
//! Without the library an Opus file is a clear error; everything else works.
//!
//! The C API used (opus_decoder.h): `opus_decoder_create(fs, channels, *error)`,
//! `opus_decode_float(st, data, len, pcm, frame_size, decode_fec)` → samples per channel or a
//! negative error, `opus_decoder_destroy(st)`.

use std::ffi::c_void;
use std::sync::OnceLock;

use crate::{AudioError, Result};

type Create = unsafe extern "C" fn(i32, i32, *mut i32) -> *mut c_void;
type DecodeFloat = unsafe extern "C" fn(*mut c_void, *const u8, i32, *mut f32, i32, i32) -> i32;
type Destroy = unsafe extern "C" fn(*mut c_void);

struct Lib {
    _lib: libloading::Library,
    create: Create,
    decode: DecodeFloat,
    destroy: Destroy,
}

/// Opus always decodes at 48 kHz here; 120 ms is the longest frame.
pub const RATE: usize = 48_000;
const MAX_FRAME: usize = 5_760;

fn lib() -> std::result::Result<&'static Lib, String> {
    static LIB: OnceLock<std::result::Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        // SAFETY: loading a shared library runs its initialisers; libopus has none that matter, and
        // the symbols are read with the types of opus_decoder.h.
        unsafe {
            let lib = libloading::Library::new("libopus.so.0").map_err(|e| e.to_string())?;
            let create = *lib.get::<Create>(b"opus_decoder_create\0").map_err(|e| e.to_string())?;
            let decode = *lib
                .get::<DecodeFloat>(b"opus_decode_float\0")
                .map_err(|e| e.to_string())?;
            let destroy = *lib
                .get::<Destroy>(b"opus_decoder_destroy\0")
                .map_err(|e| e.to_string())?;
            Ok(Lib {
                _lib: lib,
                create,
                decode,
                destroy,
            })
        }
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// One Opus stream's decoder (1 or 2 channels), interleaved f32 out.
pub struct Decoder {
    lib: &'static Lib,
    st: *mut c_void,
    channels: usize,
    buf: Vec<f32>,
}

impl Decoder {
    pub fn new(channels: usize) -> Result<Self> {
        let lib = lib().map_err(|e| {
            AudioError::Input(format!(
                "Opus audio needs the system's libopus (Debian: apt-get install libopus0): {e}"
            ))
        })?;
        if !(1..=2).contains(&channels) {
            return Err(AudioError::Input(format!(
                "Opus with {channels} channels is not supported"
            )));
        }
        let mut err = 0i32;
        // SAFETY: valid rate and channel count; `err` outlives the call.
        let st = unsafe { (lib.create)(RATE as i32, channels as i32, &mut err) };
        if st.is_null() || err != 0 {
            return Err(AudioError::Input(format!("libopus refused a decoder (error {err})")));
        }
        Ok(Self {
            lib,
            st,
            channels,
            buf: vec![0.0; MAX_FRAME * channels],
        })
    }

    /// Decodes one packet; its samples, interleaved.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32]> {
        let len = i32::try_from(packet.len()).map_err(|_| AudioError::Input("an Opus packet is too large".into()))?;
        // SAFETY: `st` is a live decoder; `buf` holds MAX_FRAME samples per channel, the frame
        // size passed; libopus reads `len` bytes of `packet`.
        let n = unsafe {
            (self.lib.decode)(
                self.st,
                packet.as_ptr(),
                len,
                self.buf.as_mut_ptr(),
                MAX_FRAME as i32,
                0,
            )
        };
        if n < 0 {
            return Err(AudioError::Input(format!("a damaged Opus packet (libopus error {n})")));
        }
        Ok(&self.buf[..n as usize * self.channels])
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create and destroyed once.
        unsafe { (self.lib.destroy)(self.st) }
    }
}
