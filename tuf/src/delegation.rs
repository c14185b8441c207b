//! Which delegated role may speak for which target (TUF 1.0 §4.5, `paths` and
//! `path_hash_prefixes`).
//!
//! A `paths` pattern is matched segment by segment, as python-tuf does: pattern and target
//! must have the same number of `/`-separated segments, and each segment matches in the
//! manner of a shell glob (`*` any run of characters, `?` one character, `[…]` and `[!…]`
//! sets), so `*` never crosses a `/`.

use sha2::{Digest, Sha256};

use crate::metadata::{DelegatedRole, PathRule};

impl DelegatedRole {
    /// Whether this role is trusted for `target`. A role with neither `paths` nor
    /// `path_hash_prefixes` is trusted for nothing.
    pub fn matches(&self, target: &str) -> bool {
        if let Some(paths) = &self.paths {
            return match self.path_rule {
                PathRule::Pattern => paths.iter().any(|pattern| path_matches(pattern, target)),
                PathRule::Prefix => paths
                    .iter()
                    .any(|prefix| target.starts_with(prefix.as_str())),
            };
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let digest = hex::encode(Sha256::digest(target.as_bytes()));
            return prefixes.iter().any(|p| digest.starts_with(p.as_str()));
        }
        false
    }
}

/// Matches `target` against one `paths` pattern.
pub fn path_matches(pattern: &str, target: &str) -> bool {
    let pattern_parts = pattern.split('/');
    let target_parts = target.split('/');
    if pattern_parts.clone().count() != target_parts.clone().count() {
        return false;
    }
    pattern_parts
        .zip(target_parts)
        .all(|(p, t)| segment_matches(p.as_bytes(), t.as_bytes()))
}

/// fnmatch for one segment, with backtracking for `*` (linear in practice, since only the
/// most recent `*` is ever revisited).
fn segment_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = match_set(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        // An unclosed '[' is a literal, as in Python's fnmatch.
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against a set at the start of `pattern` (`[abc]`, `[!a-z]`). Returns whether
/// it matched and the length of the set, or `None` if the set is not closed.
fn match_set(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pattern.get(i), Some(b'!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    while i < pattern.len() {
        if pattern[i] == b']' && i > start {
            return Some((matched != negate, i + 1));
        }
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            if pattern[i] <= c && c <= pattern[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if pattern[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_does_not_cross_slashes() {
        assert!(path_matches("*", "latest"));
        assert!(!path_matches("*", "dir/latest"));
        assert!(path_matches("dir/*", "dir/latest"));
        assert!(!path_matches("dir/*", "dir/a/b"));
        assert!(path_matches("*/*.tgz", "a/b.tgz"));
        assert!(path_matches("v1.*", "v1.2"));
        assert!(!path_matches("v1.*", "v2.1"));
        assert!(path_matches("*.txt", ".txt"));
        assert!(path_matches("a*b*c", "axxbyyc"));
        assert!(!path_matches("a*b*c", "axxbyy"));
        assert!(!path_matches("", "latest"));
    }

    #[test]
    fn question_marks_and_sets() {
        assert!(path_matches("v?", "v1"));
        assert!(!path_matches("v?", "v10"));
        assert!(path_matches("v[0-9]", "v7"));
        assert!(!path_matches("v[0-9]", "vx"));
        assert!(path_matches("v[!0-9]", "vx"));
        assert!(!path_matches("v[!0-9]", "v1"));
        assert!(path_matches("a[", "a["));
    }

    #[test]
    fn notary_paths_are_prefixes() {
        let role = |paths: &[&str]| DelegatedRole {
            name: crate::RoleName::new("targets/qa").expect("valid"),
            keyids: vec![],
            threshold: std::num::NonZeroU32::MIN,
            terminating: false,
            paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
            path_hash_prefixes: None,
            path_rule: PathRule::Prefix,
            extra: Default::default(),
        };
        assert!(role(&[""]).matches("anything/at/all"), "\"\" is every name");
        assert!(role(&["qa/"]).matches("qa/v1"));
        assert!(!role(&["qa/"]).matches("v1"));
        assert!(!role(&["qa/"]).matches("qa"));
        // The same path read as a TUF 1.0 pattern means something else.
        let mut glob = role(&["qa/"]);
        glob.path_rule = PathRule::Pattern;
        assert!(!glob.matches("qa/v1"));
    }

    #[test]
    fn hash_prefixes_use_the_sha256_of_the_name() {
        let digest = hex::encode(Sha256::digest(b"latest"));
        let role = |prefixes: Vec<String>| DelegatedRole {
            name: crate::RoleName::new("bins").expect("valid"),
            keyids: vec![],
            threshold: std::num::NonZeroU32::MIN,
            terminating: false,
            paths: None,
            path_hash_prefixes: Some(prefixes),
            path_rule: Default::default(),
            extra: Default::default(),
        };
        assert!(role(vec![digest[..2].to_owned()]).matches("latest"));
        let wrong = if digest.starts_with('0') { "1" } else { "0" };
        assert!(!role(vec![wrong.to_owned()]).matches("latest"));
    }
}
