//! The best answer a grammar allows, searched over the model's per-step probabilities.
//!
//! ddddocr takes the most probable class at every step and collapses the result (CTC's best
//! path). When the answer must meet rules (digits only, a length, an arithmetic expression),
//! the best path among those whose collapse the rules accept is wanted instead: a
//! Viterbi-style dynamic program over (grammar state, symbol of the previous step), where
//! every step either continues the previous symbol, emits a blank, or emits a new symbol the
//! grammar allows. With no rules the greedy path wins and the answer is ddddocr's.
//!
//! - `text.rs`: the protocols' constraints (numeric, length, case-insensitive);
//! - `math.rs`: an arithmetic expression, then its value.

pub mod math;
pub mod text;

use std::collections::HashMap;

use super::steps::{log_add, StepProbs};

/// What one symbol of a grammar looks like to the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Classes {
    /// Any of these classes (a letter's two cases, an operator's look-alikes): their
    /// probabilities add up.
    AnyOf(Vec<usize>),
    /// Any class but these (a glyph of no interest, whatever the model takes it for).
    NoneOf(Vec<usize>),
}

/// A grammar over symbols (indices into the search's symbol list), as an automaton.
pub trait Grammar {
    fn start(&self) -> u32;
    /// The state after `symbol` is read in `state`, if the grammar allows it there.
    fn next(&self, state: u32, symbol: usize) -> Option<u32>;
    fn accepts(&self, state: u32) -> bool;
    /// A log-probability weight added each time `symbol` is emitted (not while it
    /// continues): a prior that makes some readings likelier than the model alone says.
    fn emission_weight(&self, _symbol: usize) -> f32 {
        0.0
    }
}

/// Bounds on the search's work, whatever the image and the rules.
#[derive(Clone, Copy, Debug)]
pub struct Effort {
    /// Symbols considered at each step: the most probable ones there.
    pub symbols_per_step: usize,
    /// Hypotheses kept from one step to the next: the most probable ones.
    pub beam: usize,
}

impl Default for Effort {
    fn default() -> Self {
        // Past the 8 most probable symbols of a step the probabilities are negligible
        // (below 1e-4 on the stock models); 256 hypotheses hold every (state, symbol) pair
        // of the grammars here on the usual 20-60 steps.
        Effort {
            symbols_per_step: 8,
            beam: 256,
        }
    }
}

/// The best path a grammar accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    /// The symbols emitted, in order, with the step each was emitted at.
    pub emitted: Vec<Emission>,
    /// The log probability of the chosen class at every step.
    pub step_log_probs: Vec<f32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emission {
    pub step: usize,
    pub symbol: usize,
}

impl Path {
    /// The mean probability of the path's steps (for the greedy path, ddddocr's
    /// confidence).
    pub fn confidence(&self) -> f32 {
        if self.step_log_probs.is_empty() {
            return 0.0;
        }
        let total: f64 = self.step_log_probs.iter().map(|&p| (p as f64).exp()).sum();
        (total / self.step_log_probs.len() as f64) as f32
    }
}

impl Path {
    /// How much less probable the path is than the model's own reading (the most probable
    /// class at every step), in natural log: the sum over steps of what the path gives up
    /// there (a step where the path is likelier, through classes summed, gives up nothing).
    pub fn shortfall(&self, probs: &StepProbs) -> f32 {
        assert_eq!(
            self.step_log_probs.len(),
            probs.steps(),
            "one entry per step"
        );
        (0..probs.steps())
            .map(|t| {
                let best = probs
                    .row(t)
                    .iter()
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max);
                (best - self.step_log_probs[t]).max(0.0)
            })
            .sum()
    }
}

/// A hypothesis: where a prefix of the path leads.
#[derive(Clone, Copy)]
struct Hypothesis {
    state: u32,
    /// The symbol of the previous step, or [`NONE`] after a blank (or at the start).
    last: u32,
    log_prob: f32,
    /// Index of the hypothesis it extends, in the previous step's list.
    parent: u32,
    /// The symbol emitted at this step, or [`NONE`].
    emitted: u32,
}

const NONE: u32 = u32::MAX;

/// The best path through `probs` whose collapse `grammar` accepts, or `None` when no path
/// within the effort's bounds does.
pub fn best_path(
    probs: &StepProbs,
    symbols: &[Classes],
    grammar: &impl Grammar,
    effort: Effort,
) -> Option<Path> {
    assert!(symbols.len() < NONE as usize, "symbol indices fit a u32");
    assert!(effort.beam > 0 && effort.symbols_per_step > 0);
    let mut steps: Vec<Vec<Hypothesis>> = Vec::with_capacity(probs.steps() + 1);
    steps.push(vec![Hypothesis {
        state: grammar.start(),
        last: NONE,
        log_prob: 0.0,
        parent: NONE,
        emitted: NONE,
    }]);
    let mut emissions = vec![0f32; symbols.len()];
    for t in 0..probs.steps() {
        let row = probs.row(t);
        for (emission, classes) in emissions.iter_mut().zip(symbols) {
            *emission = log_prob_of(row, classes);
        }
        let candidates = most_probable(&emissions, effort.symbols_per_step);
        let previous = steps.last().expect("the start");
        let mut next = extend(previous, row[0], &emissions, &candidates, grammar);
        keep_best(&mut next, effort.beam);
        steps.push(next);
    }
    trace_back(&steps, grammar)
}

/// Every extension of every hypothesis by one step: a blank, the previous symbol again,
/// or a new candidate symbol the grammar allows. Equal (state, last) pairs keep the best.
fn extend(
    previous: &[Hypothesis],
    blank_log_prob: f32,
    emissions: &[f32],
    candidates: &[usize],
    grammar: &impl Grammar,
) -> Vec<Hypothesis> {
    let mut next: Vec<Hypothesis> = Vec::with_capacity(previous.len() * 2);
    let mut index: HashMap<(u32, u32), usize> = HashMap::with_capacity(previous.len() * 2);
    let mut offer = |hypothesis: Hypothesis| {
        let key = (hypothesis.state, hypothesis.last);
        match index.get(&key) {
            Some(&at) if next[at].log_prob >= hypothesis.log_prob => {}
            Some(&at) => next[at] = hypothesis,
            None => {
                index.insert(key, next.len());
                next.push(hypothesis);
            }
        }
    };
    for (parent, hypothesis) in previous.iter().enumerate() {
        let parent = parent as u32;
        offer(Hypothesis {
            last: NONE,
            log_prob: hypothesis.log_prob + blank_log_prob,
            parent,
            emitted: NONE,
            ..*hypothesis
        });
        if hypothesis.last != NONE {
            offer(Hypothesis {
                log_prob: hypothesis.log_prob + emissions[hypothesis.last as usize],
                parent,
                emitted: NONE,
                ..*hypothesis
            });
        }
        for &symbol in candidates {
            if symbol as u32 == hypothesis.last {
                continue;
            }
            if let Some(state) = grammar.next(hypothesis.state, symbol) {
                offer(Hypothesis {
                    state,
                    last: symbol as u32,
                    log_prob: hypothesis.log_prob
                        + emissions[symbol]
                        + grammar.emission_weight(symbol),
                    parent,
                    emitted: symbol as u32,
                });
            }
        }
    }
    next
}

fn keep_best(hypotheses: &mut Vec<Hypothesis>, beam: usize) {
    if hypotheses.len() > beam {
        hypotheses.select_nth_unstable_by(beam - 1, |a, b| b.log_prob.total_cmp(&a.log_prob));
        hypotheses.truncate(beam);
    }
}

fn trace_back(steps: &[Vec<Hypothesis>], grammar: &impl Grammar) -> Option<Path> {
    let last = steps.last().expect("the start");
    let (mut at, best) = last
        .iter()
        .enumerate()
        .filter(|(_, h)| grammar.accepts(h.state))
        .max_by(|(_, a), (_, b)| a.log_prob.total_cmp(&b.log_prob))?;
    let mut emitted = Vec::new();
    let mut step_log_probs = Vec::with_capacity(steps.len() - 1);
    let mut log_prob = best.log_prob;
    for t in (1..steps.len()).rev() {
        let hypothesis = steps[t][at];
        if hypothesis.emitted != NONE {
            emitted.push(Emission {
                step: t - 1,
                symbol: hypothesis.emitted as usize,
            });
        }
        at = hypothesis.parent as usize;
        let parent_log_prob = steps[t - 1][at].log_prob;
        // The model's own probability of the step, without the grammar's weight.
        let weight = match hypothesis.emitted {
            NONE => 0.0,
            symbol => grammar.emission_weight(symbol as usize),
        };
        step_log_probs.push(log_prob - parent_log_prob - weight);
        log_prob = parent_log_prob;
    }
    emitted.reverse();
    step_log_probs.reverse();
    Some(Path {
        emitted,
        step_log_probs,
    })
}

/// The log probability of a symbol at one step: the sum of its classes' probabilities.
pub fn log_prob_of(row: &[f32], classes: &Classes) -> f32 {
    match classes {
        Classes::AnyOf(listed) => listed
            .iter()
            .map(|&k| row[k])
            .fold(f32::NEG_INFINITY, log_add),
        Classes::NoneOf(excluded) => {
            let excluded: f32 = excluded.iter().map(|&k| row[k].exp()).sum();
            // What the excluded classes leave; never exactly zero, so a path through it
            // stays comparable with the others.
            (1.0 - excluded).max(1e-30).ln()
        }
    }
}

/// The class of `classes` the model found most probable at one step (for the text of an
/// emitted symbol: a letter's more probable case).
pub fn most_probable_class(row: &[f32], classes: &Classes) -> usize {
    let best = |candidates: &mut dyn Iterator<Item = usize>| {
        candidates
            .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
            .unwrap_or(0)
    };
    match classes {
        Classes::AnyOf(listed) => best(&mut listed.iter().copied()),
        Classes::NoneOf(excluded) => best(&mut (0..row.len()).filter(|k| !excluded.contains(k))),
    }
}

/// The indices of the `count` largest values (ties: the lower index first).
fn most_probable(values: &[f32], count: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    let by_value = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    if order.len() > count {
        order.select_nth_unstable_by(count - 1, by_value);
        order.truncate(count);
    }
    order.sort_unstable_by(by_value);
    order
}
