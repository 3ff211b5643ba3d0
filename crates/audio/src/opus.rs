//! Opus packets (from Ogg or WebM, as browsers record) decoded by the system's libopus, loaded at
//! run time (`libopus.so.0`, Debian's `libopus0`): symphonia demuxes Opus but has no decoder, and
//! linking libopus at build time would make building tandem need a C toolchain and its headers.
//! Without the library an Opus file is a clear error; everything else works.
//!
//! The C API used (opus_decoder.h): `opus_decoder_create(fs, channels, *error)`,
//! `opus_decode_float(st, data, len, pcm, frame_size, decode_fec)` → samples per channel or a
//! negative error, `opus_decoder_destroy(st)`; and to encode speech (opus_encoder.h)
//! `opus_encoder_create(fs, channels, application, *error)`, `opus_encode_float(st, pcm,
//! frame_size, data, max_bytes)` → bytes or a negative error, `opus_encoder_destroy(st)`.

use std::ffi::c_void;
use std::sync::OnceLock;

use crate::{AudioError, Result};

type Create = unsafe extern "C" fn(i32, i32, *mut i32) -> *mut c_void;
type DecodeFloat = unsafe extern "C" fn(*mut c_void, *const u8, i32, *mut f32, i32, i32) -> i32;
type Destroy = unsafe extern "C" fn(*mut c_void);
type EncCreate = unsafe extern "C" fn(i32, i32, i32, *mut i32) -> *mut c_void;
type EncodeFloat = unsafe extern "C" fn(*mut c_void, *const f32, i32, *mut u8, i32) -> i32;

struct Lib {
    _lib: libloading::Library,
    create: Create,
    decode: DecodeFloat,
    destroy: Destroy,
    enc_create: EncCreate,
    encode: EncodeFloat,
    enc_destroy: Destroy,
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
            let sym = |name: &[u8]| -> std::result::Result<*const c_void, String> {
                Ok(*lib.get::<*const c_void>(name).map_err(|e| e.to_string())?)
            };
            let (enc_create, encode, enc_destroy) = (
                std::mem::transmute::<*const c_void, EncCreate>(sym(b"opus_encoder_create\0")?),
                std::mem::transmute::<*const c_void, EncodeFloat>(sym(b"opus_encode_float\0")?),
                std::mem::transmute::<*const c_void, Destroy>(sym(b"opus_encoder_destroy\0")?),
            );
            Ok(Lib {
                _lib: lib,
                create,
                decode,
                destroy,
                enc_create,
                encode,
                enc_destroy,
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

/// The encoder's rate (a rate Opus takes; speech needs no more) and its frame: 20 ms.
const ENC_RATE: usize = 24_000;
const ENC_FRAME: usize = 480;
/// `OPUS_APPLICATION_VOIP`: tuned for speech.
const APPLICATION_VOIP: i32 = 2048;
/// Samples (at 48 kHz) a decoder drops at the start: libopus's look-ahead at this setting.
const PRE_SKIP: u16 = 312;

/// Mono speech (`samples` at `rate`) as an Ogg Opus file (RFC 7845): OpusHead, OpusTags, then
/// one 20-ms packet per page, granule positions in 48-kHz samples.
pub fn ogg_opus(samples: &[f32], rate: usize) -> Result<Vec<u8>> {
    let lib =
        lib().map_err(|e| AudioError::Input(format!("Opus needs the system's libopus (Debian: libopus0): {e}")))?;
    let pcm = crate::input::resample(samples, rate, ENC_RATE)?;
    let mut err = 0i32;
    // SAFETY: valid rate, channel count and application; `err` outlives the call.
    let st = unsafe { (lib.enc_create)(ENC_RATE as i32, 1, APPLICATION_VOIP, &mut err) };
    if st.is_null() || err != 0 {
        return Err(AudioError::Input(format!("libopus refused an encoder (error {err})")));
    }
    let out = ogg_pages(lib, st, &pcm);
    // SAFETY: created by opus_encoder_create and destroyed once.
    unsafe { (lib.enc_destroy)(st) };
    out
}

fn ogg_pages(lib: &Lib, st: *mut c_void, pcm: &[f32]) -> Result<Vec<u8>> {
    use ogg::writing::{PacketWriteEndInfo as End, PacketWriter};
    let mut file = Vec::new();
    let mut w = PacketWriter::new(&mut file);
    let serial = 0x7461_6e64; // "tand"
    let mut head = b"OpusHead".to_vec();
    head.extend([1u8, 1]);
    head.extend(PRE_SKIP.to_le_bytes());
    head.extend((ENC_RATE as u32).to_le_bytes());
    head.extend([0u8, 0, 0]);
    let mut tags = b"OpusTags".to_vec();
    tags.extend(6u32.to_le_bytes());
    tags.extend(b"tandem");
    tags.extend(0u32.to_le_bytes());
    let io = |e: std::io::Error| AudioError::Input(format!("ogg: {e}"));
    w.write_packet(head, serial, End::EndPage, 0).map_err(io)?;
    w.write_packet(tags, serial, End::EndPage, 0).map_err(io)?;
    // Granules count decoded 48-kHz samples, pre-skip included: encode until the look-ahead is
    // flushed too, and end the stream at pre-skip + the speech (RFC 7845 §4).
    let total = PRE_SKIP as u64 + (pcm.len() * 48_000 / ENC_RATE) as u64;
    let per_frame = (ENC_FRAME * 48_000 / ENC_RATE) as u64;
    let frames = (total.div_ceil(per_frame) as usize).max(1);
    let mut frame = vec![0f32; ENC_FRAME];
    let mut packet = vec![0u8; 4000];
    for f in 0..frames {
        let chunk = &pcm[(f * ENC_FRAME).min(pcm.len())..((f + 1) * ENC_FRAME).min(pcm.len())];
        frame.fill(0.0);
        frame[..chunk.len()].copy_from_slice(chunk);
        // SAFETY: `st` is a live encoder; `frame` holds ENC_FRAME samples; `packet` its length.
        let n = unsafe {
            (lib.encode)(
                st,
                frame.as_ptr(),
                ENC_FRAME as i32,
                packet.as_mut_ptr(),
                packet.len() as i32,
            )
        };
        if n < 0 {
            return Err(AudioError::Input(format!("libopus could not encode (error {n})")));
        }
        let last = f + 1 == frames;
        let granule = if last { total } else { (f as u64 + 1) * per_frame };
        let end = if last { End::EndStream } else { End::NormalPacket };
        w.write_packet(packet[..n as usize].to_vec(), serial, end, granule)
            .map_err(io)?;
    }
    drop(w);
    Ok(file)
}
