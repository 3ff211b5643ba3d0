//! Seeing, through a perception stage: no vision-language model or CLIP-like encoder ships in a
//! package tandem can pull, so an image becomes a framed block of text the tiers read — its
//! size, dominant colours (named), what an ImageNet classifier recognises (EfficientNet-Lite0 on
//! tandem's kernels, with probabilities), and the text in it (OCR) in reading order. Real,
//! measured, replaceable: a native encoder would implement `Vision` too.
//!
//! Layout
//! - `picture`: bytes → an upright RGB image, within limits (bytes and pixels checked first).
//! - `pickle`: PyTorch's legacy checkpoint format, read by a restricted unpickler.
//! - `efficientnet`: the classifier's math (batch norm folded at load; SAME padding).
//! - `preprocess`: the crop and scaling the classifier's weights were trained with.
//! - `labels`: ImageNet class names (timm's synset and lemma lists).
//! - `colours`: dominant colours by name.
//! - `ppocr`: OCR by PP-OCRv4 on ONNX Runtime; `text_boxes`: its detector's map → text boxes.
//! - `tesseract`: OCR by the `tesseract` program.
//! - `block`: the perception block's text.

pub mod block;
pub mod colours;
pub mod efficientnet;
pub mod labels;
pub mod pickle;
pub mod picture;
pub mod ppocr;
pub mod preprocess;
pub mod tesseract;
pub mod text_boxes;

use std::path::Path;

pub use picture::{decode, Limits, Picture};
pub use tandem_kernels::dense::Precision;

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The caller's image: not decodable, too large, of a type not taken.
    #[error("{0}")]
    Image(String),
    #[error("vision weights: {0}")]
    Weights(String),
    #[error("OCR: {0}")]
    Ocr(String),
}

pub type Result<T> = std::result::Result<T, VisionError>;

/// How much of an image the tiers get (OpenAI's `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detail {
    /// Size, colours, labels.
    Low,
    /// Plus the text read from it.
    High,
    /// The text when some is found.
    Auto,
}

impl Detail {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "low" => Self::Low,
            "high" => Self::High,
            "auto" => Self::Auto,
            _ => return None,
        })
    }
}

/// A line of text read from an image, with the reader's confidence (0–1).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub text: String,
    pub confidence: f32,
}

/// What the perception stage found in one image.
#[derive(Debug, Clone)]
pub struct Perception {
    pub width: u32,
    pub height: u32,
    pub format: &'static str,
    pub colours: colours::Colours,
    /// Class names with probabilities, most likely first (empty without a classifier).
    pub labels: Vec<(String, f32)>,
    /// The text read, in reading order; `None` when no reader ran.
    pub text: Option<Vec<Line>>,
    /// Which engines produced this (for the block and `/v1/models`).
    pub engines: Vec<&'static str>,
}

/// An image → what the tiers are told about it. The perception stage is one; a native image
/// encoder would be another.
pub trait Vision: Send + Sync {
    fn see(&self, picture: &Picture, detail: Detail) -> Result<Perception>;
    /// The engines it runs, for the startup line and `/v1/models`.
    fn engines(&self) -> Vec<&'static str>;
}

/// EfficientNet-Lite0 with its class names.
pub struct Classifier {
    net: efficientnet::EfficientNet,
    labels: labels::Labels,
}

impl Classifier {
    /// From `dir` as `tandem pull vision` lays it out.
    pub fn load(dir: &Path, p: Precision) -> Result<Self> {
        let read = |f: &str| std::fs::read(dir.join(f)).map_err(|e| VisionError::Weights(format!("{f}: {e}")));
        let tensors = pickle::read_state_dict(&read(WEIGHTS)?)?;
        let text = |f: &str| read(f).map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(Self {
            net: efficientnet::EfficientNet::load(tensors, p)?,
            labels: labels::Labels::parse(&text(SYNSETS)?, &text(LEMMAS)?)?,
        })
    }

    /// Logits of the classifier's crop of `img`.
    pub fn logits(&self, img: &image::RgbImage) -> Vec<f32> {
        self.logits_of_crop(&preprocess::crop(img))
    }

    /// Logits of a 224 × 224 crop made already (`preprocess::crop`).
    pub fn logits_of_crop(&self, crop: &image::RgbImage) -> Vec<f32> {
        self.net.logits(&preprocess::tensor(crop))
    }

    /// The `k` likeliest classes with their probabilities.
    pub fn top(&self, img: &image::RgbImage, k: usize) -> Vec<(String, f32)> {
        let logits = self.logits(img);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        let mut idx: Vec<usize> = (0..e.len()).collect();
        idx.sort_by(|&a, &b| e[b].total_cmp(&e[a]));
        idx.into_iter()
            .take(k)
            .map(|i| (self.labels.name(i).to_string(), e[i] / sum))
            .collect()
    }
}

/// File names under the vision model's directory.
pub const WEIGHTS: &str = "efficientnet-lite0.pth";
pub const SYNSETS: &str = "imagenet_synsets.txt";
pub const LEMMAS: &str = "imagenet_synset_to_lemma.txt";

/// An OCR engine: the lines of text in an image, in reading order.
pub trait Reader: Send + Sync {
    fn read(&self, img: &image::RgbImage) -> Result<Vec<Line>>;
    /// What `/v1/models` and the block call it.
    fn name(&self) -> &'static str;
}

impl Reader for ppocr::PpOcr {
    fn read(&self, img: &image::RgbImage) -> Result<Vec<Line>> {
        ppocr::PpOcr::read(self, img)
    }

    fn name(&self) -> &'static str {
        "pp-ocrv4"
    }
}

impl Reader for tesseract::Tesseract {
    fn read(&self, img: &image::RgbImage) -> Result<Vec<Line>> {
        tesseract::Tesseract::read(self, img)
    }

    fn name(&self) -> &'static str {
        "tesseract"
    }
}

/// PP-OCR, with tesseract for the scripts PP-OCR lacks: tesseract runs too, with the installed
/// packs of languages PP-OCR does not read (Cyrillic, Greek, Japanese, Korean, Arabic, …), and its
/// lines that are mostly letters outside PP-OCR's character list are added after PP-OCR's.
pub struct WithOtherScripts {
    pub ppocr: ppocr::PpOcr,
    pub tesseract: tesseract::Tesseract,
}

impl WithOtherScripts {
    /// Whether at least half of the line's letters are ones PP-OCR cannot output.
    fn other_script(&self, line: &str) -> bool {
        let letters: Vec<char> = line.chars().filter(|c| c.is_alphabetic()).collect();
        let unknown = letters.iter().filter(|&&c| !self.ppocr.knows(c)).count();
        !letters.is_empty() && 2 * unknown >= letters.len()
    }
}

impl Reader for WithOtherScripts {
    fn read(&self, img: &image::RgbImage) -> Result<Vec<Line>> {
        let mut lines = self.ppocr.read(img)?;
        let other = self.tesseract.read(img)?;
        lines.extend(other.into_iter().filter(|l| self.other_script(&l.text)));
        Ok(lines)
    }

    fn name(&self) -> &'static str {
        "pp-ocrv4 + tesseract"
    }
}

/// The perception stage: colours always, the classifier and the OCR engine where present.
pub struct PerceptionStage {
    pub classifier: Option<Classifier>,
    pub ocr: Option<Box<dyn Reader>>,
}

/// Labels shown: the top five, those of at least 2% (and always the first).
const LABELS: usize = 5;
const LABEL_FLOOR: f32 = 0.02;

impl Vision for PerceptionStage {
    fn see(&self, p: &Picture, detail: Detail) -> Result<Perception> {
        let mut labels = match &self.classifier {
            Some(c) => c.top(&p.rgb, LABELS),
            None => Vec::new(),
        };
        let first = labels.first().cloned();
        labels.retain(|(_, prob)| *prob >= LABEL_FLOOR);
        if labels.is_empty() {
            labels.extend(first);
        }
        let text = match (&self.ocr, detail) {
            (Some(ocr), Detail::High) => Some(ocr.read(&p.rgb)?),
            (Some(ocr), Detail::Auto) => Some(ocr.read(&p.rgb)?).filter(|l| block::has_text(l)),
            _ => None,
        };
        Ok(Perception {
            width: p.rgb.width(),
            height: p.rgb.height(),
            format: p.format,
            colours: colours::dominant(&p.rgb),
            labels,
            text,
            engines: self.engines(),
        })
    }

    fn engines(&self) -> Vec<&'static str> {
        let mut e = Vec::new();
        if self.classifier.is_some() {
            e.push("efficientnet-lite0");
        }
        if let Some(r) = &self.ocr {
            e.push(r.name());
        }
        e
    }
}
