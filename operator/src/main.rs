fn main() {
    println!("chmcp-operator {}", env!("CARGO_PKG_VERSION"));
}
