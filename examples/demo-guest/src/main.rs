//! An ordinary preview-1 program: it uses `std::fs` and has no idea that its
//! filesystem lives in the memory of the process that runs it.
//!
//! With no argument it builds a few files under `/tmp/demo`, and answers a
//! `/input.txt` it finds (the README's embedding example writes one) with
//! `/output.txt`; with a directory argument it lists that directory and
//! tries to write into it.

use std::fs;
use std::io::Write;

fn demo() -> std::io::Result<()> {
    fs::create_dir_all("/tmp/demo/notes")?;
    println!("guest: created /tmp/demo/notes");
    fs::write("/tmp/demo/notes/hello.txt", "hello from the guest\n")?;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open("/tmp/demo/notes/hello.txt")?;
    writeln!(f, "appended a second line")?;
    println!("guest: wrote and appended to hello.txt");
    fs::rename("/tmp/demo/notes/hello.txt", "/tmp/demo/notes/greeting.txt")?;
    fs::hard_link("/tmp/demo/notes/greeting.txt", "/tmp/demo/latest")?;
    println!("guest: renamed it to greeting.txt and hard-linked /tmp/demo/latest to it");
    let text = fs::read_to_string("/tmp/demo/latest")?;
    println!(
        "guest: read back {} bytes through the link: {:?}",
        text.len(),
        text
    );
    // Where it has threads (built for `wasm32-wasip1-threads`), a second
    // thread writes a file too.
    if let Ok(thread) =
        std::thread::Builder::new().spawn(|| fs::write("/tmp/demo/from-a-thread", "hi"))
    {
        thread.join().expect("the thread ran")?;
    }
    let mut names: Vec<String> = fs::read_dir("/tmp/demo")?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    println!("guest: /tmp/demo holds {names:?}");
    if let Ok(input) = fs::read_to_string("/input.txt") {
        fs::write("/output.txt", input.to_uppercase())?;
        println!("guest: answered /input.txt in /output.txt");
    }
    Ok(())
}

fn explore(dir: &str) -> std::io::Result<()> {
    let mut entries: Vec<(String, u64)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        entries.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.metadata()?.len(),
        ));
    }
    entries.sort();
    println!("guest: {dir} holds {} entries", entries.len());
    for (name, len) in entries.iter().take(5) {
        println!("guest:   {name} ({len} bytes)");
    }
    let probe = format!("{dir}/written-by-guest.txt");
    match fs::write(&probe, "hi") {
        Ok(()) => println!("guest: wrote {probe}"),
        Err(e) => println!("guest: could not write {probe}: {e}"),
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    match std::env::args().nth(1) {
        Some(dir) => explore(&dir),
        None => demo(),
    }
}
