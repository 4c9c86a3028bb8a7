//! The `msrp` command-line tool.

fn main() {
    println!("msrp {}", env!("CARGO_PKG_VERSION"));
}
