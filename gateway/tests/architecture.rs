//! Who may import whom, read from the sources (as `no_panic.rs` guards panics): the
//! domain never imports the top of the house, `app` never imports the transports, `mcp`
//! never imports the HTTP edge, and no import circle spans folders. The floors are
//! drawn in docs/ARCHITECTURE.md ("Floors").
//!
//! `ARCHITECTURE_SRC=/path/to/gateway/src cargo test -p chmcp-gateway --test
//! architecture` judges another tree (say, an older commit) with the same rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Modules below the top: they borrow what they read and never import what calls them.
const DOMAIN: &[&str] = &[
    "catalog",
    "tools",
    "identity",
    "oauth",
    "clickhouse",
    "cost",
    "telemetry",
    "config",
    "routing",
    "net",
    "fingerprint",
    "error_chain",
    "inflight",
    "reply",
];

/// (importer, what it must never import).
const RULES: &[(&[&str], &[&str])] = &[
    (DOMAIN, &["app", "mcp", "http", "serve"]),
    (&["app"], &["mcp", "http", "serve"]),
    (&["mcp"], &["http", "serve"]),
    (&["http"], &["serve"]),
];

/// One source file: its path under `src/` (`catalog/discover.rs`) and its text.
type Sources = BTreeMap<String, String>;

fn read_tree(root: &Path) -> Sources {
    let mut out = Sources::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

/// A file's module path: `catalog/discover.rs` → [catalog, discover], `mcp/mod.rs` → [mcp].
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code a build ships: everything before the file's test module, without `//`
/// comments (a comment may name any module).
fn shipped(src: &str) -> String {
    let code = src.find("#[cfg(test)]").map_or(src, |i| &src[..i]);
    code.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands a `use` tree (`crate::a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        return vec![path.to_string()];
    };
    let prefix = &tree[..open];
    let body = tree[open + 1..]
        .trim_end()
        .strip_suffix('}')
        .unwrap_or(&tree[open + 1..]);
    let (mut parts, mut depth, mut current) = (Vec::new(), 0, String::new());
    for ch in body.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    parts.push(current);
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(p))
        .map(|p| match p.as_str() {
            "self" => prefix.trim_end_matches("::").to_string(),
            _ => format!("{prefix}{p}"),
        })
        .collect()
}

/// Every crate-relative path a file names in shipped code: `use` trees and inline
/// `crate::…` / `super::…` paths, each as an absolute module path.
fn named_paths(file: &str, src: &str) -> Vec<Vec<String>> {
    let shipped = shipped(src);
    let code = shipped.as_str();
    let mut raw = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        let tree = &rest[..end];
        if ["crate", "super", "self"]
            .iter()
            .any(|p| tree.trim_start().starts_with(p))
        {
            raw.extend(expand(tree));
        }
    }
    for anchor in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(i) = code[at..].find(anchor) {
            let start = at + i;
            let before = code[..start].chars().last();
            at = start + anchor.len();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let len = code[start..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - start);
            raw.push(code[start..start + len].trim_end_matches(':').to_string());
        }
    }
    let here = module_of(file);
    raw.iter()
        .filter_map(|p| {
            let mut segs = p.split("::").filter(|s| !s.is_empty()).map(String::from);
            let mut abs = match segs.next()?.as_str() {
                "crate" => Vec::new(),
                "self" => here.clone(),
                "super" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => return None,
            };
            for s in segs {
                if s == "super" {
                    abs.pop();
                } else {
                    abs.push(s);
                }
            }
            Some(abs)
        })
        .collect()
}

/// The file a module path lands in: the longest prefix that is a module, followed
/// through a `pub use` in a `mod.rs` when the next segment is re-exported from a child.
fn resolve(
    sources: &Sources,
    modules: &HashMap<Vec<String>, String>,
    path: &[String],
) -> Option<String> {
    let (file, rest) = (0..=path.len())
        .rev()
        .find_map(|i| modules.get(&path[..i]).map(|f| (f.clone(), &path[i..])))?;
    if let (Some(item), true) = (rest.first(), file.ends_with("mod.rs")) {
        let code = shipped(&sources[&file]);
        let module = module_of(&file);
        for stmt in code
            .split(';')
            .filter_map(|s| s.trim().strip_prefix("pub use "))
        {
            for reexport in expand(stmt) {
                let segs: Vec<String> = reexport.split("::").map(String::from).collect();
                if segs.last() == Some(item)
                    && !["crate", "super", "self"].contains(&segs[0].as_str())
                {
                    let mut child = module.clone();
                    child.extend(segs);
                    if let Some(f) = resolve(sources, modules, &child) {
                        return Some(f);
                    }
                }
            }
        }
    }
    Some(file)
}

/// The import graph between files (shipped code only).
fn import_graph(sources: &Sources) -> BTreeMap<String, BTreeSet<String>> {
    let modules: HashMap<Vec<String>, String> = sources
        .keys()
        .filter(|f| f.as_str() != "main.rs")
        .map(|f| (module_of(f), f.clone()))
        .collect();
    sources
        .iter()
        .map(|(file, src)| {
            let targets = named_paths(file, src)
                .iter()
                .filter_map(|p| resolve(sources, &modules, p))
                .filter(|t| t != file)
                .collect();
            (file.clone(), targets)
        })
        .collect()
}

/// A file's folder on the floor plan: `catalog/discover.rs` → `catalog`, `app.rs` → `app`.
fn floor(file: &str) -> &str {
    file.split('/')
        .next()
        .unwrap_or(file)
        .trim_end_matches(".rs")
}

/// Every import that breaks a rule, as "importer → imported".
fn forbidden_imports(sources: &Sources) -> Vec<String> {
    let mut found = Vec::new();
    for (file, src) in sources {
        let from = floor(file);
        for (importers, banned) in RULES {
            if !importers.contains(&from) {
                continue;
            }
            for path in named_paths(file, src) {
                if path
                    .first()
                    .is_some_and(|top| banned.contains(&top.as_str()))
                {
                    found.push(format!("{file} → crate::{}", path.join("::")));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Strongly connected components of the file graph that hold files of more than one
/// folder: an import circle that spans folders (Tarjan's algorithm).
fn circles_across_folders(sources: &Sources) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'g str, usize>,
        low: HashMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                let folders: BTreeSet<&str> = component.iter().map(|f| floor(f)).collect();
                if folders.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let graph = import_graph(sources);
    let mut walk = Walk {
        graph: &graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

fn source_root() -> PathBuf {
    std::env::var_os("ARCHITECTURE_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn the_domain_never_imports_the_top_and_app_never_imports_the_transports() {
    let found = forbidden_imports(&read_tree(&source_root()));
    assert!(
        found.is_empty(),
        "imports against the floor plan (docs/ARCHITECTURE.md, \"Floors\"):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn no_import_circle_spans_folders() {
    let circles = circles_across_folders(&read_tree(&source_root()));
    assert!(
        circles.is_empty(),
        "import circles across folders:\n  {}",
        circles
            .iter()
            .map(|c| c.join(" ⇄ "))
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// The checker itself: an upward import, a relative one that climbs out of its folder,
/// and a circle through a re-export are all caught; tests and doc text are not code.
#[test]
fn the_checker_sees_upward_imports_and_circles() {
    let tree: Sources = [
        ("lib.rs", "pub mod app; pub mod catalog; pub mod tools;"),
        ("app.rs", "use crate::tools::Tool;\npub struct Generation;"),
        (
            "catalog/mod.rs",
            "mod discover;\npub use discover::{catalog_for, Reach};",
        ),
        (
            "catalog/discover.rs",
            "use crate::app::Generation;\nuse super::super::mcp::Answer;\npub fn catalog_for() {}",
        ),
        (
            "tools/mod.rs",
            "// crate::app in a comment is not an import\npub struct Tool;\nfn f() { crate::catalog::catalog_for() }\n#[cfg(test)]\nmod tests { use crate::http::x; }",
        ),
    ]
    .into_iter()
    .map(|(f, s)| (f.to_string(), s.to_string()))
    .collect();
    let found = forbidden_imports(&tree);
    assert!(
        found.contains(&"catalog/discover.rs → crate::app::Generation".to_string()),
        "{found:?}"
    );
    assert!(
        found.contains(&"catalog/discover.rs → crate::mcp::Answer".to_string()),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|f| f.contains("http")),
        "test code is not shipped: {found:?}"
    );
    assert!(
        !found.iter().any(|f| f.starts_with("tools")),
        "comments are not code: {found:?}"
    );
    let circles = circles_across_folders(&tree);
    assert_eq!(
        circles,
        vec![vec![
            "app.rs".to_string(),
            "catalog/discover.rs".to_string(),
            "tools/mod.rs".to_string()
        ]]
    );
}
