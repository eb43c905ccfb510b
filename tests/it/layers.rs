//! The layers of `docs/DESIGN.md` ("Layers"), checked on the source: a
//! module of the `kode` crate imports only from lower layers, and no shipped
//! crate depends on a function crate or on one under `tests/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top module of `kode` and its layer; a module may use only modules of
/// a strictly lower layer. A module missing here fails the test, so a new
/// module gets a place on purpose.
const LAYERS: &[(&str, u8)] = &[
    // Values and plumbing that know nothing of the rest.
    ("model", 0),
    ("secret", 0),
    ("deadline", 0),
    ("stream", 0),
    ("metrics", 0),
    ("telemetry", 0),
    ("aws", 0),
    // Pure helpers over the model; the events and the port they leave by.
    ("names", 1),
    ("envelope", 1),
    ("events", 1),
    // The sync rules (pure), the KODE client and the storage ports.
    ("sync", 2),
    ("api", 2),
    ("store", 2),
    // What puts them together.
    ("intake", 3),
    ("process", 3),
    ("config", 3),
    ("sweep", 3),
    // Adapters that need a storage adapter of their own.
    ("announce", 3),
];

/// Re-exports at the crate root, by the module that defines them.
const ROOT_REEXPORTS: &[(&str, &str)] = &[("Deadline", "deadline"), ("Secret", "secret")];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file without comments and without its test code: files that only
/// tests compile (`tests.rs`, `fakes.rs`) are empty, and an inline
/// `#[cfg(test)] mod … {` runs to the end of its file by convention.
fn production_code(path: &Path, text: &str) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if matches!(name, "tests.rs" | "fakes.rs") {
        return String::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = String::new();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
        if line.trim() == "#[cfg(test)]" && next.starts_with("mod ") && next.ends_with('{') {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        kept.push_str(code);
        kept.push('\n');
    }
    kept
}

/// The top modules a piece of code names through `crate::`.
fn crate_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let module = ROOT_REEXPORTS
            .iter()
            .find(|(item, _)| *item == name)
            .map(|(_, module)| (*module).to_owned())
            .unwrap_or(name);
        found.push(module);
    }
    found
}

/// `(module, what it uses)` for every `crate::` path in the kode crate's
/// production code, with the file it stands in.
fn imports(src: &Path) -> Vec<(String, String, PathBuf)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let Some(first) = relative.components().next() else {
            continue;
        };
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source file");
        for used in crate_modules(&production_code(&file, &text)) {
            if used != module {
                edges.push((module.clone(), used, relative.to_path_buf()));
            }
        }
    }
    edges
}

/// Every broken rule, one line each.
fn layer_violations(edges: &[(String, String, PathBuf)]) -> Vec<String> {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    for (module, used, file) in edges {
        match (layer.get(module.as_str()), layer.get(used.as_str())) {
            (Some(own), Some(other)) if other < own => {}
            (Some(own), Some(other)) => problems.push(format!(
                "{}: `{module}` (layer {own}) uses `{used}` (layer {other}); only lower layers may be used",
                file.display()
            )),
            (None, _) => problems.push(format!(
                "{}: module `{module}` has no layer in LAYERS (tests/it/layers.rs)",
                file.display()
            )),
            (_, None) => problems.push(format!(
                "{}: `{module}` uses `{used}`, which has no layer in LAYERS",
                file.display()
            )),
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[test]
fn kode_modules_only_use_lower_layers() {
    let src = workspace_root().join("shared/src");
    let edges = imports(&src);
    assert!(
        edges.iter().any(|(m, u, _)| m == "process" && u == "sync"),
        "the scan found no import at all: is {} the kode crate?",
        src.display()
    );
    let problems = layer_violations(&edges);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_layer_check_catches_what_design_forbids() {
    let edge = |m: &str, u: &str| (m.to_owned(), u.to_owned(), PathBuf::from("x.rs"));
    for (module, used) in [
        ("model", "secret"),
        ("sync", "store"),
        ("api", "store"),
        ("store", "api"),
        ("intake", "process"),
        ("process", "intake"),
        ("envelope", "process"),
    ] {
        assert_eq!(
            layer_violations(&[edge(module, used)]).len(),
            1,
            "{module} -> {used} must be refused"
        );
    }
    assert!(layer_violations(&[edge("process", "sync"), edge("sync", "model")]).is_empty());

    let code = production_code(
        Path::new("x.rs"),
        "use crate::model::X; // crate::store in a comment\nfn f(_: crate::Deadline) {}\n#[cfg(test)]\nmod tests {\n    use crate::api::Y;\n}\n",
    );
    assert_eq!(crate_modules(&code), ["model", "deadline"]);
}

/// The workspace's packages with their path dependencies, from `cargo
/// metadata`: `(package dir, [(dependency dir, kind)])`.
fn path_dependencies() -> Vec<(PathBuf, Vec<(PathBuf, String)>)> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    packages
        .iter()
        .map(|package| {
            let dir = Path::new(package["manifest_path"].as_str().expect("manifest path"))
                .parent()
                .expect("manifest dir")
                .to_path_buf();
            let deps = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter_map(|dep| {
                    let path = dep["path"].as_str()?;
                    let kind = dep["kind"].as_str().unwrap_or("normal").to_owned();
                    Some((PathBuf::from(path), kind))
                })
                .collect();
            (dir, deps)
        })
        .collect()
}

#[test]
fn shipped_crates_depend_on_no_function_crate_and_nothing_under_tests() {
    let root = workspace_root();
    let functions = root.join("functions");
    let tests = root.join("tests");
    let packages = path_dependencies();
    assert!(packages.len() >= 5, "{packages:?}");
    let mut problems = Vec::new();
    for (dir, deps) in &packages {
        if dir.starts_with(&tests) {
            continue;
        }
        for (dep, kind) in deps {
            let shipped = kind == "normal" || kind == "build";
            if dir.starts_with(&functions) && dep.starts_with(&functions) {
                problems.push(format!(
                    "{} depends on function crate {}",
                    dir.display(),
                    dep.display()
                ));
            }
            if shipped && dep.starts_with(&tests) {
                problems.push(format!(
                    "{} ships with {} from tests/",
                    dir.display(),
                    dep.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
