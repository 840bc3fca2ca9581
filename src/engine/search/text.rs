//! The protocols' constraints on a text answer (2captcha's `numeric`, `min_len`, `max_len`,
//! `regsense`; the task protocol's `numeric`, `minLength`, `maxLength`, `case`) as a search:
//! the best answer that meets them, instead of ddddocr's answer refused when it does not.

use std::collections::HashSet;

use super::{best_path, most_probable_class, Classes, Effort, Grammar, Path};
use crate::engine::steps::StepProbs;

/// Which characters an answer may hold (2captcha's `numeric` 1-3).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Characters {
    #[default]
    Any,
    /// ASCII digits.
    Digits,
    /// ASCII letters.
    Letters,
    DigitsOrLetters,
}

impl Characters {
    fn allows(self, entry: &str) -> bool {
        let all = |test: fn(&char) -> bool| entry.chars().all(|c| test(&c));
        match self {
            Characters::Any => true,
            Characters::Digits => all(char::is_ascii_digit),
            Characters::Letters => all(char::is_ascii_alphabetic),
            Characters::DigitsOrLetters => all(char::is_ascii_alphanumeric),
        }
    }
}

/// What a text answer must be. The default allows everything: the search then returns
/// ddddocr's own answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TextRules {
    pub characters: Characters,
    /// At least one ASCII digit (2captcha's `numeric=4`, with `needs_letter`).
    pub needs_digit: bool,
    /// At least one letter.
    pub needs_letter: bool,
    /// Fewest characters (0: no minimum).
    pub min_chars: usize,
    /// Most characters (0: no maximum).
    pub max_chars: usize,
    /// A letter's two cases count as one character, their probabilities added: the stock
    /// models' case is unreliable (ddddocr #201).
    pub case_insensitive: bool,
}

/// The longest `min_chars`/`max_chars` a search takes: the grammar has a state per length,
/// and no captcha answer is longer (2captcha's limit is 20).
pub const MAX_CHARS_LIMIT: usize = 64;

/// One symbol of the search: a charset entry (or a letter's two cases).
struct Entry {
    chars: usize,
    has_digit: bool,
    has_letter: bool,
}

struct LengthGrammar<'a> {
    rules: &'a TextRules,
    entries: &'a [Entry],
    /// The largest length the state tracks: `max_chars`, else `min_chars` (beyond it, only
    /// "long enough" matters).
    cap: usize,
}

// A state is `length << 2 | has_letter << 1 | has_digit`.
impl Grammar for LengthGrammar<'_> {
    fn start(&self) -> u32 {
        0
    }

    fn next(&self, state: u32, symbol: usize) -> Option<u32> {
        let entry = &self.entries[symbol];
        let mut length = (state >> 2) as usize + entry.chars;
        if self.rules.max_chars > 0 && length > self.rules.max_chars {
            return None;
        }
        length = length.min(self.cap);
        let flags = state & 3 | u32::from(entry.has_digit) | u32::from(entry.has_letter) << 1;
        Some((length as u32) << 2 | flags)
    }

    fn accepts(&self, state: u32) -> bool {
        let length = (state >> 2) as usize;
        length >= self.rules.min_chars
            && (!self.rules.needs_digit || state & 1 != 0)
            && (!self.rules.needs_letter || state & 2 != 0)
    }
}

/// The best answer that meets `rules` among the classes `allowed` (ddddocr's
/// `charset_range`; `None`: all), with the mean probability of its path's steps; `None`
/// when no answer meets them.
pub fn best_text(
    probs: &StepProbs,
    rules: &TextRules,
    allowed: Option<&HashSet<usize>>,
) -> Option<(String, f32)> {
    assert!(rules.min_chars <= MAX_CHARS_LIMIT && rules.max_chars <= MAX_CHARS_LIMIT);
    if rules.max_chars > 0 && rules.min_chars > rules.max_chars {
        return None;
    }
    let (symbols, entries) = symbols_of(probs, rules, allowed);
    let grammar = LengthGrammar {
        rules,
        entries: &entries,
        cap: if rules.max_chars > 0 {
            rules.max_chars
        } else {
            rules.min_chars
        },
    };
    let path = best_path(probs, &symbols, &grammar, Effort::default())?;
    if rules.min_chars > 0 || rules.max_chars > 0 {
        let any_length = TextRules {
            min_chars: 0,
            max_chars: 0,
            ..rules.clone()
        };
        let free = LengthGrammar {
            rules: &any_length,
            entries: &entries,
            cap: 0,
        };
        let free_path = best_path(probs, &symbols, &free, Effort::default())?;
        let shortfall = log_prob(&free_path) - log_prob(&path);
        if shortfall > MAX_LENGTH_SHORTFALL {
            return None;
        }
    }
    Some((text_of(probs, &symbols, &path), path.confidence()))
}

/// How much less probable (natural log, the whole path) the best reading of the lengths
/// asked for may be than the best reading of any length with the same characters. Beyond
/// it the image does not hold that many characters (or holds more): the reading would make
/// characters up where the model sees gaps, or drop ones it sees, and is refused
/// (unsolvable) rather than answered, as the math reading refuses an expression far from what
/// the model reads. A made-up character where the model sees a gap costs ~7-11 (its
/// probability there is 1e-3 to 1e-5); telling a doubled letter apart or dropping a faint
/// stray one costs less. 8 is the smallest whole bound that refuses none of the right answers the
/// search finds on the parity set (the costliest, tests/fixtures/captcha/0225.png, is 7.6);
/// it refuses 199 of 240 readings asked for one character more than the label has, 234 of
/// 240 for two more (bench/beyond_score.py `constrained`).
pub const MAX_LENGTH_SHORTFALL: f32 = 8.0;

/// A path's log probability.
fn log_prob(path: &Path) -> f32 {
    path.step_log_probs.iter().sum()
}

/// The search's symbols: every class the rules allow (the blank excepted), a letter's two
/// cases as one when case does not matter.
fn symbols_of(
    probs: &StepProbs,
    rules: &TextRules,
    allowed: Option<&HashSet<usize>>,
) -> (Vec<Classes>, Vec<Entry>) {
    let mut symbols = Vec::new();
    let mut entries = Vec::new();
    for (class, text) in probs.charset().iter().enumerate().take(probs.classes()) {
        let usable = class != 0
            && !text.is_empty()
            && rules.characters.allows(text)
            && allowed.is_none_or(|allowed| allowed.contains(&class));
        if !usable {
            continue;
        }
        let mut classes = vec![class];
        if rules.case_insensitive {
            match other_case(text) {
                // The upper case joins its lower case's symbol.
                Some(other) if text.chars().all(|c| c.is_ascii_uppercase()) => {
                    let lower_usable = probs
                        .class_of(&other)
                        .is_some_and(|k| allowed.is_none_or(|allowed| allowed.contains(&k)));
                    if lower_usable {
                        continue;
                    }
                }
                Some(other) => classes.extend(
                    probs
                        .class_of(&other)
                        .filter(|k| allowed.is_none_or(|allowed| allowed.contains(k))),
                ),
                None => {}
            }
        }
        entries.push(Entry {
            chars: text.chars().count(),
            has_digit: text.chars().any(|c| c.is_ascii_digit()),
            has_letter: text.chars().any(char::is_alphabetic),
        });
        symbols.push(Classes::AnyOf(classes));
    }
    (symbols, entries)
}

/// A one-letter ASCII entry's other case.
fn other_case(text: &str) -> Option<String> {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_lowercase() => Some(c.to_ascii_uppercase().to_string()),
        (Some(c), None) if c.is_ascii_uppercase() => Some(c.to_ascii_lowercase().to_string()),
        _ => None,
    }
}

/// The answer's characters: each symbol as its most probable class where it was emitted.
fn text_of(probs: &StepProbs, symbols: &[Classes], path: &Path) -> String {
    path.emitted
        .iter()
        .map(|e| probs.text_of(most_probable_class(probs.row(e.step), &symbols[e.symbol])))
        .collect()
}
