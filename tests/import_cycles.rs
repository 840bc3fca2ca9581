//! No import circle in any module folder of the workspace's three crates (src and every
//! folder under it, loadgen/src, contract/src), crate roots included.
//!
//! Within one folder, child module A imports child B when a file of A names a path that
//! resolves into B: `crate::…`, `super::…`, `self::…`, also inside `use` groups
//! (`crate::{a::B, c}`). Paths are resolved from each file's own module, so `super::` in
//! src/server/upload/finish.rs is `crate::server::upload`. A circle among the children of one
//! folder (A imports B, B imports A, directly or around) fails the test with the files that
//! make each import. Unit tests (`#[cfg(test)] mod tests { … }`) may reach anywhere and are
//! left out; a `tests.rs` file is a child like any other (nothing imports it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source folders of the workspace's crates.
const CRATES: &[&str] = &["src", "loadgen/src", "contract/src"];

#[test]
fn no_module_folder_has_an_import_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut circles = Vec::new();
    let mut folders_checked = 0;
    for crate_src in CRATES {
        let files = crate_files(&root.join(crate_src));
        assert!(!files.is_empty(), "{crate_src}: no sources");
        let imports: Vec<(Vec<String>, BTreeSet<Vec<String>>)> = files
            .iter()
            .map(|file| {
                let module = module_path(&root.join(crate_src), file);
                let text = std::fs::read_to_string(file).unwrap();
                let paths = imported_paths(&module, file, &text);
                (module_location(&root.join(crate_src), file), paths)
            })
            .collect();
        for folder in folders(&files, &root.join(crate_src)) {
            folders_checked += 1;
            for circle in circles_in(&folder, &imports) {
                circles.push(format!("{crate_src} {}: {circle}", display(&folder)));
            }
        }
    }
    assert!(folders_checked >= 3, "found {folders_checked} folders");
    assert!(
        circles.is_empty(),
        "import circles (a module folder's children must import each other one way only):\n{}",
        circles.join("\n")
    );
}

/// The folder's path of modules, `crate` for the root.
fn display(folder: &[String]) -> String {
    match folder.is_empty() {
        true => "crate".to_string(),
        false => folder.join("::"),
    }
}

fn crate_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The module a file is: src/server/upload/finish.rs is `server::upload::finish`,
/// src/server/mod.rs is `server`, src/lib.rs (and main.rs) the crate root.
fn module_path(crate_src: &Path, file: &Path) -> Vec<String> {
    let mut path = module_location(crate_src, file);
    let is_root = path.len() == 1 && matches!(path[0].as_str(), "lib" | "main");
    if is_root || path.last().map(String::as_str) == Some("mod") {
        path.pop();
    }
    path
}

/// Where a file is, as module names (mod.rs, lib.rs and main.rs kept as such): what decides
/// which child of a folder the file belongs to.
fn module_location(crate_src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(crate_src).unwrap().with_extension("");
    relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect()
}

/// Every folder of the crate that has module children: the crate root and each directory.
fn folders(files: &[PathBuf], crate_src: &Path) -> BTreeSet<Vec<String>> {
    let mut folders = BTreeSet::new();
    for file in files {
        let location = module_location(crate_src, file);
        for depth in 0..location.len() {
            folders.insert(location[..depth].to_vec());
        }
    }
    folders
}

/// The circles among the children of `folder`: each as `a <-> b` with the imports that make
/// it.
fn circles_in(folder: &[String], files: &[(Vec<String>, BTreeSet<Vec<String>>)]) -> Vec<String> {
    let child_of = |path: &[String]| -> Option<String> {
        let rest = path.strip_prefix(folder)?;
        let child = rest.first()?;
        // The folder's own files (mod.rs; lib.rs and main.rs at a root) are not children.
        (!(rest.len() == 1 && matches!(child.as_str(), "mod" | "lib" | "main")))
            .then(|| child.clone())
    };
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (location, paths) in files {
        let Some(from) = child_of(location) else {
            continue;
        };
        edges.entry(from.clone()).or_default();
        for path in paths {
            match child_of(path) {
                Some(to) if to != from => {
                    let by = edges
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_default();
                    by.insert(location.join("/"));
                }
                _ => {}
            }
        }
    }
    let graph: BTreeMap<String, Vec<String>> = edges
        .iter()
        .map(|(from, to)| (from.clone(), to.keys().cloned().collect()))
        .collect();
    strongly_connected(&graph)
        .into_iter()
        .map(|component| {
            let imports: Vec<String> = component
                .iter()
                .flat_map(|from| {
                    edges[from]
                        .iter()
                        .filter(|(to, _)| component.contains(to))
                        .map(move |(to, by)| {
                            let by: Vec<&str> = by.iter().map(String::as_str).collect();
                            format!("{from} -> {to} ({})", by.join(", "))
                        })
                })
                .collect();
            format!("{} [{}]", component.join(" <-> "), imports.join("; "))
        })
        .collect()
}

/// Tarjan's strongly connected components of more than one module.
fn strongly_connected(graph: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, Vec<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        components: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g str) {
            let number = self.index.len();
            self.index.insert(node, number);
            self.low.insert(node, number);
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                loop {
                    let member = self.stack.pop().unwrap();
                    component.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.components.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.components
}

/// The absolute module paths (first segments enough to place them) that `text`, the source
/// of `module`, names through `crate::`, `super::` or `self::`.
fn imported_paths(module: &[String], file: &Path, text: &str) -> BTreeSet<Vec<String>> {
    let code = without_unit_tests(&code_only(text));
    let tokens = tokens(&code);
    let mut paths = BTreeSet::new();
    let mut at = 0;
    while at < tokens.len() {
        let base = match tokens[at].as_str() {
            "crate" => Some(Vec::new()),
            "super" | "self" => Some(module.to_vec()),
            _ => None,
        };
        let preceded_by_path = at > 0 && tokens[at - 1] == "::";
        match base {
            Some(base)
                if !preceded_by_path && tokens.get(at + 1).map(String::as_str) == Some("::") =>
            {
                let mut base = base;
                // `super::super::x`: one level up for each.
                let mut next = at;
                while tokens.get(next).map(String::as_str) == Some("super") {
                    assert!(
                        !base.is_empty(),
                        "{}: super above the crate",
                        file.display()
                    );
                    base.pop();
                    next += 2;
                }
                if tokens[at] == "self" || tokens[at] == "crate" {
                    next = at + 2;
                }
                let (trees, end) = use_trees(&tokens, next);
                for tree in trees {
                    let mut path = base.clone();
                    path.extend(tree);
                    paths.insert(path);
                }
                at = end.max(at + 1);
            }
            _ => at += 1,
        }
    }
    paths
}

/// The paths a use tree starting at `at` names (`a::b`, `a::{b, c::d}`), and where it ends.
fn use_trees(tokens: &[String], mut at: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    while let Some(token) = tokens.get(at) {
        if token == "{" {
            let mut trees = Vec::new();
            at += 1;
            while at < tokens.len() && tokens[at] != "}" {
                let (inner, end) = use_trees(tokens, at);
                for tree in inner {
                    let mut path = prefix.clone();
                    path.extend(tree);
                    trees.push(path);
                }
                // Always forward, whatever the group holds.
                at = end.max(at + 1);
                if tokens.get(at).map(String::as_str) == Some(",") {
                    at += 1;
                }
            }
            return (trees, at + 1);
        }
        if !is_identifier(token) {
            break;
        }
        // `self` inside a group names the group's own path.
        if token != "self" {
            prefix.push(token.clone());
        }
        at += 1;
        if tokens.get(at).map(String::as_str) != Some("::") {
            break;
        }
        at += 1;
    }
    // Skip what is not part of the path (`as name`, `*`, the rest of a group item).
    while let Some(token) = tokens.get(at) {
        if matches!(token.as_str(), "," | "}") || !is_identifier(token) && token != "*" {
            break;
        }
        at += 1;
    }
    (vec![prefix], at)
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && token.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Identifiers, `::`, and every other character as a token of its own.
fn tokens(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if c.is_alphanumeric() || c == '_' {
            let start = at;
            while at < chars.len() && (chars[at].is_alphanumeric() || chars[at] == '_') {
                at += 1;
            }
            tokens.push(chars[start..at].iter().collect());
        } else if c == ':' && chars.get(at + 1) == Some(&':') {
            tokens.push("::".to_string());
            at += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
            at += 1;
        }
    }
    tokens
}

/// The source without comments, string and character literals (a path in a doc comment or a
/// message is not an import).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        if c == '/' && next == Some('/') {
            while at < chars.len() && chars[at] != '\n' {
                at += 1;
            }
        } else if c == '/' && next == Some('*') {
            at += 2;
            while at + 1 < chars.len() && !(chars[at] == '*' && chars[at + 1] == '/') {
                at += 1;
            }
            at += 2;
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && raw_string_end(&chars, at).is_some()
        {
            at = raw_string_end(&chars, at).unwrap();
            out.push_str("\"\"");
        } else if c == '"' {
            at += 1;
            while at < chars.len() && chars[at] != '"' {
                at += if chars[at] == '\\' { 2 } else { 1 };
            }
            at += 1;
            out.push_str("\"\"");
        } else if c == '\'' && is_char_literal(&chars, at) {
            at += 1;
            while at < chars.len() && chars[at] != '\'' {
                at += if chars[at] == '\\' { 2 } else { 1 };
            }
            at += 1;
        } else {
            out.push(c);
            at += 1;
        }
    }
    out
}

/// The end of a raw string `r"…"` / `r#"…"#` starting at `at`, if one starts there.
fn raw_string_end(chars: &[char], at: usize) -> Option<usize> {
    if at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_') {
        return None; // the end of an identifier such as `for`
    }
    let mut hashes = 0;
    let mut quote = at + 1;
    while chars.get(quote) == Some(&'#') {
        hashes += 1;
        quote += 1;
    }
    if chars.get(quote) != Some(&'"') {
        return None;
    }
    let mut end = quote + 1;
    while end < chars.len() {
        if chars[end] == '"' && (1..=hashes).all(|i| chars.get(end + i) == Some(&'#')) {
            return Some(end + 1 + hashes);
        }
        end += 1;
    }
    Some(chars.len())
}

/// A character literal (`'a'`, `'\n'`, `'\u{1F600}'`) rather than a lifetime (`'a`).
fn is_char_literal(chars: &[char], at: usize) -> bool {
    matches!(
        (chars.get(at + 1), chars.get(at + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// The source without its `#[cfg(test)] mod NAME { … }` blocks.
fn without_unit_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(found) = rest.find("#[cfg(test)]") {
        let after = &rest[found + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_inline_module = trimmed.starts_with("mod ")
            && trimmed
                .find(['{', ';'])
                .is_some_and(|at| trimmed.as_bytes()[at] == b'{');
        if !is_inline_module {
            out.push_str(&rest[..found + "#[cfg(test)]".len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..found]);
        let open = after.find('{').unwrap();
        let mut depth = 0;
        let mut end = after.len();
        for (at, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + at + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_check_sees_what_it_must() {
    // A file of module a::b naming its sibling through super, a group and crate.
    let module = vec!["a".to_string(), "b".to_string()];
    let file = Path::new("src/a/b.rs");
    let text =
        "use super::c::X;\nuse crate::{a::{d, e::F}, g};\n// super::h\nlet s = \"crate::i\";\n\
                #[cfg(test)]\nmod tests { use crate::j; }\nfn k() { super::super::l::m(); }\n";
    let paths = imported_paths(&module, file, text);
    let named: BTreeSet<String> = paths.iter().map(|path| path.join("::")).collect();
    for expected in ["a::c::X", "a::d", "a::e::F", "g", "l::m"] {
        assert!(named.contains(expected), "{expected} in {named:?}");
    }
    for unexpected in ["a::h", "i", "j"] {
        assert!(
            !named.iter().any(|path| path.starts_with(unexpected)),
            "{unexpected} in {named:?}"
        );
    }
    // Two children importing each other are a circle; one way is not.
    let files = vec![
        (
            vec!["a".into(), "c".into()],
            BTreeSet::from([vec!["a".into(), "d".into(), "X".into()]]),
        ),
        (
            vec!["a".into(), "d".into()],
            BTreeSet::from([vec!["a".into(), "c".into()]]),
        ),
        (
            vec!["a".into(), "e".into()],
            BTreeSet::from([vec!["a".into(), "c".into()]]),
        ),
    ];
    let circles = circles_in(&["a".to_string()], &files);
    assert_eq!(circles.len(), 1, "{circles:?}");
    assert!(circles[0].starts_with("c <-> d"), "{circles:?}");
}
