//! The hints the captcha protocols carry about an answer (2captcha's `numeric`, `min_len`,
//! `max_len`; the task protocol's `numeric`, `minLength`, `maxLength`,
//! `recognizingThreshold`), mapped onto what the engine can honour: a charset range where
//! the hint restricts the characters (ddddocr's `set_ranges`, so the model picks the best
//! allowed character at each step); for lengths (and "digits and letters") the best reading
//! that meets them, searched over the model's per-step probabilities (engine/search/text.rs),
//! none (or only one far less likely than a reading of another length: the image does not
//! hold that many characters) being unsolvable and not charged. An arithmetic captcha (2captcha's
//! `calc=1`, the task protocol's `math: true`) is read as an expression and answered with its
//! value (engine/search/math.rs; none readable: unsolvable, not charged). Hints for human
//! workers (`phrase`, `comment`, `language`, case sensitivity, instructions) change nothing:
//! ddddocr reads the same characters whatever they say.

use crate::engine::{AnswerConstraints, CharsetRange, Reading, RecognizeOptions};

const DIGITS: &str = "0123456789";
const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// The longest `min_len`/`max_len` the protocols define (2captcha: 1..=20).
pub const MAX_LENGTH_HINT: u64 = 20;

/// 2captcha's and the task protocol's `numeric`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Numeric {
    /// 0: any characters.
    #[default]
    Any,
    /// 1: digits only.
    DigitsOnly,
    /// 2: letters only.
    LettersOnly,
    /// 3: digits or letters.
    DigitsOrLetters,
    /// 4: digits and letters, both.
    DigitsAndLetters,
}

impl Numeric {
    pub fn from_code(code: u64) -> Option<Numeric> {
        Some(match code {
            0 => Numeric::Any,
            1 => Numeric::DigitsOnly,
            2 => Numeric::LettersOnly,
            3 => Numeric::DigitsOrLetters,
            4 => Numeric::DigitsAndLetters,
            _ => return None,
        })
    }

    /// The protocols' number for it (`Reading::of_constraints` takes the same).
    fn code(self) -> u8 {
        match self {
            Numeric::Any => 0,
            Numeric::DigitsOnly => 1,
            Numeric::LettersOnly => 2,
            Numeric::DigitsOrLetters => 3,
            Numeric::DigitsAndLetters => 4,
        }
    }

    fn charset(self) -> Option<String> {
        match self {
            Numeric::Any => None,
            Numeric::DigitsOnly => Some(DIGITS.to_string()),
            Numeric::LettersOnly => Some(LETTERS.to_string()),
            Numeric::DigitsOrLetters | Numeric::DigitsAndLetters => {
                Some(format!("{DIGITS}{LETTERS}"))
            }
        }
    }
}

/// What a request said about its answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hints {
    pub numeric: Numeric,
    /// 0: no minimum.
    pub min_chars: usize,
    /// 0: no maximum.
    pub max_chars: usize,
    /// 0.0..=1.0 (CapMonster's `recognizingThreshold` / 100).
    pub min_confidence: Option<f32>,
    /// An arithmetic captcha, answered with its value: the characters and lengths asked
    /// for are the expression's, not the answer's, so they do not apply.
    pub math: bool,
}

impl Hints {
    /// The characters and lengths asked for, on a text answer: the characters as a charset
    /// range; lengths (or "digits and letters") as the best reading that meets them
    /// (engine/search/text.rs), not ddddocr's answer refused when it breaks them. The
    /// constraints are still checked on the answer (the search meets them by construction).
    fn apply_to_text(&self, options: &mut RecognizeOptions, constraints: &mut AnswerConstraints) {
        if let Some(charset) = self.numeric.charset() {
            options.charset_range = Some(CharsetRange::Characters(charset));
        }
        let searched =
            self.min_chars > 0 || self.max_chars > 0 || self.numeric == Numeric::DigitsAndLetters;
        if searched {
            options.reading =
                Reading::of_constraints(self.numeric.code(), self.min_chars, self.max_chars, false);
        }
        constraints.min_chars = self.min_chars;
        constraints.max_chars = self.max_chars;
        if self.numeric == Numeric::DigitsAndLetters {
            constraints.needs_digit = true;
            constraints.needs_letter = true;
        }
    }

    /// The options and constraints of an upload with these hints.
    pub fn apply(&self, options: &mut RecognizeOptions, constraints: &mut AnswerConstraints) {
        if self.math {
            options.reading = Reading::Math;
        } else {
            self.apply_to_text(options, constraints);
        }
        if let Some(minimum) = self.min_confidence {
            assert!((0.0..=1.0).contains(&minimum), "checked when parsed");
            // The confidence is computed only when asked for.
            options.probability = true;
            constraints.min_confidence = Some(minimum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Answer;

    fn answer(text: &str, confidence: Option<f32>) -> Answer {
        Answer {
            text: text.into(),
            confidence,
        }
    }

    #[test]
    fn math_reads_an_expression_whatever_the_characters_asked_for() {
        let hints = Hints {
            numeric: Numeric::LettersOnly,
            min_chars: 4,
            min_confidence: Some(0.5),
            math: true,
            ..Hints::default()
        };
        let (mut options, mut constraints): (RecognizeOptions, AnswerConstraints) =
            Default::default();
        hints.apply(&mut options, &mut constraints);
        assert_eq!(options.reading, Reading::Math);
        assert_eq!(options.charset_range, None, "the expression's characters");
        assert_eq!(
            (constraints.min_chars, constraints.min_confidence),
            (0, Some(0.5))
        );
        assert!(options.probability, "the threshold still applies");
    }

    #[test]
    fn hints_become_charsets_and_constraints() {
        let hints = Hints {
            numeric: Numeric::DigitsAndLetters,
            min_chars: 4,
            max_chars: 5,
            min_confidence: Some(0.5),
            math: false,
        };
        let (mut options, mut constraints) = Default::default();
        hints.apply(&mut options, &mut constraints);
        let expected = format!("{DIGITS}{LETTERS}");
        assert_eq!(
            options.charset_range,
            Some(CharsetRange::Characters(expected))
        );
        assert_eq!(
            options.reading,
            Reading::of_constraints(4, 4, 5, false),
            "the best reading that meets them"
        );
        assert!(options.probability);
        assert!(constraints.check(&answer("ab12", Some(0.9))).is_ok());
        assert!(
            constraints.check(&answer("abcd", Some(0.9))).is_err(),
            "no digit"
        );
        assert!(
            constraints.check(&answer("1234", Some(0.9))).is_err(),
            "no letter"
        );
        assert!(
            constraints.check(&answer("ab1", Some(0.9))).is_err(),
            "too short"
        );
        assert!(
            constraints.check(&answer("ab1234", Some(0.9))).is_err(),
            "too long"
        );
        assert!(
            constraints.check(&answer("ab12", Some(0.4))).is_err(),
            "not sure enough"
        );
        assert_eq!(Numeric::from_code(5), None);
        assert_eq!(Numeric::from_code(1), Some(Numeric::DigitsOnly));
    }

    #[test]
    fn no_hints_change_nothing() {
        let (mut options, mut constraints): (RecognizeOptions, AnswerConstraints) =
            Default::default();
        Hints::default().apply(&mut options, &mut constraints);
        assert_eq!(options, RecognizeOptions::default());
        assert_eq!(constraints, AnswerConstraints::default());
    }
}
