//! Ends as its argument says: `return`, `exit3` (proc_exit(3)) or `trap`;
//! `env NAME` prints a variable, `args` the arguments.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("return") => println!("returning"),
        Some("exit3") => std::process::exit(3),
        Some("trap") => core::arch::wasm32::unreachable(),
        Some("env") => println!("{:?}", std::env::var(&args[2]).ok()),
        Some("args") => println!("{args:?}"),
        other => panic!("unknown {other:?}"),
    }
}
