//! The shape of the code: the module graph of `router/src` and of
//! `pg_tenant_ext/src` has no cycle, and no file in `router/src` is longer
//! than 600 lines.
//!
//! An edge goes from the file a path is written in to the file of the module
//! it names: every `use` tree and every path written in code (`crate::x::y`,
//! `super::z`, `child::w`). Comments and string literals are skipped. Inline
//! modules (`mod tests { … }`) belong to their file. Run it alone with
//! `cargo test -p tenant-router --test import_graph -- --nocapture`: a cycle
//! is printed with the edges that make it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One module found through `mod x;`: the file that holds it.
struct Module {
    file: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Colons,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

/// Rust source without comments and literals, as a token stream.
fn tokens(src: &str) -> Vec<Tok> {
    let b: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && (b.get(i + 1) == Some(&'"') || b.get(i + 1) == Some(&'#')) && {
            let mut j = i + 1;
            while b.get(j) == Some(&'#') {
                j += 1;
            }
            b.get(j) == Some(&'"')
        } {
            let mut hashes = 0;
            i += 1;
            while b[i] == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push(Tok::Other);
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(Tok::Other);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F}') or a lifetime ('a).
            if b.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
            }
            out.push(Tok::Other);
        } else if c.is_alphabetic() || c == '_' {
            let s = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            // b"…" and br"…" byte strings: the prefix is not a path.
            let word: String = b[s..i].iter().collect();
            if (word == "b" || word == "br") && matches!(b.get(i), Some('"') | Some('#')) {
                if word == "br" {
                    i -= 1; // let the raw-string branch read r#"…"#
                }
                continue;
            }
            out.push(Tok::Ident(word));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '.') {
                i += 1;
            }
            out.push(Tok::Other);
        } else {
            i += 1;
            out.push(match c {
                ':' if b.get(i) == Some(&':') => {
                    i += 1;
                    Tok::Colons
                }
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                ';' => Tok::Semi,
                '*' => Tok::Star,
                c if c.is_whitespace() => continue,
                _ => Tok::Other,
            });
        }
    }
    out
}

/// The crate's modules, found from its root file through `mod x;` and
/// `#[path = "…"] mod x;`.
fn modules(root: &Path) -> BTreeMap<Vec<String>, Module> {
    let mut found = BTreeMap::new();
    let mut todo = vec![(Vec::<String>::new(), root.to_path_buf())];
    while let Some((path, file)) = todo.pop() {
        let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let owns_dir = matches!(
            file.file_name().and_then(|n| n.to_str()),
            Some("mod.rs" | "lib.rs" | "main.rs")
        );
        let dir = file.parent().unwrap().to_path_buf();
        let child_dir = if owns_dir {
            dir.clone()
        } else {
            dir.join(file.file_stem().unwrap())
        };
        let mut attr_path: Option<String> = None;
        for line in src.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("#[path = \"") {
                attr_path = rest.split('"').next().map(str::to_string);
                continue;
            }
            let decl = t
                .strip_prefix("pub mod ")
                .or_else(|| t.strip_prefix("pub(crate) mod "))
                .or_else(|| t.strip_prefix("mod "));
            if let Some(name) = decl.and_then(|d| d.strip_suffix(';')) {
                let child_file = match attr_path.take() {
                    Some(p) => dir.join(p),
                    None => {
                        let flat = child_dir.join(format!("{name}.rs"));
                        if flat.exists() {
                            flat
                        } else {
                            child_dir.join(name).join("mod.rs")
                        }
                    }
                };
                let mut child = path.clone();
                child.push(name.to_string());
                todo.push((child, child_file));
            } else if !t.starts_with("#[") {
                attr_path = None;
            }
        }
        found.insert(path, Module { file });
    }
    found
}

/// Follows inline `mod x {` blocks so that `super` and child names resolve
/// from the right module.
struct Scope {
    stack: Vec<(Vec<String>, usize)>,
    depth: usize,
}

fn edges(crate_root: &Path) -> (BTreeMap<PathBuf, BTreeSet<PathBuf>>, Vec<PathBuf>) {
    let mods = modules(crate_root);
    let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let files: Vec<PathBuf> = mods.values().map(|m| m.file.clone()).collect();
    for (mpath, module) in &mods {
        let src = std::fs::read_to_string(&module.file).unwrap();
        let toks = tokens(&src);
        let mut scope = Scope {
            stack: vec![(mpath.clone(), 0)],
            depth: 0,
        };
        let file = &module.file;
        let mut inline: BTreeSet<Vec<String>> = BTreeSet::new();
        let target_file = |p: &[String], inline: &BTreeSet<Vec<String>>| -> Option<PathBuf> {
            // The longest prefix that is a module; an inline module is its
            // file's.
            for n in (0..=p.len()).rev() {
                if let Some(m) = mods.get(&p[..n]) {
                    return Some(m.file.clone());
                }
                if inline.contains(&p[..n].to_vec()) {
                    return Some(file.clone());
                }
            }
            None
        };
        let resolve_first = |cur: &Vec<String>, segs: &[String]| -> Option<Vec<String>> {
            let mut base: Vec<String>;
            let mut rest = segs;
            match segs.first().map(String::as_str) {
                Some("crate") => {
                    base = vec![];
                    rest = &segs[1..];
                }
                Some("self") => {
                    base = cur.clone();
                    rest = &segs[1..];
                }
                Some("super") => {
                    base = cur.clone();
                    while rest.first().map(String::as_str) == Some("super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                }
                Some(first) => {
                    let mut child = cur.clone();
                    child.push(first.to_string());
                    if mods.contains_key(&child) {
                        base = cur.clone();
                    } else if cur.is_empty() && mods.contains_key(&vec![first.to_string()]) {
                        base = vec![];
                    } else {
                        return None;
                    }
                }
                None => return None,
            }
            base.extend(rest.iter().cloned());
            Some(base)
        };
        let mut i = 0;
        while i < toks.len() {
            let cur = scope.stack.last().unwrap().0.clone();
            match &toks[i] {
                Tok::Open => {
                    scope.depth += 1;
                    i += 1;
                }
                Tok::Close => {
                    if scope.stack.len() > 1 && scope.stack.last().unwrap().1 == scope.depth {
                        scope.stack.pop();
                    }
                    scope.depth = scope.depth.saturating_sub(1);
                    i += 1;
                }
                Tok::Ident(w) if w == "mod" => {
                    if let (Some(Tok::Ident(name)), Some(Tok::Open)) =
                        (toks.get(i + 1), toks.get(i + 2))
                    {
                        let mut p = cur.clone();
                        p.push(name.clone());
                        inline.insert(p.clone());
                        scope.depth += 1;
                        scope.stack.push((p, scope.depth));
                        i += 3;
                    } else {
                        i += 2;
                    }
                }
                Tok::Ident(w) if w == "use" => {
                    // Collect the use tree's leaf paths.
                    let mut j = i + 1;
                    let mut prefix: Vec<Vec<String>> = vec![vec![]];
                    let mut seg: Vec<String> = vec![];
                    let mut paths: Vec<Vec<String>> = vec![];
                    while j < toks.len() && toks[j] != Tok::Semi {
                        match &toks[j] {
                            Tok::Ident(s) if s == "as" => {
                                j += 1; // skip the alias
                            }
                            Tok::Ident(s) => seg.push(s.clone()),
                            Tok::Open => {
                                let mut p = prefix.last().unwrap().clone();
                                p.append(&mut seg);
                                prefix.push(p);
                            }
                            Tok::Close => {
                                if !seg.is_empty() {
                                    let mut p = prefix.last().unwrap().clone();
                                    p.append(&mut seg);
                                    paths.push(p);
                                }
                                prefix.pop();
                            }
                            Tok::Comma if !seg.is_empty() => {
                                let mut p = prefix.last().unwrap().clone();
                                p.append(&mut seg);
                                paths.push(p);
                            }
                            Tok::Star => {
                                paths.push(
                                    prefix
                                        .last()
                                        .unwrap()
                                        .iter()
                                        .cloned()
                                        .chain(seg.drain(..))
                                        .collect(),
                                );
                            }
                            _ => {}
                        }
                        j += 1;
                    }
                    if !seg.is_empty() {
                        let mut p = prefix.last().unwrap().clone();
                        p.append(&mut seg);
                        paths.push(p);
                    }
                    for p in paths {
                        if let Some(abs) = resolve_first(&cur, &p) {
                            if let Some(t) = target_file(&abs, &inline) {
                                graph.entry(file.clone()).or_default().insert(t);
                            }
                        }
                    }
                    i = j + 1;
                }
                Tok::Ident(first) => {
                    // A path written in code: a::b::c. Only its start
                    // decides; a path after `::` was handled with its head.
                    let after_colons = i > 0 && toks[i - 1] == Tok::Colons;
                    if !after_colons && toks.get(i + 1) == Some(&Tok::Colons) {
                        let mut segs = vec![first.clone()];
                        let mut j = i + 1;
                        while toks.get(j) == Some(&Tok::Colons) {
                            if let Some(Tok::Ident(s)) = toks.get(j + 1) {
                                segs.push(s.clone());
                                j += 2;
                            } else {
                                break;
                            }
                        }
                        if let Some(abs) = resolve_first(&cur, &segs) {
                            if let Some(t) = target_file(&abs, &inline) {
                                graph.entry(file.clone()).or_default().insert(t);
                            }
                        }
                        i = j;
                    } else {
                        i += 1;
                    }
                }
                _ => i += 1,
            }
        }
        if let Some(set) = graph.get_mut(file) {
            set.remove(file);
        }
    }
    (graph, files)
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>, files: &[PathBuf]) -> Vec<Vec<PathBuf>> {
    struct T<'a> {
        g: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        on: BTreeSet<&'a PathBuf>,
        stack: Vec<&'a PathBuf>,
        next: usize,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a PathBuf) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        if let Some(ws) = t.g.get(v) {
            for w in ws {
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let l = t.low[w].min(t.low[v]);
                    t.low.insert(v, l);
                } else if t.on.contains(w) {
                    let l = t.index[w].min(t.low[v]);
                    t.low.insert(v, l);
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = vec![];
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                scc.push(w.clone());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on: BTreeSet::new(),
        stack: vec![],
        next: 0,
        out: vec![],
    };
    for f in files {
        if !t.index.contains_key(f) {
            visit(&mut t, f);
        }
    }
    t.out
}

fn report(root: &str) -> Vec<String> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crate_root = base.join(root);
    let (graph, files) = edges(&crate_root);
    let rel = |p: &PathBuf| p.strip_prefix(&base).unwrap_or(p).display().to_string();
    cycles(&graph, &files)
        .iter()
        .map(|scc| {
            let members: BTreeSet<&PathBuf> = scc.iter().collect();
            let mut s = format!("a cycle of {} files:", scc.len());
            for f in scc {
                let inside: Vec<String> = graph
                    .get(f)
                    .into_iter()
                    .flatten()
                    .filter(|t| members.contains(t))
                    .map(rel)
                    .collect();
                s.push_str(&format!("\n  {} -> {}", rel(f), inside.join(", ")));
            }
            s
        })
        .collect()
}

#[test]
fn the_router_imports_have_no_cycle() {
    let found = report("router/src/lib.rs");
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_extension_imports_have_no_cycle() {
    let found = report("pg_tenant_ext/src/lib.rs");
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_router_file_is_over_600_lines() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = vec![];
    let mut todo = vec![base.clone()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().and_then(|e| e.to_str()) == Some("rs") {
                let n = std::fs::read_to_string(&p).unwrap().lines().count();
                if n > 600 {
                    long.push(format!(
                        "{} has {n} lines",
                        p.strip_prefix(&base).unwrap().display()
                    ));
                }
            }
        }
    }
    long.sort();
    assert!(long.is_empty(), "{}", long.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_it_is_shown() {
    // The checker itself can fail: two files that import each other.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(
        dir.path().join("b.rs"),
        "// use crate::a::A; in a comment is no edge\npub fn f() -> super::a::A { let _ = \"crate::a\"; todo!() }\npub struct B;\n",
    )
    .unwrap();
    let (graph, files) = edges(&dir.path().join("lib.rs"));
    assert_eq!(cycles(&graph, &files).len(), 1);
    std::fs::write(
        dir.path().join("b.rs"),
        "// use crate::a::A;\npub struct B;\n",
    )
    .unwrap();
    let (graph, files) = edges(&dir.path().join("lib.rs"));
    assert_eq!(cycles(&graph, &files).len(), 0);
}
