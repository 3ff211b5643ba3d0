//! Stop strings across token boundaries: text that could still become a stop string is held back,
//! and a stop string is never emitted.

#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text produced but not yet emitted (it could be the start of a stop string).
    held: String,
}

/// What to emit after a piece of text.
#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Emit this text and go on.
    Emit(String),
    /// A stop string was found: emit this text (everything before it) and finish.
    Stopped(String),
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    pub fn push(&mut self, piece: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome::Emit(piece.to_string());
        }
        self.held.push_str(piece);
        // The earliest stop string in the held text wins.
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let out = self.held[..at].to_string();
            self.held.clear();
            return StopOutcome::Stopped(out);
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let mut hold = 0;
        for s in &self.stops {
            for (i, _) in self.held.char_indices() {
                let suffix = &self.held[i..];
                if suffix.len() > hold && s.starts_with(suffix) {
                    hold = suffix.len();
                }
            }
        }
        let cut = self.held.len() - hold;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        StopOutcome::Emit(out)
    }

    /// The held text, at the end of generation (it did not become a stop string).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            match m.push(p) {
                StopOutcome::Emit(t) => out.push_str(&t),
                StopOutcome::Stopped(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stop_split_across_pieces_is_never_emitted() {
        assert_eq!(run(&["STOP"], &["hello S", "TO", "P world"]), ("hello ".into(), true));
        assert_eq!(run(&["\n\n"], &["a\n", "\nb"]), ("a".into(), true));
    }

    #[test]
    fn near_misses_are_released() {
        assert_eq!(run(&["STOP"], &["ST", "ART"]), ("START".into(), false));
        assert_eq!(run(&["abc"], &["ab"]), ("ab".into(), false));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["world", "lo"], &["hello world"]), ("hel".into(), true));
        assert_eq!(run(&[], &["x", "y"]), ("xy".into(), false));
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        assert_eq!(run(&["é!"], &["café", "!"]), ("caf".into(), true));
        assert_eq!(run(&["日本"], &["日", "x"]), ("日x".into(), false));
    }
}
