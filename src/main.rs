fn main() {
    println!("sipstorm {}", env!("CARGO_PKG_VERSION"));
}
