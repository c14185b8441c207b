//! notar: the command-line client of Notar.
//!
//! The binary (`src/main.rs`) parses [`cli::Cli`], sets up tracing and calls [`cli::run`].
//! The library is in layers, and each imports only the layers below it:
//!
//! 1. The base: [`error`] (errors and exit codes), [`reference`] (`<gun>[:<tag>]` with
//!    Docker's normalisation), [`output`] (stdout, tables, JSON lines).
//! 2. [`oci`]: digests, manifests and indexes (oci-spec's types), image layouts on disk,
//!    and the registry client with Docker's auth and credential helpers. It knows nothing
//!    of trust.
//! 3. [`trust`]: the trust server client, the verified metadata cache, repositories
//!    brought up to date through `notar_tuf::client::Updater`, the keyring, and publishing
//!    (signing tags, signer roles, pending delegations). It uses `oci` for digests and for
//!    the auth it shares with registries.
//! 4. [`commands`]: one module per command, thin: its clap arguments in, calls into `oci`
//!    and `trust`, results out.
//! 5. [`cli`]: the command line and the dispatch to the commands.
//!
//! No module imports one that imports it back, and no layer imports one above it: the
//! `layers` test below reads the sources and fails on any `use crate::…` that points up.
//!
//! Results go to stdout, diagnostics to stderr; exit codes are in [`error`].

pub mod cli;
pub mod commands;
pub mod error;
pub mod oci;
pub mod output;
pub mod reference;
pub mod trust;

pub use error::Error;
pub use trust::context::{Context, KDF_ENV};

#[cfg(test)]
mod layers {
    //! The rule above, checked: every `crate::<module>` path in a file names a module of
    //! the same layer or a lower one, and within a layer the imports between files have
    //! no cycle.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Layer of each top-level module; `Error`/`Context` are re-exports of layers 1 and 3.
    fn layer(module: &str) -> Option<u8> {
        Some(match module {
            "error" | "reference" | "output" | "Error" => 1,
            "oci" => 2,
            "trust" | "Context" | "KDF_ENV" => 3,
            "commands" => 4,
            "cli" => 5,
            _ => return None,
        })
    }

    /// `crate::a::b::…` paths in `text`, as their first two components (`a`, `a::b`).
    fn paths(text: &str) -> BTreeSet<(String, Option<String>)> {
        let mut found = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let ident = |s: &str| {
                s.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            };
            let first = ident(rest);
            let after = &rest[first.len()..];
            let second = after
                .strip_prefix("::")
                .map(ident)
                .filter(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
            found.insert((first, second));
        }
        // `use crate::{a, b::c}` groups.
        for (i, _) in text.match_indices("use crate::{") {
            let rest = &text[i + "use crate::{".len()..];
            let group = &rest[..rest.find("};").unwrap_or(rest.len())];
            for item in group.split(',') {
                let item = item.trim();
                let mut parts = item.split("::");
                if let Some(first) = parts.next().filter(|f| !f.is_empty()) {
                    found.insert((first.to_owned(), parts.next().map(str::to_owned)));
                }
            }
        }
        found
    }

    fn sources(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read src")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_owned();
            if path.is_dir() {
                sources(&path, &format!("{prefix}{name}::"), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = match name.as_str() {
                    "mod" => prefix.trim_end_matches("::").to_owned(),
                    _ => format!("{prefix}{name}"),
                };
                let text = std::fs::read_to_string(&path).expect("read");
                // The tests of a module may reach anywhere.
                let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
                out.push((module, code));
            }
        }
    }

    #[test]
    fn no_layer_imports_one_above_it_and_no_module_imports_back() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, "", &mut files);
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut upward = Vec::new();
        for (module, code) in &files {
            let top = module.split("::").next().unwrap_or_default();
            let Some(own) = layer(top) else {
                continue; // lib.rs, main.rs
            };
            for (first, second) in paths(code) {
                let Some(theirs) = layer(&first) else {
                    continue;
                };
                if theirs > own {
                    upward.push(format!("{module} imports crate::{first}"));
                }
                let target = match &second {
                    Some(s) if ["oci", "trust", "commands"].contains(&first.as_str()) => {
                        format!("{first}::{s}")
                    }
                    _ => first.clone(),
                };
                if &target != module {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
        assert!(upward.is_empty(), "imports that point up: {upward:#?}");
        // No cycles among the modules that exist as files.
        let known: BTreeSet<&String> = files.iter().map(|(m, _)| m).collect();
        let mut cycles = Vec::new();
        for start in &known {
            let mut stack = vec![(*start).clone()];
            let mut seen = BTreeSet::new();
            while let Some(at) = stack.pop() {
                for next in edges.get(&at).into_iter().flatten() {
                    if next == *start {
                        cycles.push(format!("{start} -> … -> {at} -> {start}"));
                    } else if known.contains(next) && seen.insert(next.clone()) {
                        stack.push(next.clone());
                    }
                }
            }
        }
        assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
        // The check sees the layers it checks.
        assert!(
            edges
                .get("commands::push")
                .is_some_and(|e| e.contains("oci::registry"))
        );
    }
}
