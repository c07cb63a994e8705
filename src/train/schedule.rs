//! Learning-rate schedules with linear warmup (transformers' `get_*_schedule_with_warmup`).

use serde::{Deserialize, Serialize};

/// The schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Constant after warmup (the QLoRA recipe).
    Constant,
    /// Linear decay to 0.
    Linear,
    /// Half-cosine decay to 0.
    Cosine,
}

/// Learning rate at optimizer step `step` (0-based) of `total` steps.
pub fn learning_rate(kind: ScheduleKind, peak: f64, step: u64, warmup: u64, total: u64) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    match kind {
        ScheduleKind::Constant => peak,
        ScheduleKind::Linear => peak * (1.0 - progress).max(0.0),
        ScheduleKind::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay_like_transformers() {
        assert_eq!(learning_rate(ScheduleKind::Cosine, 1.0, 0, 10, 110), 0.0);
        assert_eq!(learning_rate(ScheduleKind::Cosine, 1.0, 5, 10, 110), 0.5);
        assert_eq!(learning_rate(ScheduleKind::Cosine, 1.0, 10, 10, 110), 1.0);
        assert!((learning_rate(ScheduleKind::Cosine, 1.0, 60, 10, 110) - 0.5).abs() < 1e-12);
        assert!((learning_rate(ScheduleKind::Linear, 2.0, 60, 10, 110) - 1.0).abs() < 1e-12);
        assert_eq!(learning_rate(ScheduleKind::Constant, 2.0, 100, 10, 110), 2.0);
    }
}
