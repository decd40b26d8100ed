//! The published package stands alone: `cargo package` ships the library,
//! the command, the README the crate documentation includes, the
//! changelog and the license, and nothing that needs a file it leaves out
//! (the tests, benchmarks and examples build WebAssembly guests from
//! crates of their own, which a package cannot hold).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs cargo with `args` in `dir` (this package's by default), sharing
/// `target` when given; its standard output, once it succeeded.
fn cargo(args: &[&str], dir: Option<&Path>, target: Option<&Path>) -> String {
    let mut command = Command::new(env!("CARGO"));
    command
        .args(args)
        .current_dir(dir.unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR"))));
    if let Some(target) = target {
        command.env("CARGO_TARGET_DIR", target);
    }
    let out = command.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn packaged() -> BTreeSet<String> {
    cargo(
        &["package", "--list", "--allow-dirty", "--offline"],
        None,
        None,
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// `path` with its `..` components applied.
fn normalised(path: &Path) -> String {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.to_string_lossy().into_owned()
}

/// The files a source file pulls in with `include_str!` or
/// `include_bytes!`, relative to the package root.
fn included_by(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut found = Vec::new();
    for macro_name in ["include_str!(\"", "include_bytes!(\""] {
        for (at, _) in text.match_indices(macro_name) {
            let rest = &text[at + macro_name.len()..];
            if let Some(end) = rest.find('"') {
                found.push(normalised(&dir.join(&rest[..end])));
            }
        }
    }
    found
}

#[test]
fn the_package_holds_what_its_code_needs_and_nothing_that_needs_more() {
    let files = packaged();
    for needed in [
        "LICENSE",
        "README.md",
        "CHANGELOG.md",
        "Cargo.toml",
        "Cargo.lock",
        "src/lib.rs",
    ] {
        assert!(
            files.contains(needed),
            "{needed} is not packaged: {files:?}"
        );
    }
    for left_out in ["tests/", "benches/", "examples/", "fuzz/"] {
        assert!(
            !files.iter().any(|f| f.starts_with(left_out)),
            "{left_out} is packaged without the guests it builds"
        );
    }
    let sources: Vec<&String> = files.iter().filter(|f| f.ends_with(".rs")).collect();
    assert!(sources.len() > 20, "{sources:?}");
    for file in sources {
        for included in included_by(file) {
            assert!(
                files.contains(&included),
                "{file} includes {included}, which is not packaged"
            );
        }
    }
}

/// The target directory this test run builds in, which the unpacked
/// package's build shares, so that only the crate itself is compiled.
fn target_dir() -> PathBuf {
    let args = [
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ];
    let json = cargo(&args, None, None);
    let key = "\"target_directory\":\"";
    let start = json
        .find(key)
        .expect("cargo metadata names the target directory")
        + key.len();
    let len = json[start..].find('"').expect("a quoted path");
    PathBuf::from(&json[start..start + len])
}

/// What `cargo package` makes builds on its own: the archive, unpacked
/// outside the source tree (with the manifest as `cargo package` rewrote
/// it), compiles its library, command and unit tests with the packaged
/// lock file.
#[test]
fn the_unpacked_package_builds() {
    let target = target_dir();
    let args = ["package", "--no-verify", "--allow-dirty", "--offline"];
    cargo(&args, None, Some(&target));
    let name = format!("{}-{}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
    let archive = target.join("package").join(format!("{name}.crate"));
    let unpacked = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(unpacked.path())
        .status()
        .expect("tar runs");
    assert!(status.success(), "cannot unpack {}", archive.display());
    let args = ["build", "--offline", "--locked", "--all-targets"];
    cargo(&args, Some(&unpacked.path().join(&name)), Some(&target));
}
