//! Label and field selectors: parsing the `labelSelector` / `fieldSelector` query parameters and
//! `metav1.LabelSelector` objects, and matching objects against them, with the syntax, semantics
//! and error messages of k8s.io/apimachinery (`pkg/labels/selector.go`, `pkg/fields/selector.go`).
//!
//! Decisions that differ from upstream, all deliberate:
//! - The set-based `k>5` / `k<5` (Gt/Lt) label operators are rejected with a clear error rather
//!   than supported: they are rarely used and the `LabelRequirement` shape is fixed for callers.
//! - A bad label key is reported at path `key` (upstream prints a Go nil path as `<nil>`).
//! - Field selectors reject an empty field label (`=x`) while parsing (upstream accepts it and
//!   fails later with `field label not supported: `), and also accept `\!` as an escape.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

/// Error from parsing a selector; the message is shown to the user in a 400 Status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// One ANDed term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `k=v`, `k==v`; matchLabels entries.
    Equals(String, String),
    /// `k!=v`; matches when the key is absent, like upstream.
    NotEquals(String, String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)`; matches when the key is absent.
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    DoesNotExist(String),
}

impl LabelRequirement {
    /// The label key this requirement is about.
    pub fn key(&self) -> &str {
        match self {
            LabelRequirement::Equals(k, _)
            | LabelRequirement::NotEquals(k, _)
            | LabelRequirement::In(k, _)
            | LabelRequirement::NotIn(k, _)
            | LabelRequirement::Exists(k)
            | LabelRequirement::DoesNotExist(k) => k,
        }
    }

    /// `value` is the object's value for `self.key()`, `None` when the label is absent.
    fn matches_value(&self, value: Option<&str>) -> bool {
        match self {
            LabelRequirement::Equals(_, v) => value == Some(v.as_str()),
            LabelRequirement::NotEquals(_, v) => value != Some(v.as_str()),
            LabelRequirement::In(_, vs) => value.is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::NotIn(_, vs) => !value.is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelRequirement::Exists(_) => value.is_some(),
            LabelRequirement::DoesNotExist(_) => value.is_none(),
        }
    }
}

/// A parsed label selector: all requirements must hold (AND). Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parse the `labelSelector` query parameter syntax (k8s.io/apimachinery/pkg/labels/selector.go):
    /// comma = AND; whitespace around tokens allowed; empty string = match everything.
    ///
    /// Supported: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
    /// `k>5` / `k<5` are rejected with an error naming the operator (see module docs).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut p = LabelParser::new(s);
        let mut requirements = Vec::new();
        loop {
            match p.peek() {
                Token::Ident(_) | Token::Bang => {
                    let r = p
                        .requirement()
                        .map_err(|e| SelectorError(format!("unable to parse requirement: {e}")))?;
                    requirements.push(r);
                    match p.next() {
                        Token::End => return Ok(LabelSelector { requirements }),
                        Token::Comma => match p.peek() {
                            Token::Ident(_) | Token::Bang => {}
                            t => {
                                return Err(SelectorError(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.literal()
                                )))
                            }
                        },
                        t => {
                            return Err(SelectorError(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.literal()
                            )))
                        }
                    }
                }
                Token::End => return Ok(LabelSelector { requirements }),
                t => {
                    return Err(SelectorError(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    )))
                }
            }
        }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_value(labels.get(r.key()).map(String::as_str)))
    }

    /// Same, reading labels from a JSON object (the `metadata.labels` map of an object; None or
    /// non-object = no labels).
    pub fn matches_json(&self, labels: Option<&Value>) -> bool {
        let map = labels.and_then(Value::as_object);
        self.requirements.iter().all(|r| {
            let value = map.and_then(|m| m.get(r.key())).map(json_label_text);
            r.matches_value(value.as_deref())
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Convert a metav1.LabelSelector given as JSON
    /// (`{"matchLabels":{..},"matchExpressions":[{"key","operator","values":[..]}]}`) into a
    /// LabelSelector, validating keys and values like upstream `LabelSelectorAsSelector`.
    ///
    /// `null` and `{}` give the empty selector (matches everything). Upstream treats a *nil*
    /// selector as "matches nothing"; callers that need that must check for absence themselves,
    /// since this type cannot express "nothing".
    pub fn from_label_selector_json(v: &Value) -> Result<Self, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(LabelSelector::default()),
            Value::Object(o) => o,
            _ => return Err(SelectorError("label selector must be an object".into())),
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, val) in m {
                    let val = val.as_str().ok_or_else(|| {
                        SelectorError(format!("matchLabels[{k}]: value must be a string"))
                    })?;
                    requirements.push(new_requirement(
                        k.clone(),
                        Op::Equals,
                        vec![val.to_string()],
                    )?);
                }
            }
            Some(_) => return Err(SelectorError("matchLabels must be an object".into())),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, e) in exprs.iter().enumerate() {
                    requirements.push(expression_requirement(i, e)?);
                }
            }
            Some(_) => return Err(SelectorError("matchExpressions must be an array".into())),
        }
        Ok(LabelSelector { requirements })
    }
}

/// One `matchExpressions[i]` entry → requirement. Missing key/operator are treated as empty
/// strings so that the error is the upstream validation message rather than a decode error.
fn expression_requirement(i: usize, e: &Value) -> Result<LabelRequirement, SelectorError> {
    let bad = |what: &str| SelectorError(format!("matchExpressions[{i}]{what}"));
    let e = e.as_object().ok_or_else(|| bad(": must be an object"))?;
    let key = match e.get("key") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad(".key: must be a string")),
    };
    let op = match e.get("operator") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(bad(".operator: must be a string")),
    };
    let op = match op {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        other => {
            return Err(SelectorError(format!(
                "{other:?} is not a valid label selector operator"
            )))
        }
    };
    let values = match e.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(".values: must be strings"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(bad(".values: must be an array")),
    };
    new_requirement(key, op, values)
}

/// A label value read from JSON. Labels are strings once an object has been decoded, but stored
/// JSON is not re-validated here, so anything else still counts as present (null as "", like Go
/// decoding null into a string) rather than silently vanishing.
fn json_label_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

/// Operators accepted by `new_requirement` (Gt/Lt never get this far).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// Upstream `labels.NewRequirement`: validate key, value count for the operator, and each value;
/// all problems are reported together as an aggregate.
fn new_requirement(
    key: String,
    op: Op,
    values: Vec<String>,
) -> Result<LabelRequirement, SelectorError> {
    let mut errs = Vec::new();
    if let Err(e) = validate_label_key(&key) {
        errs.push(e);
    }
    match op {
        Op::In | Op::NotIn if values.is_empty() => errs.push(format!(
            "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
            go_string_slice(&values)
        )),
        Op::Equals | Op::NotEquals if values.len() != 1 => errs.push(format!(
            "values: Invalid value: {}: exact-match compatibility requires one single value",
            go_string_slice(&values)
        )),
        Op::Exists | Op::DoesNotExist if !values.is_empty() => errs.push(format!(
            "values: Invalid value: {}: values set must be empty for exists and does not exist",
            go_string_slice(&values)
        )),
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let problems = label_value_errors(v);
        if !problems.is_empty() {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {v:?}: {}",
                problems.join("; ")
            ));
        }
    }
    if !errs.is_empty() {
        return Err(SelectorError(aggregate(errs)));
    }
    let mut values = values;
    Ok(match op {
        Op::Equals => LabelRequirement::Equals(key, values.remove(0)),
        Op::NotEquals => LabelRequirement::NotEquals(key, values.remove(0)),
        Op::In => LabelRequirement::In(key, values),
        Op::NotIn => LabelRequirement::NotIn(key, values),
        Op::Exists => LabelRequirement::Exists(key),
        Op::DoesNotExist => LabelRequirement::DoesNotExist(key),
    })
}

/// Like apimachinery's `utilerrors.NewAggregate(..).Error()`: one message alone, several as a
/// bracketed, de-duplicated list.
fn aggregate(mut errs: Vec<String>) -> String {
    let mut seen = std::collections::BTreeSet::new();
    errs.retain(|e| seen.insert(e.clone()));
    if errs.len() == 1 {
        errs.remove(0)
    } else {
        format!("[{}]", errs.join(", "))
    }
}

/// Go's `%#v` of a `[]string`, which upstream puts in value-count errors.
fn go_string_slice(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

// --- lexer ------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    In,
    NotIn,
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    OpenPar,
    ClosePar,
    Comma,
    End,
}

impl Token {
    /// The source text, for "found '...'" messages (empty at end of string, like upstream).
    fn literal(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Bang => "!",
            Token::Eq => "=",
            Token::DoubleEq => "==",
            Token::NotEq => "!=",
            Token::Gt => ">",
            Token::Lt => "<",
            Token::OpenPar => "(",
            Token::ClosePar => ")",
            Token::Comma => ",",
            Token::End => "",
        }
    }
}

fn is_label_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Tokenize a label selector. Every special character is a token on its own (or `==`, `!=`), and
/// anything else up to whitespace or a special character is an identifier, so lexing can't fail.
fn lex(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if is_label_whitespace(c) {
            chars.next();
            continue;
        }
        if is_special_symbol(c) {
            chars.next();
            let tok = match c {
                '!' if chars.peek() == Some(&'=') => {
                    chars.next();
                    Token::NotEq
                }
                '=' if chars.peek() == Some(&'=') => {
                    chars.next();
                    Token::DoubleEq
                }
                '!' => Token::Bang,
                '=' => Token::Eq,
                '>' => Token::Gt,
                '<' => Token::Lt,
                '(' => Token::OpenPar,
                ')' => Token::ClosePar,
                _ => Token::Comma,
            };
            out.push(tok);
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if is_label_whitespace(c) || is_special_symbol(c) {
                break;
            }
            word.push(c);
            chars.next();
        }
        out.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Ident(word),
        });
    }
    out.push(Token::End);
    out
}

// --- parser -----------------------------------------------------------------------------------

struct LabelParser {
    tokens: Vec<Token>,
    pos: usize,
}

impl LabelParser {
    fn new(s: &str) -> Self {
        LabelParser {
            tokens: lex(s),
            pos: 0,
        }
    }

    /// Keywords only mean something in operator position; as keys and values `in` / `notin` are
    /// plain identifiers (upstream's "Values" lexer context), so peek/next hand them back as such.
    fn as_value(t: &Token) -> Token {
        match t {
            Token::In | Token::NotIn => Token::Ident(t.literal().to_string()),
            other => other.clone(),
        }
    }

    fn raw_peek(&self) -> &Token {
        // The token list always ends with End, and `next` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek(&self) -> Token {
        Self::as_value(self.raw_peek())
    }

    /// Consume a token in operator position (keywords stay keywords).
    fn next_raw(&mut self) -> Token {
        let t = self.raw_peek().clone();
        if t != Token::End {
            self.pos += 1;
        }
        t
    }

    fn next(&mut self) -> Token {
        Self::as_value(&self.next_raw())
    }

    /// One requirement; the error is prefixed with "unable to parse requirement: " by the caller.
    fn requirement(&mut self) -> Result<LabelRequirement, String> {
        let mut tok = self.next();
        let negated = tok == Token::Bang;
        if negated {
            tok = self.next();
        }
        let key = match tok {
            Token::Ident(k) => k,
            t => return Err(format!("found '{}', expected: identifier", t.literal())),
        };
        // Validate the key before looking at the operator so a bad key is what gets reported.
        validate_label_key(&key)?;
        if negated {
            // Anything after `!k` other than ',' / end is reported by the top-level loop.
            return Ok(LabelRequirement::DoesNotExist(key));
        }
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(LabelRequirement::Exists(key));
        }
        let (op, values) = match self.next_raw() {
            Token::In => (Op::In, self.set_values()?),
            Token::NotIn => (Op::NotIn, self.set_values()?),
            Token::Eq | Token::DoubleEq => (Op::Equals, vec![self.exact_value()?]),
            Token::NotEq => (Op::NotEquals, vec![self.exact_value()?]),
            t @ (Token::Gt | Token::Lt) => {
                return Err(format!(
                    "operator '{}' is not supported by this server; use one of: in, notin, =, ==, !=, exists ('key'), does not exist ('!key')",
                    t.literal()
                ))
            }
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=",
                    t.literal()
                ))
            }
        };
        new_requirement(key, op, values).map_err(|e| e.0)
    }

    /// `( a, b, ... )`. Like upstream, `()` and empty list items mean the empty value, and the
    /// result is sorted and de-duplicated (upstream keeps values in a set).
    fn set_values(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Token::OpenPar => {}
            t => return Err(format!("found '{}', expected: '('", t.literal())),
        }
        let mut values = match self.peek() {
            Token::Ident(_) | Token::Comma => {
                let values = self.identifier_list()?;
                match self.next() {
                    Token::ClosePar => values,
                    t => return Err(format!("found '{}', expected: ')'", t.literal())),
                }
            }
            Token::ClosePar => {
                self.next();
                vec![String::new()]
            }
            t => {
                return Err(format!(
                    "found '{}', expected: ',', ')' or identifier",
                    t.literal()
                ))
            }
        };
        values.sort();
        values.dedup();
        Ok(values)
    }

    /// The inside of `( ... )`, stopping before `)`; `(,`, `,,` and `,)` contribute "".
    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut values = Vec::new();
        loop {
            match self.next() {
                Token::Ident(v) => {
                    values.push(v);
                    match self.peek() {
                        Token::Comma => {}
                        Token::ClosePar => return Ok(values),
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.peek() {
                        Token::ClosePar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.next();
                            values.push(String::new());
                        }
                        _ => {}
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ))
                }
            }
        }
    }

    /// The value after `=`, `==`, `!=`; nothing before ',' or the end means the empty value.
    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(String::new());
        }
        match self.next() {
            Token::Ident(v) => Ok(v),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }
}

// --- label key / value validation (apimachinery/pkg/util/validation) ---------------------------

const QUALIFIED_NAME_MAX_LEN: usize = 63;
const LABEL_VALUE_MAX_LEN: usize = 63;
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";

/// Upstream `validation.RegexError`, including its odd `',  or '` spacing, so messages match.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(ex);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, without a regex engine.
fn is_qualified_name_shape(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`.
fn is_dns1123_subdomain_shape(s: &str) -> bool {
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.split('.').all(|label| {
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(f), Some(l)) => {
                lower_alnum(f) && lower_alnum(l) && b.iter().all(|c| lower_alnum(c) || *c == b'-')
            }
            _ => false,
        }
    })
}

/// Upstream `validation.IsQualifiedName`: the list of problems, empty when valid.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let name_regex_error = || {
        regex_error(
            QUALIFIED_NAME_ERR,
            QUALIFIED_NAME_FMT,
            &["MyName", "my.name", "123-abc"],
        )
    };
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX_LEN {
                    errs.push(format!("prefix part must be no more than {DNS1123_SUBDOMAIN_MAX_LEN} characters"));
                }
                if !is_dns1123_subdomain_shape(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"])
                    ));
                }
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                name_regex_error()
            )]
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LEN {
        errs.push(format!(
            "name part must be no more than {QUALIFIED_NAME_MAX_LEN} characters"
        ));
    }
    if !is_qualified_name_shape(name) {
        errs.push(format!("name part {}", name_regex_error()));
    }
    errs
}

/// Upstream `validation.IsValidLabelValue`: the list of problems, empty when valid.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LEN {
        errs.push(format!(
            "must be no more than {LABEL_VALUE_MAX_LEN} characters"
        ));
    }
    if !value.is_empty() && !is_qualified_name_shape(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn validate_label_key(key: &str) -> Result<(), String> {
    let errs = qualified_name_errors(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("key: Invalid value: {key:?}: {}", errs.join("; ")))
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// One ANDed term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRequirement {
    /// `f=v`, `f==v`.
    Equals(String, String),
    /// `f!=v`.
    NotEquals(String, String),
}

impl FieldRequirement {
    /// The field label (e.g. `metadata.name`) this requirement is about.
    pub fn field(&self) -> &str {
        match self {
            FieldRequirement::Equals(f, _) | FieldRequirement::NotEquals(f, _) => f,
        }
    }
}

/// A parsed field selector: all requirements must hold (AND). Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parse the `fieldSelector` query syntax (apimachinery/pkg/fields/selector.go): comma = AND,
    /// operators `=`, `==`, `!=`; values may be empty; backslash escapes `\,` `\=` `\\` (and
    /// `\!`) in values. Unlike label selectors there is no whitespace trimming, as upstream.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_field_terms(s) {
            if term.is_empty() {
                continue;
            }
            let (field, not_equals, raw) = split_field_term(term)
                .filter(|(field, _, _)| !field.is_empty())
                .ok_or_else(|| {
                    SelectorError(format!(
                        "invalid selector: '{s}'; can't understand '{term}'"
                    ))
                })?;
            let value = unescape_field_value(raw)?;
            requirements.push(if not_equals {
                FieldRequirement::NotEquals(field.to_string(), value)
            } else {
                FieldRequirement::Equals(field.to_string(), value)
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Check that every field label used is in `allowed`; error message exactly like upstream:
    /// `field label not supported: <label>`.
    pub fn check_supported(&self, allowed: &[&str]) -> Result<(), SelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| !allowed.contains(&r.field()))
        {
            Some(r) => Err(SelectorError(format!(
                "field label not supported: {}",
                r.field()
            ))),
            None => Ok(()),
        }
    }

    /// `get(label)` returns the object's value for that field label as a string ("" when absent).
    pub fn matches(&self, get: impl Fn(&str) -> String) -> bool {
        self.requirements.iter().all(|r| match r {
            FieldRequirement::Equals(f, v) => get(f) == *v,
            FieldRequirement::NotEquals(f, v) => get(f) != *v,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// If the selector pins `metadata.name` with `=`/`==`, return that name (used to narrow a
    /// list to one key). With two conflicting pins the first is returned; that is still a correct
    /// narrowing because `matches` is applied afterwards and rejects the object.
    pub fn pinned_name(&self) -> Option<&str> {
        self.requirements.iter().find_map(|r| match r {
            FieldRequirement::Equals(f, v) if f == "metadata.name" => Some(v.as_str()),
            _ => None,
        })
    }
}

/// Split on commas that are not backslash-escaped; escapes are kept for `unescape_field_value`.
fn split_field_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Split a term at the first operator: `(field, is_not_equals, raw_value)`. The field label
/// has no escaping, so the first `!=`, `==` or `=` wins; `==` is tried before `=` so the value
/// doesn't keep a leading '='.
fn split_field_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        if let Some(v) = rest.strip_prefix("!=") {
            return Some((&term[..i], true, v));
        }
        if let Some(v) = rest.strip_prefix("==") {
            return Some((&term[..i], false, v));
        }
        if let Some(v) = rest.strip_prefix('=') {
            return Some((&term[..i], false, v));
        }
    }
    None
}

/// Upstream `fields.UnescapeValue`: `\\`, `\,`, `\=` (plus `\!`) are escapes; any other escape,
/// a trailing lone backslash, or a bare ',' / '=' is an error.
fn unescape_field_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' | '!' => out.push(c),
                _ => {
                    return Err(SelectorError(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    )))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Upstream prints the rune as a number here; the character itself is more useful.
            ',' | '=' => {
                return Err(SelectorError(format!(
                    "invalid field selector: unescaped character in value: '{c}'"
                )))
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

/// Read a field label from an object given as JSON: the label "a.b.c" is looked up as the path
/// a → b → c. Strings are returned as is, booleans/numbers as their JSON text (`true`, `3`),
/// absent/null as "". Objects and arrays also give "": no field label selects on a container.
pub fn field_value(obj: &Value, label: &str) -> String {
    let mut cur = obj;
    for part in label.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => cur.to_string(),
        Value::Null | Value::Object(_) | Value::Array(_) => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn sv(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    // --- label selector parsing ---

    #[test]
    fn label_parse_every_operator() {
        use LabelRequirement::*;
        let cases: &[(&str, Vec<LabelRequirement>)] = &[
            ("a=b", vec![Equals(s("a"), s("b"))]),
            ("a==b", vec![Equals(s("a"), s("b"))]),
            ("a!=b", vec![NotEquals(s("a"), s("b"))]),
            ("a in (x,y)", vec![In(s("a"), sv(&["x", "y"]))]),
            ("a notin (x,y)", vec![NotIn(s("a"), sv(&["x", "y"]))]),
            ("a", vec![Exists(s("a"))]),
            ("!a", vec![DoesNotExist(s("a"))]),
            (
                "example.com/app=web",
                vec![Equals(s("example.com/app"), s("web"))],
            ),
            ("a=", vec![Equals(s("a"), s(""))]),
            ("a!=", vec![NotEquals(s("a"), s(""))]),
            ("a=,b", vec![Equals(s("a"), s("")), Exists(s("b"))]),
            // Keywords are ordinary identifiers as keys and values.
            ("in=notin", vec![Equals(s("in"), s("notin"))]),
            ("a in (in,notin)", vec![In(s("a"), sv(&["in", "notin"]))]),
            // Sets are sorted and de-duplicated, like upstream's sets.String.
            ("a in (z,y,z)", vec![In(s("a"), sv(&["y", "z"]))]),
            // Empty set members, as upstream: "()" and stray commas mean the empty value.
            ("a in ()", vec![In(s("a"), sv(&[""]))]),
            ("a in (,)", vec![In(s("a"), sv(&[""]))]),
            ("a in (,b)", vec![In(s("a"), sv(&["", "b"]))]),
            ("a in (b,)", vec![In(s("a"), sv(&["", "b"]))]),
            ("a in (b,,c)", vec![In(s("a"), sv(&["", "b", "c"]))]),
        ];
        for (input, want) in cases {
            let got = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&got.requirements, want, "input {input:?}");
        }
    }

    #[test]
    fn label_parse_whitespace_and_and() {
        use LabelRequirement::*;
        let got = LabelSelector::parse(" a = b ,\tc!=d , e in ( x , y ) , f notin(z),g,  ! h \n")
            .unwrap();
        assert_eq!(
            got.requirements,
            vec![
                Equals(s("a"), s("b")),
                NotEquals(s("c"), s("d")),
                In(s("e"), sv(&["x", "y"])),
                NotIn(s("f"), sv(&["z"])),
                Exists(s("g")),
                DoesNotExist(s("h")),
            ]
        );
    }

    #[test]
    fn label_parse_empty_is_everything() {
        for input in ["", "   ", "\t\n"] {
            let sel = LabelSelector::parse(input).unwrap();
            assert!(sel.is_empty(), "{input:?}");
            assert!(sel.matches(&labels(&[])));
            assert!(sel.matches(&labels(&[("a", "b")])));
            assert!(sel.matches_json(None));
        }
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
    }

    #[test]
    fn label_parse_syntax_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "=x",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "a in",
                "unable to parse requirement: found '', expected: '('",
            ),
            (
                "a notin",
                "unable to parse requirement: found '', expected: '('",
            ),
            (
                "a in b",
                "unable to parse requirement: found 'b', expected: '('",
            ),
            (
                "a in (b c)",
                "unable to parse requirement: found 'c', expected: ',' or ')'",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a in (b,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            (
                "a in (,",
                "unable to parse requirement: found '', expected: ',', or identifier",
            ),
            ("a,", "found '', expected: identifier after ','"),
            (
                ",a",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            ("a,,b", "found ',', expected: identifier after ','"),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=",
            ),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("a=b=c", "found '=', expected: ',' or 'end of string'"),
            (
                "a===b",
                "unable to parse requirement: found '=', expected: identifier",
            ),
            (
                "a=(b)",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "!=a",
                "found '!=', expected: !, identifier, or 'end of string'",
            ),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            (
                "!!a",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            (
                ")",
                "found ')', expected: !, identifier, or 'end of string'",
            ),
        ];
        for (input, want) in cases {
            match LabelSelector::parse(input) {
                Ok(sel) => panic!("{input:?} parsed as {sel:?}"),
                Err(e) => assert_eq!(e.0, *want, "input {input:?}"),
            }
        }
    }

    #[test]
    fn label_parse_gt_lt_rejected() {
        for input in ["a>5", "a<5", "a > 5,b"] {
            let e = LabelSelector::parse(input).unwrap_err();
            assert!(
                e.0.starts_with("unable to parse requirement: operator '"),
                "{input}: {e}"
            );
            assert!(e.0.contains("is not supported"), "{input}: {e}");
        }
    }

    #[test]
    fn label_parse_invalid_keys() {
        let name_rule = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        let cases: Vec<(&str, String)> = vec![
            ("-a", format!("key: Invalid value: \"-a\": name part {name_rule}")),
            ("a-", format!("key: Invalid value: \"a-\": name part {name_rule}")),
            ("a:b=c", format!("key: Invalid value: \"a:b\": name part {name_rule}")),
            (
                "a/b/c",
                format!("key: Invalid value: \"a/b/c\": a qualified name {name_rule} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
            ),
            (
                "/a",
                "key: Invalid value: \"/a\": prefix part must be non-empty".to_string(),
            ),
            (
                "a/",
                format!("key: Invalid value: \"a/\": name part must be non-empty; name part {name_rule}"),
            ),
            (
                "Example.com/a",
                "key: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string(),
            ),
        ];
        for (input, want) in cases {
            let e = LabelSelector::parse(input).unwrap_err();
            assert_eq!(
                e.0,
                format!("unable to parse requirement: {want}"),
                "input {input:?}"
            );
        }
        let long = "a".repeat(64);
        let e = LabelSelector::parse(&long).unwrap_err();
        assert!(
            e.0.ends_with(": name part must be no more than 63 characters"),
            "{e}"
        );
        assert!(LabelSelector::parse(&"a".repeat(63)).is_ok());
        let long_prefix = format!("{}/a", "b".repeat(254));
        let e = LabelSelector::parse(&long_prefix).unwrap_err();
        assert!(
            e.0.contains("prefix part must be no more than 253 characters"),
            "{e}"
        );
        // Multi-label prefixes, dots and underscores in names are fine.
        assert!(LabelSelector::parse("app.kubernetes.io/name=x,a_b.c-d=e").is_ok());
        assert!(LabelSelector::parse("a..b/c").is_err());
    }

    #[test]
    fn label_parse_invalid_values() {
        let value_rule = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        let e = LabelSelector::parse("app=-bad").unwrap_err();
        assert_eq!(
            e.0,
            format!("unable to parse requirement: values[0][app]: Invalid value: \"-bad\": {value_rule}")
        );
        let e = LabelSelector::parse("app in (ok,bad_,x/y)").unwrap_err();
        assert_eq!(
            e.0,
            format!(
                "unable to parse requirement: [values[0][app]: Invalid value: \"bad_\": {value_rule}, values[2][app]: Invalid value: \"x/y\": {value_rule}]"
            )
        );
        let e = LabelSelector::parse(&format!("a={}", "v".repeat(64))).unwrap_err();
        assert!(e.0.contains("must be no more than 63 characters"), "{e}");
        assert!(LabelSelector::parse(&format!("a={}", "v".repeat(63))).is_ok());
    }

    #[test]
    fn label_parse_never_panics_on_junk() {
        let junk = [
            "(",
            ")",
            "((",
            "a(",
            "a)",
            "in",
            "notin",
            "in (",
            "a in ((b))",
            "a in (b))",
            "!!",
            "!(",
            "a=!",
            "a!",
            "a!!=b",
            "<",
            ">",
            "a<",
            "a>",
            ",",
            ",,",
            "é=ü",
            "a=\u{0}",
            "a in (b,c",
            "a in )",
        ];
        for input in junk {
            let _ = LabelSelector::parse(input);
        }
    }

    // --- label selector matching ---

    #[test]
    fn label_matches_table() {
        let empty = labels(&[]);
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let db = labels(&[("app", "db")]);
        let cases: &[(&str, &BTreeMap<String, String>, bool)] = &[
            ("app=web", &web, true),
            ("app==web", &db, false),
            ("app=web", &empty, false),
            // != and notin match when the key is absent.
            ("app!=web", &web, false),
            ("app!=web", &db, true),
            ("app!=web", &empty, true),
            ("app in (web,db)", &web, true),
            ("app in (web,db)", &db, true),
            ("app in (web)", &db, false),
            ("app in (web)", &empty, false),
            ("app notin (web)", &web, false),
            ("app notin (web)", &db, true),
            ("app notin (web)", &empty, true),
            ("tier", &web, true),
            ("tier", &db, false),
            ("!tier", &web, false),
            ("!tier", &db, true),
            ("!tier", &empty, true),
            // AND.
            ("app=web,tier=front", &web, true),
            ("app=web,tier=back", &web, false),
            ("app,!tier", &db, true),
            ("app,!tier", &web, false),
            // Empty value matches only a present, empty label.
            ("tier=", &labels(&[("tier", "")]), true),
            ("tier=", &empty, false),
            ("tier in ()", &labels(&[("tier", "")]), true),
        ];
        for (sel, lbls, want) in cases {
            let parsed = LabelSelector::parse(sel).unwrap();
            assert_eq!(parsed.matches(lbls), *want, "{sel} on {lbls:?}");
            let as_json = serde_json::to_value(lbls).unwrap();
            assert_eq!(
                parsed.matches_json(Some(&as_json)),
                *want,
                "json: {sel} on {lbls:?}"
            );
        }
    }

    #[test]
    fn label_matches_json_edge_cases() {
        let exists = LabelSelector::parse("a").unwrap();
        let absent = LabelSelector::parse("!a").unwrap();
        let not_equals = LabelSelector::parse("a!=x").unwrap();
        for no_labels in [
            None,
            Some(json!(null)),
            Some(json!("a")),
            Some(json!(["a"])),
            Some(json!({})),
        ] {
            assert!(!exists.matches_json(no_labels.as_ref()), "{no_labels:?}");
            assert!(absent.matches_json(no_labels.as_ref()), "{no_labels:?}");
            assert!(not_equals.matches_json(no_labels.as_ref()), "{no_labels:?}");
        }
        // Non-string values still count as present.
        assert!(exists.matches_json(Some(&json!({"a": 1}))));
        assert!(LabelSelector::parse("a=1")
            .unwrap()
            .matches_json(Some(&json!({"a": 1}))));
    }

    // --- metav1.LabelSelector JSON ---

    #[test]
    fn from_json_builds_requirements() {
        use LabelRequirement::*;
        let v = json!({
            "matchLabels": {"app": "web", "tier": ""},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "zone", "operator": "NotIn", "values": ["a"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []},
                {"key": "x", "operator": "Exists", "values": null}
            ]
        });
        let sel = LabelSelector::from_label_selector_json(&v).unwrap();
        assert_eq!(
            sel.requirements,
            vec![
                Equals(s("app"), s("web")),
                Equals(s("tier"), s("")),
                In(s("env"), sv(&["prod", "staging"])),
                NotIn(s("zone"), sv(&["a"])),
                Exists(s("team")),
                DoesNotExist(s("legacy")),
                Exists(s("x")),
            ]
        );
        let ok = json!({"app": "web", "tier": "", "env": "prod", "team": "t", "x": "1"});
        assert!(sel.matches_json(Some(&ok)));
        let bad =
            json!({"app": "web", "tier": "", "env": "prod", "team": "t", "x": "1", "legacy": "y"});
        assert!(!sel.matches_json(Some(&bad)));
    }

    #[test]
    fn from_json_empty_is_everything() {
        for v in [
            json!(null),
            json!({}),
            json!({"matchLabels": {}, "matchExpressions": []}),
            json!({"matchLabels": null}),
        ] {
            let sel = LabelSelector::from_label_selector_json(&v).unwrap();
            assert!(sel.is_empty(), "{v}");
        }
    }

    #[test]
    fn from_json_errors() {
        let cases: &[(Value, &str)] = &[
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}),
                "\"Equals\" is not a valid label selector operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a"}]}),
                "\"\" is not a valid label selector operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}),
                "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]}),
                "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and does not exist",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": ["x"]}]}),
                "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist",
            ),
            (
                json!({"matchLabels": {"app": "bad value"}}),
                "values[0][app]: Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ),
            (json!("app=web"), "label selector must be an object"),
            (json!({"matchLabels": []}), "matchLabels must be an object"),
            (json!({"matchLabels": {"a": 1}}), "matchLabels[a]: value must be a string"),
            (json!({"matchExpressions": {}}), "matchExpressions must be an array"),
            (json!({"matchExpressions": [1]}), "matchExpressions[0]: must be an object"),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": "b"}]}),
                "matchExpressions[0].values: must be an array",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
                "matchExpressions[0].values: must be strings",
            ),
        ];
        for (v, want) in cases {
            let e = LabelSelector::from_label_selector_json(v).unwrap_err();
            assert_eq!(e.0, *want, "input {v}");
        }
        // Invalid keys, including a missing one.
        let e = LabelSelector::from_label_selector_json(
            &json!({"matchExpressions": [{"operator": "Exists"}]}),
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("key: Invalid value: \"\": name part must be non-empty"),
            "{e}"
        );
        let e = LabelSelector::from_label_selector_json(&json!({"matchLabels": {"-x": "y"}}))
            .unwrap_err();
        assert!(
            e.0.starts_with("key: Invalid value: \"-x\": name part must consist"),
            "{e}"
        );
    }

    // --- field selectors ---

    #[test]
    fn field_parse_operators_and_values() {
        use FieldRequirement::*;
        let cases: &[(&str, Vec<FieldRequirement>)] = &[
            ("", vec![]),
            (
                "metadata.name=foo",
                vec![Equals(s("metadata.name"), s("foo"))],
            ),
            (
                "metadata.name==foo",
                vec![Equals(s("metadata.name"), s("foo"))],
            ),
            (
                "metadata.name!=foo",
                vec![NotEquals(s("metadata.name"), s("foo"))],
            ),
            (
                "involvedObject.namespace=",
                vec![Equals(s("involvedObject.namespace"), s(""))],
            ),
            ("a!=", vec![NotEquals(s("a"), s(""))]),
            (
                "a=b,c!=d,e==f",
                vec![
                    Equals(s("a"), s("b")),
                    NotEquals(s("c"), s("d")),
                    Equals(s("e"), s("f")),
                ],
            ),
            // Empty terms are skipped.
            (",a=b,,", vec![Equals(s("a"), s("b"))]),
            // Escapes.
            (r"a=x\,y", vec![Equals(s("a"), s("x,y"))]),
            (r"a=x\=y", vec![Equals(s("a"), s("x=y"))]),
            (r"a=x\\y", vec![Equals(s("a"), s(r"x\y"))]),
            (r"a=x\!y", vec![Equals(s("a"), s("x!y"))]),
            (
                r"a=x\,y,b=z",
                vec![Equals(s("a"), s("x,y")), Equals(s("b"), s("z"))],
            ),
            (
                r"a=x\\,b=z",
                vec![Equals(s("a"), s(r"x\")), Equals(s("b"), s("z"))],
            ),
            // '!' alone needs no escape; the first operator splits.
            ("a=b!c", vec![Equals(s("a"), s("b!c"))]),
            ("a!b=c", vec![Equals(s("a!b"), s("c"))]),
            // No trimming: spaces belong to label and value, as upstream.
            ("a = b", vec![Equals(s("a "), s(" b"))]),
            (
                "spec.nodeName=ñode",
                vec![Equals(s("spec.nodeName"), s("ñode"))],
            ),
        ];
        for (input, want) in cases {
            let got = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(&got.requirements, want, "input {input:?}");
        }
    }

    #[test]
    fn field_parse_errors() {
        let cases: &[(&str, &str)] = &[
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            ("=x", "invalid selector: '=x'; can't understand '=x'"),
            ("!=x", "invalid selector: '!=x'; can't understand '!=x'"),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: '='",
            ),
            (
                "a===b",
                "invalid field selector: unescaped character in value: '='",
            ),
            (
                r"a=b\",
                r"invalid field selector: invalid escape sequence: \",
            ),
            (
                r"a=b\n",
                r"invalid field selector: invalid escape sequence: \n",
            ),
        ];
        for (input, want) in cases {
            match FieldSelector::parse(input) {
                Ok(sel) => panic!("{input:?} parsed as {sel:?}"),
                Err(e) => assert_eq!(e.0, *want, "input {input:?}"),
            }
        }
    }

    #[test]
    fn field_matches() {
        let obj =
            json!({"metadata": {"name": "foo", "namespace": ""}, "spec": {"unschedulable": true}});
        let get = |label: &str| field_value(&obj, label);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=foo", true),
            ("metadata.name==bar", false),
            ("metadata.name!=foo", false),
            ("metadata.name!=bar", true),
            ("metadata.namespace=", true),
            ("status.phase=", true),
            ("status.phase!=Running", true),
            ("spec.unschedulable=true", true),
            ("metadata.name=foo,spec.unschedulable=false", false),
            ("metadata.name=foo,metadata.namespace!=x", true),
        ];
        for (input, want) in cases {
            assert_eq!(
                FieldSelector::parse(input).unwrap().matches(get),
                *want,
                "{input}"
            );
        }
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(!FieldSelector::parse("a=b").unwrap().is_empty());
    }

    #[test]
    fn field_check_supported() {
        let allowed = ["metadata.name", "metadata.namespace"];
        let sel = FieldSelector::parse("metadata.name=a,metadata.namespace!=b").unwrap();
        assert_eq!(sel.check_supported(&allowed), Ok(()));
        let sel = FieldSelector::parse("metadata.name=a,spec.nodeName=n,status.phase=x").unwrap();
        assert_eq!(
            sel.check_supported(&allowed).unwrap_err().to_string(),
            "field label not supported: spec.nodeName"
        );
        assert_eq!(FieldSelector::default().check_supported(&[]), Ok(()));
    }

    #[test]
    fn field_pinned_name() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("metadata.name=foo", Some("foo")),
            ("metadata.namespace=ns,metadata.name==foo", Some("foo")),
            ("metadata.name!=foo", None),
            ("metadata.namespace=foo", None),
            ("metadata.name=", Some("")),
            ("metadata.name=a,metadata.name=b", Some("a")),
        ];
        for (input, want) in cases {
            assert_eq!(
                FieldSelector::parse(input).unwrap().pinned_name(),
                *want,
                "{input}"
            );
        }
    }

    #[test]
    fn field_value_lookup() {
        let obj = json!({
            "metadata": {"name": "foo", "generation": 3, "labels": {"a": "b"}},
            "spec": {"unschedulable": true, "nodeName": null, "list": [1]},
            "type": "Warning"
        });
        let cases: &[(&str, &str)] = &[
            ("metadata.name", "foo"),
            ("metadata.generation", "3"),
            ("spec.unschedulable", "true"),
            ("type", "Warning"),
            ("spec.nodeName", ""),
            ("status.phase", ""),
            ("metadata.name.x", ""),
            ("metadata.labels", ""),
            ("spec.list", ""),
            ("", ""),
        ];
        for (label, want) in cases {
            assert_eq!(field_value(&obj, label), *want, "{label}");
        }
        assert_eq!(field_value(&json!("x"), "a"), "");
        assert_eq!(field_value(&json!({"f": false, "n": -1.5}), "f"), "false");
        assert_eq!(field_value(&json!({"f": false, "n": -1.5}), "n"), "-1.5");
    }

    #[test]
    fn error_type_displays_message() {
        let e = SelectorError("boom".into());
        assert_eq!(e.to_string(), "boom");
    }
}
