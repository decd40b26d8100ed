//! The README's main job, `cargo run --example demo`, works as written.

use std::process::Command;

#[test]
fn demo_example_runs_a_guest_on_the_in_memory_default() {
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "demo"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("guest: /tmp/demo holds [\"latest\", \"notes\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("host: the guest exited with status 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(2 links) reads \"hello from the guest\\nappended a second line\\n\""),
        "{stdout}"
    );
}
