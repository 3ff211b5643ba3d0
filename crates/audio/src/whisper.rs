//! Whisper's math on our kernels: the encoder (two 1-D convolutions with GELU, sinusoidal
//! positions, pre-norm transformer layers) over a 30-s log-mel window, and the decoder (learned
//! positions, causal self-attention with a KV cache, cross-attention over the encoder's output)
//! giving next-token logits. Weights come from CTranslate2's WhisperSpec as fp16 and are converted
//! once at load to what the chosen kernels take (`Precision`): f32 for the exact matmul path
//! (transcripts compared token for token with CTranslate2's float32 run), or int8 rows for the
//! int8 GEMM (`tandem_kernels::gemm_i8`: CTranslate2's int8 arithmetic).

use rayon::prelude::*;
use tandem_kernels::dense::Dense as Linear;
pub use tandem_kernels::dense::Precision;
use tandem_kernels::ops::gelu_slice;
use tandem_kernels::Isa;

use crate::ct2::Ct2Model;
use crate::{AudioError, Result};

/// Layer norm epsilon of Whisper's layers.
const EPS: f32 = 1e-5;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub n_mels: usize,
    pub d: usize,
    pub heads: usize,
    pub enc_layers: usize,
    pub dec_layers: usize,
    pub vocab: usize,
    /// Encoder positions (1,500 for 30 s) and decoder positions (448).
    pub audio_ctx: usize,
    pub text_ctx: usize,
}

/// A Whisper dense layer (`{name}/weight` [rows, cols], `{name}/bias`) as the kernels take it.
fn linear(m: &Ct2Model, name: &str, (rows, cols): (usize, usize), p: Precision) -> Result<Linear> {
    let w = m.f32s(&format!("{name}/weight"), &[rows, cols])?;
    Ok(Linear::new(
        &w,
        (rows, cols),
        m.f32s(&format!("{name}/bias"), &[rows])?,
        p,
    ))
}

struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

impl Norm {
    fn load(m: &Ct2Model, name: &str, d: usize) -> Result<Self> {
        Ok(Self {
            g: m.f32s(&format!("{name}/gamma"), &[d])?,
            b: m.f32s(&format!("{name}/beta"), &[d])?,
        })
    }

    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let d = self.g.len();
        let mut out = x.to_vec();
        out.par_chunks_mut(d).for_each(|row| {
            let mean = row.iter().sum::<f32>() / d as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
            let inv = 1.0 / (var + EPS).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.g).zip(&self.b) {
                *v = (*v - mean) * inv * g + b;
            }
        });
        out
    }
}

struct Ffn {
    norm: Norm,
    up: Linear,
    down: Linear,
}

impl Ffn {
    fn load(m: &Ct2Model, p: &str, d: usize, prec: Precision) -> Result<Self> {
        let ff = m.get(&format!("{p}/ffn/linear_0/bias"))?.dims[0];
        Ok(Self {
            norm: Norm::load(m, &format!("{p}/ffn/layer_norm"), d)?,
            up: linear(m, &format!("{p}/ffn/linear_0"), (ff, d), prec)?,
            down: linear(m, &format!("{p}/ffn/linear_1"), (d, ff), prec)?,
        })
    }

    /// x += W₂·GELU(W₁·LN(x)).
    fn residual(&self, x: &mut [f32]) {
        let mut h = self.up.apply(&self.norm.apply(x));
        h.par_chunks_mut(self.up.rows)
            .for_each(|x| gelu_slice(x, Isa::detected()));
        add(x, &self.down.apply(&h));
    }
}

struct EncoderLayer {
    norm: Norm,
    qkv: Linear,
    out: Linear,
    ffn: Ffn,
}

struct DecoderLayer {
    self_norm: Norm,
    self_qkv: Linear,
    self_out: Linear,
    cross_norm: Norm,
    cross_q: Linear,
    /// Keys and values of the encoder output, stacked: [2d, d].
    cross_kv: Linear,
    cross_out: Linear,
    ffn: Ffn,
}

pub struct Whisper {
    pub cfg: Config,
    conv1: Linear,
    conv2: Linear,
    enc_pos: Vec<f32>,
    enc_layers: Vec<EncoderLayer>,
    enc_norm: Norm,
    /// Token embeddings [vocab, d], also the output projection.
    embed: Vec<f32>,
    /// The output projection as int8 rows (`Precision::Int8`; else the f32 `embed` is read directly).
    head: Option<Linear>,
    dec_pos: Vec<f32>,
    dec_layers: Vec<DecoderLayer>,
    dec_norm: Norm,
}

/// The decoder's state for one window: per layer, the encoder output's keys and values
/// ([audio_ctx, 2d]: a row's key then its value) and the self-attention cache in the same layout
/// ([len, 2d], grown as tokens are fed). A clone (a beam's branch) shares the encoder's part.
#[derive(Clone)]
pub struct DecoderState {
    cross: std::sync::Arc<Vec<Vec<f32>>>,
    cache: Vec<Vec<f32>>,
    pub len: usize,
}

impl Whisper {
    pub fn load(m: &Ct2Model, prec: Precision) -> Result<Self> {
        if m.spec != "WhisperSpec" {
            return Err(AudioError::Format(format!(
                "model.bin holds a {}, not a WhisperSpec",
                m.spec
            )));
        }
        if m.scalar("decoder/activation")? != 3 || m.scalar("decoder/scale_embeddings")? != 0 {
            return Err(AudioError::Format(
                "unexpected Whisper variant (activation, embedding scale)".into(),
            ));
        }
        let conv1 = m.get("encoder/conv1/weight")?.dims.clone();
        let [d, n_mels, 3] = conv1[..] else {
            return Err(AudioError::Format(format!("encoder/conv1 is {conv1:?}")));
        };
        let emb = m.get("decoder/embeddings/weight")?.dims.clone();
        let cfg = Config {
            n_mels,
            d,
            heads: m.scalar("encoder/num_heads")? as usize,
            enc_layers: m.layers("encoder"),
            dec_layers: m.layers("decoder"),
            vocab: emb[0],
            audio_ctx: m.get("encoder/position_encodings/encodings")?.dims[0],
            text_ctx: m.get("decoder/position_encodings/encodings")?.dims[0],
        };
        if cfg.heads == 0 || d % cfg.heads != 0 || emb[1] != d {
            return Err(AudioError::Format("inconsistent Whisper dimensions".into()));
        }
        let enc_layers = (0..cfg.enc_layers)
            .map(|i| {
                let p = format!("encoder/layer_{i}");
                Ok(EncoderLayer {
                    norm: Norm::load(m, &format!("{p}/self_attention/layer_norm"), d)?,
                    qkv: linear(m, &format!("{p}/self_attention/linear_0"), (3 * d, d), prec)?,
                    out: linear(m, &format!("{p}/self_attention/linear_1"), (d, d), prec)?,
                    ffn: Ffn::load(m, &p, d, prec)?,
                })
            })
            .collect::<Result<_>>()?;
        let dec_layers = (0..cfg.dec_layers)
            .map(|i| {
                let p = format!("decoder/layer_{i}");
                Ok(DecoderLayer {
                    self_norm: Norm::load(m, &format!("{p}/self_attention/layer_norm"), d)?,
                    self_qkv: linear(m, &format!("{p}/self_attention/linear_0"), (3 * d, d), prec)?,
                    self_out: linear(m, &format!("{p}/self_attention/linear_1"), (d, d), prec)?,
                    cross_norm: Norm::load(m, &format!("{p}/attention/layer_norm"), d)?,
                    cross_q: linear(m, &format!("{p}/attention/linear_0"), (d, d), prec)?,
                    cross_kv: linear(m, &format!("{p}/attention/linear_1"), (2 * d, d), prec)?,
                    cross_out: linear(m, &format!("{p}/attention/linear_2"), (d, d), prec)?,
                    ffn: Ffn::load(m, &p, d, prec)?,
                })
            })
            .collect::<Result<_>>()?;
        let embed = m.f32s("decoder/embeddings/weight", &[cfg.vocab, d])?;
        Ok(Self {
            conv1: conv(m, "encoder/conv1", d, n_mels, prec)?,
            conv2: conv(m, "encoder/conv2", d, d, prec)?,
            enc_pos: m.f32s("encoder/position_encodings/encodings", &[cfg.audio_ctx, d])?,
            enc_layers,
            enc_norm: Norm::load(m, "encoder/layer_norm", d)?,
            head: (prec == Precision::Int8).then(|| Linear::new(&embed, (cfg.vocab, d), vec![0.0; cfg.vocab], prec)),
            embed,
            dec_pos: m.f32s("decoder/position_encodings/encodings", &[cfg.text_ctx, d])?,
            dec_layers,
            dec_norm: Norm::load(m, "decoder/layer_norm", d)?,
            cfg,
        })
    }

    /// The encoder over one window: mel [n_mels, 2·audio_ctx] → [audio_ctx, d].
    pub fn encode(&self, mel: &[f32]) -> Vec<f32> {
        let (c, t) = (self.cfg.n_mels, 2 * self.cfg.audio_ctx);
        assert_eq!(mel.len(), c * t, "one window of mel frames");
        // conv1 (kernel 3, padding 1) as a matmul over [t, c·3] columns.
        let cols = im2col(t, c * 3, |pos, ch| if pos < t { mel[ch * t + pos] } else { 0.0 }, 1);
        let mut h = self.conv1.apply(&cols);
        let d = self.cfg.d;
        h.par_chunks_mut(d).for_each(|x| gelu_slice(x, Isa::detected()));
        // conv2 (kernel 3, stride 2, padding 1) over h: [t, d] token-major.
        let cols = im2col(
            self.cfg.audio_ctx,
            d * 3,
            |pos, ch| if pos < t { h[pos * d + ch] } else { 0.0 },
            2,
        );
        let mut x = self.conv2.apply(&cols);
        x.par_chunks_mut(d).for_each(|x| gelu_slice(x, Isa::detected()));
        add(&mut x, &self.enc_pos);
        let n = self.cfg.audio_ctx;
        for l in &self.enc_layers {
            let qkv = l.qkv.apply(&l.norm.apply(&x));
            let ctx = self_attention(&qkv, n, self.cfg.heads, d);
            add(&mut x, &l.out.apply(&ctx));
            l.ffn.residual(&mut x);
        }
        self.enc_norm.apply(&x)
    }

    /// A decoder state for one window's encoder output (its cross-attention keys and values).
    pub fn start(&self, enc: &[f32]) -> DecoderState {
        DecoderState {
            cross: std::sync::Arc::new(self.dec_layers.iter().map(|l| l.cross_kv.apply(enc)).collect()),
            cache: vec![Vec::new(); self.dec_layers.len()],
            len: 0,
        }
    }

    /// Feeds `tokens` after what `st` holds; returns the logits after the last: [vocab].
    pub fn step(&self, st: &mut DecoderState, tokens: &[u32]) -> Vec<f32> {
        self.step_capturing(st, tokens, &mut [])
    }

    /// `step`, also giving each `(layer, head)` of `heads` its cross-attention scores for the
    /// fed tokens before the softmax (q·k/√head_dim): [tokens.len(), audio_ctx] each, in order.
    pub fn cross_scores(&self, st: &mut DecoderState, tokens: &[u32], heads: &[(usize, usize)]) -> Vec<Vec<f32>> {
        let mut capture: Vec<((usize, usize), Vec<f32>)> = heads.iter().map(|&h| (h, Vec::new())).collect();
        self.step_capturing(st, tokens, &mut capture);
        capture.into_iter().map(|c| c.1).collect()
    }

    fn step_capturing(
        &self,
        st: &mut DecoderState,
        tokens: &[u32],
        capture: &mut [((usize, usize), Vec<f32>)],
    ) -> Vec<f32> {
        let d = self.cfg.d;
        let n = tokens.len();
        let mut x = Vec::with_capacity(n * d);
        for (i, &t) in tokens.iter().enumerate() {
            let e = &self.embed[t as usize * d..(t as usize + 1) * d];
            let p = &self.dec_pos[(st.len + i) * d..(st.len + i + 1) * d];
            x.extend(e.iter().zip(p).map(|(a, b)| a + b));
        }
        for (li, l) in self.dec_layers.iter().enumerate() {
            let qkv = l.self_qkv.apply(&l.self_norm.apply(&x));
            for row in qkv.chunks_exact(3 * d) {
                st.cache[li].extend_from_slice(&row[d..]);
            }
            let total = st.len + n;
            let ctx = attention(&self.cfg, &qkv, 3 * d, &st.cache[li], (n, total), true);
            add(&mut x, &l.self_out.apply(&ctx));
            let q = l.cross_q.apply(&l.cross_norm.apply(&x));
            let nk = self.cfg.audio_ctx;
            for ((_, h), out) in capture.iter_mut().filter(|c| c.0 .0 == li) {
                *out = cross_scores(&self.cfg, &q, &st.cross[li], *h);
            }
            let ctx = attention(&self.cfg, &q, d, &st.cross[li], (n, nk), false);
            add(&mut x, &l.cross_out.apply(&ctx));
            l.ffn.residual(&mut x);
        }
        st.len += n;
        let last = self.dec_norm.apply(&x[(n - 1) * d..]);
        if let Some(head) = &self.head {
            return head.apply(&last);
        }
        // One row against the whole vocabulary: a GEMV straight over the f32 embeddings (the
        // matmul's row path would first copy each f32 row through its dequantise scratch).
        let mut logits = vec![0f32; self.cfg.vocab];
        logits.par_chunks_mut(1024).enumerate().for_each(|(c, out)| {
            for (i, l) in out.iter_mut().enumerate() {
                let r = c * 1024 + i;
                *l = tandem_kernels::dispatch::dot_f32(&self.embed[r * d..(r + 1) * d], &last, Isa::detected());
            }
        });
        logits
    }
}

fn conv(m: &Ct2Model, name: &str, out: usize, inp: usize, prec: Precision) -> Result<Linear> {
    // [out, in, 3] row-major is already [out, in·3] with column ch·3 + k.
    let w = m.f32s(&format!("{name}/weight"), &[out, inp, 3])?;
    let b = m.f32s(&format!("{name}/bias"), &[out])?;
    Ok(Linear::new(&w, (out, inp * 3), b, prec))
}

/// Columns of a kernel-3, padding-1 convolution with `stride`: row o holds, for each input
/// channel ch and tap k, `get(stride·o + k − 1, ch)` at column ch·3 + k (zero outside).
fn im2col(outputs: usize, width: usize, get: impl Fn(usize, usize) -> f32 + Sync, stride: usize) -> Vec<f32> {
    let mut cols = vec![0f32; outputs * width];
    cols.par_chunks_mut(width).enumerate().for_each(|(o, row)| {
        for k in 0..3 {
            let Some(pos) = (stride * o + k).checked_sub(1) else {
                continue;
            };
            for ch in 0..width / 3 {
                row[ch * 3 + k] = get(pos, ch);
            }
        }
    });
    cols
}

/// The decoder's attention of `nq` query rows over `nk` cached rows, per head (scale
/// 1/√head_dim). Queries are the first `d` values of each row of `q` (stride `qs`: a fused q|k|v
/// row, or a plain query); `kv` rows are a key then its value ([nk, 2d], as `DecoderState` keeps
/// them). `causal`: query i sees keys ≤ i + (nk − nq). Returns [nq, d].
fn attention(cfg: &Config, q: &[f32], qs: usize, kv: &[f32], (nq, nk): (usize, usize), causal: bool) -> Vec<f32> {
    let (heads, d) = (cfg.heads, cfg.d);
    let hd = d / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let parts: Vec<Vec<f32>> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let mut out = vec![0f32; nq * hd];
            let mut s = vec![0f32; nk];
            for i in 0..nq {
                let qi = &q[i * qs + h * hd..][..hd];
                let seen = if causal { nk - nq + i + 1 } else { nk };
                for (j, sj) in s[..seen].iter_mut().enumerate() {
                    let kj = &kv[j * 2 * d + h * hd..][..hd];
                    *sj = tandem_kernels::dispatch::dot_f32(qi, kj, Isa::detected()) * scale;
                }
                tandem_kernels::ops::softmax(&mut s[..seen], Isa::detected());
                let o = &mut out[i * hd..(i + 1) * hd];
                for (j, &p) in s[..seen].iter().enumerate() {
                    tandem_kernels::ops::axpy(p, &kv[j * 2 * d + d + h * hd..][..hd], o, Isa::detected());
                }
            }
            out
        })
        .collect();
    let mut ctx = vec![0f32; nq * d];
    for (h, part) in parts.iter().enumerate() {
        for i in 0..nq {
            ctx[i * d + h * hd..][..hd].copy_from_slice(&part[i * hd..(i + 1) * hd]);
        }
    }
    ctx
}

/// Head `h`'s scores q·k/√head_dim of every query row of `q` ([n, d]) against every key of `kv`
/// ([audio_ctx, 2d] key|value rows): [n, audio_ctx].
fn cross_scores(cfg: &Config, q: &[f32], kv: &[f32], h: usize) -> Vec<f32> {
    let (d, hd) = (cfg.d, cfg.d / cfg.heads);
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; q.len() / d * cfg.audio_ctx];
    out.par_chunks_mut(cfg.audio_ctx).enumerate().for_each(|(i, row)| {
        let qi = &q[i * d + h * hd..][..hd];
        for (j, s) in row.iter_mut().enumerate() {
            *s = tandem_kernels::dispatch::dot_f32(qi, &kv[j * 2 * d + h * hd..][..hd], Isa::detected()) * scale;
        }
    });
    out
}

/// The encoder's self-attention on the kernels' prompt-attention tiles (register-tiled scores
/// and sums, the LLM prompt path's): qkv [n, 3d] (queries, keys, values) → context [n, d]. Each
/// head's keys and values are laid out once, then query chunks of every head run in parallel.
fn self_attention(qkv: &[f32], n: usize, heads: usize, d: usize) -> Vec<f32> {
    use tandem_kernels::attention::{keys_ld, keys_t_f32, prompt_tile, values_f32, TileScratch};
    const CHUNK: usize = 128;
    let hd = d / heads;
    let ld = keys_ld(n);
    let scale = 1.0 / (hd as f32).sqrt();
    let row = |t: usize, part: usize, h: usize| &qkv[t * 3 * d + part * d + h * hd..][..hd];
    let kv: Vec<(Vec<f32>, Vec<f32>)> = (0..heads)
        .into_par_iter()
        .map(|h| {
            let (mut kt, mut v) = (vec![0f32; hd * ld], vec![0f32; n * hd]);
            keys_t_f32(|t| row(t, 1, h), hd, n, &mut kt);
            values_f32(|t| row(t, 2, h), hd, n, &mut v);
            (kt, v)
        })
        .collect();
    let chunks = n.div_ceil(CHUNK);
    let limits = vec![n; CHUNK];
    let parts: Vec<Vec<f32>> = (0..heads * chunks)
        .into_par_iter()
        .map_init(TileScratch::default, |scratch, task| {
            let (h, c) = (task / chunks, task % chunks);
            let rows = c * CHUNK..((c + 1) * CHUNK).min(n);
            let q: Vec<f32> = rows.clone().flat_map(|t| row(t, 0, h).iter().copied()).collect();
            let mut out = vec![0f32; q.len()];
            let (kt, v) = &kv[h];
            prompt_tile(
                &q,
                hd,
                &limits[..rows.len()],
                kt,
                ld,
                v,
                scale,
                scratch,
                &mut out,
                Isa::detected(),
            );
            out
        })
        .collect();
    let mut ctx = vec![0f32; n * d];
    for (task, part) in parts.iter().enumerate() {
        let (h, c) = (task / chunks, task % chunks);
        for (i, o) in part.chunks_exact(hd).enumerate() {
            ctx[(c * CHUNK + i) * d + h * hd..][..hd].copy_from_slice(o);
        }
    }
    ctx
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}
