//! ImageNet-1k class names as timm 1.0.31 gives them: `imagenet_synsets.txt` (line i: class i's
//! WordNet synset) and `imagenet_synset_to_lemma.txt` (synset, tab, its lemmas); a class is named
//! by its synset's first lemma ("n02123159" → "tiger cat").

use std::collections::HashMap;

use crate::{Result, VisionError};

pub struct Labels(Vec<String>);

impl Labels {
    pub fn parse(synsets: &str, lemmas: &str) -> Result<Self> {
        let names: HashMap<&str, &str> = lemmas
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(s, l)| (s.trim(), l.split(',').next().unwrap_or(l).trim()))
            .collect();
        let labels: Vec<String> = synsets
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| names.get(s).map(|n| n.to_string()).unwrap_or_else(|| s.to_string()))
            .collect();
        if labels.len() != crate::efficientnet::CLASSES {
            return Err(VisionError::Weights(format!(
                "{} ImageNet classes; expected {}",
                labels.len(),
                crate::efficientnet::CLASSES
            )));
        }
        Ok(Self(labels))
    }

    pub fn name(&self, class: usize) -> &str {
        &self.0[class]
    }
}
