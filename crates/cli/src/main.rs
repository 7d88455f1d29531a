fn main() { eprintln!("revocable: not built yet"); std::process::exit(2); }
