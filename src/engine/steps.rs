//! The model's probabilities at every step of one image, kept for the searches that choose an
//! answer other than ddddocr's argmax: constrained text, math, click-in-order (`search/`,
//! `click/`).

use std::sync::Arc;

use super::ctc::Scores;
use super::model::ModelSpec;

/// `steps` rows of natural-log probabilities over the model's charset (the log-softmax of the
/// model's scores; index 0 is CTC's blank).
pub struct StepProbs {
    log_probs: Vec<f32>,
    steps: usize,
    classes: usize,
    spec: Arc<ModelSpec>,
}

impl StepProbs {
    /// The log-softmax of every step of `scores`.
    pub(super) fn of_scores(spec: Arc<ModelSpec>, scores: &Scores) -> StepProbs {
        let classes = scores.classes;
        let mut log_probs = Vec::with_capacity(scores.steps * classes);
        for t in 0..scores.steps {
            let row = scores.step(t);
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            // Summed in f64: 8210 terms of very different sizes.
            let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
            let log_norm = max + sum.ln() as f32;
            log_probs.extend(row.iter().map(|&v| v - log_norm));
        }
        StepProbs {
            log_probs,
            steps: scores.steps,
            classes,
            spec,
        }
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The log probabilities of step `t`, one per class.
    pub fn row(&self, t: usize) -> &[f32] {
        &self.log_probs[t * self.classes..(t + 1) * self.classes]
    }

    /// The charset entry of a class (`""` for the blank and for classes past the charset).
    pub fn text_of(&self, class: usize) -> &str {
        self.spec.charset.get(class).map_or("", String::as_str)
    }

    /// The first class whose charset entry is `text`, as ddddocr's `list.index` finds it.
    pub fn class_of(&self, text: &str) -> Option<usize> {
        self.spec
            .first_index
            .get(text)
            .copied()
            .filter(|&class| class < self.classes)
    }

    /// The model's charset, in class order.
    pub fn charset(&self) -> &[String] {
        &self.spec.charset
    }

    /// The largest probability of `class` at any step: how strongly the image shows that
    /// character somewhere (a crop may hold it at any step, or beside part of another).
    pub fn best_log_prob(&self, class: usize) -> f32 {
        assert!(class < self.classes, "class {class} of {}", self.classes);
        (0..self.steps)
            .map(|t| self.log_probs[t * self.classes + class])
            .fold(f32::NEG_INFINITY, f32::max)
    }
}

/// `ln(exp(a) + exp(b))` without overflow.
pub fn log_add(a: f32, b: f32) -> f32 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    if low == f32::NEG_INFINITY {
        return high;
    }
    high + (low - high).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_add_adds_probabilities() {
        let sum = log_add(0.25f32.ln(), 0.5f32.ln());
        assert!((sum.exp() - 0.75).abs() < 1e-6);
        assert_eq!(log_add(f32::NEG_INFINITY, -1.0), -1.0);
        assert_eq!(log_add(-1.0, f32::NEG_INFINITY), -1.0);
    }
}
