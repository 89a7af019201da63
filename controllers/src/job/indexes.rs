//! Sets of completion indexes in the API's compressed text form (`"1,3-5,7"`), as a Job's
//! `status.completedIndexes` and `status.failedIndexes` and a success policy's `succeededIndexes` carry them.

use std::collections::BTreeSet;

/// A set of completion indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Indexes(BTreeSet<i32>);

impl Indexes {
    /// Parse the text form, keeping only indexes below `limit` (what upstream's `parseIndexesFromString`
    /// does: a malformed interval is skipped rather than failing the whole Job).
    pub fn parse(s: &str, limit: i32) -> Indexes {
        let mut set = BTreeSet::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a.trim().parse::<i32>(), b.trim().parse::<i32>()),
                None => (part.parse::<i32>(), part.parse::<i32>()),
            };
            let (Ok(lo), Ok(hi)) = (lo, hi) else { continue };
            for i in lo.max(0)..=hi.min(limit - 1) {
                set.insert(i);
            }
        }
        Indexes(set)
    }

    /// The text form: ascending, consecutive runs as `a-b`.
    pub fn format(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut it = self.0.iter().copied().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&(end + 1)) {
                end = it.next().unwrap_or(end);
            }
            out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        }
        out.join(",")
    }

    pub fn contains(&self, i: i32) -> bool {
        self.0.contains(&i)
    }

    pub fn insert(&mut self, i: i32) -> bool {
        self.0.insert(i)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        self.0.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let cases: &[(&str, i32, &str, usize)] = &[
            ("", 10, "", 0),
            ("0", 10, "0", 1),
            ("1,3-5,7", 10, "1,3-5,7", 5),
            ("3-5,1,4", 10, "1,3-5", 4),
            ("0-2,3", 10, "0-3", 4),
            // Out of range indexes (completions shrank, or a bad write) are dropped.
            ("8-12", 10, "8-9", 2),
            ("x,2,5-y", 10, "2", 1),
        ];
        for (input, limit, want, n) in cases {
            let got = Indexes::parse(input, *limit);
            assert_eq!(got.format(), *want, "{input}");
            assert_eq!(got.len(), *n, "{input}");
        }
    }
}
