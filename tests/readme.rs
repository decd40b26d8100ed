//! The README's commands work as written: this runs them, copied from the
//! README itself, with `sh`.

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
