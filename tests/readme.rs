//! The README's commands work as written: this runs them, copied from the
//! README itself, with `sh`.

mod common;

use std::process::Command;

const README: &str = include_str!("../README.md");

/// The `sh` code block that follows `heading` in the README.
fn command_after(heading: &str, nth: usize) -> String {
    let section = &README[README.find(heading).expect("heading in README")..];
    let block = section.split("```sh\n").nth(nth + 1).expect("an sh block");
    block[..block.find("```").expect("closed block")]
        .trim()
        .to_owned()
}

fn sh(command: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("sh runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_main_job_and_the_read_only_example_work() {
    let (ok, out) = sh(&command_after("## Run a guest (the main job)", 0));
    assert!(ok, "{out}");
    assert!(
        out.contains("guest: /tmp/demo holds [\"latest\", \"notes\"]"),
        "{out}"
    );

    let (ok, out) = sh(&command_after("## Run a guest (the main job)", 1));
    assert!(ok, "{out}");
    assert!(out.contains("guest: /data holds"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        !std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/written-by-guest.txt"
        ))
        .exists()
    );
}

/// The README's library examples, each an example program of the same
/// code (`examples/<name>.rs`, after its header comment).
const EXAMPLES: [&str; 4] = [
    "readme_migrate",
    "readme_embed",
    "readme_mounts",
    "readme_threaded",
];

/// The README shows every example program exactly as it is, and has no
/// library example that is not one of them.
#[test]
fn the_readme_shows_the_example_programs_as_they_are() {
    let blocks: Vec<&str> = README
        .split("```rust,no_run\n")
        .skip(1)
        .map(|b| &b[..b.find("```").expect("closed block")])
        .collect();
    for name in EXAMPLES {
        let path = format!("{}/examples/{name}.rs", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::read_to_string(&path).expect("the example exists");
        let body = &file[file.find("\n\n").expect("a header") + 2..];
        assert!(
            blocks.contains(&body),
            "{path} is not in the README as it is"
        );
    }
    assert_eq!(
        blocks.len(),
        EXAMPLES.len(),
        "a README example without its program"
    );
}

/// The demo guest built for `target`, as the README's main job builds it.
fn demo_guest(target: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = common::cargo()
        .args([
            "build",
            "-q",
            "--release",
            "--target",
            target,
            "--manifest-path",
        ])
        .arg(root.join("examples/demo-guest/Cargo.toml"))
        .arg("--target-dir")
        .arg(root.join("target/demo-guest"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the demo guest for {target}");
    root.join(format!(
        "target/demo-guest/{target}/release/demo-guest.wasm"
    ))
}

/// Runs the example program `name` in `dir`; its output, once it succeeded.
fn run_example(name: &str, dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO"))
        .args(["run", "-q", "--example", name, "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .current_dir(dir)
        .output()
        .expect("cargo runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {text}");
    text
}

/// Each README example runs, with the demo guest as its `guest.wasm` (and
/// its threaded build as `threaded.wasm`), and does what the README says.
#[test]
fn the_readme_examples_run_with_a_real_guest() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    std::fs::copy(demo_guest("wasm32-wasip1"), at("guest.wasm")).unwrap();
    std::fs::copy(demo_guest("wasm32-wasip1-threads"), at("threaded.wasm")).unwrap();
    for sub in ["data", "image", "session"] {
        std::fs::create_dir(at(sub)).unwrap();
    }
    std::fs::write(at("image/base.txt"), "from the image").unwrap();

    run_example("readme_migrate", dir.path());

    let out = run_example("readme_embed", dir.path());
    assert!(
        out.contains("guest: answered /input.txt in /output.txt"),
        "{out}"
    );
    assert!(out.contains("exit 0: HELLO"), "{out}");

    let out = run_example("readme_mounts", dir.path());
    assert!(out.contains("guest: /app holds 1 entries"), "{out}");
    assert!(
        out.contains("guest: wrote /app/written-by-guest.txt"),
        "{out}"
    );
    assert!(
        out.contains(r#"added: ["written-by-guest.txt"]"#),
        "the change is listed: {out}"
    );
    assert_eq!(std::fs::read(at("session/hello.txt")).unwrap(), b"hi");
    assert!(
        !at("image/written-by-guest.txt").exists(),
        "the image is untouched"
    );
    let layer = std::fs::read(at("layer.tar")).unwrap();
    assert!(
        layer.windows(20).any(|w| w == b"written-by-guest.txt"),
        "the layer holds the guest's file"
    );

    let out = run_example("readme_threaded", dir.path());
    assert!(
        out.contains("guest: /tmp/demo holds [\"from-a-thread\", \"latest\", \"notes\"]"),
        "{out}"
    );
    assert!(out.contains("exited with 0"), "{out}");
}
