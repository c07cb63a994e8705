//! Stop strings over streamed text: text that might be the start of a stop string
//! is held back until it is known not to be one, so a stop string never reaches
//! the client, not even in part.

/// Buffers streamed text and cuts it at the first stop string.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// What to do with the text pushed so far.
#[derive(Debug, PartialEq, Eq)]
pub enum StopStep {
    /// Emit this text and continue.
    Continue(String),
    /// Emit this text (the part before the stop string) and finish.
    Stop(String),
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        StopMatcher { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), pending: String::new() }
    }

    /// Adds `piece` and says what can be emitted.
    pub fn push(&mut self, piece: &str) -> StopStep {
        self.pending.push_str(piece);
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return StopStep::Stop(out);
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let mut keep = 0;
        for stop in &self.stops {
            for (i, _) in stop.char_indices().skip(1) {
                if self.pending.ends_with(&stop[..i]) {
                    keep = keep.max(i);
                }
            }
        }
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        StopStep::Continue(out)
    }

    /// Text still held back (emit it when generation ends for another reason).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_a_stop_split_across_pieces() {
        let mut m = StopMatcher::new(&["<|im_end|>".into()]);
        assert_eq!(m.push("Dạ, em "), StopStep::Continue("Dạ, em ".into()));
        assert_eq!(m.push("chào ạ<|im"), StopStep::Continue("chào ạ".into()));
        assert_eq!(m.push("_end|>rest"), StopStep::Stop("".into()));
    }

    #[test]
    fn releases_held_text_that_was_not_a_stop() {
        let mut m = StopMatcher::new(&["END".into()]);
        assert_eq!(m.push("the E"), StopStep::Continue("the ".into()));
        assert_eq!(m.push("nd"), StopStep::Continue("End".into()));
        assert_eq!(m.push("x EN"), StopStep::Continue("x ".into()));
        assert_eq!(m.flush(), "EN");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut m = StopMatcher::new(&["b".into(), "a".into()]);
        assert_eq!(m.push("xxaxb"), StopStep::Stop("xx".into()));
    }
}
