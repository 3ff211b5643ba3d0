//! Reading text with the `tesseract` program (Debian `tesseract-ocr`, Apache-2.0; run as a
//! program like espeak-ng): the image goes in as PNG on stdin, its TSV comes back — one row per
//! word with its line, box and confidence — and words are gathered into lines in tesseract's
//! reading order (blocks, paragraphs, lines).

use std::process::Command;
use std::time::Duration;

use image::RgbImage;

use crate::{Line, Result, VisionError};

pub struct Tesseract {
    /// `-l` argument: the installed languages tandem reads with (`eng+deu+…`).
    pub languages: String,
}

/// A screenful of text reads in well under a second; a 40-megapixel page in a few.
const TIMEOUT: Duration = Duration::from_secs(30);

impl Tesseract {
    /// The program when installed, reading every installed language pack of `wanted` (English
    /// first; `osd` and `equ` are not languages).
    pub fn find(wanted: &[&str]) -> Option<Self> {
        let mut cmd = Command::new("tesseract");
        cmd.arg("--list-langs");
        let out = tandem_process::run(cmd, Vec::new(), Duration::from_secs(10)).ok()?;
        let installed: Vec<String> = String::from_utf8_lossy(&out)
            .lines()
            .skip(1)
            .map(|l| l.trim().to_string())
            .collect();
        let langs: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| installed.iter().any(|i| i == w))
            .collect();
        (!langs.is_empty()).then(|| Self {
            languages: langs.join("+"),
        })
    }

    /// The lines of text in `img`, in reading order, each with its mean word confidence (0–1).
    pub fn read(&self, img: &RgbImage) -> Result<Vec<Line>> {
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| VisionError::Ocr(e.to_string()))?;
        let mut cmd = Command::new("tesseract");
        cmd.args(["stdin", "stdout", "-l", &self.languages, "--psm", "3", "tsv"]);
        let tsv = tandem_process::run(cmd, png, TIMEOUT).map_err(VisionError::Ocr)?;
        Ok(lines(&String::from_utf8_lossy(&tsv)))
    }
}

/// Word rows (level 5) gathered by (block, paragraph, line), in the order they appear.
fn lines(tsv: &str) -> Vec<Line> {
    let mut out: Vec<(Vec<u32>, Line, f32)> = Vec::new();
    for row in tsv.lines().skip(1) {
        let f: Vec<&str> = row.split('\t').collect();
        if f.len() < 12 || f[0] != "5" {
            continue;
        }
        let (text, conf) = (f[11].trim(), f[10].parse::<f32>().unwrap_or(-1.0));
        if text.is_empty() || conf < 0.0 {
            continue;
        }
        let key: Vec<u32> = f[2..5].iter().map(|v| v.parse().unwrap_or(0)).collect();
        match out.last_mut() {
            Some((k, line, n)) if *k == key => {
                line.text.push(' ');
                line.text.push_str(text);
                line.confidence += conf / 100.0;
                *n += 1.0;
            }
            _ => out.push((
                key,
                Line {
                    text: text.to_string(),
                    confidence: conf / 100.0,
                },
                1.0,
            )),
        }
    }
    out.into_iter()
        .map(|(_, mut l, n)| {
            l.confidence /= n;
            l
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn gathers_words_into_lines() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
            1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n\
            5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t90\tHello\n\
            5\t1\t1\t1\t1\t2\t12\t0\t10\t10\t80\tworld\n\
            5\t1\t1\t1\t2\t1\t0\t20\t10\t10\t70\tbye\n";
        let l = super::lines(tsv);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].text, "Hello world");
        assert!((l[0].confidence - 0.85).abs() < 1e-6);
        assert_eq!(l[1].text, "bye");
    }
}
