//! kubectl's output formats, byte for byte: Go's text/tabwriter as kubectl configures it, Go's `json.MarshalIndent`
//! (sorted keys, HTML escaping), go-yaml v2 through sigs.k8s.io/yaml (its key order, quoting and block styles), and
//! the common subset of kubectl's JSONPath templates.

use serde_json::Value;

/// Go's `text/tabwriter` with kubectl's table settings (`printers.GetNewTabWriter`: minwidth 6, padding 3).
pub fn tabwrite(rows: &[Vec<String>]) -> String {
    let text: String = rows.iter().map(|r| format!("{}\n", r.join("\t"))).collect();
    tabwriter(&text, 6, 3)
}

/// Go's `text/tabwriter` (padchar ' ', no flags) over `text`: a cell is text ended by a tab; a column block is
/// a run of consecutive lines that have a cell in that column, padded to its widest cell + `padding` (at
/// least `minwidth`); a line's last cell is never padded. The algorithm of `Writer.format`, so that
/// `describe`'s mixed lines align exactly as kubectl's.
pub fn tabwriter(text: &str, minwidth: usize, padding: usize) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, minwidth, padding, &mut out);
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn format_block(lines: &[Vec<&str>], line0: usize, line1: usize, widths: &mut Vec<usize>, minwidth: usize, padding: usize, out: &mut String) {
    let column = widths.len();
    let mut start = line0;
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, start, this, widths, out);
        start = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, start, this, widths, minwidth, padding, out);
        widths.pop();
        start = this;
    }
    write_lines(lines, start, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], line0: usize, line1: usize, widths: &[usize], out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                out.extend(std::iter::repeat_n(' ', widths[j].saturating_sub(cell.chars().count())));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

/// `json.MarshalIndent(v, "", "    ")` plus the newline kubectl's JSON printer adds.
pub fn json(v: &Value) -> String {
    let mut out = String::new();
    json_into(&mut out, v, 0, true);
    out.push('\n');
    out
}

/// `json.Marshal`: compact, as JSONPath prints maps and lists.
pub fn json_compact(v: &Value) -> String {
    let mut out = String::new();
    json_into(&mut out, v, 0, false);
    out
}

fn json_into(out: &mut String, v: &Value, depth: usize, pretty: bool) {
    let nl = |out: &mut String, d: usize| {
        if pretty {
            out.push('\n');
            out.extend(std::iter::repeat_n("    ", d));
        }
    };
    match v {
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Object(m) => {
            out.push('{');
            // serde_json's Map is a BTreeMap here (no preserve_order): Go marshals map keys sorted too.
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                go_string(out, k);
                out.push_str(if pretty { ": " } else { ":" });
                json_into(out, v, depth + 1, pretty);
            }
            nl(out, depth);
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                json_into(out, v, depth + 1, pretty);
            }
            nl(out, depth);
            out.push(']');
        }
        Value::String(s) => go_string(out, s),
        other => out.push_str(&other.to_string()),
    }
}

/// Go's encoding/json string escaping: HTML-safe (`<`, `>`, `&` as \u003c…), U+2028/2029 escaped.
fn go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// sigs.k8s.io/yaml's `Marshal` (JSON → go-yaml v2): keys in yaml.v2's order, 2-space indent, sequences
/// not indented under their key, strings quoted only where a plain scalar would read back as something else.
pub fn yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => yaml_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => yaml_seq(&mut out, a, 0),
        other => {
            yaml_scalar(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn yaml_map(out: &mut String, m: &serde_json::Map<String, Value>, ind: usize) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by(|a, b| yaml_key_order(a, b));
    for (i, k) in keys.into_iter().enumerate() {
        // The first key of a map inside a sequence item sits on the `- ` line.
        if i > 0 || !out.ends_with("- ") {
            indent(out, ind);
        }
        yaml_scalar(out, &Value::String(k.clone()), ind);
        out.push(':');
        yaml_value_after_key(out, &m[k], ind);
    }
}

fn yaml_value_after_key(out: &mut String, v: &Value, ind: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml_map(out, m, ind + 2);
        }
        // go-yaml v2 does not indent a sequence under its key.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml_seq(out, a, ind);
        }
        other => {
            out.push(' ');
            yaml_scalar(out, other, ind);
            out.push('\n');
        }
    }
}

fn yaml_seq(out: &mut String, a: &[Value], ind: usize) {
    for v in a {
        if !out.ends_with("- ") {
            indent(out, ind);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => yaml_map(out, m, ind + 2),
            Value::Array(a) if !a.is_empty() => yaml_seq(out, a, ind + 2),
            other => {
                yaml_scalar(out, other, ind);
                out.push('\n');
            }
        }
    }
}

fn yaml_scalar(out: &mut String, v: &Value, ind: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_yaml_number(n)),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => yaml_string(out, s, ind),
    }
}

fn go_yaml_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    // strconv.FormatFloat(f, 'g', -1, 64): exponent form below 1e-4 and from 1e21.
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e21).contains(&a) {
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
    } else {
        format!("{f}")
    }
}

/// The style go-yaml v2 picks for a string: literal block for several lines, double quotes when the plain
/// form would resolve to another type, single quotes when the emitter's analysis forbids a plain scalar.
fn yaml_string(out: &mut String, s: &str, ind: usize) {
    let special = s.chars().any(|c| !(c == '\n' || c == '\t' || (' '..='\u{7e}').contains(&c) || (c as u32) >= 0xa0) || c == '\u{feff}');
    if s.contains('\n') {
        let space_break = s.contains(" \n");
        let trailing_space = s.ends_with(' ');
        if !special && !space_break && !trailing_space {
            let chomp = if !s.ends_with('\n') {
                "-"
            } else if s.ends_with("\n\n") || s == "\n" {
                "+"
            } else {
                ""
            };
            out.push('|');
            if s.starts_with(' ') || s.starts_with('\n') {
                out.push('2');
            }
            out.push_str(chomp);
            let body = s.strip_suffix('\n').unwrap_or(s);
            for line in body.split('\n') {
                out.push('\n');
                if !line.is_empty() {
                    indent(out, ind + 2);
                    out.push_str(line);
                }
            }
            return;
        }
        return double_quoted(out, s);
    }
    if resolves_to_non_string(s) {
        return double_quoted(out, s);
    }
    if special {
        return double_quoted(out, s);
    }
    if plain_allowed(s) {
        out.push_str(s);
    } else {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    }
}

fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02X}", c as u32)),
            '\u{feff}' => out.push_str("\\uFEFF"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// libyaml's `yaml_emitter_analyze_scalar`, the part that decides whether a one-line plain scalar may be
/// written in block context.
fn plain_allowed(s: &str) -> bool {
    if s.is_empty() || s.starts_with(' ') || s.ends_with(' ') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    let b = s.as_bytes();
    let ws_after = |i: usize| i + 1 >= b.len() || b[i + 1] == b' ' || b[i + 1] == b'\t';
    match b[0] {
        b'#' | b',' | b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' => return false,
        b'?' | b':' | b'-' if ws_after(0) => return false,
        _ => {}
    }
    for i in 0..b.len() {
        if b[i] == b':' && ws_after(i) {
            return false;
        }
        if b[i] == b'#' && i > 0 && (b[i - 1] == b' ' || b[i - 1] == b'\t') {
            return false;
        }
    }
    true
}

/// go-yaml v2's `resolve`: would this plain scalar read back as null, a bool, a number or a timestamp?
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
        "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF",
        "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'+' || first == b'-' || first == b'.') {
        return false;
    }
    if is_timestamp(s) {
        return true;
    }
    let plain = s.replace('_', "");
    let (neg, body) = match plain.strip_prefix('-').or_else(|| plain.strip_prefix('+')) {
        Some(b) => (true, b),
        None => (false, plain.as_str()),
    };
    let _ = neg;
    // strconv.ParseInt(plain, 0, 64): decimal, 0x, 0o, 0b and leading-0 octal.
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit())
    } else if let Some(o) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        !o.is_empty() && o.chars().all(|c| ('0'..='7').contains(&c))
    } else if let Some(bn) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        !bn.is_empty() && bn.chars().all(|c| c == '0' || c == '1')
    } else if body.len() > 1 && body.starts_with('0') {
        body.chars().all(|c| ('0'..='7').contains(&c))
    } else {
        !body.is_empty() && body.chars().all(|c| c.is_ascii_digit())
    };
    int || yaml_float(&plain)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// go-yaml v2's timestamp formats: `2006-1-2T15:4:5.999999999Z07:00` (T or t), `2006-1-2 15:4:5.999999999`, `2006-1-2`.
fn is_timestamp(s: &str) -> bool {
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let num = |p: &str, min: usize, max: usize| p.len() >= min && p.len() <= max && p.chars().all(|c| c.is_ascii_digit());
    if parts.len() != 3 || !num(parts[0], 4, 4) || !num(parts[1], 1, 2) || !num(parts[2], 1, 2) {
        return false;
    }
    let Some(t) = time else { return true };
    // h:m:s, fractional seconds, then (for the T forms) a zone `Z` or ±hh:mm.
    let (clock, zone) = match t.find(['Z', '+']).or_else(|| t.rfind('-')) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let hms: Vec<&str> = hms.split(':').collect();
    if hms.len() != 3 || !hms.iter().all(|p| num(p, 1, 2)) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    zone.is_empty() || zone == "Z" || {
        let z = &zone[1..];
        let (h, m) = z.split_once(':').unwrap_or((z, "00"));
        num(h, 2, 2) && num(m, 2, 2)
    }
}

/// go-yaml v2's `keyList.Less`: numbers numerically, letters after non-letters, runs of digits by value.
pub fn yaml_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let less = |a: &str, b: &str| -> bool {
        let ar: Vec<char> = a.chars().collect();
        let br: Vec<char> = b.chars().collect();
        let mut i = 0;
        while i < ar.len() && i < br.len() {
            if ar[i] == br[i] {
                i += 1;
                continue;
            }
            let al = ar[i].is_alphabetic();
            let bl = br[i].is_alphabetic();
            if al && bl {
                return ar[i] < br[i];
            }
            if al || bl {
                return bl;
            }
            let (mut an, mut bn): (i64, i64) = (0, 0);
            if ar[i] == '0' || br[i] == '0' {
                let mut j = i;
                while j > 0 && ar[j - 1].is_ascii_digit() {
                    j -= 1;
                    if ar[j] != '0' {
                        an = 1;
                        bn = 1;
                        break;
                    }
                }
            }
            let mut ai = i;
            while ai < ar.len() && ar[ai].is_ascii_digit() {
                an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
                ai += 1;
            }
            let mut bi = i;
            while bi < br.len() && br[bi].is_ascii_digit() {
                bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
                bi += 1;
            }
            if an != bn {
                return an < bn;
            }
            if ai != bi {
                return ai < bi;
            }
            return ar[i] < br[i];
        }
        ar.len() < br.len()
    };
    if less(a, b) {
        Less
    } else if less(b, a) {
        Greater
    } else {
        Equal
    }
}

/// A parsed kubectl JSONPath template (`{.a.b}`, `{.items[*].x}`, `{range …}{end}`, `{"\n"}`, text).
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    Slice(Option<i64>, Option<i64>),
    Filter(Vec<Step>, String, Value),
}

/// Evaluate `template` on `data` with missing keys allowed (kubectl's default), as `-o jsonpath=` prints it.
pub fn jsonpath(template: &str, data: &Value) -> anyhow::Result<String> {
    let nodes = parse_template(template)?;
    let mut out = String::new();
    eval_nodes(&nodes, data, &mut out)?;
    Ok(out)
}

/// The values of a template's single path expression (`{.a.b[*]}`), for `--sort-by` and custom columns.
pub fn jsonpath_values(template: &str, data: &Value) -> anyhow::Result<Vec<Value>> {
    let nodes = parse_template(template)?;
    let mut out = Vec::new();
    for n in &nodes {
        if let Node::Path(steps) = n {
            out.extend(walk(steps, data).into_iter().cloned());
        }
    }
    Ok(out)
}

fn parse_template(t: &str) -> anyhow::Result<Vec<Node>> {
    let mut stack: Vec<(Option<Vec<Step>>, Vec<Node>)> = vec![(None, Vec::new())];
    let mut rest = t;
    while !rest.is_empty() {
        let Some(open) = rest.find('{') else {
            stack.last_mut().expect("root").1.push(Node::Text(rest.to_string()));
            break;
        };
        if open > 0 {
            stack.last_mut().expect("root").1.push(Node::Text(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').map(|c| c + open).ok_or_else(|| anyhow::anyhow!("unclosed action"))?;
        let expr = rest[open + 1..close].trim();
        rest = &rest[close + 1..];
        if let Some(r) = expr.strip_prefix("range").filter(|r| r.starts_with([' ', '.', '@', '$'])) {
            stack.push((Some(parse_path(r.trim())?), Vec::new()));
        } else if expr == "end" {
            let (steps, body) = stack.pop().filter(|_| !stack.is_empty()).ok_or_else(|| anyhow::anyhow!("not in range, nothing to end"))?;
            stack.last_mut().expect("root").1.push(Node::Range(steps.expect("a range"), body));
        } else if expr.starts_with('"') || expr.starts_with('\'') {
            let inner = &expr[1..expr.len().saturating_sub(1)];
            let text = inner.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r").replace("\\\"", "\"");
            stack.last_mut().expect("root").1.push(Node::Text(text));
        } else {
            stack.last_mut().expect("root").1.push(Node::Path(parse_path(expr)?));
        }
    }
    if stack.len() != 1 {
        anyhow::bail!("unclosed range");
    }
    Ok(stack.pop().expect("root").1)
}

fn parse_path(p: &str) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    let p = p.strip_prefix('$').unwrap_or(p);
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'@' => i += 1,
            b'.' => {
                i += 1;
                let s = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                if i > s {
                    steps.push(Step::Field(p[s..i].to_string()));
                }
            }
            b'[' => {
                let close = find_bracket(p, i)?;
                let inner = p[i + 1..close].trim();
                i = close + 1;
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
                    let (lhs, rhs) = f.split_once("==").ok_or_else(|| anyhow::anyhow!("unsupported filter {f:?}"))?;
                    let rhs = rhs.trim();
                    let v = if rhs.starts_with('"') || rhs.starts_with('\'') {
                        Value::String(rhs[1..rhs.len() - 1].to_string())
                    } else {
                        serde_json::from_str(rhs).unwrap_or(Value::String(rhs.to_string()))
                    };
                    steps.push(Step::Filter(parse_path(lhs.trim())?, "==".into(), v));
                } else if inner.starts_with('\'') || inner.starts_with('"') {
                    steps.push(Step::Field(inner[1..inner.len() - 1].to_string()));
                } else if let Some((a, b)) = inner.split_once(':') {
                    let n = |s: &str| s.trim().parse::<i64>().ok();
                    steps.push(Step::Slice(n(a), n(b)));
                } else {
                    steps.push(Step::Index(inner.parse().map_err(|_| anyhow::anyhow!("bad index {inner:?}"))?));
                }
            }
            _ => {
                // A bare first field: `{metadata.name}` reads as `{.metadata.name}`.
                let s = i;
                while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                    i += 1;
                }
                steps.push(Step::Field(p[s..i].to_string()));
            }
        }
    }
    Ok(steps)
}

fn find_bracket(p: &str, open: usize) -> anyhow::Result<usize> {
    let mut depth = 0;
    for (i, c) in p[open..].char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(open + i);
                }
            }
            _ => {}
        }
    }
    anyhow::bail!("unterminated array")
}

fn walk<'v>(steps: &[Step], cur: &'v Value) -> Vec<&'v Value> {
    let mut vals = vec![cur];
    for step in steps {
        let mut next = Vec::new();
        for v in vals {
            match step {
                Step::Field(f) => {
                    if let Some(x) = v.get(f) {
                        next.push(x);
                    }
                }
                Step::Index(n) => {
                    if let Some(a) = v.as_array() {
                        let i = if *n < 0 { a.len() as i64 + n } else { *n };
                        if let Some(x) = usize::try_from(i).ok().and_then(|i| a.get(i)) {
                            next.push(x);
                        }
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Slice(a, b) => {
                    if let Some(arr) = v.as_array() {
                        let len = arr.len() as i64;
                        let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                        let s = norm(a.unwrap_or(0));
                        let e = norm(b.unwrap_or(len));
                        if s < e {
                            next.extend(arr[s as usize..e as usize].iter());
                        }
                    }
                }
                Step::Filter(lhs, _, rhs) => {
                    if let Some(arr) = v.as_array() {
                        next.extend(arr.iter().filter(|e| walk(lhs, e).first().is_some_and(|x| *x == rhs)));
                    }
                }
            }
        }
        vals = next;
    }
    vals
}

fn eval_nodes(nodes: &[Node], cur: &Value, out: &mut String) -> anyhow::Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(steps) => {
                let vals = walk(steps, cur);
                let texts: Vec<String> = vals.into_iter().map(jsonpath_text).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(steps, body) => {
                for v in walk(steps, cur) {
                    match v {
                        Value::Array(a) => {
                            for e in a {
                                eval_nodes(body, e, out)?;
                            }
                        }
                        other => eval_nodes(body, other, out)?,
                    }
                }
            }
        }
    }
    Ok(())
}

fn jsonpath_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(_) | Value::Array(_) => json_compact(v),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_pads_like_kubectl() {
        let rows = vec![vec!["NAME".into(), "STATUS".into(), "AGE".into()], vec!["default".into(), "Active".into(), "4s".into()]];
        assert_eq!(tabwrite(&rows), "NAME      STATUS   AGE\ndefault   Active   4s\n");
    }

    #[test]
    fn tabwriter_column_blocks_end_at_lines_without_the_cell() {
        let t = "Name:\tx\nLabels:\ta=b\n\tc=d\nCommand:\n  sh\nState:\tRunning\n  Started:\tnow\n";
        assert_eq!(
            tabwriter(t, 0, 2),
            "Name:    x\nLabels:  a=b\n         c=d\nCommand:\n  sh\nState:      Running\n  Started:  now\n"
        );
    }

    #[test]
    fn json_is_go_style() {
        assert_eq!(json(&json!({"b": [], "a": {"x": "<&>"}})), "{\n    \"a\": {\n        \"x\": \"\\u003c\\u0026\\u003e\"\n    },\n    \"b\": []\n}\n");
    }

    #[test]
    /// `n` is a bool to go-yaml v2, so the key is quoted (as `note: "y"` is in kubectl's output).
    fn yaml_is_go_yaml_v2_style() {
        let v = json!({"metadata": {"name": "x", "creationTimestamp": "2024-01-01T00:00:00Z", "labels": {}},
            "spec": {"containers": [{"name": "c", "args": ["sleep", "10", "-c"]}]}, "n": 5, "s": "",
            "multi": "a\nb\n", "colon": "a: b", "star": "*"});
        assert_eq!(
            yaml(&v),
            "colon: 'a: b'\nmetadata:\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n  labels: {}\n  name: x\nmulti: |\n  a\n  b\n\"n\": 5\ns: \"\"\nspec:\n  containers:\n  - args:\n    - sleep\n    - \"10\"\n    - -c\n    name: c\nstar: '*'\n"
        );
    }

    #[test]
    fn jsonpath_subset() {
        let v = json!({"items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]});
        assert_eq!(jsonpath("{.items[*].metadata.name}", &v).unwrap(), "a b");
        assert_eq!(jsonpath("{range .items[*]}{.metadata.name}{\"\\n\"}{end}", &v).unwrap(), "a\nb\n");
        assert_eq!(jsonpath("{range.items[*]}[{.metadata.name}]{end}", &v).unwrap(), "[a][b]");
        assert_eq!(jsonpath("{.items[0].metadata}", &v).unwrap(), "{\"name\":\"a\"}");
    }
}
