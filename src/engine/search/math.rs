//! Arithmetic captchas ("7+3=?", "12-5=", "4x6=?"): the best reading under the grammar of an
//! expression (a number, an operator, a number, then anything but digits: the `=` and `?`),
//! then its value.
//!
//! The stock models were not trained on these glyphs: they read `+` as `+`, `t` or `x`, a
//! short `-` as `I`, `l`, `i` or `j`, `*` as `x` or `k`, and `=` and `?` as letters (ddddocr
//! #222). Each operator is therefore read as the sum of its look-alikes' probabilities, and
//! the tail as "not a digit", whatever letter the model sees there.

use super::{best_path, Classes, Effort, Grammar, Path};
use crate::engine::steps::StepProbs;

/// The most digits a number of the expression has.
pub const MAX_DIGITS: u32 = 3;

/// The log weight of every digit read: the models take the tail's `?` for a 7 and its `=`
/// for a 2 about as often as for "not a digit", and an expression with fewer digits is the
/// likelier reading (e^-3 ~ 1/20; chosen on a set of seed 2001, bench/beyond.sh).
const DIGIT_WEIGHT: f32 = -3.0;

/// How much wider than ddddocr's size a math captcha is read, once per width: the models read
/// these glyphs better a little stretched, and the widths disagree where a reading is
/// unsure (measured on a set of seed 2001: 1.0 57 %, 1.15 66 %, 1.3 67 %, 1.5 65 %, 1.7
/// 56 %; the three voting 70 %).
pub const WIDTHS: [f64; 3] = [1.15, 1.3, 1.5];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Plus,
    Minus,
    Times,
    Divide,
}

impl Operator {
    const ALL: [Operator; 4] = [
        Operator::Plus,
        Operator::Minus,
        Operator::Times,
        Operator::Divide,
    ];

    /// The charset entries the stock models use for this operator's glyphs.
    fn look_alikes(self) -> &'static [&'static str] {
        match self {
            Operator::Plus => &["+", "十", "t", "T", "＋"],
            Operator::Minus => &["-", "一", "—", "_", "~", "－", "I", "l", "i", "j", "|"],
            Operator::Times => &["x", "X", "×", "*", "k", "K", "＊"],
            Operator::Divide => &["÷", "/"],
        }
    }

    fn sign(self) -> char {
        match self {
            Operator::Plus => '+',
            Operator::Minus => '-',
            Operator::Times => '*',
            Operator::Divide => '/',
        }
    }
}

/// An expression as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expression {
    pub left: i64,
    pub operator: Operator,
    pub right: i64,
}

impl Expression {
    /// The value; `None` for a division that does not come out whole (or by zero).
    pub fn value(&self) -> Option<i64> {
        let (a, b) = (self.left, self.right);
        match self.operator {
            Operator::Plus => a.checked_add(b),
            Operator::Minus => a.checked_sub(b),
            Operator::Times => a.checked_mul(b),
            Operator::Divide if b != 0 && a % b == 0 => Some(a / b),
            Operator::Divide => None,
        }
    }
}

impl std::fmt::Display for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.left, self.operator.sign(), self.right)
    }
}

// Symbols: 0-9 are the digits, then the operators in `Operator::ALL`'s order, then the tail.
const OPERATORS: usize = 10;
const TAIL: usize = OPERATORS + Operator::ALL.len();

/// Start -> left digits -> operator -> right digits -> tail. A state is `phase << 4 | digits`.
struct ExpressionGrammar;

const LEFT: u32 = 1;
const OPERATOR: u32 = 2;
const RIGHT: u32 = 3;
const AFTER: u32 = 4;

impl Grammar for ExpressionGrammar {
    fn start(&self) -> u32 {
        0
    }

    fn next(&self, state: u32, symbol: usize) -> Option<u32> {
        let (phase, digits) = (state >> 4, state & 15);
        let is_digit = symbol < OPERATORS;
        match phase {
            0 if is_digit => Some(LEFT << 4 | 1),
            LEFT | RIGHT if is_digit && digits < MAX_DIGITS => Some(phase << 4 | (digits + 1)),
            LEFT if (OPERATORS..TAIL).contains(&symbol) => Some(OPERATOR << 4),
            OPERATOR if is_digit => Some(RIGHT << 4 | 1),
            RIGHT | AFTER if symbol == TAIL => Some(AFTER << 4),
            _ => None,
        }
    }

    fn accepts(&self, state: u32) -> bool {
        matches!(state >> 4, RIGHT | AFTER)
    }

    fn emission_weight(&self, symbol: usize) -> f32 {
        if symbol < OPERATORS {
            DIGIT_WEIGHT
        } else {
            0.0
        }
    }
}

/// How far below the model's own reading an expression's path may fall, in total log
/// probability, and how improbable its least probable step may be. The grammar finds an
/// expression in any image (a text captcha's letters read as digits and operators); on the
/// shared set of 100 math captchas and 220 text captchas (tests/fixtures/captcha), these
/// bounds keep 65 of the 66 values read right and refuse 193 of the 220 text captchas
/// (without them: all 220 answered).
const MAX_SHORTFALL: f32 = 4.0;
const MIN_STEP_PROB: f32 = 0.01;

/// The best expression the image shows, with the mean probability of its path's steps;
/// `None` when the charset lacks the digits, no path fits the grammar (too few steps), or
/// the best one is too unlike what the model reads (not an arithmetic captcha).
pub fn best_expression(probs: &StepProbs) -> Option<(Expression, f32)> {
    let symbols = symbols(probs)?;
    let path = best_path(probs, &symbols, &ExpressionGrammar, Effort::default())?;
    let weakest_step = path
        .step_log_probs
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min);
    if path.shortfall(probs) > MAX_SHORTFALL || weakest_step < MIN_STEP_PROB.ln() {
        return None;
    }
    Some((expression_of(&path)?, path.confidence()))
}

/// The value most readings agree on (ties: the one whose readings are surer together), with
/// the mean confidence of the readings that gave it. Readings with no value do not vote.
pub fn vote(readings: &[Option<(i64, f32)>]) -> Option<(i64, f32)> {
    let mut tally: Vec<(i64, usize, f32)> = Vec::new();
    for &(value, confidence) in readings.iter().flatten() {
        match tally.iter_mut().find(|(v, _, _)| *v == value) {
            Some((_, count, sum)) => {
                *count += 1;
                *sum += confidence;
            }
            None => tally.push((value, 1, confidence)),
        }
    }
    tally
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)))
        .map(|(value, count, sum)| (value, sum / count as f32))
}

fn symbols(probs: &StepProbs) -> Option<Vec<Classes>> {
    let digits: Vec<usize> = (0..10)
        .map(|d| probs.class_of(&d.to_string()))
        .collect::<Option<_>>()?;
    let mut symbols: Vec<Classes> = digits.iter().map(|&k| Classes::AnyOf(vec![k])).collect();
    for operator in Operator::ALL {
        let classes: Vec<usize> = operator
            .look_alikes()
            .iter()
            .filter_map(|text| probs.class_of(text))
            .collect();
        symbols.push(Classes::AnyOf(classes));
    }
    let mut not_tail = digits;
    not_tail.push(0);
    symbols.push(Classes::NoneOf(not_tail));
    assert_eq!(symbols.len(), TAIL + 1);
    Some(symbols)
}

fn expression_of(path: &Path) -> Option<Expression> {
    let mut numbers = [0i64; 2];
    let mut operator = None;
    for emission in &path.emitted {
        let side = usize::from(operator.is_some());
        match emission.symbol {
            digit if digit < OPERATORS => {
                numbers[side] = numbers[side].checked_mul(10)?.checked_add(digit as i64)?
            }
            TAIL => break,
            symbol => operator = Some(Operator::ALL[symbol - OPERATORS]),
        }
    }
    Some(Expression {
        left: numbers[0],
        operator: operator?,
        right: numbers[1],
    })
}
