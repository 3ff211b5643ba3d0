//! Models, moderation results, and tandem's small endpoints (tokenize, detokenize, health).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
    /// tandem's additions: the tier name, the context served, the architecture, the prices.
    pub tier: String,
    pub context_window: usize,
    pub parameters_name: String,
    pub pricing: ModelPricing,
    /// What the model takes: `text`, and for the tiers `audio` (heard through Whisper) and `image`
    /// (seen through the perception stage) when those are served.
    #[serde(default)]
    pub input_modalities: Vec<String>,
    /// How a tier sees images, when it does (`perception stage: efficientnet-lite0, tesseract`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision: Option<String>,
    /// Other names that reach this model (`gpt-4o-mini` for the mini tier), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPricing {
    pub unit: String,
    pub input: f64,
    pub cached_input: f64,
    pub output: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moderation {
    pub id: String,
    pub model: String,
    pub results: Vec<ModerationResult>,
}

/// One input's verdict, as OpenAI's omni-moderation returns it (categories in OpenAI's order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModerationResult {
    pub flagged: bool,
    pub categories: OrderedMap<bool>,
    pub category_scores: OrderedMap<f64>,
    pub category_applied_input_types: OrderedMap<Vec<String>>,
}

/// A JSON object whose keys keep the order they were given in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderedMap<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for OrderedMap<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for OrderedMap<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde_json's map keeps the order (feature preserve_order).
        let m = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        m.into_iter()
            .map(|(k, v)| Ok((k, serde_json::from_value(v).map_err(serde::de::Error::custom)?)))
            .collect::<Result<Vec<_>, D::Error>>()
            .map(Self)
    }
}

impl<T> FromIterator<(String, T)> for OrderedMap<T> {
    fn from_iter<I: IntoIterator<Item = (String, T)>>(it: I) -> Self {
        Self(it.into_iter().collect())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tokenized {
    pub tokens: Vec<u32>,
    pub count: usize,
}

/// `POST /perceive` (tandem's): what the perception stage found in an image, and the block the
/// tiers read in its place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Perceived {
    pub block: String,
    pub width: u32,
    pub height: u32,
    pub format: String,
    /// The colour of most of the image's border, when one holds at least 60% of it.
    pub background: Option<String>,
    pub colours: Vec<Share>,
    pub labels: Vec<Share>,
    /// The lines read, in reading order; `null` when no OCR ran (`detail` low, or none found under
    /// `auto`).
    pub text: Option<Vec<TextLine>>,
    pub engines: Vec<String>,
}

/// A name with its share of the image (colours) or probability (labels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Share {
    pub name: String,
    pub value: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLine {
    pub text: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detokenized {
    pub prompt: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub models: Vec<String>,
}
