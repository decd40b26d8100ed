//! Every filesystem function that wasi-common's linker defines, for
//! preview 1 and preview 0, is imported by at least one test guest.

mod common;

use std::collections::BTreeSet;
use wasi_common::sync::WasiCtxBuilder;
use wasmtime::{Linker, Store};

const GUESTS: &[&str] = &[
    "files", "dirs", "links", "rename", "confine", "badinput", "preview0",
];

fn is_filesystem(name: &str) -> bool {
    name.starts_with("fd_") || name.starts_with("path_")
}

#[test]
fn every_filesystem_function_is_imported_by_a_guest() {
    let mut linker = Linker::new(common::engine());
    wasi_common_vfs::runtime::add_to_linker(&mut linker, |cx| cx).unwrap();
    let mut store = Store::new(common::engine(), WasiCtxBuilder::new().build());
    let defined: BTreeSet<(String, String)> = linker
        .iter(&mut store)
        .filter(|(_, name, _)| is_filesystem(name))
        .map(|(module, name, _)| (module.to_owned(), name.to_owned()))
        .collect();
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        assert!(
            defined.iter().filter(|(m, _)| m == module).count() >= 30,
            "the linker should define the filesystem functions of {module}"
        );
    }

    let mut imported = BTreeSet::new();
    for guest in GUESTS {
        let bytes = std::fs::read(common::guest_path(guest)).unwrap();
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            if let wasmparser::Payload::ImportSection(reader) = payload.unwrap() {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    imported.insert((import.module.to_owned(), import.name.to_owned()));
                }
            }
        }
    }
    let missing: Vec<_> = defined.difference(&imported).collect();
    assert!(
        missing.is_empty(),
        "filesystem functions no guest imports: {missing:?}"
    );
}
