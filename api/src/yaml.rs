//! Manifest files as users write them: one or more YAML documents (`---`), or JSON, into JSON values —
//! for static Pod files and the deploy directory. Errors carry the line so a message can name `file:line`.

use serde_json::Value;

/// A manifest that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct YamlError {
    /// 1-based line of the problem, when the parser knows it.
    pub line: Option<u64>,
    pub message: String,
}

/// One object of a manifest, with the line its document starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub line: u64,
    pub object: Value,
}

/// Every object in `text`: empty documents are skipped, and a `kind: List` (what `kubectl get -o yaml`
/// writes) stands for its items, as kubectl reads it.
pub fn documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let trimmed = text.trim_start();
    let mut out = Vec::new();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        // JSON (one or more values): serde_json's errors are the clearer ones for JSON.
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        loop {
            let line = line_at(text, stream.byte_offset());
            match stream.next() {
                None => break,
                Some(Ok(v)) => push(&mut out, line, v),
                Some(Err(e)) => return Err(YamlError { line: Some(e.line() as u64), message: e.to_string() }),
            }
        }
        return Ok(out);
    }
    let starts = document_lines(text);
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| YamlError {
        line: e.location().map(|l| l.line()),
        message: e.to_string().lines().next().unwrap_or("invalid YAML").to_string(),
    })?;
    for (i, v) in docs.into_iter().enumerate() {
        push(&mut out, starts.get(i).copied().unwrap_or(1), v);
    }
    Ok(out)
}

fn push(out: &mut Vec<Document>, line: u64, v: Value) {
    match v {
        Value::Null => {}
        Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") && m.get("items").is_some_and(Value::is_array) => {
            for item in m["items"].as_array().into_iter().flatten() {
                out.push(Document { line, object: item.clone() });
            }
        }
        v => out.push(Document { line, object: v }),
    }
}

fn line_at(text: &str, offset: usize) -> u64 {
    // The next value starts after any whitespace at `offset`.
    let rest = &text[offset.min(text.len())..];
    let skipped = rest.len() - rest.trim_start().len();
    text[..(offset + skipped).min(text.len())].matches('\n').count() as u64 + 1
}

/// The first line of each non-empty document: line 1, or the line after the `---` that opens it.
fn document_lines(text: &str) -> Vec<u64> {
    let mut starts = vec![1u64];
    let mut content = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim_end();
        if t == "---" || t.starts_with("--- ") {
            // A document with nothing in it is skipped by the parser: the next one takes its place.
            if content {
                starts.push(i as u64 + 2);
            } else if let Some(last) = starts.last_mut() {
                *last = i as u64 + 2;
            }
            content = false;
        } else if !t.trim_start().is_empty() && !t.trim_start().starts_with('#') {
            content = true;
        }
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn several_documents_with_their_lines() {
        let docs = documents("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\n# comment\n---\nkind: ConfigMap\ndata:\n  k: \"1\"\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].object, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}));
        assert_eq!(docs[0].line, 2);
        assert_eq!(docs[1].object["data"]["k"], "1");
        assert_eq!(docs[1].line, 9);
    }

    #[test]
    fn json_and_lists() {
        let docs = documents("{\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\"},{\"kind\":\"Job\"}]}\n{\"kind\":\"Secret\"}").unwrap();
        let kinds: Vec<&str> = docs.iter().map(|d| d.object["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Pod", "Job", "Secret"]);
        assert_eq!(docs[2].line, 2);
    }

    #[test]
    fn errors_name_the_line() {
        let e = documents("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n").unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
        let e = documents("{\"a\": 1,\n \"b\": }").unwrap_err();
        assert_eq!(e.line, Some(2));
    }
}
