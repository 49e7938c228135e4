//! Rates given as expressions of time, e.g. `5 + 20*sin(t/60)`.
//!
//! A small recursive-descent parser: numbers, `t` (seconds since the stage
//! started), `pi`, `+ - * / ^`, parentheses, and `sin cos exp ln sqrt abs
//! min max`. Parsed once; evaluated by the arrival generator.

use std::fmt;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number.
    Num(f64),
    /// Time since the stage started, seconds.
    T,
    /// A binary operation.
    Bin(char, Box<Expr>, Box<Expr>),
    /// Negation.
    Neg(Box<Expr>),
    /// A function call.
    Call(String, Vec<Expr>),
}

/// Why an expression could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 0-based character position.
    pub at: usize,
    /// What was expected.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.at + 1, self.message)
    }
}

impl Expr {
    /// Parse `src`.
    pub fn parse(src: &str) -> Result<Expr, ExprError> {
        // Parsing, evaluating and dropping an expression recurse over it:
        // its length and nesting are bounded so none can overflow the stack.
        if src.len() > MAX_LEN {
            return Err(ExprError {
                at: MAX_LEN,
                message: format!("the expression is {} bytes long; at most {MAX_LEN}", src.len()),
            });
        }
        let mut p = Parser {
            s: src.as_bytes(),
            i: 0,
            depth: 0,
        };
        let e = p.sum()?;
        p.ws();
        if p.i < p.s.len() {
            return Err(p.err("an operator or the end of the expression"));
        }
        Ok(e)
    }

    /// Value at time `t`.
    pub fn eval(&self, t: f64) -> f64 {
        match self {
            Expr::Num(v) => *v,
            Expr::T => t,
            Expr::Neg(e) => -e.eval(t),
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(t), b.eval(t));
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    '/' => a / b,
                    _ => a.powf(b),
                }
            }
            Expr::Call(f, args) => {
                let a: Vec<f64> = args.iter().map(|e| e.eval(t)).collect();
                match (f.as_str(), a.as_slice()) {
                    ("sin", [x]) => x.sin(),
                    ("cos", [x]) => x.cos(),
                    ("exp", [x]) => x.exp(),
                    ("ln", [x]) => x.ln(),
                    ("sqrt", [x]) => x.sqrt(),
                    ("abs", [x]) => x.abs(),
                    ("min", [x, y]) => x.min(*y),
                    ("max", [x, y]) => x.max(*y),
                    _ => f64::NAN,
                }
            }
        }
    }
}

/// Longest rate expression.
const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses, calls, signs and powers.
const MAX_DEPTH: u32 = 64;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: u32,
}

impl Parser<'_> {
    fn err(&self, expected: &str) -> ExprError {
        let found = match self.s.get(self.i) {
            Some(c) => format!("`{}`", *c as char),
            None => "the end".into(),
        };
        ExprError {
            at: self.i,
            message: format!("expected {expected}, found {found}"),
        }
    }

    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.product()?;
        loop {
            if self.eat(b'+') {
                e = Expr::Bin('+', Box::new(e), Box::new(self.product()?));
            } else if self.eat(b'-') {
                e = Expr::Bin('-', Box::new(e), Box::new(self.product()?));
            } else {
                return Ok(e);
            }
        }
    }

    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.power()?;
        loop {
            if self.eat(b'*') {
                e = Expr::Bin('*', Box::new(e), Box::new(self.power()?));
            } else if self.eat(b'/') {
                e = Expr::Bin('/', Box::new(e), Box::new(self.power()?));
            } else {
                return Ok(e);
            }
        }
    }

    /// `f`, one level deeper.
    fn nested(&mut self, f: impl FnOnce(&mut Self) -> Result<Expr, ExprError>) -> Result<Expr, ExprError> {
        if self.depth >= MAX_DEPTH {
            return Err(ExprError {
                at: self.i,
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        self.depth += 1;
        let e = f(self);
        self.depth -= 1;
        e
    }

    fn power(&mut self) -> Result<Expr, ExprError> {
        self.nested(|p| {
            let base = p.unary()?;
            if p.eat(b'^') {
                // Right-associative: 2^3^2 = 2^(3^2).
                return Ok(Expr::Bin('^', Box::new(base), Box::new(p.power()?)));
            }
            Ok(base)
        })
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.eat(b'-') {
            return self.nested(|p| Ok(Expr::Neg(Box::new(p.unary()?))));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, ExprError> {
        self.ws();
        if self.eat(b'(') {
            let e = self.sum()?;
            if !self.eat(b')') {
                return Err(self.err("`)`"));
            }
            return Ok(e);
        }
        let start = self.i;
        if self.s.get(self.i).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
            while let Some(&c) = self.s.get(self.i) {
                let exponent_sign =
                    (c == b'-' || c == b'+') && matches!(self.s.get(self.i.wrapping_sub(1)), Some(b'e' | b'E'));
                if !(c.is_ascii_digit() || c == b'.' || c == b'e' || c == b'E' || exponent_sign) {
                    break;
                }
                self.i += 1;
            }
            let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            return text.parse().map(Expr::Num).map_err(|_| ExprError {
                at: start,
                message: format!("`{text}` is not a number"),
            });
        }
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("").to_string();
        match name.as_str() {
            "" => Err(self.err("a number, `t`, a function or `(`")),
            "t" => Ok(Expr::T),
            "pi" => Ok(Expr::Num(std::f64::consts::PI)),
            "sin" | "cos" | "exp" | "ln" | "sqrt" | "abs" | "min" | "max" => {
                if !self.eat(b'(') {
                    return Err(self.err(&format!("`(` after `{name}`")));
                }
                let mut args = vec![self.sum()?];
                while self.eat(b',') {
                    args.push(self.sum()?);
                }
                if !self.eat(b')') {
                    return Err(self.err("`)`"));
                }
                let want = if name == "min" || name == "max" { 2 } else { 1 };
                if args.len() != want {
                    return Err(ExprError {
                        at: start,
                        message: format!("`{name}` takes {want} argument(s)"),
                    });
                }
                Ok(Expr::Call(name, args))
            }
            other => Err(ExprError {
                at: start,
                message: format!("unknown name `{other}`; use t, pi, sin, cos, exp, ln, sqrt, abs, min, max"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_take_a_sign_and_nesting_and_length_are_bounded() {
        assert_eq!(Expr::parse("1e-5").unwrap().eval(0.0), 1e-5);
        assert_eq!(Expr::parse("2.5E+2 - 1e2").unwrap().eval(0.0), 150.0);
        assert_eq!(Expr::parse("3-1").unwrap().eval(0.0), 2.0);
        assert_eq!(Expr::parse("- - 4").unwrap().eval(0.0), 4.0);
        let deep = format!("{}1{}", "(".repeat(2000), ")".repeat(2000));
        let e = Expr::parse(&deep).unwrap_err();
        assert!(e.message.contains("nested deeper than 64 levels"), "{}", e.message);
        let signs = format!("{}1", "-".repeat(2000));
        assert!(Expr::parse(&signs).unwrap_err().message.contains("nested deeper"));
        let long = format!("1{}", "+1".repeat(5000));
        assert!(Expr::parse(&long).unwrap_err().message.contains("at most 4096"));
    }

    #[test]
    fn parses_and_evaluates() {
        let e = Expr::parse("5 + 20*sin(t/60)").unwrap();
        assert!((e.eval(0.0) - 5.0).abs() < 1e-12);
        assert!((e.eval(30.0 * std::f64::consts::PI) - 25.0).abs() < 1e-9);
        assert_eq!(Expr::parse("2^3^2").unwrap().eval(0.0), 512.0);
        assert_eq!(Expr::parse("-t*2 + max(1, 3)").unwrap().eval(4.0), -5.0);
        assert_eq!(Expr::parse("(1+2)*3").unwrap().eval(0.0), 9.0);
    }

    #[test]
    fn errors_say_where_and_what() {
        assert_eq!(
            Expr::parse("5 + ").unwrap_err().to_string(),
            "at character 5: expected a number, `t`, a function or `(`, found the end"
        );
        assert!(Expr::parse("5 + x").unwrap_err().message.contains("unknown name `x`"));
        assert!(Expr::parse("sin(t").unwrap_err().message.contains("expected `)`"));
        assert!(Expr::parse("max(t)").unwrap_err().message.contains("takes 2 argument"));
        assert!(
            Expr::parse("2 3")
                .unwrap_err()
                .message
                .contains("an operator or the end")
        );
    }
}
